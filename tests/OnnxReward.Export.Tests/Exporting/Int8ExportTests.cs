using OnnxReward.Export.Exporting;
using OnnxReward.Export.Onnx;
using OnnxReward.Export.Tests.Graph;
using OnnxReward.Model;
using OnnxReward.Testing;

namespace OnnxReward.Export.Tests.Exporting;

/// <summary>
/// The int8 CPU variant (`export --dtype int8`): the backbone's Linear layers become ONNX Runtime's
/// DynamicQuantizeMatMul with symmetric per-output-channel int8 weights; everything else stays float32. It is an
/// approximation of the fp32 graph, so it is checked against the armorm-tiny goldens with a quantization tolerance
/// and on what a reward model is for: ordering responses.
/// </summary>
[NonParallelizable]
public class Int8ExportTests
{
    private string _fp32 = "", _int8 = "";

    [OneTimeSetUp]
    public void Export()
    {
        _fp32 = SharedData.NewTempDirectory("armorm-tiny-fp32");
        _int8 = SharedData.NewTempDirectory("armorm-tiny-int8");
        ModelExporter.Export(SharedData.ArmormTiny, _fp32);
        ModelExporter.Export(SharedData.ArmormTiny, _int8, new ExportOptions { Precision = ExportPrecision.Parse("int8") });
    }

    private static Dictionary<string, int> OpCounts(string dir) =>
        ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(dir, "model.onnx"))).Graph.Node
            .GroupBy(n => n.OpType).ToDictionary(g => g.Key, g => g.Count());

    [Test]
    public void EveryBackboneLinearIsQuantizedAndNothingElse()
    {
        var fp32 = OpCounts(_fp32);
        var int8 = OpCounts(_int8);
        // armorm-tiny: 2 layers × (packed QKV, o_proj, packed gate/up, down_proj).
        Assert.That(int8.GetValueOrDefault("DynamicQuantizeMatMul"), Is.EqualTo(8));
        Assert.That(int8.GetValueOrDefault("MatMul"), Is.EqualTo(fp32["MatMul"] - 8), "the head's MatMuls stay float32");
        Assert.That(int8.GetValueOrDefault("Cast"), Is.EqualTo(fp32.GetValueOrDefault("Cast") + 1), "one Cast: the fp16 embedding rows to float32");
        Assert.That(int8.Where(kv => kv.Key is not ("MatMul" or "DynamicQuantizeMatMul" or "Cast")),
            Is.EquivalentTo(fp32.Where(kv => kv.Key is not ("MatMul" or "Cast"))), "every other node is the fp32 graph's");
        var m = RewardModelManifest.Load(_int8);
        Assert.That((m.DType, m.Variant), Is.EqualTo(("int8", "cpu")));
        Assert.That(m.Quantization, Is.EqualTo(new RewardModelManifest.QuantizationInfo("DynamicQuantizeMatMul", 8, Symmetric: true, EmbeddingDType: "fp16")));
        Assert.That(new FileInfo(Path.Combine(_int8, "model.onnx.data")).Length,
            Is.LessThan(new FileInfo(Path.Combine(_fp32, "model.onnx.data")).Length));
    }

    [Test]
    public void ScoresStayCloseToTheGoldensAndKeepTheirOrder()
    {
        var cases = GoldenExportTests.ArmormGoldens();
        using var ort = new OrtRunner(_int8);
        var o = ort.Run(cases.Select(c => c.InputIds).ToList(), cases.Select(c => c.RewardPosition).ToArray(),
            cases.Select(c => c.GatingPosition).ToArray(), pad: 128256);
        const int k = 19;
        double score = 0, rewards = 0, gating = 0;
        for (var b = 0; b < cases.Count; b++)
        {
            score = Math.Max(score, Math.Abs(o["score"][b] - cases[b].Score));
            for (var j = 0; j < k; j++)
            {
                rewards = Math.Max(rewards, Math.Abs(o["rewards"][b * k + j] - cases[b].Rewards[j]));
                gating = Math.Max(gating, Math.Abs(o["gating"][b * k + j] - cases[b].Gating[j]));
            }
        }
        // Pairwise order of the 47 scores (1,081 pairs): what best-of-n and preference accuracy depend on.
        int pairs = 0, agree = 0;
        for (var a = 0; a < cases.Count; a++)
            for (var b = a + 1; b < cases.Count; b++)
            {
                if (cases[a].Score == cases[b].Score) continue;
                pairs++;
                if ((o["score"][a] > o["score"][b]) == (cases[a].Score > cases[b].Score)) agree++;
            }
        var scoreRange = cases.Max(c => c.Score) - cases.Min(c => c.Score);
        TestContext.Out.WriteLine($"int8 vs goldens over 47 cases: max |Δ| score {score:E2} (golden score range {scoreRange:F3}), " +
                                  $"rewards {rewards:E2}, gating {gating:E2}; pairwise order kept on {agree}/{pairs} pairs");
        Assert.Multiple(() =>
        {
            // Tolerances: measured 0.092 / 0.131 / 0.074 and 92.3 % of pairs on this model when written; with ORT
            // 1.31.1 (before and after the embedding table became fp16) 0.033 / 0.045 / 0.025 and 97.1 % (2 layers, d 64, random
            // weights: dot products of only 64 terms, so quantization noise averages out less than in a large model;
            // armorm-tiny's README lists bf16 moving score 0.034, rewards 0.079, gating 0.01). The bounds sit ~1.6×
            // above the measurement, to catch a quantization that is wrong (scale on the wrong axis, transposed
            // weights: O(1) errors and order near chance, 50 %), not to promise int8 is as good as fp32. It is not.
            Assert.That(score, Is.LessThan(0.15), "score");
            Assert.That(rewards, Is.LessThan(0.25), "rewards");
            Assert.That(gating, Is.LessThan(0.12), "gating");
            Assert.That((double)agree / pairs, Is.GreaterThanOrEqualTo(0.88), "pairwise order of scores");
        });
    }

    [Test]
    public void TheLibraryLoadsAndScoresTheInt8Variant()
    {
        using var model = RewardModel.Load(_int8, new RewardModelOptions { ExecutionProvider = ExecutionProviderKind.Cpu });
        using var fp32 = RewardModel.Load(_fp32, new RewardModelOptions { ExecutionProvider = ExecutionProviderKind.Cpu });
        var c = Conversation.FromPromptResponse("How do I boil an egg?", "Simmer it for 9 minutes, then cool it in cold water.");
        var (a, b) = (model.Score(c), fp32.Score(c));
        TestContext.Out.WriteLine($"int8 {a.Score}, fp32 {b.Score}");
        Assert.That(a.Score, Is.EqualTo(b.Score).Within(0.15), "the score tolerance used against the goldens");
        Assert.That(a.ObjectiveNames, Is.EqualTo(b.ObjectiveNames));
    }

    [Test]
    public void Int8IsRefusedForCuda()
    {
        var e = Assert.Throws<ExportException>(() => ExportPrecision.Parse("int8", "cuda"));
        Assert.That(e!.Message, Does.Contain("fp16 for CUDA"));
    }
}
