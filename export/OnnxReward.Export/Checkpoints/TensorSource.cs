namespace OnnxReward.Export.Checkpoints;

/// <summary>Name, on-disk dtype (F32, F16 or BF16) and shape of one tensor (Hugging Face naming, e.g. <c>model.layers.0.self_attn.q_proj.weight</c>).</summary>
public sealed record TensorInfo(string Name, ElementType DType, long[] Shape)
{
    /// <summary>Number of elements (product of the shape; 1 for a scalar).</summary>
    public long ElementCount => Shape.Aggregate(1L, (a, d) => checked(a * d));

    /// <summary>Bytes per element of <see cref="DType"/>.</summary>
    public int ElementSize => DType.Size();

    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}

/// <summary>
/// Yields the tensors of a checkpoint by Hugging Face name, one at a time, without loading whole files into managed
/// memory (safetensors are memory-mapped; llama2.c files are read by offset). Implementations validate the layout when
/// opened, so a tensor that is listed can always be read. Not thread-safe.
/// </summary>
public interface ITensorSource : IDisposable
{
    /// <summary>Every tensor name, in a stable (ordinal) order.</summary>
    IReadOnlyList<string> Names { get; }

    bool Contains(string name);

    /// <summary>Dtype and shape of a tensor; throws <see cref="CheckpointException"/> naming the tensor if absent.</summary>
    TensorInfo GetInfo(string name);

    /// <summary>Copies the tensor into <paramref name="destination"/> converted to float32 (exact for F16/BF16).
    /// <paramref name="destination"/> must hold exactly <see cref="TensorInfo.ElementCount"/> elements.</summary>
    void ReadFloat32(string name, Span<float> destination);

    /// <summary>Copies the raw little-endian bytes as stored (ElementCount × ElementSize bytes).</summary>
    void ReadRaw(string name, Span<byte> destination);

    /// <summary>
    /// Copies elements <c>[firstElement, firstElement + destination.Length)</c> of the row-major tensor, converted to
    /// float32 (exact for F16/BF16): e.g. one embedding row without the whole table. Safetensors checkpoints read only
    /// that range; this default reads the whole tensor and copies the range (fine for small in-memory sources).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The range is not inside the tensor.</exception>
    void ReadFloat32Range(string name, long firstElement, Span<float> destination)
    {
        var info = GetInfo(name);
        CheckRange(info, firstElement, destination.Length);
        var all = new float[checked((int)info.ElementCount)];
        ReadFloat32(name, all);
        all.AsSpan(checked((int)firstElement), destination.Length).CopyTo(destination);
    }

    /// <summary>Throws unless <c>[firstElement, firstElement + count)</c> lies inside <paramref name="info"/>'s elements.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The range is not inside the tensor.</exception>
    internal static void CheckRange(TensorInfo info, long firstElement, long count)
    {
        ArgumentNullException.ThrowIfNull(info);
        if (firstElement < 0 || count < 0 || firstElement > info.ElementCount - count)
            throw new ArgumentOutOfRangeException(nameof(firstElement),
                $"elements [{firstElement}, {firstElement + count}) are outside '{info.Name}' {info.ShapeText} ({info.ElementCount} elements).");
    }
}

/// <summary>Reads a whole tensor into a new array (convenience for small tensors and tests).</summary>
public static class TensorSourceExtensions
{
    public static float[] ReadFloat32(this ITensorSource source, string name)
    {
        var info = source.GetInfo(name);
        var data = new float[checked((int)info.ElementCount)];
        source.ReadFloat32(name, data);
        return data;
    }
}
