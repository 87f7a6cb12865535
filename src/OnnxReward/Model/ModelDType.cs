namespace OnnxReward.Model;

/// <summary>
/// The backbone precision of a model directory: what <c>onnxreward export --dtype</c> takes and what
/// <c>reward_model.json</c>'s <c>dtype</c> records (<see cref="ModelDTypes.Name"/> gives the name; the head is float32
/// in every one).
/// </summary>
public enum ModelDType
{
    /// <summary><c>fp32</c>: float32 weights and activations (CPU; the reference-exact graph).</summary>
    Fp32,

    /// <summary><c>fp16</c>: float16 weights and activations (CUDA).</summary>
    Fp16,

    /// <summary><c>int8</c>: DynamicQuantizeMatMul Linear layers, per-channel int8 weights (CPU).</summary>
    Int8,

    /// <summary><c>int8-block</c>: MatMulNBits Linear layers with 8-bit block-quantized weights (CPU or CUDA).</summary>
    Int8Block,

    /// <summary><c>int4</c>: MatMulNBits Linear layers with 4-bit block-quantized weights (CPU or CUDA).</summary>
    Int4,
}

/// <summary>The names of <see cref="ModelDType"/>, in one table.</summary>
public static class ModelDTypes
{
    private static readonly (ModelDType DType, string Name)[] Table =
    [
        (ModelDType.Fp32, "fp32"),
        (ModelDType.Fp16, "fp16"),
        (ModelDType.Int8, "int8"),
        (ModelDType.Int8Block, "int8-block"),
        (ModelDType.Int4, "int4"),
    ];

    /// <summary>Every name, in the order above: fp32, fp16, int8, int8-block, int4.</summary>
    public static IReadOnlyList<string> Names { get; } = Table.Select(t => t.Name).ToArray();

    /// <summary>The name in <c>reward_model.json</c> and on the command line (<c>int8-block</c> …).</summary>
    public static string Name(this ModelDType dtype)
    {
        foreach (var (d, name) in Table)
            if (d == dtype)
                return name;
        throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "not a model dtype");
    }

    /// <summary>The dtype of a name (exact, lower case, as <see cref="Names"/> spells them).</summary>
    public static bool TryParse(string? name, out ModelDType dtype)
    {
        foreach (var (d, n) in Table)
            if (string.Equals(n, name, StringComparison.Ordinal))
            {
                dtype = d;
                return true;
            }
        dtype = default;
        return false;
    }

    /// <summary>int8-block and int4: MatMulNBits, with a block size and an accuracy level.</summary>
    public static bool IsBlockQuantized(this ModelDType dtype) => dtype is ModelDType.Int8Block or ModelDType.Int4;

    /// <summary>Every variant but fp32 and fp16 (their embedding table is stored as float16).</summary>
    public static bool IsQuantized(this ModelDType dtype) => dtype is ModelDType.Int8 or ModelDType.Int8Block or ModelDType.Int4;
}
