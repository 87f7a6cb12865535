using Microsoft.ML.OnnxRuntime;
using OnnxReward.Export.Exporting;
using OnnxReward.Export.Graph;
using OnnxReward.Export.Onnx;

namespace OnnxReward.Export.Tests.Graph;

/// <summary>The kernel-ceiling graphs (KernelCeilingGraph): for each CPU variant at its default settings the graph holds
/// only that variant's Linear kernel with the exporter's quantization parameters, loads in ONNX Runtime, and computes
/// x·Wᵀ within the variant's quantization error of a float64 reference product on the seeded weights.</summary>
public class KernelCeilingGraphTests
{
    private const long D = 128, F = 192;
    private const int Layers = 2, Rows = 16, Seed = 5;

    // A small layer with the mid-size model's structure: packed QKV (GQA, Dkv = D/4), o_proj, packed gate/up, down_proj.
    private static readonly KernelShape[] Shapes =
    [
        new("qkv_proj", D, D + 2 * (D / 4), false), new("o_proj", D, D, false), new("gate_up_proj", D, 2 * F, false), new("down_proj", F, D, true),
    ];

    // Bounds on the relative L2 error ‖y − x·Wᵀ‖ / ‖x·Wᵀ‖ over all outputs, inputs and weights uniform (x in ±1,
    // W in ±1/√K). A product's relative error is about the quadrature sum of its operands' relative rms rounding errors:
    // - fp32: summation order only (~1e-7 per add over K ≤ 192 terms): 1e-5.
    // - int8 (DynamicQuantizeMatMul): weights per output channel, step max|w|/127 → rms error 0.5/127 ≈ 0.39 % of rms w;
    //   activations per tensor uint8 over [min x, max x] ≈ ±1, step 2/255 → 0.39 %; together ≈ 0.55 %. Bound 1.5 %.
    // - int8-block (MatMulNBits 8 bits, block 32, symmetric, accuracy level 4: activations also quantized to int8 per
    //   block by MLAS): two ≈ 0.4 % terms as above, ≈ 0.55 %. Bound 1.5 %.
    // - int4 (MatMulNBits 4 bits, block 32, zero points, accuracy level 1: fp32 activations): step (max − min)/15 of a
    //   block ≈ 1.9/15 of max|w| → rms error 0.125/√12·√3 ≈ 6.3 % of rms w. Bound 9 %.
    [TestCase("fp32", "MatMul", 1e-5)]
    [TestCase("int8", "DynamicQuantizeMatMul", 0.015)]
    [TestCase("int8-block", "MatMulNBits", 0.015)]
    [TestCase("int4", "MatMulNBits", 0.09)]
    public void CeilingGraph_HoldsOnlyTheVariantsKernel_AndComputesTheProductWithinItsQuantizationError(string dtype, string kernel, double bound)
    {
        var precision = ExportPrecision.Parse(dtype);
        var bytes = KernelCeilingGraph.Build(precision, D, F, Shapes, Layers, Seed);

        var model = ModelProto.Parser.ParseFrom(bytes);
        var compute = model.Graph.Node.Where(n => n.OpType != "Identity").ToList();
        Assert.That(compute.Select(n => n.OpType).Distinct(), Is.EqualTo(new[] { kernel }), "only the variant's GEMM kernel");
        Assert.That(compute, Has.Count.EqualTo(Layers * Shapes.Length));
        if (kernel == "MatMulNBits")
        {
            long Attr(NodeProto n, string name) => n.Attribute.Single(a => a.Name == name).I;
            var blocks = precision.Blocks!;
            foreach (var n in compute)
            {
                Assert.That((Attr(n, "bits"), Attr(n, "block_size"), Attr(n, "accuracy_level")),
                    Is.EqualTo(((long)blocks.Bits, (long)blocks.BlockSize, (long)blocks.AccuracyLevel)), $"{n.Name}: the exporter's settings for {precision}");
                Assert.That(n.Input.Count == 4 && n.Input[3].Length > 0, Is.EqualTo(blocks.ZeroPoints), $"{n.Name}: zero points as the exporter writes them");
            }
        }

        var rng = new Random(9);
        float[] Inputs(long width) => Enumerable.Range(0, (int)(Rows * width)).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var h = Inputs(D);
        var m = Inputs(F);
        using var options = new SessionOptions { IntraOpNumThreads = 1 };
        using var session = new InferenceSession(bytes, options);
        using var hv = OrtValue.CreateTensorValueFromMemory(h, [Rows, D]);
        using var mv = OrtValue.CreateTensorValueFromMemory(m, [Rows, F]);
        using var outputs = session.Run(new RunOptions(), new Dictionary<string, OrtValue> { ["h"] = hv, ["m"] = mv }, session.OutputNames);

        double errorSquared = 0, referenceSquared = 0;
        for (var i = 0; i < session.OutputNames.Count; i++)
        {
            var name = session.OutputNames[i];                         // layers.{layer}.{kernel}
            var parts = name.Split('.');
            var shape = Shapes.Single(s => s.Name == parts[2]);
            var w = KernelCeilingGraph.Weight(shape, int.Parse(parts[1]), Seed);   // [M, K]
            var x = shape.FromFfn ? m : h;
            var y = outputs[i].GetTensorDataAsSpan<float>();
            Assert.That(y.Length, Is.EqualTo(Rows * shape.M), name);
            for (var r = 0; r < Rows; r++)
                for (var j = 0; j < shape.M; j++)
                {
                    double reference = 0;
                    for (var k = 0; k < shape.K; k++)
                        reference += (double)x[r * shape.K + k] * w[j * shape.K + k];
                    var e = y[(int)(r * shape.M + j)] - reference;
                    errorSquared += e * e;
                    referenceSquared += reference * reference;
                }
        }
        var relative = Math.Sqrt(errorSquared / referenceSquared);
        TestContext.Out.WriteLine($"{precision}: relative L2 error {relative:E2} (bound {bound:E1})");
        Assert.That(relative, Is.LessThan(bound), $"{precision}: the ceiling graph's products against a float64 x·Wᵀ");
    }

    [Test]
    public void Weights_AreTheSameInEveryCall_AndDistinctPerLayerAndKernel()
    {
        var a = KernelCeilingGraph.Weight(Shapes[0], 0, Seed);
        Assert.That(KernelCeilingGraph.Weight(Shapes[0], 0, Seed), Is.EqualTo(a), "seeded: a test's reference sees the graph's weights");
        Assert.That(KernelCeilingGraph.Weight(Shapes[0], 1, Seed).Take(16), Is.Not.EqualTo(a.Take(16)), "each layer streams its own weights");
        Assert.That(KernelCeilingGraph.Weight(Shapes[1], 0, Seed).Take(16), Is.Not.EqualTo(a.Take(16)));
        Assert.That(a.Max(Math.Abs), Is.LessThanOrEqualTo(1 / Math.Sqrt(D)).And.GreaterThan(0.9 / Math.Sqrt(D)), "uniform in ±1/√K");
    }

    [Test]
    public void Build_RejectsAShapeWhoseInputWidthIsNotTheGraphs()
    {
        var ex = Assert.Throws<ArgumentException>(() =>
            KernelCeilingGraph.Build(ExportPrecision.Fp32, D, F, [new("down_proj", D, D, FromFfn: true)], 1, Seed));
        Assert.That(ex!.Message, Does.Contain("down_proj").And.Contain("192"));
    }
}
