using OnnxReward.Export.Graph;
using OnnxReward.Model;

namespace OnnxReward.Export.Exporting;

/// <summary>
/// What precision to export, checked once: the backbone <see cref="ModelDType"/>, the execution provider the graph is
/// for (<see cref="Variant"/>), and for int4 / int8-block the block size and MatMulNBits accuracy level. Build one with
/// <see cref="Parse"/> (the names <c>onnxreward export --dtype --ep --block-size --accuracy-level</c> take) or
/// <see cref="Create"/>; an instance is always a valid combination, so the exporter never re-checks it.
/// <code>
/// ModelExporter.Export(checkpoint, dir, new ExportOptions { Precision = ExportPrecision.Parse("int4", blockSize: 64) });
/// </code>
/// </summary>
public sealed record ExportPrecision
{
    /// <summary>Block sizes int4 / int8-block accept (MatMulNBits: a power of two ≥ 16; 128 is the largest MLAS runs fast).</summary>
    public static IReadOnlyList<int> BlockSizes { get; } = [16, 32, 64, 128];

    /// <summary>The block size when none is given.</summary>
    public const int DefaultBlockSize = 32;

    /// <summary>fp32 for the CPU, the default and the reference-exact graph.</summary>
    public static ExportPrecision Fp32 { get; } = Create(ModelDType.Fp32);

    private ExportPrecision(ModelDType dtype, string variant, int? blockSize, int? accuracyLevel)
    {
        DType = dtype;
        Variant = variant;
        BlockSize = blockSize;
        AccuracyLevel = accuracyLevel;
    }

    /// <summary>The backbone precision. The head is float32 in every one; the quantized ones store the embedding
    /// table as float16.</summary>
    public ModelDType DType { get; }

    /// <summary><c>cpu</c> or <c>cuda</c>: the execution provider the graph is built for (reward_model.json's variant).
    /// int4 and int8-block for CUDA run with float16 activations and scales (the same quantized weights).</summary>
    public string Variant { get; }

    /// <summary>The accuracy level used when none is given (see <see cref="AccuracyLevel"/>).</summary>
    public static int DefaultAccuracyLevel(ModelDType dtype, string variant) =>
        variant == "cuda" ? 0 : dtype == ModelDType.Int4 ? 1 : 4;

    /// <summary>int4 / int8-block: input features per quantization block; null for the other dtypes.</summary>
    public int? BlockSize { get; }

    /// <summary>int4 / int8-block: MatMulNBits' accuracy_level as written into the graph; null for the other dtypes.
    /// Defaults, by measurement (perf/README.md): on the CPU int4 uses 1 (fp32 compute: MLAS keeps no int8-compute
    /// copy of the weights and block sums, which at 4 cost ~0.27 bytes per weight — 1.03 → 0.91 GB RSS on the width-true
    /// 2-layer model, ~1.9 GB on the 8B shape — for ~1.4× the time; int4 is the little-memory variant, so memory wins) and
    /// int8-block uses 4 (int8 compute, the faster); 0 (unset) on CUDA.</summary>
    public int? AccuracyLevel { get; }

    /// <summary>The dtype's name (<c>int8-block</c> …), as reward_model.json records it.</summary>
    public string Name => DType.Name();

    /// <summary>
    /// Parses and checks the export settings: <paramref name="dtype"/> fp32 (CPU), fp16 (CUDA), int8 (CPU), int8-block or
    /// int4 (CPU or CUDA); <paramref name="variant"/> cpu or cuda, null = cuda for fp16 and cpu for the others;
    /// <paramref name="blockSize"/> (16, 32, 64, 128; null = 32) and <paramref name="accuracyLevel"/> (0–4; null = the
    /// default) for int4 and int8-block only.
    /// </summary>
    /// <exception cref="ExportException">an unknown name, or a combination that cannot be exported; the message gives the choices.</exception>
    public static ExportPrecision Parse(string dtype, string? variant = null, int? blockSize = null, int? accuracyLevel = null)
    {
        if (!ModelDTypes.TryParse(dtype, out var parsed))
            throw UnknownDType(dtype);
        return Create(parsed, variant, blockSize, accuracyLevel);
    }

    /// <summary>As <see cref="Parse"/>, from a <see cref="ModelDType"/>.</summary>
    /// <exception cref="ExportException">a combination that cannot be exported; the message gives the choices.</exception>
    public static ExportPrecision Create(ModelDType dtype, string? variant = null, int? blockSize = null, int? accuracyLevel = null)
    {
        if (!Enum.IsDefined(dtype))
            throw UnknownDType(dtype.ToString());
        if (variant is not (null or "cpu" or "cuda"))
            throw new ExportException($"variant '{variant}' is not supported: use cpu or cuda.");
        if (dtype == ModelDType.Int8 && variant == "cuda")
            throw new ExportException("dtype int8 is a CPU variant (ONNX Runtime's DynamicQuantizeMatMul has no CUDA kernel); use int4, int8-block or fp16 for CUDA.");
        var block = blockSize ?? DefaultBlockSize;
        if (!BlockSizes.Contains(block))
            throw new ExportException($"block size {block} is not supported: use {string.Join(", ", BlockSizes)} ({DefaultBlockSize} is the default).");
        if (accuracyLevel is not (null or (>= 0 and <= 4)))
            throw new ExportException($"accuracy level {accuracyLevel} is not one of MatMulNBits' levels: 0 (unset), 1 (fp32), 2 (fp16), 3 (bf16), 4 (int8).");
        if ((accuracyLevel is not null || block != DefaultBlockSize) && !dtype.IsBlockQuantized())
            throw new ExportException($"--block-size and --accuracy-level apply to dtype int4 and int8-block only, not {dtype.Name()}.");

        var resolved = variant ?? (dtype == ModelDType.Fp16 ? "cuda" : "cpu");
        return dtype.IsBlockQuantized()
            // CUDA ignores the level for fp16 activations; the CPU runs level 4 with MLAS's int8 kernels (perf/README.md).
            ? new ExportPrecision(dtype, resolved, block, accuracyLevel ?? DefaultAccuracyLevel(dtype, resolved))
            : new ExportPrecision(dtype, resolved, null, null);
    }

    private static ExportException UnknownDType(string? dtype) =>
        new($"dtype '{dtype}' is not supported: use fp32 (CPU), fp16 (CUDA), int8 (CPU), int8-block or int4 (CPU or CUDA).");

    /// <summary>The backbone's activation type: float16 for fp16 and the CUDA block-quantized variants, else float32.</summary>
    internal ElementType Backbone =>
        DType == ModelDType.Fp16 || (DType.IsBlockQuantized() && Variant == "cuda") ? ElementType.Float16 : ElementType.Float;

    /// <summary>int8: the Linear layers as DynamicQuantizeMatMul.</summary>
    internal bool Int8Linears => DType == ModelDType.Int8;

    /// <summary>The quantized variants store the embedding table as float16.</summary>
    internal bool Float16Embedding => DType.IsQuantized();

    /// <summary>The MatMulNBits settings of int4 / int8-block, or null for the others. int4 stores a zero point per block
    /// (asymmetric blocks: lower weight error, and the faster MLAS kernel on this CPU); int8-block is symmetric (with 255
    /// levels a zero point buys nothing measurable).</summary>
    internal BlockQuantization? Blocks => DType switch
    {
        ModelDType.Int4 => new BlockQuantization(4, BlockSize!.Value, ZeroPoints: true, AccuracyLevel!.Value),
        ModelDType.Int8Block => new BlockQuantization(8, BlockSize!.Value, ZeroPoints: false, AccuracyLevel!.Value),
        _ => null,
    };

    /// <summary>reward_model.json's quantization record, or null for fp32 and fp16.</summary>
    internal RewardModelManifest.QuantizationInfo? Quantization => DType switch
    {
        ModelDType.Int8 => new RewardModelManifest.QuantizationInfo("DynamicQuantizeMatMul", 8, Symmetric: true, EmbeddingDType: "fp16"),
        ModelDType.Int4 or ModelDType.Int8Block => new RewardModelManifest.QuantizationInfo("MatMulNBits", Blocks!.Bits,
            Symmetric: !Blocks.ZeroPoints, EmbeddingDType: "fp16", BlockSize: BlockSize, AccuracyLevel: AccuracyLevel),
        _ => null,
    };

    /// <summary><c>int4 cpu, block 32, accuracy level 4</c>, or <c>fp32 cpu</c>.</summary>
    public override string ToString() =>
        BlockSize is { } b ? $"{Name} {Variant}, block {b}, accuracy level {AccuracyLevel}" : $"{Name} {Variant}";
}
