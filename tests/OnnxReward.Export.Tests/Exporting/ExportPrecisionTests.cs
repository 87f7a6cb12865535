using OnnxReward.Export.Exporting;
using OnnxReward.Export.Graph;
using OnnxReward.Export.Onnx;
using OnnxReward.Model;

namespace OnnxReward.Export.Tests.Exporting;

/// <summary>
/// The one element-type table (<see cref="ElementTypes"/>, <see cref="ElementConversion"/>) and the one typed export
/// precision (<see cref="ExportPrecision"/>): what each resolves to, checked against independent sources (the ONNX
/// TensorProto enum generated from onnx_subset.proto, the safetensors format's dtype names, hand-computed bf16 bits).
/// </summary>
public class ExportPrecisionTests
{
    [Test]
    public void ElementTypesCarryTheirOnnxCodeSafetensorsNameAndWidth()
    {
        // ONNX TensorProto.DataType from the proto file; safetensors names and widths from the format's Dtype enum.
        var expected = new (ElementType Type, TensorProto.Types.DataType Onnx, string Safetensors, int Size)[]
        {
            (ElementType.Float, TensorProto.Types.DataType.Float, "F32", 4),
            (ElementType.Float16, TensorProto.Types.DataType.Float16, "F16", 2),
            (ElementType.BFloat16, TensorProto.Types.DataType.Bfloat16, "BF16", 2),
            (ElementType.Int8, TensorProto.Types.DataType.Int8, "I8", 1),
            (ElementType.UInt8, TensorProto.Types.DataType.Uint8, "U8", 1),
            (ElementType.Int32, TensorProto.Types.DataType.Int32, "I32", 4),
            (ElementType.Int64, TensorProto.Types.DataType.Int64, "I64", 8),
        };
        Assert.That(expected.Select(e => e.Type), Is.EquivalentTo(Enum.GetValues<ElementType>()), "every element type is in the table");
        foreach (var (type, onnx, safetensors, size) in expected)
        {
            Assert.That(type.OnnxCode(), Is.EqualTo((int)onnx), $"{type} ONNX code");
            Assert.That(type.SafetensorsName(), Is.EqualTo(safetensors), $"{type} safetensors name");
            Assert.That(type.Size(), Is.EqualTo(size), $"{type} width");
            Assert.That(ElementTypes.TryParseSafetensors(safetensors, out var parsed) && parsed == type, $"{safetensors} parses back");
        }
        Assert.That(ElementTypes.TryParseSafetensors("bf16", out _), Is.False, "safetensors names are case-sensitive");
        Assert.That(Enum.GetValues<ElementType>().Where(t => t.IsCheckpointFloat()),
            Is.EquivalentTo(new[] { ElementType.Float, ElementType.Float16, ElementType.BFloat16 }));
    }

    [Test]
    public void BFloat16RoundsToNearestEvenAndReadsBackExactly()
    {
        // Hand-computed: 1 + 2^-8 lies exactly between bf16 0x3F80 and 0x3F81 → the even one, 0x3F80;
        // 1 + 3·2^-8 lies between 0x3F81 and 0x3F82 → 0x3F82 (1 + 2^-6); 1 + 2^-8 + 2^-23 is above the midpoint → 0x3F81 (1 + 2^-7).
        float[] values = [1f, BitConverter.UInt32BitsToSingle(0x3F808000), BitConverter.UInt32BitsToSingle(0x3F818000),
            BitConverter.UInt32BitsToSingle(0x3F808001), -2.5f, float.NaN];
        var bytes = ElementConversion.FromFloat32(values, ElementType.BFloat16);
        var bits = Enumerable.Range(0, values.Length).Select(i => BitConverter.ToUInt16(bytes, i * 2)).ToArray();
        Assert.That(bits[..5], Is.EqualTo(new ushort[] { 0x3F80, 0x3F80, 0x3F82, 0x3F81, 0xC020 }));
        var back = new float[values.Length];
        ElementConversion.ToFloat32(bytes, ElementType.BFloat16, back);
        Assert.That(back[..5], Is.EqualTo(new[] { 1f, 1f, 1.015625f, 1.0078125f, -2.5f }), "bf16 → f32 is exact");
        Assert.That(float.IsNaN(back[5]), "a NaN stays a NaN (not rounded to infinity)");
        Assert.Throws<ArgumentOutOfRangeException>(() => ElementConversion.ToFloat32(new byte[4], ElementType.Int32, new float[1]));
    }

    [Test]
    public void ParseResolvesTheVariantAndTheBlockDefaults()
    {
        var fp32 = ExportPrecision.Parse("fp32");
        Assert.That((fp32.DType, fp32.Variant, fp32.BlockSize, fp32.AccuracyLevel, fp32.Backbone), Is.EqualTo((ModelDType.Fp32, "cpu", (int?)null, (int?)null, ElementType.Float)));
        Assert.That(fp32, Is.EqualTo(ExportPrecision.Fp32));
        Assert.That(fp32.Quantization, Is.Null);

        var fp16 = ExportPrecision.Parse("fp16");
        Assert.That((fp16.Variant, fp16.Backbone, fp16.Float16Embedding), Is.EqualTo(("cuda", ElementType.Float16, false)), "fp16 is the CUDA variant");

        var int4 = ExportPrecision.Parse("int4");
        Assert.That((int4.Variant, int4.BlockSize, int4.AccuracyLevel, int4.Backbone), Is.EqualTo(("cpu", (int?)32, (int?)1, ElementType.Float)), "int4 on the CPU: level 1 by default");
        Assert.That(int4.Blocks, Is.EqualTo(new BlockQuantization(4, 32, ZeroPoints: true, AccuracyLevel: 1)));
        Assert.That(int4.Quantization, Is.EqualTo(new RewardModelManifest.QuantizationInfo("MatMulNBits", 4, Symmetric: false, EmbeddingDType: "fp16", BlockSize: 32, AccuracyLevel: 1)));

        var int4Cuda = ExportPrecision.Parse("int4", "cuda", 128);
        Assert.That((int4Cuda.BlockSize, int4Cuda.AccuracyLevel, int4Cuda.Backbone), Is.EqualTo(((int?)128, (int?)0, ElementType.Float16)), "CUDA: level 0, fp16 activations");

        var int8Block = ExportPrecision.Parse("int8-block", accuracyLevel: 1);
        Assert.That(int8Block.Blocks, Is.EqualTo(new BlockQuantization(8, 32, ZeroPoints: false, AccuracyLevel: 1)));
        Assert.That(int8Block.ToString(), Is.EqualTo("int8-block cpu, block 32, accuracy level 1"));

        var int8 = ExportPrecision.Parse("int8");
        Assert.That((int8.Int8Linears, int8.Float16Embedding, int8.Blocks), Is.EqualTo((true, true, (BlockQuantization?)null)));

        foreach (var name in ModelDTypes.Names)
            Assert.That(ExportPrecision.Parse(name).Name, Is.EqualTo(name), "every manifest dtype name parses and names itself");
        Assert.That(() => ExportPrecision.Parse("fp32", "tpu"), Throws.TypeOf<ExportException>().With.Message.Contains("use cpu or cuda"));
    }
}
