using System.Runtime.InteropServices;
using OnnxReward.Export.Checkpoints;
using OnnxReward.Export.Graph;

namespace OnnxReward.Export.Onnx;

/// <summary>float32 → the bytes of an ONNX element type (little-endian), and bf16/f16 raw → float32.</summary>
internal static class ElementConversion
{
    public static int SizeOf(ElementType type) => type switch
    {
        ElementType.Float or ElementType.Int32 => 4,
        ElementType.Int64 => 8,
        ElementType.Float16 => 2,
        ElementType.Int8 or ElementType.UInt8 => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "unsupported element type"),
    };

    /// <summary>Encodes float32 values as <paramref name="type"/> (Float16: round to nearest even, as torch's .half();
    /// Int8: the values are already quantized integers).</summary>
    public static byte[] Encode(ReadOnlySpan<float> values, ElementType type)
    {
        var bytes = new byte[values.Length * SizeOf(type)];
        Encode(values, type, bytes);
        return bytes;
    }

    public static void Encode(ReadOnlySpan<float> values, ElementType type, Span<byte> destination)
    {
        switch (type)
        {
            case ElementType.Float:
                MemoryMarshal.AsBytes(values).CopyTo(destination);
                break;
            case ElementType.Float16:
                var halves = MemoryMarshal.Cast<byte, Half>(destination[..(values.Length * 2)]);
                for (var i = 0; i < values.Length; i++) halves[i] = (Half)values[i];
                break;
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
                throw new ArgumentOutOfRangeException(nameof(type), type, "only float, float16, int8 and uint8 weights are streamed");
        }
    }

    /// <summary>Raw little-endian BF16 → float32 (exact: bf16 is the top half of a float32).</summary>
    public static void BFloat16ToFloat(ReadOnlySpan<byte> raw, Span<float> destination) =>
        Float32Conversion.Convert(raw, TensorDType.BF16, destination);

    /// <summary>Raw little-endian F16 → float32 (exact).</summary>
    public static void Float16ToFloat(ReadOnlySpan<byte> raw, Span<float> destination) =>
        Float32Conversion.Convert(raw, TensorDType.F16, destination);
}
