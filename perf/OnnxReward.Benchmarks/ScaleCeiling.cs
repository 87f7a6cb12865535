using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using OnnxReward.Export.Exporting;

namespace OnnxReward.Benchmarks;

/// <summary>
/// <c>kernel-ceiling &lt;dtype[:block size[:accuracy level]]&gt; [rows = 512] [runs = 5]</c>: the 8B scale run's kernel
/// ceiling of one variant (perf/scale-8b.sh runs it right after that variant's scoring, in the same run): a
/// <see cref="KernelCeiling"/> session of nothing but the variant's Linear nodes at ArmoRM-Llama3-8B's GEMM shapes
/// (packed QKV 4096→6144, o_proj 4096→4096, gate/up 4096→28672, down 14336→4096), N = rows, ORT's default thread count
/// as scale-score uses. One layer: its weights (0.87 GB as fp32, 0.12–0.24 GB quantized) are far over the caches, so they
/// stream from memory as the 32 layers' do, and the graph stays under protobuf's 2 GB inline limit. One warm-up run, then
/// the median of <c>runs</c>. Prints one JSON line: the ceiling in fp32-equivalent GFLOP/s, and <c>model_gflop</c>, the
/// fp32-equivalent GFLOPs of scoring one conversation of <c>rows</c> tokens with the 8B model (the fused graph's count,
/// <see cref="LlamaFlops.Model"/>), so a variant's fraction of its ceiling is
/// model_gflop / (seconds per conversation) / ceiling_gflops.
/// </summary>
internal static class ScaleCeiling
{
    public static int Run(string[] args)
    {
        if (args.Length is < 2 or > 4)
        {
            Console.Error.WriteLine("usage: kernel-ceiling <dtype[:block size[:accuracy level]]> [rows = 512] [runs = 5]");
            return 2;
        }
        var spec = args[1].Split(':');
        int? Part(int i) => spec.Length > i ? int.Parse(spec[i], CultureInfo.InvariantCulture) : null;
        var precision = ExportPrecision.Parse(spec[0], blockSize: Part(1), accuracyLevel: Part(2));
        var rows = args.Length >= 3 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 512;
        var runs = args.Length == 4 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 5;
        var config = Llama3_8BShape.Config;
        var build = Stopwatch.StartNew();
        using var ceiling = new KernelCeiling(config, precision, rows, layers: 1, intraOpThreads: 0);
        var buildSeconds = build.Elapsed.TotalSeconds;
        ceiling.Run();                                       // warm-up: first-run allocations and prepacking
        var times = new double[runs];
        for (var i = 0; i < runs; i++)
        {
            var clock = Stopwatch.StartNew();
            ceiling.Run();
            times[i] = clock.Elapsed.TotalSeconds;
        }
        Array.Sort(times);
        var median = times[runs / 2];
        Console.WriteLine(JsonSerializer.Serialize(new
        {
            variant = precision.ToString(), rows, runs, run_s = Math.Round(median, 4),
            ceiling_gflops = Math.Round(ceiling.Flops / median / 1e9, 1),
            model_gflop = Math.Round(LlamaFlops.Model(config, 1, rows) / 1e9, 1),
            build_s = Math.Round(buildSeconds, 1), probe = ceiling.Probe(),
        }));
        return 0;
    }
}
