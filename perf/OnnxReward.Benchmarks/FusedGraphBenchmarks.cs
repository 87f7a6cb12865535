using BenchmarkDotNet.Attributes;
using OnnxReward.Export.Checkpoints;
using OnnxReward.Training.Reference;
using TorchSharp;

namespace OnnxReward.Benchmarks;

/// <summary>
/// The same mid-size weights and batch through (baseline) the TorchSharp eager reference forward — what a .NET user would
/// otherwise write — and the fused ONNX graph on the CPU EP (RewardModel.ScoreTokens: IO binding, pooled buffers).
/// Ratio column = time relative to TorchSharp, so fused ORT ÷ TorchSharp throughput = 1 / Ratio (design.md target ≥ 3).
/// Both run with 2 intra-op threads (this machine's cores). Model FLOPs per token ≈ 2 × MidSizeModel.MatmulParameters.
/// </summary>
[MemoryDiagnoser]
public class FusedGraphBenchmarks
{
    private RewardModel _model = null!;
    private ReferenceRewardModel _torch = null!;
    private Checkpoint _checkpoint = null!;
    private int[][] _rows = [];
    private torch.Tensor _ids = null!, _rewardPos = null!, _gatingPos = null!;

    [Params("1x512", "8x256", "32x128")]
    public string Shape { get; set; } = "8x256";

    [GlobalSetup]
    public void Setup()
    {
        MidSizeModel.Ensure();
        var parts = Shape.Split('x');
        int b = int.Parse(parts[0]), t = int.Parse(parts[1]);
        _rows = MidSizeModel.Rows(b, t);
        _model = RewardModel.Load(MidSizeModel.ModelDirectory, new RewardModelOptions
        {
            ExecutionProvider = ExecutionProviderKind.Cpu, IntraOpThreads = 2, MaxBatchTokens = b * t, MaxBatchSize = b,
        });
        torch.set_num_threads(2);
        _checkpoint = Checkpoint.Open(MidSizeModel.CheckpointDirectory);
        _torch = ReferenceRewardModel.Load(_checkpoint);
        _ids = torch.tensor(_rows.SelectMany(r => r.Select(x => (long)x)).ToArray(), [b, t]);
        _rewardPos = torch.full(b, t - 1, torch.int64);
        _gatingPos = torch.full(b, t / 2, torch.int64);
        var flops = 2.0 * MidSizeModel.MatmulParameters * b * t;
        Console.WriteLine($"// {Shape}: {b * t} tokens, {flops / 1e9:F2} GFLOP of matmuls per forward");
    }

    [Benchmark(Baseline = true, Description = "TorchSharp eager forward")]
    public float TorchSharpEager()
    {
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        using var o = _torch.Forward(_ids, _rewardPos, _gatingPos);
        return o.Score.sum().item<float>();
    }

    [Benchmark(Description = "fused ONNX graph, CPU EP")]
    public float FusedOrt() => _model.ScoreTokens(_rows)[0].Score;

    [GlobalCleanup]
    public void Cleanup()
    {
        _model.Dispose();
        _torch.Dispose();
        _checkpoint.Dispose();
    }
}
