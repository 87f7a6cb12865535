using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;
using OnnxReward.Export.Exporting;

namespace OnnxReward.Benchmarks;

/// <summary>
/// One-off costs on the mid-size model: exporting its bf16 Hugging Face checkpoint (≈ 155 MB; embedding 128,257 × 512)
/// to an fp32 model directory, and creating a scoring session from that directory (RewardModel.Load: manifest, ORT
/// session with ORT_ENABLE_ALL graph optimizations, 2 intra-op threads). Cold-start strategy: each operation runs once
/// per iteration, as a user pays it.
/// </summary>
[MemoryDiagnoser]
[SimpleJob(RunStrategy.ColdStart, launchCount: 1, warmupCount: 1, iterationCount: 5)]
public class ColdStartBenchmarks
{
    private string _out = "";

    [GlobalSetup]
    public void Setup()
    {
        MidSizeModel.Ensure();
        _out = Path.Combine(Path.GetTempPath(), $"onnxreward-bench-export-{Environment.ProcessId}");
    }

    [Benchmark(Description = "export: bf16 checkpoint → fp32 model directory")]
    public void Export()
    {
        if (Directory.Exists(_out))
            Directory.Delete(_out, true);
        ModelExporter.Export(MidSizeModel.CheckpointDirectory, _out, new ExportOptions { Precision = ExportPrecision.Fp32, GatingTokenPattern = ModelExporter.Llama3GatingTokenPattern });
    }

    [Benchmark(Description = "session: RewardModel.Load (CPU EP)")]
    public int Load()
    {
        using var model = RewardModel.Load(MidSizeModel.ModelDirectory, new RewardModelOptions { ExecutionProvider = ExecutionProviderKind.Cpu, IntraOpThreads = 2 });
        return model.ObjectiveNames.Count;
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        if (Directory.Exists(_out))
            Directory.Delete(_out, true);
    }
}
