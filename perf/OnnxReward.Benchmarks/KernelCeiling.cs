using Microsoft.ML.OnnxRuntime;
using OnnxReward.Export.Checkpoints;
using OnnxReward.Export.Exporting;
using OnnxReward.Export.Graph;

namespace OnnxReward.Benchmarks;

/// <summary>
/// A variant's kernel ceiling: an ORT session holding nothing but that variant's Linear kernel — MatMul (fp32),
/// DynamicQuantizeMatMul (int8), MatMulNBits 8 or 4 bits (int8-block, int4) with the exporter's block size, zero
/// points and accuracy level — at the mid-size model's GEMM shapes, built by <see cref="KernelCeilingGraph"/> from the
/// exporter's own Linear emitter and quantizers (or at any Llama-shaped config's: the 8B scale run's kernel-ceiling), and run with the scoring session's settings (ORT_ENABLE_ALL, the same
/// intra-op thread count, inputs and outputs bound once with IO binding).
/// Per layer, N = B·T rows:
///   [N, D]·[D, D + 2·Dkv]  packed QKV   [N, 512]·[512, 768]
///   [N, D]·[D, D]          o_proj       [N, 512]·[512, 512]
///   [N, D]·[D, 2F]         gate/up      [N, 512]·[512, 3072]
///   [N, F]·[F, D]          down_proj    [N, 1536]·[1536, 512]
/// Every product is a graph output (so none can be pruned) written into a preallocated buffer; distinct random weights
/// per layer, so the weights stream from memory as the model's do. FLOPs = 2·N·Σ K·M, the fp32 count for every variant
/// (GFLOP/s-equivalent), so a quantized ceiling reads directly against the fp32 one.
/// </summary>
internal sealed class KernelCeiling : IDisposable
{
    private readonly InferenceSession _session;
    private readonly OrtIoBinding _binding;
    private readonly RunOptions _runOptions = new();
    private readonly List<OrtValue> _values = [];

    /// <summary>FLOPs of one run for <paramref name="rows"/> = N and <paramref name="layers"/> layers of the mid-size
    /// model: 2·N·Σ K·M.</summary>
    public static double FlopsFor(int rows, int layers) => FlopsFor(MidSizeModel.Config, rows, layers);

    /// <summary>As <see cref="FlopsFor(int, int)"/> for any Llama-shaped config.</summary>
    public static double FlopsFor(LlamaConfig config, int rows, int layers) => 2.0 * rows * layers * LlamaFlops.LayerGemms(config).Sum(s => (double)s.K * s.M);

    /// <summary>The mid-size model's ceiling graph.</summary>
    public KernelCeiling(ExportPrecision precision, int rows, int layers, int intraOpThreads)
        : this(MidSizeModel.Config, precision, rows, layers, intraOpThreads)
    {
    }

    /// <summary>The ceiling graph at <paramref name="config"/>'s GEMM shapes (<see cref="LlamaFlops.LayerGemms"/>).</summary>
    public KernelCeiling(LlamaConfig config, ExportPrecision precision, int rows, int layers, int intraOpThreads)
    {
        Rows = rows;
        Flops = FlopsFor(config, rows, layers);
        var rng = new Random(7);
        var shapes = LlamaFlops.LayerGemms(config);
        long d = config.HiddenSize, f = config.IntermediateSize;
        var model = KernelCeilingGraph.Build(precision, d, f, shapes, layers, seed: 7);
        using var so = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL, IntraOpNumThreads = intraOpThreads };
        _session = new InferenceSession(model, so);
        _binding = _session.CreateIoBinding();
        Bind("h", rows, d, input: true, rng);
        Bind("m", rows, f, input: true, rng);
        for (var layer = 0; layer < layers; layer++)
            foreach (var shape in shapes)
                Bind($"layers.{layer}.{shape.Name}", rows, shape.M, input: false, rng);
    }

    /// <summary>N = B·T, the GEMM row count.</summary>
    public int Rows { get; }

    /// <summary>FLOPs per <see cref="Run"/>.</summary>
    public double Flops { get; }

    public void Run() => _session.RunWithBinding(_runOptions, _binding);

    /// <summary>Reads one output element (so the benchmark returns something the run produced).</summary>
    public float Probe() => _values[^1].GetTensorDataAsSpan<float>()[0];

    private void Bind(string name, int rows, long width, bool input, Random rng)
    {
        var buffer = new float[rows * width];
        if (input)
            for (var i = 0; i < buffer.Length; i++)
                buffer[i] = (float)(rng.NextDouble() * 2 - 1);
        var value = OrtValue.CreateTensorValueFromMemory(buffer, [rows, width]);
        _values.Add(value);
        if (input)
            _binding.BindInput(name, value);
        else
            _binding.BindOutput(name, value);
    }

    public void Dispose()
    {
        _binding.Dispose();
        foreach (var v in _values)
            v.Dispose();
        _runOptions.Dispose();
        _session.Dispose();
    }
}
