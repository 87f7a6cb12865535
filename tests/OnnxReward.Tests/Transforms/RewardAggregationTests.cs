using OnnxReward.Transforms;

namespace OnnxReward.Tests.Transforms;

[TestFixture]
public class RewardAggregationTests
{
    static readonly string[] Names = ["helpfulness", "correctness", "verbosity"];

    [Test]
    public void LscKnownNumbers()
    {
        // goldens from the mpmath values of LogSigmoidTests: log σ(1), log σ(0) = −ln 2, log σ(−49)
        Assert.That(Ulp.Distance(LogSigmoidCentered.Transform(2.0, 1.0), -0.3132616875182228), Is.LessThanOrEqualTo(2));
        Assert.That(Ulp.Distance(LogSigmoidCentered.Transform(-3.5, -3.5), -0.6931471805599453), Is.LessThanOrEqualTo(2));
        // far below the reference: ≈ r − r_ref (−49 − 5.2e−22 rounds to −49)
        Assert.That(LogSigmoidCentered.Transform(-50.0, -1.0), Is.EqualTo(-49.0));
        // far above: saturates at 0 from below
        double high = LogSigmoidCentered.Transform(40.0, 0.0);
        Assert.That(high, Is.LessThan(0.0).And.GreaterThan(-1e-17));
    }

    [Test]
    public void LscRejectsNonFiniteRewards()
    {
        var e = Assert.Throws<ArgumentException>(() => LogSigmoidCentered.Transform(double.NaN, 0.0));
        Assert.That(e!.ParamName, Is.EqualTo("reward"));
        Assert.That(e.Message, Does.Contain("reward is NaN").And.Contains("check the model output"));
        var r = Assert.Throws<ArgumentException>(() => LogSigmoidCentered.Transform(1.0, double.NegativeInfinity));
        Assert.That(r!.ParamName, Is.EqualTo("referenceReward"));
    }

    [Test]
    public void LscAndSumsLogSigmoidsOverTheSelectedObjectives()
    {
        double[] rewards = [2.0, 0.0, -1.0], refs = [1.0, 0.0, 0.0];
        // mpmath: log σ(1) + log σ(0) + log σ(−1) = −2.319670555596391; log σ(1) + log σ(−1) = −1.6265233750364456
        Assert.That(RewardAggregation.LscAnd(rewards, refs), Is.EqualTo(-2.319670555596391).Within(2e-15), "tolerance: 3 terms of ≤ 2 ulps each");
        var subset = ObjectiveSubset.FromNames(Names, ["verbosity", "helpfulness"]);
        Assert.That(subset.Indices, Is.EqualTo(new[] { 2, 0 }));
        Assert.That(RewardAggregation.LscAnd(rewards, refs, subset), Is.EqualTo(-1.6265233750364456).Within(2e-15));
        Assert.That(RewardAggregation.LscAnd(rewards, refs, ObjectiveSubset.FromIndices(3, [0, 2])),
            Is.EqualTo(RewardAggregation.LscAnd(rewards, refs, subset)));
        Assert.That(RewardAggregation.LscAnd(rewards, refs, ObjectiveSubset.All(3)), Is.EqualTo(RewardAggregation.LscAnd(rewards, refs)));
    }

    [Test]
    public void LscAndIsTheLogOfTheProductOfSigmoids()
    {
        // independent path for moderate values: log Π σ(r_i − r_i^ref) with the naive sigmoid (accurate for |x| ≤ 10)
        var rng = new Random(8);
        for (int trial = 0; trial < 200; trial++)
        {
            var r = new double[19];
            var refs = new double[19];
            double product = 1.0;
            for (int i = 0; i < 19; i++)
            {
                r[i] = rng.NextDouble() * 10 - 5;
                refs[i] = rng.NextDouble() * 4 - 2;
                product *= 1.0 / (1.0 + Math.Exp(-(r[i] - refs[i])));
            }
            // tolerance 1e−13 relative: 19 naive sigmoids and a product, each a few ulps
            double expected = Math.Log(product);
            Assert.That(RewardAggregation.LscAnd(r, refs), Is.EqualTo(expected).Within(1e-13 * Math.Abs(expected)));
        }
    }

    [Test]
    public void SumsOverSubsets()
    {
        double[] rewards = [0.5, -2.0, 4.0];
        Assert.That(RewardAggregation.Sum(rewards), Is.EqualTo(2.5));
        Assert.That(RewardAggregation.Sum(rewards, ObjectiveSubset.FromNames(Names, ["correctness", "verbosity"])), Is.EqualTo(2.0));
        Assert.That(RewardAggregation.WeightedSum(rewards, [2.0, 0.5, -0.25]), Is.EqualTo(1.0 - 1.0 - 1.0));
        Assert.That(RewardAggregation.WeightedSum(rewards, [2.0, 0.5, -0.25], ObjectiveSubset.FromIndices(3, [0])), Is.EqualTo(1.0));
    }

    [Test]
    public void AggregationRejectsMismatchedAndNonFiniteInputs()
    {
        var len = Assert.Throws<ArgumentException>(() => RewardAggregation.LscAnd([1.0, 2.0], [0.0]));
        Assert.That(len!.ParamName, Is.EqualTo("referenceRewards"));
        Assert.That(len.Message, Does.Contain("has 1 values but rewards has 2"));
        var nan = Assert.Throws<ArgumentException>(() => RewardAggregation.Sum([1.0, double.NaN]));
        Assert.That(nan!.Message, Does.Contain("rewards[1] is NaN"));
        var refNan = Assert.Throws<ArgumentException>(() => RewardAggregation.LscAnd([1.0, 2.0], [0.0, double.NaN]));
        Assert.That(refNan!.Message, Does.Contain("referenceRewards[1] is NaN"));
        var empty = Assert.Throws<ArgumentException>(() => RewardAggregation.Sum([]));
        Assert.That(empty!.Message, Does.Contain("rewards is empty"));
        var w = Assert.Throws<ArgumentException>(() => RewardAggregation.WeightedSum([1.0, 2.0], [1.0]));
        Assert.That(w!.Message, Does.Contain("weights has 1 values but rewards has 2"));
        var wNan = Assert.Throws<ArgumentException>(() => RewardAggregation.WeightedSum([1.0, 2.0], [1.0, double.NaN]));
        Assert.That(wNan!.Message, Does.Contain("weights[1] is NaN"));
        var otherK = Assert.Throws<ArgumentException>(() => RewardAggregation.Sum([1.0, 2.0], ObjectiveSubset.All(3)));
        Assert.That(otherK!.Message, Does.Contain("has 2 objective rewards but the objective subset was built for 3"));
    }

    [Test]
    public void ObjectiveSubsetRejectsBadSelections()
    {
        var unknown = Assert.Throws<ArgumentException>(() => ObjectiveSubset.FromNames(Names, ["honesty"]));
        Assert.That(unknown!.Message, Does.Contain("unknown objective 'honesty'").And.Contains("helpfulness, correctness, verbosity"));
        var twiceName = Assert.Throws<ArgumentException>(() => ObjectiveSubset.FromNames(Names, ["verbosity", "verbosity"]));
        Assert.That(twiceName!.Message, Does.Contain("selected twice"));
        var dupNames = Assert.Throws<ArgumentException>(() => ObjectiveSubset.FromNames(["a", "b", "a"], ["b"]));
        Assert.That(dupNames!.Message, Does.Contain("appears twice in objectiveNames"));
        var range = Assert.Throws<ArgumentException>(() => ObjectiveSubset.FromIndices(19, [3, 19]));
        Assert.That(range!.Message, Does.Contain("objective index 19 is out of range").And.Contains("0 to 18"));
        var twice = Assert.Throws<ArgumentException>(() => ObjectiveSubset.FromIndices(19, [3, 3]));
        Assert.That(twice!.Message, Does.Contain("index 3 is selected twice"));
        var none = Assert.Throws<ArgumentException>(() => ObjectiveSubset.FromIndices(19, []));
        Assert.That(none!.Message, Does.Contain("no objective selected"));
        Assert.Throws<ArgumentOutOfRangeException>(() => ObjectiveSubset.All(0));
    }
}
