using System.Runtime.InteropServices;

namespace OnnxReward.Export;

/// <summary>
/// The element type of a tensor, in a checkpoint (safetensors dtype, config.json torch_dtype) and in the ONNX graph
/// (TensorProto.DataType). The numeric values are the ONNX codes, so <c>(int)type</c> is what a TensorProto or a Cast
/// node's <c>to</c> attribute holds. <see cref="ElementTypes"/> has each type's names and width;
/// <see cref="ElementConversion"/> converts between float32 and the float types.
/// </summary>
public enum ElementType
{
    /// <summary>float32: safetensors F32, torch float32.</summary>
    Float = 1,

    /// <summary>uint8: safetensors U8 (packed MatMulNBits weights and zero points).</summary>
    UInt8 = 2,

    /// <summary>int8: safetensors I8 (DynamicQuantizeMatMul weights).</summary>
    Int8 = 3,

    /// <summary>int32: safetensors I32.</summary>
    Int32 = 6,

    /// <summary>int64: safetensors I64 (token ids, shapes).</summary>
    Int64 = 7,

    /// <summary>IEEE float16: safetensors F16, torch float16.</summary>
    Float16 = 10,

    /// <summary>bfloat16 (the top half of a float32): safetensors BF16, torch bfloat16.</summary>
    BFloat16 = 16,
}

/// <summary>The one table of <see cref="ElementType"/>s: the safetensors name, the torch dtype name and the byte width.</summary>
public static class ElementTypes
{
    private readonly record struct Row(ElementType Type, string Safetensors, string Torch, int Size);

    private static readonly Row[] Table =
    [
        new(ElementType.Float, "F32", "float32", 4),
        new(ElementType.Float16, "F16", "float16", 2),
        new(ElementType.BFloat16, "BF16", "bfloat16", 2),
        new(ElementType.Int8, "I8", "int8", 1),
        new(ElementType.UInt8, "U8", "uint8", 1),
        new(ElementType.Int32, "I32", "int32", 4),
        new(ElementType.Int64, "I64", "int64", 8),
    ];

    private static Row Of(ElementType type)
    {
        foreach (var row in Table)
            if (row.Type == type)
                return row;
        throw new ArgumentOutOfRangeException(nameof(type), type, "not an element type this exporter knows");
    }

    /// <summary>Bytes per element.</summary>
    public static int Size(this ElementType type) => Of(type).Size;

    /// <summary>The safetensors header's <c>dtype</c> (<c>F32</c>, <c>F16</c>, <c>BF16</c>, <c>I8</c>, …).</summary>
    public static string SafetensorsName(this ElementType type) => Of(type).Safetensors;

    /// <summary>The name config.json's <c>torch_dtype</c> uses (<c>float32</c>, <c>float16</c>, <c>bfloat16</c>, …).</summary>
    public static string TorchName(this ElementType type) => Of(type).Torch;

    /// <summary>The ONNX TensorProto.DataType code.</summary>
    public static int OnnxCode(this ElementType type) => (int)Of(type).Type;

    /// <summary>Whether a checkpoint may store it and <see cref="ElementConversion.ToFloat32"/> reads it: F32, F16 or BF16.</summary>
    public static bool IsCheckpointFloat(this ElementType type) =>
        type is ElementType.Float or ElementType.Float16 or ElementType.BFloat16;

    /// <summary>The type of a safetensors <c>dtype</c> name (case-sensitive, as the format writes it).</summary>
    public static bool TryParseSafetensors(string? name, out ElementType type)
    {
        foreach (var row in Table)
            if (string.Equals(row.Safetensors, name, StringComparison.Ordinal))
            {
                type = row.Type;
                return true;
            }
        type = default;
        return false;
    }
}

/// <summary>
/// The one conversion table between float32 and stored element types (little-endian): checkpoints are read with
/// <see cref="ToFloat32"/> (exact for all three float types), and ONNX initializers and Hugging Face checkpoints are
/// written with <see cref="FromFloat32(ReadOnlySpan{float}, ElementType, Span{byte})"/>.
/// </summary>
internal static class ElementConversion
{
    /// <summary>Raw F32 / F16 / BF16 bytes → float32 (exact: every F16 and BF16 value is a float32).
    /// <paramref name="destination"/> holds one float per element of <paramref name="source"/>.</summary>
    public static void ToFloat32(ReadOnlySpan<byte> source, ElementType type, Span<float> destination)
    {
        switch (type)
        {
            case ElementType.Float:
                MemoryMarshal.Cast<byte, float>(source).CopyTo(destination);
                break;
            case ElementType.BFloat16:
            {
                var s = MemoryMarshal.Cast<byte, ushort>(source);
                var d = MemoryMarshal.Cast<float, uint>(destination);
                for (var i = 0; i < s.Length; i++)
                    d[i] = (uint)s[i] << 16;               // bf16 is the top half of a float32
                break;
            }
            case ElementType.Float16:
            {
                var s = MemoryMarshal.Cast<byte, Half>(source);
                for (var i = 0; i < s.Length; i++)
                    destination[i] = (float)s[i];
                break;
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(type), type, "only F32, F16 and BF16 tensors convert to float32");
        }
    }

    /// <summary>float32 → a new array of <paramref name="type"/>'s bytes (see the other overload).</summary>
    public static byte[] FromFloat32(ReadOnlySpan<float> values, ElementType type)
    {
        var bytes = new byte[values.Length * type.Size()];
        FromFloat32(values, type, bytes);
        return bytes;
    }

    /// <summary>
    /// float32 → the bytes of <paramref name="type"/>: Float16 and BFloat16 round to nearest even (as torch's
    /// <c>.half()</c> / <c>.bfloat16()</c>; a NaN stays a NaN); Int8 and UInt8 take values that are already quantized
    /// integers, rounded and saturated anyway.
    /// </summary>
    public static void FromFloat32(ReadOnlySpan<float> values, ElementType type, Span<byte> destination)
    {
        switch (type)
        {
            case ElementType.Float:
                MemoryMarshal.AsBytes(values).CopyTo(destination);
                break;
            case ElementType.Float16:
            {
                var d = MemoryMarshal.Cast<byte, Half>(destination[..(values.Length * 2)]);
                for (var i = 0; i < values.Length; i++)
                    d[i] = (Half)values[i];                           // IEEE round-to-nearest-even
                break;
            }
            case ElementType.BFloat16:
            {
                var d = MemoryMarshal.Cast<byte, ushort>(destination[..(values.Length * 2)]);
                var s = MemoryMarshal.Cast<float, uint>(values);
                for (var i = 0; i < values.Length; i++)
                    d[i] = ToBFloat16(s[i]);
                break;
            }
            case ElementType.Int8:
                // Quantized weights arrive as integral floats (Int8Columns); round and saturate anyway.
                for (var i = 0; i < values.Length; i++)
                    destination[i] = (byte)(sbyte)Math.Clamp(MathF.Round(values[i]), -128f, 127f);
                break;
            case ElementType.UInt8:
                // Packed quantized blobs are normally written as bytes (WeightSink.WriteBytes); integral floats also work.
                for (var i = 0; i < values.Length; i++)
                    destination[i] = (byte)Math.Clamp(MathF.Round(values[i]), 0f, 255f);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(type), type, "only float, float16, bfloat16, int8 and uint8 are written from float32");
        }
    }

    /// <summary>float32 bits → bfloat16 bits, round-to-nearest-even; NaN stays a (quiet) NaN with its sign.</summary>
    public static ushort ToBFloat16(uint bits)
    {
        if ((bits & 0x7FFFFFFFu) > 0x7F800000u)
            return (ushort)((bits >> 16) | 0x0040);
        var rounding = 0x7FFFu + ((bits >> 16) & 1);
        return (ushort)((bits + rounding) >> 16);
    }
}
