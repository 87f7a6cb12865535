using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using OnnxReward.Export.Checkpoints;
using OnnxReward.Export.Exporting;
using OnnxReward.Export.Graph;
using OnnxReward.Export.Onnx;
using OnnxReward.Export.Tests.Graph;
using OnnxReward.Model;
using OnnxReward.Testing;

namespace OnnxReward.Export.Tests.Exporting;

/// <summary>
/// The block-quantized variants (`export --dtype int4 | int8-block`): every backbone Linear becomes
/// com.microsoft.MatMulNBits. First the weight layout itself, against a dequantizer written here from the operator's
/// specification (ContribOperators.md: B uint8 [N, k_blocks, block_size·bits/8] packed along K, 4-bit values two per byte
/// with the first in the low nibble; scales [N, k_blocks]; zero points uint8 [N, ceil(k_blocks·bits/8)] packed the same
/// way, default 2^(bits−1); w = (q − zp) · scale); then whole models on armorm-tiny's goldens.
/// </summary>
[NonParallelizable]
public class BlockQuantizedExportTests
{
    /// <summary>Collects an initializer's bytes in memory (a stand-in for the external data file).</summary>
    private sealed class MemorySink : WeightSink
    {
        private readonly ElementType _type;
        public readonly List<byte> Bytes = [];

        [System.Diagnostics.CodeAnalysis.SetsRequiredMembers]
        public MemorySink(ElementType type) { _type = type; Scratch = new ScratchBuffers(); }

        public override void Write(ReadOnlySpan<float> values) => Bytes.AddRange(ElementConversion.FromFloat32(values, _type));
        public override void WriteBytes(ReadOnlySpan<byte> bytes) => Bytes.AddRange(bytes.ToArray());
    }

    /// <summary>w = (q − zp) · scale for every element of B, read as the specification lays it out; [N, K].</summary>
    private static float[] Dequantize(byte[] b, float[] scales, byte[]? zeroPoints, int n, int k, int bits, int blockSize)
    {
        var blocks = (k + blockSize - 1) / blockSize;
        var blob = blockSize * bits / 8;
        var zpRow = (blocks * bits + 7) / 8;
        var w = new float[n * k];
        for (var row = 0; row < n; row++)
            for (var col = 0; col < k; col++)
            {
                int blk = col / blockSize, i = col % blockSize;
                var at = row * blocks * blob + blk * blob;
                var q = bits == 8 ? b[at + i] : (b[at + i / 2] >> (4 * (i % 2))) & 0xF;
                var zp = zeroPoints is null ? 1 << (bits - 1)
                    : bits == 8 ? zeroPoints[row * zpRow + blk] : (zeroPoints[row * zpRow + blk / 2] >> (4 * (blk % 2))) & 0xF;
                w[row * k + col] = (q - zp) * scales[row * blocks + blk];
            }
        return w;
    }

    // K = 80: not a multiple of any block size (a padded last block) and, at block 32 / 64, an odd or single block count
    // (the zero points' half-filled last byte). Two source tensors packed side by side along N, as QKV and gate/up are.
    [TestCase(4, 32, true)]
    [TestCase(4, 32, false)]
    [TestCase(8, 32, false)]
    [TestCase(8, 32, true)]
    [TestCase(4, 16, true)]
    [TestCase(4, 64, true)]
    [TestCase(4, 128, true)]
    [TestCase(8, 128, false)]
    public void PackedWeightsAreWhatMatMulNBitsMultipliesBy(int bits, int blockSize, bool zeroPoints)
    {
        const int k = 80, n1 = 24, n2 = 16, n = n1 + n2, rows = 5;
        var rng = new Random(bits * 1000 + blockSize + (zeroPoints ? 1 : 0));
        var source = new InMemoryTensorSource();
        float[] Random(int count, double scale, double shift) =>
            Enumerable.Range(0, count).Select(_ => (float)((rng.NextDouble() * 2 - 1) * scale + shift)).ToArray();
        var w1 = Random(n1 * k, 0.2, 0.03);                // an offset, so asymmetric blocks differ from symmetric ones
        var w2 = Random(n2 * k, 0.05, -0.01);
        w2.AsSpan(0, k).Clear();                           // an all-zero row: every block has max |w| = 0
        source.Add("a.weight", ElementType.Float, [n1, k], w1);
        source.Add("b.weight", ElementType.Float, [n2, k], w2);
        var w = w1.Concat(w2).ToArray();                   // [N, K], the HF [out, in] rows

        var quantization = new BlockQuantization(bits, blockSize, zeroPoints, AccuracyLevel: 0);
        var linear = new BlockQuantizedLinear(source, ["a.weight", "b.weight"], quantization, float16Scales: false);
        Assert.That((linear.K, linear.N), Is.EqualTo(((long)k, (long)n)));
        var packed = new MemorySink(ElementType.UInt8);
        linear.Weights(packed);
        var scaleSink = new MemorySink(ElementType.Float);
        linear.Scales(scaleSink);
        var zpSink = new MemorySink(ElementType.UInt8);
        if (zeroPoints) linear.ZeroPointValues(zpSink);
        var blocks = (k + blockSize - 1) / blockSize;
        Assert.That(packed.Bytes, Has.Count.EqualTo(n * blocks * blockSize * bits / 8), "B is [N, k_blocks, block_size·bits/8]");
        var scales = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(scaleSink.Bytes.ToArray()).ToArray();
        Assert.That(scales, Has.Length.EqualTo(n * blocks), "scales are [N, k_blocks]");
        byte[]? zp = zeroPoints ? zpSink.Bytes.ToArray() : null;
        if (zp is not null) Assert.That(zp, Has.Length.EqualTo(n * ((blocks * bits + 7) / 8)), "zero points are [N, ceil(k_blocks·bits/8)]");

        // 1. The quantization itself: every weight within one step of its block (rounding: half a step; a clamped extreme:
        //    up to one step, e.g. the symmetric blocks' +7/−8 asymmetry), and the all-zero row exactly zero.
        var deq = Dequantize(packed.Bytes.ToArray(), scales, zp, n, k, bits, blockSize);
        for (var i = 0; i < w.Length; i++)
        {
            var step = Math.Abs(scales[i / k * blocks + i % k / blockSize]);
            Assert.That(Math.Abs(deq[i] - w[i]), Is.LessThanOrEqualTo(step * 1.0001), $"element [{i / k}, {i % k}]");
        }
        Assert.That(deq.AsSpan(n1 * k, k).ToArray(), Is.All.EqualTo(0f), "an all-zero row dequantizes to zeros");

        // 2. ORT's MatMulNBits with these inputs computes x · deq(W)ᵀ. accuracy_level 0 keeps the activations in fp32, so
        //    the only difference is summation order: 80-term fp32 dot products, ≤ 1e-5 relative to the terms' magnitude.
        var x = Random(rows * k, 1, 0);
        var y = RunMatMulNBits(x, rows, linear, quantization, packed.Bytes.ToArray(), scaleSink.Bytes.ToArray(), zp);
        double worst = 0;
        for (var r = 0; r < rows; r++)
            for (var c = 0; c < n; c++)
            {
                double expected = 0, magnitude = 0;
                for (var i = 0; i < k; i++)
                {
                    expected += (double)x[r * k + i] * deq[c * k + i];
                    magnitude += Math.Abs((double)x[r * k + i] * deq[c * k + i]);
                }
                var diff = Math.Abs(y[r * n + c] - expected);
                worst = Math.Max(worst, diff / (magnitude + 1e-12));
                Assert.That(diff, Is.LessThanOrEqualTo(1e-5 * magnitude + 1e-7), $"y[{r}, {c}]: ORT {y[r * n + c]}, reference {expected}");
            }
        TestContext.Out.WriteLine($"{bits}-bit, block {blockSize}, zero points {zeroPoints}: ORT vs C# dequantized reference, worst relative {worst:E1}");
    }

    private static float[] RunMatMulNBits(float[] x, int rows, BlockQuantizedLinear linear, BlockQuantization q, byte[] b, byte[] scales, byte[]? zp)
    {
        var g = new GraphBuilder("matmul_nbits_layout");
        var input = g.Input("x", ElementType.Float, "rows", linear.K);
        TensorProto Tensor(string name, ElementType type, long[] dims, byte[] raw)
        {
            var t = new TensorProto { Name = name, DataType = (int)type, RawData = ByteString.CopyFrom(raw) };
            t.Dims.AddRange(dims);
            return t;
        }
        var protos = new List<TensorProto> { Tensor("B", ElementType.UInt8, linear.WeightDims, b), Tensor("scales", ElementType.Float, linear.ScaleDims, scales) };
        if (zp is not null) protos.Add(Tensor("zero_points", ElementType.UInt8, linear.ZeroPointDims, zp));
        var y = g.Node("MatMulNBits", "/MatMulNBits", [input, new Value("B"), new Value("scales"), zp is null ? Value.None : new Value("zero_points")], 1,
            GraphBuilder.MsDomain, Attr.Int("K", linear.K), Attr.Int("N", linear.N), Attr.Int("bits", q.Bits),
            Attr.Int("block_size", q.BlockSize), Attr.Int("accuracy_level", q.AccuracyLevel))[0];
        g.Output(y, "y", ElementType.Float, "rows", linear.N);
        var model = g.ToModel(protos, "test", new Dictionary<string, string>());
        using var session = new InferenceSession(model.ToByteArray());
        using var xv = OrtValue.CreateTensorValueFromMemory(x, [rows, linear.K]);
        using var results = session.Run(new RunOptions(), new Dictionary<string, OrtValue> { ["x"] = xv }, ["y"]);
        return results[0].GetTensorDataAsSpan<float>().ToArray();
    }

    // ---- whole models on armorm-tiny ------------------------------------------------------------------------------

    private readonly Dictionary<string, string> _dirs = [];

    private string Exported(string dtype, int blockSize = 32, string? variant = null, int? accuracyLevel = null)
    {
        var key = $"{dtype}-{blockSize}-{variant}-{accuracyLevel}";
        if (_dirs.TryGetValue(key, out var dir)) return dir;
        dir = SharedData.NewTempDirectory($"armorm-tiny-{key}");
        ModelExporter.Export(SharedData.ArmormTiny, dir, new ExportOptions
        {
            Precision = ExportPrecision.Parse(dtype, variant, dtype is "int4" or "int8-block" ? blockSize : null, accuracyLevel),
        });
        return _dirs[key] = dir;
    }

    [OneTimeTearDown]
    public void Cleanup()
    {
        foreach (var d in _dirs.Values)
            try { Directory.Delete(d, true); } catch (IOException) { /* temp folder; best effort */ }
    }

    private static Dictionary<string, int> OpCounts(string dir) =>
        ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(dir, "model.onnx"))).Graph.Node
            .GroupBy(n => n.OpType).ToDictionary(g => g.Key, g => g.Count());

    [TestCase("int4", 4, false)]
    [TestCase("int8-block", 8, true)]
    public void EveryBackboneLinearIsMatMulNBitsTheEmbeddingIsFp16AndTheManifestSaysSo(string dtype, int bits, bool symmetric)
    {
        var fp32 = OpCounts(Exported("fp32"));
        var dir = Exported(dtype);
        var q = OpCounts(dir);
        // armorm-tiny: 2 layers × (packed QKV, o_proj, packed gate/up, down_proj).
        Assert.That(q.GetValueOrDefault("MatMulNBits"), Is.EqualTo(8));
        Assert.That(q.GetValueOrDefault("MatMul"), Is.EqualTo(fp32["MatMul"] - 8), "the head's MatMuls stay float32");
        Assert.That(q.GetValueOrDefault("Cast"), Is.EqualTo(fp32.GetValueOrDefault("Cast") + 1), "one Cast: the fp16 embedding rows to float32");
        Assert.That(q.Where(kv => kv.Key is not ("MatMul" or "MatMulNBits" or "Cast")),
            Is.EquivalentTo(fp32.Where(kv => kv.Key is not ("MatMul" or "Cast"))), "every other node is the fp32 graph's");

        var graph = ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(dir, "model.onnx"))).Graph;
        Assert.That(graph.Initializer.Single(t => t.Name == "model.embed_tokens.weight").DataType, Is.EqualTo((int)ElementType.Float16));
        Assert.That(graph.Initializer.Where(t => t.Name.StartsWith("gating.", StringComparison.Ordinal) || t.Name.StartsWith("regression_layer", StringComparison.Ordinal))
            .Select(t => t.DataType), Is.All.EqualTo((int)ElementType.Float), "the head stays float32");
        var node = graph.Node.First(n => n.OpType == "MatMulNBits");
        Assert.That(node.Domain, Is.EqualTo("com.microsoft"));
        Assert.That(node.Attribute.ToDictionary(a => a.Name, a => a.I),
            Is.EquivalentTo(new Dictionary<string, long> { ["K"] = 64, ["N"] = 64 + 2 * 16 * 2, ["bits"] = bits, ["block_size"] = 32, ["accuracy_level"] = bits == 4 ? 1 : 4 }),
            "CPU defaults: int4 level 1 (fp32 compute, no int8 copy of the weights), int8-block level 4");
        Assert.That(node.Input, Has.Count.EqualTo(symmetric ? 3 : 4), symmetric ? "symmetric: no zero points" : "zero points");

        var m = RewardModelManifest.Load(dir);
        Assert.That((m.DType, m.Variant), Is.EqualTo((dtype, "cpu")));
        Assert.That(m.Quantization, Is.EqualTo(new RewardModelManifest.QuantizationInfo("MatMulNBits", bits, symmetric, "fp16", 32, bits == 4 ? 1 : 4)));
        Assert.That(RewardModelManifest.Load(Exported("fp32")).Quantization, Is.Null);
    }

    /// <summary>Scores of a variant on the 47 goldens, batched as the library batches them (right padding).</summary>
    private static (float[] Score, float[] Rewards, float[] Gating) Run(string dir)
    {
        var cases = GoldenExportTests.ArmormGoldens();
        using var ort = new OrtRunner(dir);
        var o = ort.Run(cases.Select(c => c.InputIds).ToList(), cases.Select(c => c.RewardPosition).ToArray(),
            cases.Select(c => c.GatingPosition).ToArray(), pad: 128256);
        return (o["score"], o["rewards"], o["gating"]);
    }

    // Measured on armorm-tiny (2 layers, d 64, random weights: K = 64 or 176, so a Linear has only 2–6 blocks per row and
    // the quantization noise averages out far less than in a large model; the goldens' score range is 0.64), accuracy
    // level 4 (int4's CPU default is now 1, fp32 compute, which is at least as accurate: level 0/1 changes int4 by < 0.01), max |Δ| of score / rewards / gating and the share of the 1,081 golden pairs kept in order:
    //   int4        block 16: 0.127 / 0.115 / 0.059, 95.1 %    block 32: 0.114 / 0.173 / 0.064, 90.7 %
    //               block 64: 0.120 / 0.189 / 0.088, 89.9 %    block 128: 0.146 / 0.176 / 0.093, 89.1 %
    //   int8-block  block 16: 0.017 / 0.015 / 0.010, 99.2 %    block 32: 0.013 / 0.018 / 0.007, 98.7 %
    //               block 64: 0.009 / 0.022 / 0.009, 99.4 %    block 128: 0.021 / 0.023 / 0.011, 99.2 %
    // (int8, DynamicQuantizeMatMul: 0.033 / 0.045 / 0.025, 97.1 %; accuracy level 0 changes int4 by < 0.01 and takes
    // int8-block to 0.008–0.013: the Measure case below, perf/README.md.) The bounds sit ~1.5× above the worst block size:
    // they catch a broken layout or quantizer (transposed blocks, swapped nibbles, scales on the wrong axis give O(1)
    // errors and orders near chance; PackedWeightsAreWhatMatMulNBitsMultipliesBy pins the layout exactly), not promise
    // more than the variant gives. int4 is the least accurate variant here.
    [TestCase("int4", 16, 0.22, 0.30, 0.15, 0.85)]
    [TestCase("int4", 32, 0.22, 0.30, 0.15, 0.85)]
    [TestCase("int4", 64, 0.22, 0.30, 0.15, 0.85)]
    [TestCase("int4", 128, 0.22, 0.30, 0.15, 0.85)]
    [TestCase("int8-block", 16, 0.035, 0.04, 0.02, 0.97)]
    [TestCase("int8-block", 32, 0.035, 0.04, 0.02, 0.97)]
    [TestCase("int8-block", 64, 0.035, 0.04, 0.02, 0.97)]
    [TestCase("int8-block", 128, 0.035, 0.04, 0.02, 0.97)]
    public void ScoresStayCloseToTheGoldensAndKeepTheirOrder(string dtype, int blockSize, double scoreTol, double rewardsTol, double gatingTol, double pairsTol)
        => CompareWithGoldens(dtype, blockSize, null, scoreTol, rewardsTol, gatingTol, pairsTol);

    [Explicit("measurement for perf/README.md's accuracy table")]
    [Test]
    public void Measure([Values("int4", "int8-block")] string dtype, [Values(16, 32, 64, 128)] int blockSize, [Values(0, 4)] int level)
        => CompareWithGoldens(dtype, blockSize, level, 1, 1, 1, 0);

    private void CompareWithGoldens(string dtype, int blockSize, int? level, double scoreTol, double rewardsTol, double gatingTol, double pairsTol)
    {
        var cases = GoldenExportTests.ArmormGoldens();
        var (score, rewards, gating) = Run(Exported(dtype, blockSize, null, level));
        const int k = 19;
        double r = 0, gmax = 0;
        for (var b = 0; b < cases.Count; b++)
            for (var j = 0; j < k; j++)
            {
                r = Math.Max(r, Math.Abs(rewards[b * k + j] - cases[b].Rewards[j]));
                gmax = Math.Max(gmax, Math.Abs(gating[b * k + j] - cases[b].Gating[j]));
            }
        var agreement = ScoreAgreement.Of(cases.Select(c => (double)c.Score).ToList(), score.Select(s => (double)s).ToList());
        TestContext.Out.WriteLine($"{dtype} block {blockSize} level {level?.ToString() ?? "default"} vs goldens over 47 cases: score {agreement}; rewards max |Δ| {r:E2}, gating {gmax:E2}");
        Assert.Multiple(() =>
        {
            Assert.That(agreement.MaxAbsDiff, Is.LessThan(scoreTol), "score");
            Assert.That(r, Is.LessThan(rewardsTol), "rewards");
            Assert.That(gmax, Is.LessThan(gatingTol), "gating");
            Assert.That(agreement.PairsKept, Is.GreaterThanOrEqualTo(pairsTol), "pairwise order of scores");
        });
    }

    [TestCase("int4")]
    [TestCase("int8-block")]
    public void TheLibraryLoadsAndScoresTheVariant(string dtype)
    {
        using var model = RewardModel.Load(Exported(dtype), new RewardModelOptions { ExecutionProvider = ExecutionProviderKind.Cpu });
        using var fp32 = RewardModel.Load(Exported("fp32"), new RewardModelOptions { ExecutionProvider = ExecutionProviderKind.Cpu });
        var c = Conversation.FromPromptResponse("How do I boil an egg?", "Simmer it for 9 minutes, then cool it in cold water.");
        var (a, b) = (model.Score(c), fp32.Score(c));
        TestContext.Out.WriteLine($"{dtype} {a.Score}, fp32 {b.Score}");
        Assert.That(a.Score, Is.EqualTo(b.Score).Within(dtype == "int4" ? 0.22 : 0.035), "the score tolerance used against the goldens");
        Assert.That(model.Manifest.Quantization!.Bits, Is.EqualTo(dtype == "int4" ? 4 : 8));
    }

    /// <summary>The CUDA variant: the same quantized weights with float16 activations and scales. No CUDA device here, so
    /// this checks the graph's types and runs it on the CPU EP (which has float16 MatMulNBits) against the goldens with
    /// an fp16-sized tolerance; it does not prove the CUDA kernels run it.</summary>
    [Test]
    public void TheCudaVariantHasFloat16ScalesAndRunsOnTheCpuEp()
    {
        var dir = Exported("int4", 32, "cuda");
        var m = RewardModelManifest.Load(dir);
        Assert.That((m.DType, m.Variant, m.Quantization!.AccuracyLevel), Is.EqualTo(("int4", "cuda", 0)));
        var graph = ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(dir, "model.onnx"))).Graph;
        Assert.That(graph.Initializer.Where(t => t.Name.EndsWith(".scales", StringComparison.Ordinal)).Select(t => t.DataType),
            Is.EqualTo(Enumerable.Repeat((int)ElementType.Float16, 8)), "8 Linears' scales, all float16");
        var cases = GoldenExportTests.ArmormGoldens();
        var (score, _, _) = Run(dir);
        var agreement = ScoreAgreement.Of(cases.Select(c => (double)c.Score).ToList(), score.Select(s => (double)s).ToList());
        TestContext.Out.WriteLine($"int4 cuda variant on the CPU EP vs goldens: {agreement}");
        // The CPU variant's int4 bounds above: fp16 activations add ~1e-3 (fp16 vs goldens alone, GoldenExportTests).
        Assert.That(agreement.MaxAbsDiff, Is.LessThan(0.22));
        Assert.That(agreement.PairsKept, Is.GreaterThanOrEqualTo(0.85));
    }

    [Test]
    public void BadQuantizationOptionsAreRefusedWithTheFix()
    {
        var e = Assert.Throws<ExportException>(() => ExportPrecision.Parse("int4", blockSize: 48));
        Assert.That(e!.Message, Does.Contain("block size 48").And.Contain("16, 32, 64, 128"));
        e = Assert.Throws<ExportException>(() => ExportPrecision.Parse("fp32", blockSize: 64));
        Assert.That(e!.Message, Does.Contain("int4 and int8-block only"));
        e = Assert.Throws<ExportException>(() => ExportPrecision.Parse("int4", accuracyLevel: 7));
        Assert.That(e!.Message, Does.Contain("accuracy level 7"));
        e = Assert.Throws<ExportException>(() => ExportPrecision.Parse("int3"));
        Assert.That(e!.Message, Does.Contain("int8-block or int4"));
    }
}
