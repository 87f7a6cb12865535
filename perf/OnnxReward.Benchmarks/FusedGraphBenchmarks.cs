using BenchmarkDotNet.Attributes;
using OnnxReward.Export.Checkpoints;
using OnnxReward.Training.Reference;
using TorchSharp;

namespace OnnxReward.Benchmarks;

/// <summary>
/// One batch of B chat-shaped rows of T tokens on the mid-size model (MidSizeModel: d 512, 8 layers, GQA 8/2, FFN 1536,
/// vocab 128,257), three ways, all with 2 intra-op threads (this machine's 2 cores):
///  - baseline: the TorchSharp eager reference forward (ReferenceRewardModel) — what a .NET user would otherwise write;
///  - the fused ONNX graph on the CPU EP through the public API (RewardModel.ScoreTokens: IO binding, pooled buffers);
///  - the machine ceiling: fp32 MatMuls at the model's GEMM shapes for the same N = B·T in one ORT session (MatMulCeiling).
/// Ratio column = time ÷ TorchSharp time, so fused ÷ eager throughput = 1 / Ratio (design.md: ≥ 3).
/// "of ceiling" = model FLOP/s (MidSizeModel.ModelFlops, llm.c style) ÷ the ceiling's GFLOP/s (design.md: ≥ 0.7).
/// </summary>
[MemoryDiagnoser]
[Config(typeof(RateColumnsConfig))]
public class FusedGraphBenchmarks : IWorkCounter
{
    private const int Threads = 2;
    private const int CeilingLayers = 2;
    private RewardModel _model = null!;
    private RewardModel _int8 = null!;
    private RewardModel _torch = null!;
    private MatMulCeiling _ceiling = null!;
    private int[][] _rows = [];

    [Params("1x512", "8x256", "16x512", "32x128")]
    public string Shape { get; set; } = "8x256";

    private static (int B, int T) Parse(string shape)
    {
        var parts = shape.Split('x');
        return (int.Parse(parts[0]), int.Parse(parts[1]));
    }

    [GlobalSetup]
    public void Setup()
    {
        MidSizeModel.Ensure();
        var (b, t) = Parse(Shape);
        _rows = MidSizeModel.Rows(b, t);
        _model = RewardModel.Load(MidSizeModel.ModelDirectory, new RewardModelOptions
        {
            ExecutionProvider = ExecutionProviderKind.Cpu, IntraOpThreads = Threads, MaxBatchTokens = b * t, MaxBatchSize = b,
        });
        _int8 = RewardModel.Load(MidSizeModel.Int8ModelDirectory, new RewardModelOptions
        {
            ExecutionProvider = ExecutionProviderKind.Cpu, IntraOpThreads = Threads, MaxBatchTokens = b * t, MaxBatchSize = b,
        });
        torch.set_num_threads(Threads);
        // The TorchSharp reference behind the library's backend seam: same encoder and token-budget batches as ORT.
        _torch = RewardModel.Create(MidSizeModel.ModelDirectory, new TorchRewardBackend(MidSizeModel.CheckpointDirectory),
            new RewardModelOptions { MaxBatchTokens = b * t, MaxBatchSize = b });
        _ceiling = new MatMulCeiling(b * t, CeilingLayers, Threads);

        // Check before timing (llm.c's rule): both forwards agree on this batch's scores.
        var fused = _model.ScoreTokens(_rows);
        using (torch.no_grad())
        using (var scope = torch.NewDisposeScope())
        {
            var eager = _torch.ScoreTokens(_rows).Select(s => s.Score).ToArray();
            var maxDiff = fused.Select((s, i) => Math.Abs(s.Score - eager[i])).Max();
            if (maxDiff > 2e-3f) // fp32 both ways; summation order differs (MLAS vs libtorch GEMMs), ~1e-5 relative per layer
                throw new InvalidOperationException($"fused ORT and TorchSharp scores differ by {maxDiff} on {Shape}; the timings would compare different work.");
            var int8 = _int8.ScoreTokens(_rows);
            var int8Diff = int8.Select((s, i) => Math.Abs(s.Score - fused[i].Score)).Max();
            Console.WriteLine($"// {Shape}: int8 variant |int8 − fp32| score max {int8Diff:E1} (approximate by design; see Int8ExportTests)");
            Console.WriteLine($"// {Shape}: {b * t} tokens, model {MidSizeModel.ModelFlops(b, t) / 1e9:F2} GFLOP, ceiling graph {_ceiling.Flops / 1e9:F2} GFLOP; " +
                              $"|fused − eager| score max {maxDiff:E1}; threads: ORT intra-op {Threads}, torch {torch.get_num_threads()} (interop {torch.get_num_interop_threads()})");
        }
    }

    [Benchmark(Baseline = true, Description = "TorchSharp eager forward")]
    public float TorchSharpEager() => _torch.ScoreTokens(_rows)[0].Score;

    [Benchmark(Description = "fused ONNX graph, CPU EP")]
    public float FusedOrt() => _model.ScoreTokens(_rows)[0].Score;

    [Benchmark(Description = "fused ONNX graph, int8 Linears, CPU EP")]
    public float FusedOrtInt8() => _int8.ScoreTokens(_rows)[0].Score;

    [Benchmark(Description = "ceiling: MatMul-only graph")]
    public float MatMulCeiling()
    {
        _ceiling.Run();
        return _ceiling.Probe();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _model.Dispose();
        _int8.Dispose();
        _torch.Dispose();
        _ceiling.Dispose();
    }

    string? IWorkCounter.CeilingMethod => nameof(MatMulCeiling);

    (double Tokens, double Flops)? IWorkCounter.Work(string method, IReadOnlyDictionary<string, object> parameters)
    {
        var (b, t) = Parse((string)parameters[nameof(Shape)]);
        return method == nameof(MatMulCeiling)
            ? (b * t, OnnxReward.Benchmarks.MatMulCeiling.FlopsFor(b * t, CeilingLayers))
            : (b * t, MidSizeModel.ModelFlops(b, t));
    }
}
