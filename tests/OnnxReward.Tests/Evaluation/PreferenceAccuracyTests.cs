using OnnxReward.Evaluation;

namespace OnnxReward.Tests.Evaluation;

public class PreferenceAccuracyTests
{
    [Test]
    public void CountsTiesAsWrongAndGroupsBySource()
    {
        var report = PreferenceAccuracy.Summarize(
        [
            new("a", 1.0, 0.5),   // correct
            new("a", 0.2, 0.2),   // tie: wrong
            new("a", 0.1, 0.3),   // wrong
            new("b", 2.0, -1.0),  // correct
        ]);
        Assert.That(report.Overall.Pairs, Is.EqualTo(4));
        Assert.That(report.Overall.Correct, Is.EqualTo(2));
        Assert.That(report.Overall.Ties, Is.EqualTo(1));
        Assert.That(report.Overall.Accuracy, Is.EqualTo(0.5));
        Assert.That(report.PerSource["a"].Accuracy, Is.EqualTo(1.0 / 3));
        Assert.That(report.PerSource["a"].Ties, Is.EqualTo(1));
        Assert.That(report.PerSource["b"].Accuracy, Is.EqualTo(1.0));
    }

    [Test]
    public void WilsonIntervalMatchesKnownValues()
    {
        // Wilson 95 % interval for 81/263, computed independently (Python, closed form p̂ + z²/2n ± z√(p̂q̂/n + z²/4n²), /(1+z²/n)):
        // [0.255289, 0.366210].
        var (lo, hi) = AccuracyFigure.WilsonInterval(81, 263, 1.959963984540054);
        Assert.That(lo, Is.EqualTo(0.255289).Within(1e-6));
        Assert.That(hi, Is.EqualTo(0.366210).Within(1e-6));
        // All successes: the upper end is 1 and the lower end n/(n+z²).
        var (l2, h2) = AccuracyFigure.WilsonInterval(10, 10, 1.959963984540054);
        Assert.That(h2, Is.EqualTo(1.0).Within(1e-12));
        Assert.That(l2, Is.EqualTo(10 / (10 + 1.959963984540054 * 1.959963984540054)).Within(1e-12));
    }

    [Test]
    public void RejectsNaNScores()
    {
        var e = Assert.Throws<ArgumentException>(() => PreferenceAccuracy.Summarize([new("x", double.NaN, 1)]));
        Assert.That(e!.Message, Does.Contain("source 'x' has a NaN score"));
    }
}
