using System.Numerics;
using OnnxReward.Selection;

namespace OnnxReward.Tests.Transforms;

[TestFixture]
public class BestOfNEstimatorTests
{
    /// <summary>The definition: the mean over all C(N, n) n-subsets of the gold score of the subset's proxy-argmax
    /// (ties → lowest index, as <see cref="BestOfN.ArgMax"/>).</summary>
    static double BruteForce(double[] proxy, double[] gold, int n)
    {
        int count = proxy.Length;
        double sum = 0;
        long subsets = 0;
        for (int mask = 0; mask < 1 << count; mask++)
        {
            if (BitOperations.PopCount((uint)mask) != n) continue;
            int best = -1;
            for (int i = 0; i < count; i++)
                if ((mask >> i & 1) != 0 && (best < 0 || proxy[i] > proxy[best])) best = i;
            sum += gold[best];
            subsets++;
        }
        return sum / subsets;
    }

    [Test]
    public void EqualsBruteForceEnumerationOverAllSubsets()
    {
        var rng = new Random(2024);
        for (int count = 1; count <= 10; count++)
            for (int trial = 0; trial < 5; trial++)
            {
                double[] proxy = Enumerable.Range(0, count).Select(_ => rng.NextDouble() * 6 - 3).ToArray();   // distinct a.s.
                double[] gold = Enumerable.Range(0, count).Select(_ => rng.NextDouble() * 10 - 5).ToArray();
                double[] estimate = BestOfNEstimator.Estimate(proxy, gold);
                Assert.That(estimate, Has.Length.EqualTo(count));
                for (int n = 1; n <= count; n++)
                    // tolerance 1e−12: both sides are sums of ≤ 252 terms of magnitude ≤ 5
                    Assert.That(estimate[n - 1], Is.EqualTo(BruteForce(proxy, gold, n)).Within(1e-12), $"N = {count}, n = {n}");
            }
    }

    [Test]
    public void EqualsBruteForceWithTiedProxyScores()
    {
        var rng = new Random(7);
        for (int trial = 0; trial < 30; trial++)
        {
            int count = rng.Next(2, 11);
            double[] proxy = Enumerable.Range(0, count).Select(_ => (double)rng.Next(0, 3)).ToArray();          // many ties
            double[] gold = Enumerable.Range(0, count).Select(_ => rng.NextDouble()).ToArray();
            double[] estimate = BestOfNEstimator.Estimate(proxy, gold);
            for (int n = 1; n <= count; n++)
                Assert.That(estimate[n - 1], Is.EqualTo(BruteForce(proxy, gold, n)).Within(1e-12), $"proxy [{string.Join(", ", proxy)}], n = {n}");
        }
    }

    [Test]
    public void EndpointsAreTheMeanAndTheProxyArgMax()
    {
        double[] proxy = [0.3, -1.0, 2.5, 0.9], gold = [1.0, 2.0, 3.0, 4.0];
        double[] estimate = BestOfNEstimator.Estimate(proxy, gold);
        Assert.That(estimate[0], Is.EqualTo(2.5).Within(1e-15), "BoN(1) = the mean gold score");
        Assert.That(estimate[3], Is.EqualTo(3.0), "BoN(N) = the gold score of the proxy argmax (index 2)");
        // the proxy's own curve is non-decreasing in n
        double[] self = BestOfNEstimator.Estimate(proxy, proxy);
        for (int n = 1; n < self.Length; n++) Assert.That(self[n], Is.GreaterThanOrEqualTo(self[n - 1]));
    }

    [Test]
    public void RankWeightsSumToOneAndMatchExactRationals()
    {
        foreach (int count in new[] { 1, 2, 10, 1000, 100_000 })
            foreach (int n in new[] { 1, 2, 3, count / 2, count - 1, count }.Where(n => n >= 1 && n <= count).Distinct())
            {
                double[] w = BestOfNEstimator.RankWeights(count, n);
                Assert.That(w.All(x => x >= 0 && double.IsFinite(x)), Is.True);
                Assert.That(w.Take(n - 1).All(x => x == 0), Is.True, "ranks below n can never be the best of n");
                // compensated sum, so the check measures the weights, not the summation. Tolerance 1e−13: the recurrence's
                // bound is N·1.5ε relative, but its roundings do not add up in one direction: measured ≤ 8e−15 up to N = 1e5
                double sum = CompensatedSum(w);
                TestContext.Out.WriteLine($"N = {count}, n = {n}: |Σw − 1| = {Math.Abs(sum - 1):E2}");
                Assert.That(sum, Is.EqualTo(1.0).Within(1e-13), $"N = {count}, n = {n}");
            }

        // exact C(i−1, n−1)/C(N, n) with BigInteger, rounded to double
        const int N = 200;
        foreach (int n in new[] { 1, 2, 7, 100, 199, 200 })
        {
            double[] w = BestOfNEstimator.RankWeights(N, n);
            BigInteger denominator = Binomial(N, n);
            for (int i = n; i <= N; i++)
            {
                double exact = Ratio(Binomial(i - 1, n - 1), denominator);
                if (exact < 1e-290) continue;                       // the recurrence stops at underflow; values this small do not matter
                Assert.That(w[i - 1], Is.EqualTo(exact).Within(1e-12 * exact), $"N = {N}, n = {n}, i = {i}");
            }
        }
    }

    [Test]
    public void LargeNMatchesTheClosedFormForUniformRanks()
    {
        // gold = proxy = a permutation of 1 … N: the best of a random n-subset has expected rank n(N + 1)/(n + 1)
        const int N = 1000;
        var rng = new Random(3);
        double[] ranks = Enumerable.Range(1, N).Select(i => (double)i).OrderBy(_ => rng.Next()).ToArray();
        double[] estimate = BestOfNEstimator.Estimate(ranks, ranks);
        for (int n = 1; n <= N; n++)
        {
            double expected = n * (N + 1.0) / (n + 1.0);
            Assert.That(estimate[n - 1], Is.EqualTo(expected).Within(1e-12 * expected), $"n = {n}");
        }
    }

    [Test]
    public void MeanOverPromptsAveragesTheCurves()
    {
        double[][] proxy = [[0.1, 0.5, 0.3], [2.0, 1.0, 3.0]];
        double[][] gold = [[1.0, 0.0, 2.0], [5.0, 4.0, 3.0]];
        double[] a = BestOfNEstimator.Estimate(proxy[0], gold[0]), b = BestOfNEstimator.Estimate(proxy[1], gold[1]);
        double[] mean = BestOfNEstimator.EstimateMean(proxy, gold);
        for (int n = 0; n < 3; n++) Assert.That(mean[n], Is.EqualTo((a[n] + b[n]) / 2).Within(1e-15));
        // hand check, prompt 0 ranks gold ascending by proxy as [1, 2, 0]; weights for n = 2 are [0, 1/3, 2/3] → 2/3 + 0 = 0.6667
        Assert.That(a[1], Is.EqualTo(2.0 / 3).Within(1e-15));
    }

    [Test]
    public void InvalidInputsAreNamed()
    {
        var empty = Assert.Throws<ArgumentException>(() => BestOfNEstimator.Estimate([], []));
        Assert.That(empty!.Message, Does.Contain("proxyScores is empty"));
        var length = Assert.Throws<ArgumentException>(() => BestOfNEstimator.Estimate([1.0, 2.0], [1.0]));
        Assert.That(length!.Message, Does.Contain("goldScores has 1 values but proxyScores has 2"));
        var nan = Assert.Throws<ArgumentException>(() => BestOfNEstimator.Estimate([1.0, double.NaN], [1.0, 2.0]));
        Assert.That(nan!.Message, Does.Contain("proxyScores[1] is NaN"));
        var goldNan = Assert.Throws<ArgumentException>(() => BestOfNEstimator.Estimate([1.0, 2.0], [double.NaN, 2.0]));
        Assert.That(goldNan!.Message, Does.Contain("goldScores[0] is NaN"));
        var ragged = Assert.Throws<ArgumentException>(() => BestOfNEstimator.EstimateMean([[1.0, 2.0], [1.0]], [[1.0, 2.0], [1.0]]));
        Assert.That(ragged!.Message, Does.Contain("prompt 1 has 1 samples but prompt 0 has 2"));
        var prompts = Assert.Throws<ArgumentException>(() => BestOfNEstimator.EstimateMean([[1.0]], [[1.0], [2.0]]));
        Assert.That(prompts!.Message, Does.Contain("goldScoresPerPrompt has 2 prompts but proxyScoresPerPrompt has 1"));
        var inPrompt = Assert.Throws<ArgumentException>(() => BestOfNEstimator.EstimateMean([[1.0], [2.0]], [[1.0], [double.NaN]]));
        Assert.That(inPrompt!.Message, Does.StartWith("prompt 1: goldScores[0] is NaN"));
        var n = Assert.Throws<ArgumentOutOfRangeException>(() => BestOfNEstimator.RankWeights(4, 5));
        Assert.That(n!.Message, Does.Contain("n = 5 is outside 1 … 4"));
        Assert.Throws<ArgumentOutOfRangeException>(() => BestOfNEstimator.RankWeights(0, 1));
    }

    static double CompensatedSum(double[] values)
    {
        double sum = 0, compensation = 0;                           // Neumaier's variant of Kahan summation
        foreach (double v in values)
        {
            double t = sum + v;
            compensation += Math.Abs(sum) >= Math.Abs(v) ? (sum - t) + v : (v - t) + sum;
            sum = t;
        }
        return sum + compensation;
    }

    static BigInteger Binomial(int n, int k)
    {
        BigInteger c = 1;
        for (int j = 1; j <= k; j++) c = c * (n - k + j) / j;      // exact: each partial product is C(n − k + j, j)
        return c;
    }

    static double Ratio(BigInteger numerator, BigInteger denominator)
    {
        // scale so the integer quotient has ≥ 64 significant bits, then undo the scale exactly with ScaleB
        int shift = (int)Math.Max(0, denominator.GetBitLength() - numerator.GetBitLength() + 64);
        return Math.ScaleB((double)((numerator << shift) / denominator), -shift);
    }
}
