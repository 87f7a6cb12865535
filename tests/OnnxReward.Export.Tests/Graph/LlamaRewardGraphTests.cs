using OnnxReward.Export.Checkpoints;
using OnnxReward.Export.Exporting;
using OnnxReward.Export.Tests.Exporting;
using OnnxReward.Testing;

namespace OnnxReward.Export.Tests.Graph;

/// <summary>The exported graph on random weights against the float64 loop reference (ReferenceLlama), covering what
/// the goldens do not: the plain-op RoPE path (Dh = 8), the posterior σ, and odd batch/length mixes.</summary>
public class LlamaRewardGraphTests
{
    // Tolerance: float32 graph vs float64 reference. The armorm-tiny README measures float32-vs-float64 differences of
    // about 1e-6 on hidden states and rewards; we allow its recommended |ours − ref| ≤ 1e-4 + 1e-4·|ref|.
    private static void AssertClose(IReadOnlyList<float> ours, IReadOnlyList<double> reference, string what)
    {
        Assert.That(ours, Has.Count.EqualTo(reference.Count), what);
        double worst = 0;
        for (var i = 0; i < ours.Count; i++)
        {
            var diff = Math.Abs(ours[i] - reference[i]);
            worst = Math.Max(worst, diff);
            Assert.That(diff, Is.LessThanOrEqualTo(1e-4 + 1e-4 * Math.Abs(reference[i])), $"{what}[{i}]: ours {ours[i]}, reference {reference[i]}");
        }
        TestContext.Out.WriteLine($"{what}: max |diff| {worst:E2}");
    }

    /// <summary>Qwen3's q/k norm on both attention paths (fused GQA rotary for Dh = 16, plain-op RoPE for Dh = 8, which
    /// no golden covers: skywork-qwen3-tiny has Dh = 32), with an explicit head_dim ≠ D / H and the classifier head.</summary>
    [TestCase(40, 4, 2, 16, TestName = "Qwen3_Dh16_ExplicitHeadDim_FusedRotary")]
    [TestCase(40, 4, 2, 8, TestName = "Qwen3_Dh8_ExplicitHeadDim_PlainOpRope")]
    public void RandomQwen3Classifier_MatchesFloat64Reference(int d, int h, int hkv, int headDim)
    {
        var config = new LlamaConfig
        {
            HiddenSize = d, IntermediateSize = 72, NumHiddenLayers = 2, NumAttentionHeads = h, NumKeyValueHeads = hkv,
            VocabSize = 301, RopeTheta = 1000000, MaxPositionEmbeddings = 64, PadTokenId = 300, RmsNormEps = 1e-6,
            ExplicitHeadDim = headDim, Family = ModelFamily.Qwen3,
        };
        var classifier = new ClassifierHeadConfig { NumLabels = 1, LabelNames = ["LABEL_0"] };
        using var ckpt = InMemoryCheckpoint.Create(config, null, seed: 11, classifier: classifier);
        var dir = SharedData.NewTempDirectory();
        ModelExporter.Export(ckpt, "in-memory", dir, new ExportOptions(), null, CancellationToken.None);

        var rng = new Random(2);
        long[][] rows = [.. new[] { 13, 4, 9 }.Select(n => Enumerable.Range(0, n).Select(_ => (long)rng.Next(300)).ToArray())];
        long[] pooled = [12, 3, 8];
        using var ort = new OrtRunner(dir);
        var outp = ort.Run(rows, pooled, null, pad: 300);
        Assert.That(ort.OutputNames, Is.EquivalentTo(new[] { "embedding", "logits", "score" }));
        var score = ckpt.Tensors.ReadFloat32("score.weight");
        for (var b = 0; b < rows.Length; b++)
        {
            var hidden = ReferenceLlama.Forward(config, ckpt.Tensors, rows[b])[pooled[b]];
            AssertClose(outp["embedding"].Skip(b * d).Take(d).ToArray(), hidden, $"row {b} embedding");
            AssertClose([outp["score"][b]], [hidden.Select((x, j) => x * score[j]).Sum()], $"row {b} score");
        }
    }

    [TestCase(64, 4, 2, TestName = "Dh16_FusedRotaryGQA")]
    [TestCase(64, 8, 4, TestName = "Dh8_PlainOpRope")]
    [TestCase(96, 6, 6, TestName = "Dh16_MultiHeadNoGrouping")]
    public void RandomReward_MatchesFloat64Reference_PerRowOfPaddedBatch(int d, int h, int hkv)
    {
        var config = new LlamaConfig
        {
            HiddenSize = d, IntermediateSize = 80, NumHiddenLayers = 2, NumAttentionHeads = h, NumKeyValueHeads = hkv,
            VocabSize = 301, RopeTheta = 500000, MaxPositionEmbeddings = 64, PadTokenId = 300,
        };
        var head = new RewardHeadConfig { NumObjectives = 5, GatingHiddenDim = 16, GatingNHidden = 2 };
        using var ckpt = InMemoryCheckpoint.Create(config, head, seed: 7, posteriorRank: 3);
        var dir = SharedData.NewTempDirectory();
        ModelExporter.Export(ckpt, "in-memory", dir, new ExportOptions { GatingTokenPattern = [1, 2, 3] }, null, CancellationToken.None);

        var rng = new Random(1);
        long[][] rows = [.. new[] { 11, 3, 17 }.Select(n => Enumerable.Range(0, n).Select(_ => (long)rng.Next(300)).ToArray())];
        long[] rewardPos = [10, 2, 16];
        long[] gatingPos = [4, 0, 9];
        using var ort = new OrtRunner(dir);
        var outp = ort.Run(rows, rewardPos, gatingPos, pad: 300);
        Assert.That(ort.OutputNames, Is.EquivalentTo(new[] { "embedding", "score", "rewards", "gating", "score_std" }));
        for (var b = 0; b < rows.Length; b++)
        {
            var hidden = ReferenceLlama.Forward(config, ckpt.Tensors, rows[b]);
            var r = ReferenceLlama.Head(ckpt.Head!, ckpt.Tensors, hidden[rewardPos[b]], hidden[gatingPos[b]]);
            AssertClose(outp["embedding"].Skip(b * d).Take(d).ToArray(), hidden[rewardPos[b]], $"row {b} embedding");
            AssertClose(outp["rewards"].Skip(b * 5).Take(5).ToArray(), r.Rewards, $"row {b} rewards");
            AssertClose(outp["gating"].Skip(b * 5).Take(5).ToArray(), r.Gating, $"row {b} gating");
            AssertClose([outp["score"][b]], [r.Score], $"row {b} score");
            AssertClose([outp["score_std"][b]], [r.Std!.Value], $"row {b} score_std");
        }
    }
}
