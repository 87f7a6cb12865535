using OnnxReward.Selection;
using OnnxReward.Transforms;

namespace OnnxReward.Tests.Transforms;

[TestFixture]
public class BestOfNTests
{
    [Test]
    public void ArgMaxBreaksTiesByLowestIndex()
    {
        Assert.That(BestOfN.ArgMax([1.0, 3.0, 3.0, 2.0]), Is.EqualTo(1));
        Assert.That(BestOfN.ArgMax([-5.0]), Is.EqualTo(0));
        Assert.That(BestOfN.ArgMax([0.0, -0.0]), Is.EqualTo(0), "−0 == 0 is a tie");
        Assert.That(BestOfN.ArgMax([double.NegativeInfinity, -1e308]), Is.EqualTo(1));
    }

    [Test]
    public void PenaltyWeightZeroIsArgMaxOfTheMeans()
    {
        var rng = new Random(42);
        for (int trial = 0; trial < 200; trial++)
        {
            int n = rng.Next(1, 16);
            var means = new double[n];
            var stds = new double[n];
            for (int i = 0; i < n; i++)
            {
                means[i] = Math.Round(rng.NextDouble() * 4, 1);     // rounded: ties happen and must resolve the same way
                stds[i] = rng.NextDouble() * 3;
            }
            int expected = BestOfN.ArgMax(means);
            Assert.That(BestOfN.SelectUncertaintyPenalized(means, stds, 0.0), Is.EqualTo(expected));
            Assert.That(BestOfN.SelectUncertaintyPenalized(means, stds, 0.0, UncertaintyPenalty.Variance), Is.EqualTo(expected));
        }
    }

    [Test]
    public void PenaltyPrefersTheCertainCandidate()
    {
        double[] means = [1.0, 0.9], stds = [0.5, 0.1];
        // μ − kσ:  k = 1 → 0.5 vs 0.8 → 1;  k = 0.1 → 0.95 vs 0.89 → 0
        Assert.That(BestOfN.SelectUncertaintyPenalized(means, stds, 1.0), Is.EqualTo(1));
        Assert.That(BestOfN.SelectUncertaintyPenalized(means, stds, 0.1), Is.EqualTo(0));
        // μ − kσ²: k = 1 → 0.75 vs 0.89 → 1;  k = 0.3 → 0.925 vs 0.897 → 0
        Assert.That(BestOfN.SelectUncertaintyPenalized(means, stds, 1.0, UncertaintyPenalty.Variance), Is.EqualTo(1));
        Assert.That(BestOfN.SelectUncertaintyPenalized(means, stds, 0.3, UncertaintyPenalty.Variance), Is.EqualTo(0));
        // σ > 1 makes the two penalties disagree: σ = 2 vs 1.5, k = 1: std 3 − 2 = 1 vs 2.4 − 1.5 = 0.9 → 0; var 3 − 4 = −1 vs 2.4 − 2.25 = 0.15 → 1
        Assert.That(BestOfN.SelectUncertaintyPenalized([3.0, 2.4], [2.0, 1.5], 1.0), Is.EqualTo(0));
        Assert.That(BestOfN.SelectUncertaintyPenalized([3.0, 2.4], [2.0, 1.5], 1.0, UncertaintyPenalty.Variance), Is.EqualTo(1));
        Assert.That(BestOfN.PenalizedScore(3.0, 2.0, 0.5), Is.EqualTo(2.0));
        Assert.That(BestOfN.PenalizedScore(3.0, 2.0, 0.5, UncertaintyPenalty.Variance), Is.EqualTo(1.0));
        // ties of the penalized key → lowest index: 1 − 0.5 = 0.5 = 0.75 − 0.25
        Assert.That(BestOfN.SelectUncertaintyPenalized([0.0, 1.0, 0.75], [0.0, 0.5, 0.25], 1.0), Is.EqualTo(1));
    }

    [Test]
    public void NullableOverloadAcceptsCompleteStdsAndExplainsAMissingPosterior()
    {
        Assert.That(BestOfN.SelectUncertaintyPenalized([1.0, 0.9], new double?[] { 0.5, 0.1 }, 1.0), Is.EqualTo(1));
        var e = Assert.Throws<ArgumentException>(() => BestOfN.SelectUncertaintyPenalized([1.0, 0.9], new double?[] { 0.5, null }, 1.0));
        Assert.That(e!.ParamName, Is.EqualTo("stds"));
        Assert.That(e.Message, Does.Contain("stds[1] is null").And.Contains("has no posterior").And.Contains("ArgMax"));
        // even with k = 0 a null σ is refused: the caller asked for uncertainty-aware selection
        Assert.Throws<ArgumentException>(() => BestOfN.SelectUncertaintyPenalized([1.0], new double?[] { null }, 0.0));
    }

    [Test]
    public void SelectionRejectsInvalidInputs()
    {
        var nan = Assert.Throws<ArgumentException>(() => BestOfN.ArgMax([1.0, double.NaN]));
        Assert.That(nan!.Message, Does.Contain("scores[1] is NaN"));
        var none = Assert.Throws<ArgumentException>(() => BestOfN.ArgMax([]));
        Assert.That(none!.Message, Does.Contain("scores is empty"));
        foreach (double k in new[] { -0.1, double.NaN, double.PositiveInfinity })
        {
            var e = Assert.Throws<ArgumentOutOfRangeException>(() => BestOfN.SelectUncertaintyPenalized([1.0], [0.1], k));
            Assert.That(e!.ParamName, Is.EqualTo("k"));
            Assert.That(e.Message, Does.Contain("finite number ≥ 0"));
        }
        var negative = Assert.Throws<ArgumentException>(() => BestOfN.SelectUncertaintyPenalized([1.0, 2.0], [0.1, -0.2], 1.0));
        Assert.That(negative!.Message, Does.Contain("stds[1] is -0.2").And.Contains("≥ 0"));
        var stdNan = Assert.Throws<ArgumentException>(() => BestOfN.SelectUncertaintyPenalized([1.0, 2.0], [double.NaN, 0.2], 1.0));
        Assert.That(stdNan!.Message, Does.Contain("stds[0] is NaN"));
        var length = Assert.Throws<ArgumentException>(() => BestOfN.SelectUncertaintyPenalized([1.0, 2.0], [0.1], 1.0));
        Assert.That(length!.Message, Does.Contain("stds has 1 values but means has 2"));
        var meanNan = Assert.Throws<ArgumentException>(() => BestOfN.SelectUncertaintyPenalized([double.NaN], [0.1], 1.0));
        Assert.That(meanNan!.Message, Does.Contain("means[0] is NaN"));
        Assert.Throws<ArgumentOutOfRangeException>(() => BestOfN.SelectUncertaintyPenalized([1.0], [0.1], 1.0, (UncertaintyPenalty)7));
    }

    [Test]
    public void LscAndSelectionIsALogicalAndNotASum()
    {
        // refs 0: A = [10, −3] has the larger sum (7 vs 2) but fails objective 1; B = [1, 1] is good on both.
        // mpmath: LSC-AND(A) = log σ(10) + log σ(−3) = −3.0486…, LSC-AND(B) = 2 log σ(1) = −0.6265…
        double[][] candidates = [[10.0, -3.0], [1.0, 1.0]];
        double[] refs = [0.0, 0.0];
        Assert.That(BestOfN.ArgMax(candidates.Select(c => RewardAggregation.Sum(c)).ToArray()), Is.EqualTo(0));
        Assert.That(BestOfN.SelectByLscAnd(candidates, refs), Is.EqualTo(1));
        // restricted to objective 0, A wins again
        Assert.That(BestOfN.SelectByLscAnd(candidates, refs, ObjectiveSubset.FromIndices(2, [0])), Is.EqualTo(0));
        // both saturate at exactly 0 far above the reference → tie → lowest index
        Assert.That(BestOfN.SelectByLscAnd([[5e4, 5e4], [1e5, 1e5]], refs), Is.EqualTo(0));

        var bad = Assert.Throws<ArgumentException>(() => BestOfN.SelectByLscAnd([[1.0, 2.0], [1.0, double.NaN]], refs));
        Assert.That(bad!.Message, Does.StartWith("candidate 1: rewards[1] is NaN"));
        var empty = Assert.Throws<ArgumentException>(() => BestOfN.SelectByLscAnd(Array.Empty<double[]>(), refs));
        Assert.That(empty!.Message, Does.Contain("candidateRewards is empty"));
    }

    [Test]
    public void RewardScoreOverloadsUseScoreAndScoreStd()
    {
        string[] names = ["a", "b"];
        RewardScore Make(float score, float? std, params float[] rewards) => new(score, rewards, [0.5f, 0.5f], std, 10, names);

        var withPosterior = new[] { Make(1.0f, 0.5f, 10, -3), Make(0.9f, 0.1f, 1, 1) };
        Assert.That(BestOfN.SelectUncertaintyPenalized(withPosterior, 0.0), Is.EqualTo(0));
        Assert.That(BestOfN.SelectUncertaintyPenalized(withPosterior, 1.0), Is.EqualTo(1));
        Assert.That(BestOfN.SelectByLscAnd(withPosterior, [0.0, 0.0]), Is.EqualTo(1));
        Assert.That(BestOfN.SelectByLscAnd(withPosterior, [0.0, 0.0], ObjectiveSubset.FromNames(names, ["a"])), Is.EqualTo(0));

        var noPosterior = new[] { Make(1.0f, null, 0, 0), Make(0.9f, null, 0, 0) };
        var e = Assert.Throws<ArgumentException>(() => BestOfN.SelectUncertaintyPenalized(noPosterior, 1.0));
        Assert.That(e!.Message, Does.Contain("stds[0] is null").And.Contains("has no posterior"));
        var empty = Assert.Throws<ArgumentException>(() => BestOfN.SelectUncertaintyPenalized(Array.Empty<RewardScore>(), 1.0));
        Assert.That(empty!.Message, Does.Contain("candidates is empty"));
    }
}
