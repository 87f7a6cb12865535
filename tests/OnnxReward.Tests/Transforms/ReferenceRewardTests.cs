using OnnxReward.Transforms;

namespace OnnxReward.Tests.Transforms;

[TestFixture]
public class ReferenceRewardTests
{
    [Test]
    public void NormalFitUsesThePopulationStdLikeNumpy()
    {
        // [0, 2]: mean 1, np.std (ddof = 0) = 1, sample std (ddof = 1) = √2. Exact: 1 + Φ⁻¹(0.85) = 2.0364333894937894…;
        // PAR's scipy norm.ppf(0.85, 1, 1) prints 2.0364333894937898, one ulp above (see StandardNormalTests).
        double rRef = ReferenceReward.NormalFit([0.0, 2.0], 0.85);
        Assert.That(rRef, Is.EqualTo(2.0364333894937894).Within(4.5e-16), "tolerance: 1 ulp of the sum (covers scipy's value too)");
        Assert.That(rRef, Is.Not.EqualTo(1 + 1.0364333894937898 * Math.Sqrt(2)).Within(1e-3), "must not use the sample std");
    }

    [Test]
    public void NormalFitKnownNumbers()
    {
        // [1, 2, 3, 4]: μ = 2.5, σ = √1.25; golden 2.5 + Φ⁻¹(0.85)·√1.25 by mpmath at 50 digits (Φ⁻¹(0.85) = 1.03643338949378948)
        Assert.That(ReferenceReward.NormalFit([4.0, 1.0, 3.0, 2.0]), Is.EqualTo(3.658767756529315).Within(1e-15), "tolerance: about 2 ulps");
        Assert.That(ReferenceReward.NormalFit([4.0, 1.0, 3.0, 2.0], 0.5), Is.EqualTo(2.5), "q = 0.5 is the mean (Φ⁻¹(½) = 0)");
        Assert.That(ReferenceReward.NormalFit([1.25], 0.85), Is.EqualTo(1.25), "σ = 0: the degenerate normal's quantile is μ");
        Assert.That(ReferenceReward.NormalFit([3.0, 3.0, 3.0], 0.99), Is.EqualTo(3.0));
    }

    // numpy's default np.quantile(a, q) ('linear', type 7), worked by hand: h = (S − 1)q, r₍⌊h⌋₎ + frac(h)·(r₍⌊h⌋+1₎ − r₍⌊h⌋₎)
    [TestCase(new[] { 1.0, 2, 3, 4 }, 0.85, 3.55)]            // h = 2.55 → 3 + 0.55·1
    [TestCase(new[] { 4.0, 3, 2, 1 }, 0.85, 3.55)]            // order does not matter
    [TestCase(new[] { 1.0, 2, 3, 4 }, 0.5, 2.5)]
    [TestCase(new[] { 10.0, 7, 4, 3, 2, 1 }, 0.85, 7.75)]     // sorted 1 2 3 4 7 10, h = 4.25 → 7 + 0.25·3
    [TestCase(new[] { 3.0, 1, 2 }, 0.3, 1.6)]                 // h = 0.6 → 1 + 0.6
    [TestCase(new[] { -1.0, 5 }, 0.0, -1.0)]                  // q = 0: the minimum
    [TestCase(new[] { -1.0, 5 }, 1.0, 5.0)]                   // q = 1: the maximum
    [TestCase(new[] { 2.5 }, 0.85, 2.5)]
    public void EmpiricalQuantileMatchesNumpyLinear(double[] rewards, double q, double expected)
    {
        double[] copy = (double[])rewards.Clone();
        // tolerance: about 2 ulps of the result (h = (S − 1)·q is rounded once, the lerp twice)
        Assert.That(ReferenceReward.EmpiricalQuantile(rewards, q), Is.EqualTo(expected).Within(4.5e-16 * Math.Abs(expected)));
        Assert.That(rewards, Is.EqualTo(copy), "the input must not be sorted in place");
    }

    [Test]
    public void ComputeDispatchesAndPerObjectiveWorksColumnByColumn()
    {
        double[] r = [1, 2, 3, 4];
        Assert.That(ReferenceReward.Compute(r, ReferenceRewardMethod.NormalFit), Is.EqualTo(ReferenceReward.NormalFit(r)));
        Assert.That(ReferenceReward.Compute(r, ReferenceRewardMethod.EmpiricalQuantile), Is.EqualTo(ReferenceReward.EmpiricalQuantile(r)));

        // [S = 4, K = 2]: column 0 is [1, 2, 3, 4], column 1 is [0, 2, 0, 2]
        double[][] samples = [[1, 0], [2, 2], [3, 0], [4, 2]];
        double[] perObjective = ReferenceReward.PerObjective(samples, ReferenceRewardMethod.EmpiricalQuantile, 0.85);
        Assert.That(perObjective, Has.Length.EqualTo(2));
        Assert.That(perObjective[0], Is.EqualTo(3.55).Within(1e-15));
        Assert.That(perObjective[1], Is.EqualTo(2.0));           // sorted 0 0 2 2, h = 2.55 → 2
        double[] normal = ReferenceReward.PerObjective(samples, ReferenceRewardMethod.NormalFit);
        Assert.That(normal[1], Is.EqualTo(2.0364333894937894).Within(4.5e-16));   // μ = 1, σ = 1
    }

    [Test]
    public void InvalidInputsNameTheParameterAndTheFix()
    {
        var empty = Assert.Throws<ArgumentException>(() => ReferenceReward.NormalFit([]));
        Assert.That(empty!.ParamName, Is.EqualTo("referenceRewards"));
        Assert.That(empty.Message, Does.Contain("is empty").And.Contains("pass r_ref directly"));
        Assert.Throws<ArgumentException>(() => ReferenceReward.EmpiricalQuantile([]));

        var nan = Assert.Throws<ArgumentException>(() => ReferenceReward.EmpiricalQuantile([1.0, double.NaN, 2.0]));
        Assert.That(nan!.Message, Does.Contain("referenceRewards[1] is NaN").And.Contains("must be finite"));
        var inf = Assert.Throws<ArgumentException>(() => ReferenceReward.NormalFit([double.PositiveInfinity]));
        Assert.That(inf!.Message, Does.Contain("referenceRewards[0] is ∞").Or.Contains("referenceRewards[0] is Infinity"));

        foreach (double q in new[] { 0.0, 1.0, -0.2, 1.2, double.NaN })
        {
            var e = Assert.Throws<ArgumentOutOfRangeException>(() => ReferenceReward.NormalFit([1.0, 2.0], q));
            Assert.That(e!.ParamName, Is.EqualTo("quantile"));
            Assert.That(e.Message, Does.Contain("outside (0, 1)"));
        }
        foreach (double q in new[] { -0.2, 1.2, double.NaN })
        {
            var e = Assert.Throws<ArgumentOutOfRangeException>(() => ReferenceReward.EmpiricalQuantile([1.0, 2.0], q));
            Assert.That(e!.Message, Does.Contain("outside [0, 1]"));
        }

        var ragged = Assert.Throws<ArgumentException>(() =>
            ReferenceReward.PerObjective([[1.0, 2.0], [1.0]], ReferenceRewardMethod.NormalFit));
        Assert.That(ragged!.Message, Does.Contain("referenceRewards[1] has 1 objective rewards but row 0 has 2"));
        var cell = Assert.Throws<ArgumentException>(() =>
            ReferenceReward.PerObjective([[1.0, 2.0], [1.0, double.NaN]], ReferenceRewardMethod.NormalFit));
        Assert.That(cell!.Message, Does.Contain("referenceRewards[1][1] (response 1, objective 1) is NaN"));
        var none = Assert.Throws<ArgumentException>(() =>
            ReferenceReward.PerObjective(Array.Empty<double[]>(), ReferenceRewardMethod.NormalFit));
        Assert.That(none!.Message, Does.Contain("has no rows"));
    }
}
