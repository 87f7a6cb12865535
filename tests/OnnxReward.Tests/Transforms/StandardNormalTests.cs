using OnnxReward.Transforms;

namespace OnnxReward.Tests.Transforms;

[TestFixture]
public class StandardNormalTests
{
    // Python's statistics.NormalDist().inv_cdf (CPython 3.11, AS 241 in C) prints these; we evaluate the same rational
    // functions in the same order, so they agree to the last bit (≤ 1 ulp allowed for a fused multiply-add in CPython's C).
    [TestCase(0.85, 1.0364333894937894)]
    [TestCase(0.975, 1.9599639845400536)]
    [TestCase(0.999, 3.090232306167813)]
    [TestCase(0.025, -1.9599639845400538)]
    public void AgreesWithCPythonNormalDistInvCdf(double p, double expected)
    {
        double z = StandardNormal.InverseCdf(p);
        Assert.That(Ulp.Distance(z, expected), Is.LessThanOrEqualTo(1), $"Φ⁻¹({p}) = {z:R}, CPython {expected:R}");
    }

    // scipy.stats.norm.ppf prints these (its ndtri is Cephes, not AS 241); PAR's LSC uses norm.ppf(0.85) = 1.0364333894937898.
    // scipy is the one that is off here: the exact Φ⁻¹ of the double 0.85 is 1.03643338949378948…, which rounds to …894
    // (next test). So scipy and AS 241 agree to 2 ulps, and r_ref differs from PAR's by at most ≈ 4.4e−16·σ.
    [TestCase(0.5, 0.0)]
    [TestCase(0.85, 1.0364333894937898)]
    [TestCase(0.975, 1.959963984540054)]
    [TestCase(0.999, 3.090232306167813)]
    public void AgreesWithScipyToTwoUlps(double p, double expected)
    {
        double z = StandardNormal.InverseCdf(p);
        Assert.That(Ulp.Distance(z, expected), Is.LessThanOrEqualTo(2), $"Φ⁻¹({p}) = {z:R}, scipy {expected:R}");
    }

    // Goldens: the exact Φ⁻¹ of the double p, by mpmath 1.3.0 at 80 digits (findroot of log ncdf(z) = log p, p = mp.mpf(float)),
    // rounded to double. One case per AS 241 branch: central |p − ½| ≤ 0.425, tail r = √−ln p ≤ 5, far tail r > 5.
    [TestCase(0.2, -0.8416212335729142)]
    [TestCase(0.85, 1.0364333894937894)]
    [TestCase(0.925, 1.4395314709384561)]
    [TestCase(0.025, -1.9599639845400543)]
    [TestCase(0.975, 1.9599639845400538)]
    [TestCase(1e-10, -6.361340902404057)]
    [TestCase(0.9999999, 5.199337582290661)]
    [TestCase(1e-300, -37.0470962993612)]
    [TestCase(5e-324, -38.467405617144344)]
    public void IsAccurateInEveryBranch(double p, double expected)
    {
        // AS 241 is accurate to about 1e−16 relative; 2e−15 relative allows its rounding and, near p = 1, the rounding of 1 − p.
        Assert.That(StandardNormal.InverseCdf(p), Is.EqualTo(expected).Within(2e-15 * Math.Abs(expected)), $"p = {p}");
    }

    [Test]
    public void IsAntisymmetricAndMonotone()
    {
        // 0.25/0.75 and 0.0625/0.9375 are pairs whose q = p − ½ are exact negatives, so the result must be exactly −z
        Assert.That(StandardNormal.InverseCdf(0.25), Is.EqualTo(-StandardNormal.InverseCdf(0.75)));
        Assert.That(StandardNormal.InverseCdf(0.0625), Is.EqualTo(-StandardNormal.InverseCdf(0.9375)));
        double previous = double.NegativeInfinity;
        for (int i = 1; i < 10000; i++)
        {
            double z = StandardNormal.InverseCdf(i / 10000.0);
            Assert.That(z, Is.GreaterThan(previous), $"p = {i / 10000.0}");
            previous = z;
        }
    }

    [Test]
    public void EndpointsAreInfiniteAndInvalidProbabilitiesThrow()
    {
        Assert.That(StandardNormal.InverseCdf(0.0), Is.EqualTo(double.NegativeInfinity));
        Assert.That(StandardNormal.InverseCdf(1.0), Is.EqualTo(double.PositiveInfinity));
        foreach (double p in new[] { double.NaN, -0.1, 1.5 })
        {
            var e = Assert.Throws<ArgumentOutOfRangeException>(() => StandardNormal.InverseCdf(p));
            Assert.That(e!.ParamName, Is.EqualTo("p"));
            Assert.That(e.Message, Does.Contain("is not a probability"));
        }
    }
}
