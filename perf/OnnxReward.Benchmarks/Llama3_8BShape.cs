using System.Diagnostics;
using System.Runtime.InteropServices;
using OnnxReward.Export.Checkpoints;

namespace OnnxReward.Benchmarks;

/// <summary>
/// <c>generate-8b &lt;dir&gt; [seed]</c>: a seeded synthetic checkpoint with RLHFlow/ArmoRM-Llama3-8B-v0.1's exact shape
/// (armorm.md §1.1–1.2): its config.json values, tensor names and dtypes (BF16 backbone, F32 head), split into four
/// safetensors shards with a model.safetensors.index.json, as the real one is (about 15 GB). Values: uniform with
/// armorm-tiny's standard deviations (embeddings 1, Linear weights 1/√fan_in, norms 1 ± 0.1, the gating MLP as
/// ArmoRM's initialisation). Only the perf/ scale run (perf/scale-8b.sh) uses it; never commit its output.
/// Memory: one tensor at a time (the largest, the 1.05 GB BF16 embedding).
/// </summary>
internal static class Llama3_8BShape
{
    public static readonly LlamaConfig Config = new()
    {
        HiddenSize = 4096, IntermediateSize = 14336, NumHiddenLayers = 32, NumAttentionHeads = 32, NumKeyValueHeads = 8,
        VocabSize = 128257, RmsNormEps = 1e-5, RopeTheta = 500000, MaxPositionEmbeddings = 8192,
        PadTokenId = 128256, BosTokenId = 128000, EosTokenId = 128001,
    };

    public static readonly RewardHeadConfig Head = new()
    {
        NumObjectives = 19, GatingHiddenDim = 1024, GatingNHidden = 3, GatingTemperature = 10,
    };

    public static int Run(string[] args)
    {
        if (args.Length is < 2 or > 3)
        {
            Console.Error.WriteLine("usage: generate-8b <output folder> [seed]");
            return 2;
        }
        var dir = args[1];
        var seed = args.Length == 3 ? ulong.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 20261202UL;
        if (Directory.Exists(dir) && Directory.EnumerateFileSystemEntries(dir).Any())
        {
            Console.Error.WriteLine($"error: {dir} is not empty; pass a new folder.");
            return 1;
        }
        var clock = Stopwatch.StartNew();
        var bytes = Write(dir, seed, Console.Out);
        Console.WriteLine($"wrote {bytes / 1e9:F2} GB in {clock.Elapsed.TotalSeconds:F0} s to {dir}");
        return 0;
    }

    /// <summary>Writes the checkpoint; returns the tensor bytes written.</summary>
    public static long Write(string dir, ulong seed, TextWriter log)
    {
        Directory.CreateDirectory(dir);
        // The Llama-3 tokenizer files armorm-tiny carries (the real ArmoRM tokenizer), so the model also scores text.
        var tokenizer = Path.Combine(SharedPaths.Shared(), "reference", "armorm-tiny");
        foreach (var file in new[] { "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json" })
            if (File.Exists(Path.Combine(tokenizer, file)))
                File.Copy(Path.Combine(tokenizer, file), Path.Combine(dir, file), overwrite: true);

        // HF's save_pretrained default max_shard_size "5GB" = 5·10⁹ bytes: 15 GB of tensors in four shards.
        long total = 0;
        var state = seed * 0x9E3779B97F4A7C15UL + 1;
        byte[] raw = [];
        using (var w = new HuggingFaceCheckpointWriter(dir, maxShardBytes: 5_000_000_000L))
        {
            foreach (var (name, shape, _) in CheckpointLayout.Expected(Config, Head))
            {
                var dtype = name.StartsWith("model.", StringComparison.Ordinal) ? TensorDType.BF16 : TensorDType.F32;
                var count = shape.Aggregate(1L, (a, b) => a * b);
                var size = dtype == TensorDType.F32 ? 4 : 2;
                var n = checked((int)(count * size));
                if (raw.Length < n) { raw = []; raw = GC.AllocateUninitializedArray<byte>(n); }
                var (std, mean) = Distribution(name, shape);
                Fill(raw.AsSpan(0, n), dtype, std, mean, ref state);
                if (name == "reward_transform_matrix")                      // ArmoRM's structure: the identity
                {
                    var t = MemoryMarshal.Cast<byte, float>(raw.AsSpan(0, n));
                    for (var i = 0; i < t.Length; i++) t[i] = i / Head.NumObjectives == i % Head.NumObjectives ? 1f : 0f;
                }
                w.AddRaw(name, dtype, shape, raw.AsSpan(0, n));
                total += n;
                if (name.EndsWith("down_proj.weight", StringComparison.Ordinal) || !name.StartsWith("model.layers.", StringComparison.Ordinal))
                    log.WriteLine($"  {name} {dtype} [{string.Join(", ", shape)}] ({total / 1e9:F2} GB so far)");
            }
            raw = [];
            w.Complete(Config, Head, torchDtype: "float32");
        }
        return total;
    }

    private static (double Std, double Mean) Distribution(string name, long[] shape)
    {
        if (name.EndsWith("norm.weight", StringComparison.Ordinal)) return (0.1, 1);
        if (name == "model.embed_tokens.weight") return (1, 0);
        if (name == "gating.logit_scale") return (0, 1.7);
        if (name == "regression_layer.weight") return (0.5 / Math.Sqrt(shape[1]), 0);
        if (name.StartsWith("gating.layers.", StringComparison.Ordinal))
        {
            if (name.EndsWith(".bias", StringComparison.Ordinal)) return (0.1, 0);
            var last = name.StartsWith($"gating.layers.{Head.GatingNHidden}.", StringComparison.Ordinal);
            return (last ? 10 / Math.Sqrt(shape[1]) : Math.Sqrt(2.0 / shape[1]), 0);
        }
        return (1 / Math.Sqrt(shape[1]), 0);                              // backbone Linear weights [out, in]
    }

    /// <summary>Uniform values with the given mean and standard deviation (xorshift64), encoded as BF16 or F32.</summary>
    private static void Fill(Span<byte> destination, TensorDType dtype, double std, double mean, ref ulong state)
    {
        var half = (float)(Math.Sqrt(3) * std);
        var m = (float)mean;
        const float unit = 2.0f / (1UL << 24);
        if (dtype == TensorDType.F32)
        {
            var f = MemoryMarshal.Cast<byte, float>(destination);
            for (var i = 0; i < f.Length; i++)
            {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                f[i] = m + half * ((state >> 40) * unit - 1);
            }
            return;
        }
        var b = MemoryMarshal.Cast<byte, ushort>(destination);
        for (var i = 0; i < b.Length; i++)
        {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            b[i] = HuggingFaceCheckpointWriter.ToBFloat16(BitConverter.SingleToUInt32Bits(m + half * ((state >> 40) * unit - 1)));
        }
    }
}
