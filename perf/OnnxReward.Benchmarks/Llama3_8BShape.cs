using System.Diagnostics;
using OnnxReward.Export.Checkpoints;

namespace OnnxReward.Benchmarks;

/// <summary>
/// <c>generate-8b &lt;dir&gt; [seed]</c>: a seeded synthetic checkpoint with RLHFlow/ArmoRM-Llama3-8B-v0.1's exact shape
/// (armorm.md §1.1–1.2): its config.json values, tensor names and dtypes (BF16 backbone, F32 head), split into four
/// safetensors shards with a model.safetensors.index.json, as the real one is (about 15 GB). Values: uniform with
/// armorm-tiny's standard deviations (embeddings 1, Linear weights 1/√fan_in, norms 1 ± 0.1, the gating MLP as
/// ArmoRM's initialisation). Only the perf/ scale run (perf/scale-8b.sh) uses it; never commit its output.
/// Memory: one tensor at a time (the largest, the 1.05 GB BF16 embedding). An optional layer count writes the same
/// widths with fewer layers (the width-true model of perf/README.md's accuracy table: 2 layers, about 1.9 GB).
/// </summary>
internal static class Llama3_8BShape
{
    public static readonly LlamaConfig Config = SyntheticCheckpoint.ArmoRmLlama3_8B;
    public static readonly RewardHeadConfig Head = SyntheticCheckpoint.ArmoRmHead;

    public static int Run(string[] args)
    {
        if (args.Length is < 2 or > 4)
        {
            Console.Error.WriteLine("usage: generate-8b <output folder> [seed] [layers (1-32, default 32)]");
            return 2;
        }
        var dir = args[1];
        var seed = args.Length >= 3 ? ulong.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 20261202UL;
        var layers = args.Length == 4 ? int.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture) : Config.NumHiddenLayers;
        if (layers is < 1 or > 32)
        {
            Console.Error.WriteLine($"error: layers must be 1-32 (ArmoRM-Llama3-8B has 32), not {layers}.");
            return 2;
        }
        if (Directory.Exists(dir) && Directory.EnumerateFileSystemEntries(dir).Any())
        {
            Console.Error.WriteLine($"error: {dir} is not empty; pass a new folder.");
            return 1;
        }
        var clock = Stopwatch.StartNew();
        var bytes = Write(dir, seed, Console.Out, layers);
        Console.WriteLine($"wrote {bytes / 1e9:F2} GB in {clock.Elapsed.TotalSeconds:F0} s to {dir}");
        return 0;
    }

    /// <summary>Writes the checkpoint with the Llama-3 tokenizer of armorm-tiny; returns the tensor bytes written.</summary>
    public static long Write(string dir, ulong seed, TextWriter log, int layers = 32) =>
        SyntheticCheckpoint.Write(dir, Config with { NumHiddenLayers = layers }, Head, seed, Path.Combine(SharedPaths.Shared(), "reference", "armorm-tiny"), log: log);
}
