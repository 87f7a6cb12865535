using OnnxReward.Training.Stages;

namespace OnnxReward.Training.Tests.Stages;

/// <summary>Spearman, verbosity debiasing, the gating stage and the BT baseline on synthetic data with known answers.</summary>
[TestFixture]
public sealed class DebiasAndHeadTests
{
    [Test]
    public void SpearmanMatchesHandComputedValuesWithTies()
    {
        // Ranks a = [1, 2.5, 2.5, 4], b = [1, 4, 2.5, 2.5]; centred: [-1.5, 0, 0, 1.5]·[-1.5, 1.5, 0, 0] = 2.25 over 4.5 → 0.5.
        Assert.That(VerbosityDebias.AverageRanks([1, 2, 2, 3]), Is.EqualTo(new[] { 1, 2.5, 2.5, 4 }));
        Assert.That(VerbosityDebias.Spearman([1, 2, 2, 3], [1, 3, 2, 2]), Is.EqualTo(0.5).Within(1e-15));
        // b ranks [1, 2, 3.5, 5, 3.5]: Σ da·db = 8, Σ da² = 10, Σ db² = 9.5 → 8 / √95.
        Assert.That(VerbosityDebias.Spearman([10, 20, 30, 40, 50], [5, 6, 7, 8, 7]), Is.EqualTo(8 / Math.Sqrt(95)).Within(1e-15));
        Assert.That(VerbosityDebias.Spearman([3, 2, 1], [1, 2, 3]), Is.EqualTo(-1).Within(1e-15));
        Assert.That(double.IsNaN(VerbosityDebias.Spearman([1, 1, 1], [1, 2, 3])), "constant side → NaN");
    }

    [Test]
    public void DebiasBringsEveryReachableObjectiveToTheThresholdAndReportsTheOthers()
    {
        // Reference rewards: verbosity v (index 2) and objectives r_i = a_i v + e_i with a = 0.05 … 0.8, plus one
        // objective with a = 3 that no λ ≤ 0.95 can decorrelate (it must be reported, λ = 1.0).
        var random = new Random(11);
        const int m = 3000;
        double[] slopes = [0.05, 0.3, double.NaN, 0.8, 3.0, -0.2];
        var r = new float[m, slopes.Length];
        for (var n = 0; n < m; n++)
        {
            var v = Dense.Normal01(random);
            for (var i = 0; i < slopes.Length; i++)
                r[n, i] = (float)(i == 2 ? v : slopes[i] * v + 0.5 * Dense.Normal01(random));
        }
        string[] names = ["o0", "o1", "verbosity", "o3", "o4-length-dominated", "o5-anti"];
        var result = VerbosityDebias.Fit(r, names, verbosity: 2);
        TestContext.Out.WriteLine(result.Markdown());
        foreach (var row in result.Rows.Where(x => !x.IsVerbosity && x.Objective != "o4-length-dominated"))
        {
            Assert.That(row.Reached, Is.True, row.Objective);
            Assert.That(row.SpearmanAfter, Is.LessThanOrEqualTo(VerbosityDebias.DefaultThreshold), row.Objective);
        }
        // The smallest grid λ that reaches the threshold: the previous grid value must not (re-checked here).
        foreach (var row in result.Rows.Where(x => x.Reached && x.Lambda > 0))
        {
            var i = Array.IndexOf(names, row.Objective);
            var previous = VerbosityDebias.LambdaGrid[VerbosityDebias.LambdaGrid.ToList().IndexOf(row.Lambda) - 1];
            var adjusted = Enumerable.Range(0, m).Select(n => r[n, i] - previous * (double)r[n, 2]).ToArray();
            Assert.That(VerbosityDebias.Spearman(adjusted, Enumerable.Range(0, m).Select(n => (double)r[n, 2]).ToArray()),
                Is.GreaterThan(VerbosityDebias.DefaultThreshold), $"{row.Objective}: λ = {previous} already reached it");
        }
        var dominated = result.Rows[4];
        Assert.That(dominated.Reached, Is.False);
        Assert.That(dominated.Lambda, Is.EqualTo(1.0));
        Assert.That(dominated.SpearmanAfter, Is.GreaterThan(VerbosityDebias.DefaultThreshold));
        Assert.That(result.Rows[5].Lambda, Is.EqualTo(0), "already anti-correlated: λ = 0");

        // T = I with row v minus λ: T[v, v] = 0, and r T gives r_i − λ_i r_v.
        var t = result.Transform;
        for (var i = 0; i < 6; i++)
            for (var j = 0; j < 6; j++)
                Assert.That(t[i, j], Is.EqualTo(i == 2 ? (float)((i == j ? 1 : 0) - result.Lambdas[j]) : i == j ? 1f : 0f), $"T[{i},{j}]");
        Assert.That(t[2, 2], Is.EqualTo(0f));
    }

    // Gating problem: prompt embedding p [8]; objective 0 decides the preference when p0 > 0, objective 1 otherwise,
    // objective 2 is noise. A fixed mixture cannot follow the switch; a prompt-conditioned gate can.
    private static (float[,] P, float[,] Rc, float[,] Rr) GatingProblem(int n, int seed)
    {
        var random = new Random(seed);
        var p = new float[n, 8];
        var rc = new float[n, 3];
        var rr = new float[n, 3];
        for (var i = 0; i < n; i++)
        {
            for (var j = 0; j < 8; j++)
                p[i, j] = (float)Dense.Normal01(random);
            var truth = p[i, 0] > 0 ? 0 : 1;
            double[] a = [Dense.Normal01(random), Dense.Normal01(random), Dense.Normal01(random)];
            double[] b = [Dense.Normal01(random), Dense.Normal01(random), Dense.Normal01(random)];
            var (c, r) = a[truth] > b[truth] ? (a, b) : (b, a);
            for (var k = 0; k < 3; k++)
                (rc[i, k], rr[i, k]) = ((float)c[k], (float)r[k]);
        }
        return (p, rc, rr);
    }

    private static readonly GatingOptions Small = new() { HiddenSize = 32, Steps = 300, BatchSize = 128, EvaluateEvery = 50, Seed = 5 };
    private static readonly float[,] Identity3 = { { 1, 0, 0 }, { 0, 1, 0 }, { 0, 0, 1 } };

    [Test]
    public void GatingBeatsAUniformMixtureWhenTheBestObjectiveDependsOnThePrompt()
    {
        var (p, rc, rr) = GatingProblem(2500, 21);
        int[] train = Enumerable.Range(0, 2000).ToArray(), validation = Enumerable.Range(2000, 500).ToArray();
        using var head = GatingStage.Train(p, rc, rr, Identity3, train, validation, Small);
        var uniform = GatingStage.UniformMixtureAccuracy(rc, rr, Identity3, validation);
        TestContext.Out.WriteLine($"val accuracy per {Small.EvaluateEvery} steps: {string.Join(", ", head.ValidationAccuracy.Select(a => a.ToString("F3")))}; " +
            $"val loss: {string.Join(", ", head.ValidationLoss.Select(a => a.ToString("F3")))}; uniform mixture {uniform:F3}");
        Assert.That(head.TrainLoss, Has.Count.EqualTo(300));
        Assert.That(head.EvaluationSteps, Is.EqualTo(new[] { 50, 100, 150, 200, 250, 300 }));
        // Uniform: the vote of the right objective is diluted by the other two (≈ 0.75 here); the gate that follows
        // p0 should be clearly better. 0.05 is far above the ±0.02 binomial sd of 500 validation pairs.
        Assert.That(head.ValidationAccuracy[^1], Is.GreaterThan(uniform + 0.05));
        // The gate favours objective 0 for p0 > 0 and objective 1 for p0 < 0, with rows summing to β.
        var g = head.Gate(p);
        var parameters = head.Parameters();
        var beta = parameters["gating.logit_scale"].Data[0];
        var agree = validation.Count(i => (g[i, 0] > g[i, 1]) == (p[i, 0] > 0));
        Assert.That(agree / 500.0, Is.GreaterThan(0.8));
        for (var i = 0; i < 10; i++)
            Assert.That(g[i, 0] + g[i, 1] + g[i, 2], Is.EqualTo(beta).Within(1e-5 * Math.Abs(beta)));
        Assert.That(parameters.Keys, Is.EqualTo(new[] { "gating.layers.0.bias", "gating.layers.0.weight", "gating.layers.1.bias",
            "gating.layers.1.weight", "gating.layers.2.bias", "gating.layers.2.weight", "gating.layers.3.bias", "gating.layers.3.weight",
            "gating.logit_scale" }));
        Assert.That(parameters["gating.layers.3.weight"].Shape, Is.EqualTo(new long[] { 3, 32 }));
    }

    [Test]
    public void SameSeedGivesBitIdenticalWeights()
    {
        var (p, rc, rr) = GatingProblem(400, 3);
        int[] train = Enumerable.Range(0, 300).ToArray(), validation = Enumerable.Range(300, 100).ToArray();
        var options = Small with { Steps = 40 };
        using var a = GatingStage.Train(p, rc, rr, Identity3, train, validation, options);
        using var b = GatingStage.Train(p, rc, rr, Identity3, train, validation, options);
        using var c = GatingStage.Train(p, rc, rr, Identity3, train, validation, options with { Seed = 6 });
        var (pa, pb, pc) = (a.Parameters(), b.Parameters(), c.Parameters());
        foreach (var key in pa.Keys)
            Assert.That(pb[key].Data, Is.EqualTo(pa[key].Data), $"{key}: same seed must be bit-identical"); // exact float equality
        Assert.That(a.TrainLoss, Is.EqualTo(b.TrainLoss));
        Assert.That(pc["gating.layers.0.weight"].Data, Is.Not.EqualTo(pa["gating.layers.0.weight"].Data), "another seed differs");
    }

    [Test]
    public void BradleyTerryLaplacePrecisionMatchesTheFormula()
    {
        var random = new Random(8);
        const int n = 300, d = 5;
        var truth = new[] { 1.0, -0.5, 0.25, 0, 2 };
        var chosen = new float[n, d];
        var rejected = new float[n, d];
        for (var i = 0; i < n; i++)
        {
            double[] a = Enumerable.Range(0, d).Select(_ => Dense.Normal01(random)).ToArray();
            double[] b = Enumerable.Range(0, d).Select(_ => Dense.Normal01(random)).ToArray();
            var margin = Enumerable.Range(0, d).Sum(j => truth[j] * (a[j] - b[j]));
            var aWins = random.NextDouble() < 1 / (1 + Math.Exp(-margin));              // BT sampling
            for (var j = 0; j < d; j++)
                (chosen[i, j], rejected[i, j]) = aWins ? ((float)a[j], (float)b[j]) : ((float)b[j], (float)a[j]);
        }
        int[] train = Enumerable.Range(0, 240).ToArray(), validation = Enumerable.Range(240, 60).ToArray();
        var head = BradleyTerryStage.Fit(chosen, rejected, train, validation);
        TestContext.Out.WriteLine($"λ search (λ, val NLL): {string.Join(", ", head.LambdaSearch)}; chosen λ = {head.Lambda}; w = [{string.Join(", ", head.Weight.Select(w => w.ToString("F3")))}] after {head.Iterations} Newton steps");
        Assert.That(head.LambdaSearch.Min(s => s.ValidationNll), Is.EqualTo(head.LambdaSearch.First(s => s.Lambda == head.Lambda).ValidationNll));

        // H = λI + Σ π(1−π) d dᵀ, recomputed in plain double from ŵ; and ŵ is a stationary point: λŵ − Σ(1−π)d = 0.
        var h = new double[d, d];
        var gradient = new double[d];
        for (var i = 0; i < d; i++)
            (h[i, i], gradient[i]) = (head.Lambda, head.Lambda * head.Weight[i]);
        foreach (var row in train)
        {
            var diff = Enumerable.Range(0, d).Select(j => (double)chosen[row, j] - rejected[row, j]).ToArray();
            var pi = 1 / (1 + Math.Exp(-diff.Select((x, j) => x * head.Weight[j]).Sum()));
            for (var i = 0; i < d; i++)
            {
                gradient[i] -= (1 - pi) * diff[i];
                for (var j = 0; j < d; j++)
                    h[i, j] += pi * (1 - pi) * diff[i] * diff[j];
            }
        }
        Assert.That(gradient.Max(Math.Abs), Is.LessThan(1e-8), "MAP: gradient vanishes");
        for (var i = 0; i < d; i++)
            for (var j = 0; j < d; j++)
                Assert.That(head.Precision[i, j], Is.EqualTo(h[i, j]).Within(1e-9 * Math.Abs(h[i, i])), $"H[{i},{j}]");
        // Variance(v) = vᵀH⁻¹v through an independent solve.
        float[] v = [0.3f, -1.2f, 0.5f, 2f, -0.7f];
        var hv = Dense.Solve(h, v.Select(x => (double)x).ToArray());
        Assert.That(head.Variance(v), Is.EqualTo(v.Select((x, i) => x * hv[i]).Sum()).Within(1e-9).Percent);
        // With 240 pairs the MAP recovers the sign pattern of the true weights (the 0 weight excepted).
        Assert.That(Math.Sign(head.Weight[0]) == 1 && Math.Sign(head.Weight[1]) == -1 && head.Weight[4] > 1);
    }
}
