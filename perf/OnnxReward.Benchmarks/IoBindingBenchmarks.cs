using BenchmarkDotNet.Attributes;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using OnnxReward.Model;
using OnnxReward.Runtime;

namespace OnnxReward.Benchmarks;

/// <summary>
/// Allocation per call of one batch of B = 4 rows as T grows (B·T = 256 … 4,096 tokens), on the mid-size model:
///  - baseline: plain <c>InferenceSession.Run</c> with <c>NamedOnnxValue</c> inputs built from fresh arrays and outputs
///    copied to managed arrays — the usual ORT sample code;
///  - <c>OrtRewardSession.Run</c> (the runtime seam RewardModel uses): one IO binding with pooled input/output buffers,
///    outputs written into caller-owned spans.
/// The Allocated column is the check (design.md: no per-token managed memory in steady state): the seam's bytes per call
/// must not grow with T, while the plain path grows by 8 bytes (one int64 id) per token.
/// </summary>
[MemoryDiagnoser]
[Config(typeof(RateColumnsConfig))]
public class IoBindingBenchmarks : IWorkCounter
{
    private const int Rows = 4;
    private InferenceSession _plain = null!;
    private OrtRewardSession _seam = null!;
    private int[][] _rows = [];
    private ReadOnlyMemory<int>[] _ids = [];
    private int[] _rewardPos = [], _gatingPos = [];
    private float[] _score = [], _rewards = [], _gating = [];
    private int _k;

    [Params(64, 256, 1024)]
    public int T { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        MidSizeModel.Ensure();
        var manifest = RewardModelManifest.Load(MidSizeModel.ModelDirectory);
        var graph = Path.Combine(MidSizeModel.ModelDirectory, manifest.Graph);
        _seam = OrtRewardSession.Create(graph, manifest, new RewardModelOptions { ExecutionProvider = ExecutionProviderKind.Cpu, IntraOpThreads = 2 });
        using var so = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL, IntraOpNumThreads = 2 };
        _plain = new InferenceSession(graph, so);

        _rows = MidSizeModel.Rows(Rows, T);
        _ids = _rows.Select(r => (ReadOnlyMemory<int>)r).ToArray();
        _rewardPos = Enumerable.Repeat(T - 1, Rows).ToArray();
        _gatingPos = Enumerable.Repeat(T / 2, Rows).ToArray();
        _k = _seam.Objectives;
        _score = new float[Rows];
        _rewards = new float[Rows * _k];
        _gating = new float[Rows * _k];

        // Both paths must compute the same thing before they are timed.
        var plain = PlainRun();
        Seam();
        var diff = plain.Select((s, i) => Math.Abs(s - _score[i])).Max();
        if (diff > 1e-5f)
            throw new InvalidOperationException($"plain Run and the IO-binding seam disagree by {diff}; the benchmark would compare different work.");
    }

    [Benchmark(Baseline = true, Description = "InferenceSession.Run, NamedOnnxValue")]
    public float[] PlainRun()
    {
        var t = T;
        var ids = new long[Rows * t];
        for (var r = 0; r < Rows; r++)
            for (var j = 0; j < t; j++)
                ids[r * t + j] = _rows[r][j];
        var inputs = new List<NamedOnnxValue>
        {
            NamedOnnxValue.CreateFromTensor("input_ids", new DenseTensor<long>(ids, [Rows, t])),
            NamedOnnxValue.CreateFromTensor("reward_positions", new DenseTensor<long>(_rewardPos.Select(x => (long)x).ToArray(), [Rows])),
            NamedOnnxValue.CreateFromTensor("gating_positions", new DenseTensor<long>(_gatingPos.Select(x => (long)x).ToArray(), [Rows])),
        };
        using var results = _plain.Run(inputs, ["score", "rewards", "gating"]);
        var score = results[0].AsEnumerable<float>().ToArray();
        _ = results[1].AsEnumerable<float>().ToArray();
        _ = results[2].AsEnumerable<float>().ToArray();
        return score;
    }

    [Benchmark(Description = "OrtRewardSession: IO binding, pooled buffers")]
    public float Seam()
    {
        _seam.Run(_ids, _rewardPos, _gatingPos, T, RewardOutputs.Head,
            new RewardBatchOutputs { Score = _score, Rewards = _rewards, Gating = _gating });
        return _score[0];
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _plain.Dispose();
        _seam.Dispose();
    }

    string? IWorkCounter.CeilingOf(string method) => null;

    (double Tokens, double Flops)? IWorkCounter.Work(string method, IReadOnlyDictionary<string, object> parameters)
    {
        var t = (int)parameters[nameof(T)];
        return (Rows * t, MidSizeModel.ModelFlops(Rows, t));
    }
}
