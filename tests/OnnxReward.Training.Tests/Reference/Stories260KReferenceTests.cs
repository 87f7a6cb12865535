using OnnxReward.Export.Checkpoints;
using OnnxReward.Testing;
using OnnxReward.Training.Reference;
using static TorchSharp.torch;

namespace OnnxReward.Training.Tests.Reference;

/// <summary>
/// The TorchSharp backbone against stories260K's goldens (../shared/reference/llama2c-stories260k): a real pretrained
/// Llama (GQA 8/4 heads, Dh = 8, tied classifier), goldens from an independent C llama2.c forward with a KV cache.
/// The reader converts wq/wk to the HF rotate-half layout; without that permutation the hidden states differ by ~7.
/// </summary>
[TestFixture]
public sealed class Stories260KReferenceTests
{
    // README: "Expect agreement to about 1e-4 absolute in float32 (different summation order)".
    private const double Tolerance = 1e-4;

    private Checkpoint checkpoint = null!;
    private ReferenceRewardModel model = null!;
    private IReadOnlyList<StoriesGolden> goldens = null!;

    [OneTimeSetUp]
    public void SetUp()
    {
        checkpoint = Checkpoint.Open(Path.Combine(SharedData.Stories260K, "stories260K.bin"));
        model = ReferenceRewardModel.Load(checkpoint);
        goldens = Goldens.Stories260K();
    }

    [OneTimeTearDown]
    public void TearDown()
    {
        model?.Dispose();
        checkpoint?.Dispose();
    }

    [Test]
    public void Load_Llama2c_IsBackboneOnlyWithTiedClassifier()
    {
        Assert.Multiple(() =>
        {
            Assert.That(model.Head, Is.Null);
            Assert.That(model.Backbone.HasClassifier, Is.True);
            Assert.That(model.ExportParameters().Keys, Does.Not.Contain("lm_head.weight"));
            Assert.That(goldens, Has.Count.EqualTo(4));
        });
    }

    [Test]
    public void ForwardBackbone_EachCase_MatchesGoldenHiddenAndLastLogits()
    {
        double worstHidden = 0, worstLogits = 0;
        foreach (var (g, n) in goldens.Select((g, n) => (g, n)))
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var ids = tensor(g.Tokens, [1, g.Tokens.Length]);                  // [1, T]
            using var o = model.ForwardBackbone(ids);
            var hidden = o.LastHiddenState[0].data<float>().ToArray();          // [T·D]
            var logits = o.Logits![0, -1].data<float>().ToArray();             // [V]
            var dHidden = Goldens.MaxAbsDiff(hidden, g.Hidden.SelectMany(h => h).ToArray());
            var dLogits = Goldens.MaxAbsDiff(logits, g.LastLogits);
            TestContext.Out.WriteLine($"case {n} (T={g.Tokens.Length}): max |Δhidden| = {dHidden:E2}, max |Δlast_logits| = {dLogits:E2}");
            worstHidden = Math.Max(worstHidden, dHidden);
            worstLogits = Math.Max(worstLogits, dLogits);
        }
        TestContext.Out.WriteLine($"stories260K, all cases: max |Δhidden| = {worstHidden:E2}, max |Δlast_logits| = {worstLogits:E2}");
        Assert.Multiple(() =>
        {
            Assert.That(worstHidden, Is.LessThanOrEqualTo(Tolerance), "hidden states at every position (after the final norm)");
            Assert.That(worstLogits, Is.LessThanOrEqualTo(Tolerance), "last-position logits = hidden · embed_tokensᵀ");
        });
    }

    [Test]
    public void TorchReferenceBackbone_PaddedBatchOfFour_MatchesGoldens()
    {
        // The four cases (5..71 tokens) as one right-padded batch through the helper the benchmarks use: causal
        // attention keeps the pads out of every real position, so the same 1e-4 README tolerance applies.
        var outputs = TorchReference.Backbone(model, goldens.Select(g => g.Tokens).ToArray());
        double worstHidden = 0, worstLogits = 0;
        for (var n = 0; n < goldens.Count; n++)
        {
            Assert.That(outputs[n].Length, Is.EqualTo(goldens[n].Tokens.Length));
            worstHidden = Math.Max(worstHidden, Goldens.MaxAbsDiff(outputs[n].Hidden, goldens[n].Hidden.SelectMany(h => h).ToArray()));
            worstLogits = Math.Max(worstLogits, Goldens.MaxAbsDiff(outputs[n].LastLogits!, goldens[n].LastLogits));
        }
        TestContext.Out.WriteLine($"stories260K padded batch: max |Δhidden| = {worstHidden:E2}, max |Δlast_logits| = {worstLogits:E2}");
        Assert.Multiple(() =>
        {
            Assert.That(worstHidden, Is.LessThanOrEqualTo(Tolerance));
            Assert.That(worstLogits, Is.LessThanOrEqualTo(Tolerance));
        });
    }
}
