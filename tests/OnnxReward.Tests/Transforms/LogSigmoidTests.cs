using OnnxReward.Transforms;

namespace OnnxReward.Tests.Transforms;

[TestFixture]
public class LogSigmoidTests
{
    // Goldens: mpmath 1.3.0 at 60 significant digits, log σ(x) = x − log1p(e^x) for x < 0 and −log1p(e^−x) otherwise,
    // rounded to the nearest double:
    //   import mpmath as mp; mp.mp.dps = 60; x = mp.mpf(s); v = x - mp.log1p(mp.exp(x)) if x < 0 else -mp.log1p(mp.exp(-x))
    [TestCase(-1e308, -1e308)]
    [TestCase(-1e4, -1e4)]
    [TestCase(-745.0, -745.0)]
    [TestCase(-40.0, -40.0)]                                   // −40 − 4.2e−18 rounds to −40
    [TestCase(-20.0, -20.000000002061153)]                     // −20.000000002061153620314…
    [TestCase(-1.0, -1.3132616875182228)]                      // −ln(1 + e)
    [TestCase(-1e-10, -0.6931471806099453)]
    [TestCase(0.0, -0.6931471805599453)]                       // −ln 2
    [TestCase(1e-300, -0.6931471805599453)]
    [TestCase(1e-10, -0.6931471805099453)]
    [TestCase(0.5, -0.4740769841801067)]
    [TestCase(1.0, -0.3132616875182228)]                       // −ln(1 + 1/e)
    [TestCase(2.0, -0.1269280110429725)]
    [TestCase(20.0, -2.061153620314381e-09)]                   // −e^−20 + e^−40/2: the naive log(1/(1+e^−x)) keeps 8 digits
    [TestCase(36.0, -2.319522830243569e-16)]
    [TestCase(40.0, -4.248354255291589e-18)]                   // naive form: 1 + e^−40 == 1, returns 0
    [TestCase(700.0, -9.85967654375977e-305)]
    [TestCase(745.0, -5e-324)]                                 // −2.8e−324 rounds to the smallest subnormal
    [TestCase(1e4, 0.0)]                                       // −e^−10000 underflows to (−)0
    [TestCase(1e308, 0.0)]
    public void MatchesHighPrecisionReferenceWithinTwoUlps(double x, double expected)
    {
        double actual = LogSigmoid.Evaluate(x);
        // 2 ulps: log1p via Goldberg's correction is within ~1 ulp when Math.Log is, plus one rounding for min(x,0) − log1p.
        Assert.That(Ulp.Distance(actual, expected), Is.LessThanOrEqualTo(2), $"log σ({x:R}) = {actual:R}, expected {expected:R}");
    }

    [Test]
    public void ExactLimitsAndSpecialValues()
    {
        Assert.That(LogSigmoid.Evaluate(1e4), Is.EqualTo(0.0));
        Assert.That(LogSigmoid.Evaluate(-1e4), Is.EqualTo(-1e4));
        Assert.That(LogSigmoid.Evaluate(double.MaxValue), Is.EqualTo(0.0));
        Assert.That(LogSigmoid.Evaluate(double.MinValue), Is.EqualTo(double.MinValue));
        Assert.That(LogSigmoid.Evaluate(double.PositiveInfinity), Is.EqualTo(0.0));
        Assert.That(LogSigmoid.Evaluate(double.NegativeInfinity), Is.EqualTo(double.NegativeInfinity));
        // documented policy: the primitive propagates NaN like Math.Log; the reward-level APIs throw instead
        Assert.That(LogSigmoid.Evaluate(double.NaN), Is.NaN);
    }

    [Test]
    public void NeverOverflowsAndIsNonPositiveAndMonotoneAcrossTheWholeRange()
    {
        double previous = double.NegativeInfinity;
        for (int e = -308; e <= 308; e++)
            foreach (double x in new[] { -Math.Pow(10, -e), Math.Pow(10, e) }.Order())
            {
                double y = LogSigmoid.Evaluate(x);
                Assert.That(double.IsFinite(y), Is.True, $"log σ({x:R}) = {y}");
                Assert.That(y, Is.LessThanOrEqualTo(0.0), $"log σ({x:R})");
            }
        for (double x = -50; x <= 50; x += 0.01)
        {
            double y = LogSigmoid.Evaluate(x);
            Assert.That(y, Is.GreaterThanOrEqualTo(previous), $"not monotone at {x}");
            previous = y;
        }
    }

    [Test]
    public void SatisfiesTheReflectionIdentity()
    {
        // log σ(x) − log σ(−x) = log(e^x) = x exactly in real arithmetic; both sides are evaluated independently here.
        foreach (double x in new[] { 1e-8, 0.1, 0.7, 1.0, 3.0, 10.0, 30.0, 100.0, 1e3 })
        {
            double lhs = LogSigmoid.Evaluate(x) - LogSigmoid.Evaluate(-x);
            // tolerance 2e-16·(|x| + 1): two results each within a few ulps of magnitudes ≤ |x| + ln 2
            Assert.That(lhs, Is.EqualTo(x).Within(4e-16 * (Math.Abs(x) + 1)), $"x = {x}");
        }
    }

    [Test]
    public void Log1PIsAccurateForTinyArgumentsWhereLogOfOnePlusTFails()
    {
        Assert.That(LogSigmoid.Log1P(1e-20), Is.EqualTo(1e-20));                    // Math.Log(1 + 1e-20) = 0
        Assert.That(Ulp.Distance(LogSigmoid.Log1P(1e-10), 9.9999999995e-11), Is.LessThanOrEqualTo(1)); // 1e−10 − 5e−21 (+3e−31)
        Assert.That(Ulp.Distance(LogSigmoid.Log1P(1.0), 0.6931471805599453), Is.LessThanOrEqualTo(1));
    }

    [Test]
    public void SpanOverloadMatchesScalarAndRejectsAShortDestination()
    {
        double[] x = [-3, -0.5, 0, 0.5, 3];
        var y = new double[x.Length];
        LogSigmoid.Evaluate(x, y);
        for (int i = 0; i < x.Length; i++) Assert.That(y[i], Is.EqualTo(LogSigmoid.Evaluate(x[i])));

        var e = Assert.Throws<ArgumentException>(() => LogSigmoid.Evaluate(x, new double[2]));
        Assert.That(e!.ParamName, Is.EqualTo("destination"));
        Assert.That(e.Message, Does.Contain("has 2 elements but x has 5"));
    }
}
