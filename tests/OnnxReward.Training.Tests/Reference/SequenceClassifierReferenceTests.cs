using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using OnnxReward.Export.Checkpoints;
using OnnxReward.Export.Exporting;
using OnnxReward.Testing;
using OnnxReward.Training.Reference;

namespace OnnxReward.Training.Tests.Reference;

/// <summary>
/// The TorchSharp reference with the sequence-classification head and the new backbone options (Llama-3.1 llama3 RoPE
/// scaling; Qwen3 q_norm / k_norm and explicit head_dim) against the independent goldens of skywork-llama31-tiny and
/// skywork-qwen3-tiny, and every exported variant (fp32, fp16, int8-block, int4) against the TorchSharp reference.
/// </summary>
[TestFixture("skywork-llama31-tiny")]
[TestFixture("skywork-qwen3-tiny")]
[NonParallelizable]
public sealed class SequenceClassifierReferenceTests(string reference)
{
    private sealed record Case(string Id, long[] InputIds, long RewardPosition, float Score, float[] LastHiddenReward);

    private List<Case> _cases = [];
    private (float[] Logits, float[] PooledHidden)[] _torch = [];
    private string _work = "";

    [OneTimeSetUp]
    public void SetUp()
    {
        var source = SharedData.PathOf("reference", reference);
        _cases = File.ReadLines(Path.Combine(source, "golden.jsonl")).Select(line =>
        {
            var e = JsonDocument.Parse(line).RootElement;
            return new Case(e.GetProperty("id").GetString()!, e.GetProperty("input_ids").EnumerateArray().Select(v => v.GetInt64()).ToArray(),
                e.GetProperty("reward_position").GetInt64(), e.GetProperty("score")[0].GetSingle(),
                e.GetProperty("last_hidden_reward").EnumerateArray().Select(v => v.GetSingle()).ToArray());
        }).ToList();
        using var checkpoint = Checkpoint.Open(source);
        using var model = ReferenceRewardModel.Load(checkpoint);
        Assert.That(model.Classifier, Is.Not.Null);
        // One conversation at a time, as the goldens were computed (the pooling rule finds the position itself).
        _torch = _cases.Select(c => TorchReference.Classify(model, [c.InputIds])[0]).ToArray();
        _work = SharedData.NewTempDirectory(reference + "-torch");
    }

    [OneTimeTearDown]
    public void TearDown()
    {
        if (Directory.Exists(_work)) Directory.Delete(_work, recursive: true);
    }

    private static double Worst(IEnumerable<(float Ours, float Golden)> pairs, double abs, double rel, string what)
    {
        double worst = 0;
        foreach (var (ours, golden) in pairs)
        {
            var d = Math.Abs((double)ours - golden);
            worst = Math.Max(worst, d);
            Assert.That(d, Is.LessThanOrEqualTo(abs + rel * Math.Abs(golden)), $"{what}: ours {ours:R}, expected {golden:R}");
        }
        return worst;
    }

    // The README's tolerance: |ours − golden| ≤ 1e-4 + 1e-4·|golden| per element (float32 vs float64 moves the goldens
    // ≤ 1.1e-6; llama3 scaling ignored moves the score 0.068, q/k norm after RoPE 0.095).
    [Test]
    public void TorchSharpReferenceMatchesTheGoldens()
    {
        double score = 0, hidden = 0;
        for (var i = 0; i < _cases.Count; i++)
        {
            score = Math.Max(score, Worst([(_torch[i].Logits[0], _cases[i].Score)], 1e-4, 1e-4, $"{_cases[i].Id} score"));
            hidden = Math.Max(hidden, Worst(_torch[i].PooledHidden.Zip(_cases[i].LastHiddenReward), 1e-4, 1e-4, $"{_cases[i].Id} hidden"));
        }
        TestContext.Out.WriteLine($"{reference} TorchSharp vs goldens over {_cases.Count} cases: score {score:E2}, hidden {hidden:E2}");
    }

    /// <summary>Each exported variant against the TorchSharp reference. fp32: both are float32 implementations of the same
    /// math, so 1e-5 (+1e-5 relative) — each is within ~1.4e-6 of the goldens. The approximate variants: the bounds
    /// SequenceClassifierVariantTests states against fp32 (derivation there), which the reference shares to 1e-5.</summary>
    [TestCase("fp32", 1e-5, 1e-5, 1e-5)]
    [TestCase("fp16", 0.006, 0.012, 0.0)]
    [TestCase("int8-block", 0.045, 0.09, 0.0)]
    [TestCase("int4", 0.3, 0.9, 0.0)]
    public void ExportedVariantAgreesWithTheTorchSharpReference(string dtype, double scoreTol, double hiddenTol, double rel)
    {
        var dir = Path.Combine(_work, dtype);
        ModelExporter.Export(SharedData.PathOf("reference", reference), dir, new ExportOptions { Precision = ExportPrecision.Parse(dtype) });
        // A raw CPU session: the fp16 graph is the CUDA variant, which the library does not run on the CPU; the CPU EP
        // executes it through inserted Casts (fp16 weights, fp16-rounded activations between ops).
        using var session = new InferenceSession(Path.Combine(dir, "model.onnx"));
        double score = 0, hidden = 0;
        for (var i = 0; i < _cases.Count; i++)
        {
            var c = _cases[i];
            using var ids = OrtValue.CreateTensorValueFromMemory(c.InputIds, [1, c.InputIds.Length]);
            using var pos = OrtValue.CreateTensorValueFromMemory(new[] { c.RewardPosition }, [1]);
            using var results = session.Run(new RunOptions(), new Dictionary<string, OrtValue> { ["input_ids"] = ids, ["reward_positions"] = pos },
                ["score", "embedding"]);
            score = Math.Max(score, Worst([(results[0].GetTensorDataAsSpan<float>()[0], _torch[i].Logits[0])], scoreTol, rel, $"{dtype} {c.Id} score"));
            hidden = Math.Max(hidden, Worst(results[1].GetTensorDataAsSpan<float>().ToArray().Zip(_torch[i].PooledHidden), hiddenTol,
                rel, $"{dtype} {c.Id} hidden"));
        }
        TestContext.Out.WriteLine($"{reference} {dtype} ONNX vs TorchSharp over {_cases.Count} cases: score {score:E2}, hidden {hidden:E2}");
        if (dtype != "fp32")
            Assert.That(score, Is.GreaterThan(0), "an approximate variant equal to the reference bit for bit did not run as exported");
    }
}
