using System.Globalization;
using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using OnnxReward.Model;

namespace OnnxReward.Benchmarks;

/// <summary>
/// Where a fused graph's time goes, per ONNX Runtime node type: each mid-size variant (MidSizeModel.Variants) scores the
/// benchmark's B×T rows in a session with the scoring settings (ORT_ENABLE_ALL, 2 intra-op threads) and
/// <c>SessionOptions.EnableProfiling</c>; the first run is a warm-up (dropped), then the kernel times of
/// <paramref name="Runs"/> runs are summed per op type. Prints one markdown table per variant and shape: ms per run and
/// share of the summed node time, and the Linear kernels' own fp32-equivalent GFLOP/s (MidSizeModel.LinearFlops ÷
/// their time), which reads against the variant's kernel ceiling in FusedGraphBenchmarks.
/// Usage: <c>dotnet run -c Release --project perf/OnnxReward.Benchmarks -- profile [1x512 8x256 …]</c>.
/// </summary>
internal static class NodeProfile
{
    private const int Runs = 3;
    private static readonly string[] LinearOps = ["MatMul", "DynamicQuantizeMatMul", "MatMulNBits", "FusedMatMul"];

    public static int Run(string[] args)
    {
        var shapes = args.Length > 1 ? args[1..] : ["1x512", "8x256", "32x128"];
        MidSizeModel.Ensure();
        foreach (var shape in shapes)
        {
            var parts = shape.Split('x');
            if (parts.Length != 2 || !int.TryParse(parts[0], out var b) || !int.TryParse(parts[1], out var t) || b < 1 || t < 8)
            {
                Console.Error.WriteLine($"shape '{shape}' is not B×T (e.g. 8x256, T ≥ 8)");
                return 2;
            }
            foreach (var precision in MidSizeModel.Variants)
                Profile(precision.ToString(), MidSizeModel.DirectoryOf(precision), b, t);
        }
        return 0;
    }

    private static void Profile(string name, string directory, int b, int t)
    {
        var manifest = RewardModelManifest.Load(directory);
        var prefix = Path.Combine(Path.GetTempPath(), $"onnxreward-profile-{Environment.ProcessId}");
        using var so = new SessionOptions
        {
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL, IntraOpNumThreads = 2,
            EnableProfiling = true, ProfileOutputPathPrefix = prefix,
        };
        string file;
        using (var session = new InferenceSession(Path.Combine(directory, manifest.Graph), so))
        {
            var rows = MidSizeModel.Rows(b, t);
            var ids = rows.SelectMany(r => r.Select(x => (long)x)).ToArray();
            using var idsValue = OrtValue.CreateTensorValueFromMemory(ids, [b, t]);
            using var reward = OrtValue.CreateTensorValueFromMemory(Enumerable.Repeat((long)t - 1, b).ToArray(), [b]);
            using var gating = OrtValue.CreateTensorValueFromMemory(Enumerable.Repeat((long)t / 2, b).ToArray(), [b]);
            var inputs = new Dictionary<string, OrtValue> { ["input_ids"] = idsValue, ["reward_positions"] = reward, ["gating_positions"] = gating };
            using var runOptions = new RunOptions();
            for (var i = 0; i < Runs + 1; i++)
                using (session.Run(runOptions, inputs, session.OutputNames)) { }
            file = session.EndProfiling();
        }

        // Chrome-trace events: cat "Node", name "{node}_kernel_time", dur µs, args.op_name. Each node runs once per
        // run, so a node's first event belongs to the warm-up run.
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var byOp = new Dictionary<string, double>(StringComparer.Ordinal);
        double runs = 0;
        using (var doc = JsonDocument.Parse(File.ReadAllText(file)))
            foreach (var e in doc.RootElement.EnumerateArray())
            {
                if (e.GetProperty("cat").GetString() == "Session" && e.GetProperty("name").GetString() == "model_run")
                    runs += e.GetProperty("dur").GetDouble();
                if (e.GetProperty("cat").GetString() != "Node" || !e.GetProperty("name").GetString()!.EndsWith("_kernel_time", StringComparison.Ordinal))
                    continue;
                if (seen.Add(e.GetProperty("name").GetString()!))
                    continue;
                var op = e.GetProperty("args").GetProperty("op_name").GetString()!;
                byOp[op] = byOp.GetValueOrDefault(op) + e.GetProperty("dur").GetDouble();
            }
        File.Delete(file);
        var total = byOp.Values.Sum();
        var linearMs = LinearOps.Sum(o => byOp.GetValueOrDefault(o)) / 1000 / Runs;
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine(string.Create(inv, $"\n{name}, {b}x{t}: node time {total / 1000 / Runs:F1} ms per run (model_run, warm-up included, averages {runs / 1000 / (Runs + 1):F1} ms); " +
                                             $"Linear kernels {linearMs:F1} ms = {MidSizeModel.LinearFlops(b, t) / 1e6 / linearMs:F0} GFLOP/s-equivalent"));
        Console.WriteLine("| op type | ms per run | share |\n|---|---:|---:|");
        foreach (var (op, us) in byOp.OrderByDescending(p => p.Value).Where(p => p.Value / total >= 0.002))
            Console.WriteLine(string.Create(inv, $"| {op} | {us / 1000 / Runs:F1} | {100 * us / total:F1} % |"));
    }
}
