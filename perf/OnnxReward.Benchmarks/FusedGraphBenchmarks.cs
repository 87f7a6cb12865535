using BenchmarkDotNet.Attributes;
using OnnxReward.Export.Exporting;
using OnnxReward.Training.Reference;
using TorchSharp;

namespace OnnxReward.Benchmarks;

/// <summary>
/// One batch of B chat-shaped rows of T tokens on the mid-size model (MidSizeModel: d 512, 8 layers, GQA 8/2, FFN 1536,
/// vocab 128,257), all with 2 intra-op threads (this machine's 2 cores):
///  - baseline: the TorchSharp eager reference forward (ReferenceRewardModel) — what a .NET user would otherwise write;
///  - the fused ONNX graph on the CPU EP through the public API (RewardModel.ScoreTokens: IO binding, pooled buffers),
///    for each CPU variant at its export defaults (MidSizeModel.Variants: fp32, int8, int8-block, int4);
///  - each variant's own kernel ceiling: an ORT session of only that variant's Linear kernel (MatMul,
///    DynamicQuantizeMatMul, MatMulNBits 8 / 4 bits, with the exporter's quantization parameters) at the model's GEMM
///    shapes for the same N = B·T (KernelCeiling).
/// Ratio column = time ÷ TorchSharp time, so fused ÷ eager throughput = 1 / Ratio (design.md: ≥ 3).
/// GFLOP/s counts fp32-equivalent FLOPs for every variant (MidSizeModel.ModelFlops, llm.c style; KernelCeiling.FlopsFor);
/// "of ceiling" = a fused variant's GFLOP/s ÷ its own kernel ceiling's GFLOP/s at the same shape (design.md: ≥ 0.7).
/// Each case loads only what it runs (targeted setups), and every fused case checks its scores before timing.
/// </summary>
[MemoryDiagnoser]
[Config(typeof(RateColumnsConfig))]
public class FusedGraphBenchmarks : IWorkCounter
{
    private const int Threads = 2;
    private const int CeilingLayers = 2;
    private RewardModel? _model, _variant, _torch;
    private KernelCeiling? _ceiling;
    private int[][] _rows = [];

    /// <summary>Each variant's fused-graph and kernel-ceiling benchmark methods (the "of ceiling" pairing).</summary>
    private static readonly (string Dtype, string Fused, string Ceiling)[] Pairs =
    [
        ("fp32", nameof(FusedOrt), nameof(MatMulCeiling)),
        ("int8", nameof(FusedOrtInt8), nameof(DynamicQuantizeMatMulCeiling)),
        ("int8-block", nameof(FusedOrtInt8Block), nameof(MatMulNBits8Ceiling)),
        ("int4", nameof(FusedOrtInt4), nameof(MatMulNBits4Ceiling)),
    ];

    [Params("1x512", "8x256", "32x128")]
    public string Shape { get; set; } = "8x256";

    private static (int B, int T) Parse(string shape)
    {
        var parts = shape.Split('x');
        return (int.Parse(parts[0]), int.Parse(parts[1]));
    }

    private static ExportPrecision PrecisionOf(string dtype) => MidSizeModel.Variants.Single(p => p.Name == dtype);

    private RewardModel Load(ExportPrecision precision)
    {
        var (b, t) = Parse(Shape);
        return RewardModel.Load(MidSizeModel.DirectoryOf(precision), new RewardModelOptions
        {
            ExecutionProvider = ExecutionProviderKind.Cpu, IntraOpThreads = Threads, MaxBatchTokens = b * t, MaxBatchSize = b,
        });
    }

    private void Prepare()
    {
        MidSizeModel.Ensure();
        var (b, t) = Parse(Shape);
        _rows = MidSizeModel.Rows(b, t);
    }

    [GlobalSetup(Targets = [nameof(TorchSharpEager), nameof(FusedOrt)])]
    public void SetupFp32AndEager()
    {
        Prepare();
        var (b, t) = Parse(Shape);
        _model = Load(ExportPrecision.Fp32);
        torch.set_num_threads(Threads);
        // The TorchSharp reference behind the library's backend seam: same encoder and token-budget batches as ORT.
        _torch = RewardModel.Create(MidSizeModel.ModelDirectory, new TorchRewardBackend(MidSizeModel.CheckpointDirectory),
            new RewardModelOptions { MaxBatchTokens = b * t, MaxBatchSize = b });

        // Check before timing (llm.c's rule): both forwards agree on this batch's scores.
        var fused = _model.ScoreTokens(_rows);
        using (torch.no_grad())
        using (var scope = torch.NewDisposeScope())
        {
            var eager = _torch.ScoreTokens(_rows).Select(s => s.Score).ToArray();
            var maxDiff = fused.Select((s, i) => Math.Abs(s.Score - eager[i])).Max();
            if (maxDiff > 2e-3f) // fp32 both ways; summation order differs (MLAS vs libtorch GEMMs), ~1e-5 relative per layer
                throw new InvalidOperationException($"fused ORT and TorchSharp scores differ by {maxDiff} on {Shape}; the timings would compare different work.");
            Console.WriteLine($"// {Shape}: {b * t} tokens, model {MidSizeModel.ModelFlops(b, t) / 1e9:F2} GFLOP, ceiling graph {KernelCeiling.FlopsFor(b * t, CeilingLayers) / 1e9:F2} GFLOP; " +
                              $"|fused − eager| score max {maxDiff:E1}; threads: ORT intra-op {Threads}, torch {torch.get_num_threads()} (interop {torch.get_num_interop_threads()})");
        }
    }

    [GlobalSetup(Target = nameof(FusedOrtInt8))]
    public void SetupInt8() => SetupVariant("int8");

    [GlobalSetup(Target = nameof(FusedOrtInt8Block))]
    public void SetupInt8Block() => SetupVariant("int8-block");

    [GlobalSetup(Target = nameof(FusedOrtInt4))]
    public void SetupInt4() => SetupVariant("int4");

    /// <summary>Loads a quantized variant and checks it scores this batch close to fp32 (approximate by design: the
    /// bound only catches a broken graph, e.g. swapped weights; the accuracy table is perf/README's).</summary>
    private void SetupVariant(string dtype)
    {
        Prepare();
        var precision = PrecisionOf(dtype);
        _variant = Load(precision);
        using var fp32 = Load(ExportPrecision.Fp32);
        var reference = fp32.ScoreTokens(_rows);
        var scores = _variant.ScoreTokens(_rows);
        var diff = scores.Select((s, i) => Math.Abs(s.Score - reference[i].Score)).Max();
        if (!(diff < 0.5f))   // the mid-size model's scores spread over ~±1; int4 moves them by ~0.05, a wrong graph by ~1
            throw new InvalidOperationException($"{precision} scores differ from fp32 by {diff} on {Shape}: the variant's graph is broken, its timing would mean nothing.");
        Console.WriteLine($"// {Shape}: {precision}: |{dtype} − fp32| score max {diff:E1} (approximate by design; see perf/README's accuracy table)");
    }

    [GlobalSetup(Target = nameof(MatMulCeiling))]
    public void SetupMatMulCeiling() => SetupCeiling("fp32");

    [GlobalSetup(Target = nameof(DynamicQuantizeMatMulCeiling))]
    public void SetupDynamicQuantizeMatMulCeiling() => SetupCeiling("int8");

    [GlobalSetup(Target = nameof(MatMulNBits8Ceiling))]
    public void SetupMatMulNBits8Ceiling() => SetupCeiling("int8-block");

    [GlobalSetup(Target = nameof(MatMulNBits4Ceiling))]
    public void SetupMatMulNBits4Ceiling() => SetupCeiling("int4");

    private void SetupCeiling(string dtype)
    {
        var (b, t) = Parse(Shape);
        _ceiling = new KernelCeiling(PrecisionOf(dtype), b * t, CeilingLayers, Threads);
        Console.WriteLine($"// {Shape}: {PrecisionOf(dtype)} kernel ceiling, {_ceiling.Flops / 1e9:F2} GFLOP (fp32-equivalent) per run");
    }

    [Benchmark(Baseline = true, Description = "TorchSharp eager forward")]
    public float TorchSharpEager() => _torch!.ScoreTokens(_rows)[0].Score;

    [Benchmark(Description = "fused ONNX graph, fp32, CPU EP")]
    public float FusedOrt() => _model!.ScoreTokens(_rows)[0].Score;

    [Benchmark(Description = "fused ONNX graph, int8 (DynamicQuantizeMatMul), CPU EP")]
    public float FusedOrtInt8() => _variant!.ScoreTokens(_rows)[0].Score;

    [Benchmark(Description = "fused ONNX graph, int8-block (MatMulNBits 8 bits), CPU EP")]
    public float FusedOrtInt8Block() => _variant!.ScoreTokens(_rows)[0].Score;

    [Benchmark(Description = "fused ONNX graph, int4 (MatMulNBits 4 bits), CPU EP")]
    public float FusedOrtInt4() => _variant!.ScoreTokens(_rows)[0].Score;

    [Benchmark(Description = "ceiling: MatMul-only graph (fp32)")]
    public float MatMulCeiling() => RunCeiling();

    [Benchmark(Description = "ceiling: DynamicQuantizeMatMul-only graph (int8)")]
    public float DynamicQuantizeMatMulCeiling() => RunCeiling();

    [Benchmark(Description = "ceiling: MatMulNBits 8-bit-only graph (int8-block)")]
    public float MatMulNBits8Ceiling() => RunCeiling();

    [Benchmark(Description = "ceiling: MatMulNBits 4-bit-only graph (int4)")]
    public float MatMulNBits4Ceiling() => RunCeiling();

    private float RunCeiling()
    {
        _ceiling!.Run();
        return _ceiling.Probe();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _model?.Dispose();
        _variant?.Dispose();
        _torch?.Dispose();
        _ceiling?.Dispose();
        (_model, _variant, _torch, _ceiling) = (null, null, null, null);
    }

    string? IWorkCounter.CeilingOf(string method) =>
        Pairs.FirstOrDefault(p => p.Fused == method || p.Ceiling == method).Ceiling;

    (double Tokens, double Flops)? IWorkCounter.Work(string method, IReadOnlyDictionary<string, object> parameters)
    {
        var (b, t) = Parse((string)parameters[nameof(Shape)]);
        return Pairs.Any(p => p.Ceiling == method)
            ? (b * t, KernelCeiling.FlopsFor(b * t, CeilingLayers))
            : (b * t, MidSizeModel.ModelFlops(b, t));
    }
}
