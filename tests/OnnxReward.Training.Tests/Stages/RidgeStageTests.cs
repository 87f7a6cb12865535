using OnnxReward.Training.Stages;

namespace OnnxReward.Training.Tests.Stages;

/// <summary>Stage 1 against plain double Gaussian elimination on small synthetic problems.</summary>
[TestFixture]
public sealed class RidgeStageTests
{
    // Synthetic problem: D = 6, 2 objectives; y0 = Xβ + noise, y1 = Xγ + noise with NaN in every 4th row.
    private static (float[,] X, float[,] Y, int[] Train, int[] Validation) Problem(int n, int d, double noise, int seed)
    {
        var random = new Random(seed);
        var x = new float[n, d];
        var y = new float[n, 2];
        var beta = Enumerable.Range(0, d).Select(_ => Dense.Normal01(random)).ToArray();
        var gamma = Enumerable.Range(0, d).Select(_ => Dense.Normal01(random)).ToArray();
        for (var i = 0; i < n; i++)
        {
            for (var j = 0; j < d; j++)
                x[i, j] = (float)Dense.Normal01(random);
            y[i, 0] = (float)(Enumerable.Range(0, d).Sum(j => x[i, j] * beta[j]) + noise * Dense.Normal01(random));
            y[i, 1] = i % 4 == 3 ? float.NaN : (float)(Enumerable.Range(0, d).Sum(j => x[i, j] * gamma[j]) + noise * Dense.Normal01(random));
        }
        var train = Enumerable.Range(0, n * 2 / 3).ToArray();
        var validation = Enumerable.Range(n * 2 / 3, n - n * 2 / 3).ToArray();
        return (x, y, train, validation);
    }

    private static double[] Column(float[,] y, int k) => Enumerable.Range(0, y.GetLength(0)).Select(i => (double)y[i, k]).ToArray();

    private static int[] Labelled(float[,] y, int k, int[] rows) => rows.Where(r => !float.IsNaN(y[r, k])).ToArray();

    [Test]
    public void CoefficientsAndAlphaMatchADirectSolveOfTheNormalEquations()
    {
        var (x, y, train, validation) = Problem(90, 6, 0.5, 1);
        var heads = RidgeStage.Fit(x, y, train, validation, ["a", "b"]);
        TestContext.Out.WriteLine(heads.Markdown());
        for (var k = 0; k < 2; k++)
        {
            var yk = Column(y, k);
            int[] tr = Labelled(y, k, train), va = Labelled(y, k, validation);
            Assert.That(heads.Fits[k].TrainRows, Is.EqualTo(tr.Length), "NaN rows dropped for this objective only");
            // Independent α selection: validation MSE of each α through Gaussian elimination.
            var mse = RidgeStage.Alphas.Select(alpha =>
            {
                var (a, b) = Dense.Normal(x, yk, tr, alpha);
                var w = Dense.Solve(a, b);
                return va.Average(r => Math.Pow(Dense.Dot(x, r, w) - yk[r], 2));
            }).ToArray();
            Assert.That(heads.Fits[k].ValidationMse, Is.EqualTo(mse).Within(1e-9).Percent, "validation MSE per α");
            Assert.That(heads.Fits[k].Alpha, Is.EqualTo(RidgeStage.Alphas[Array.IndexOf(mse, mse.Min())]));

            var (a2, b2) = Dense.Normal(x, yk, tr, heads.Fits[k].Alpha);
            var expected = Dense.Solve(a2, b2);
            var scale = expected.Max(Math.Abs);
            // 1e-5 relative to the largest coefficient: W is stored as float32 (rounding 6e-8 relative).
            for (var j = 0; j < 6; j++)
                Assert.That(Math.Abs(heads.Weight[k, j] - expected[j]) / scale, Is.LessThan(1e-5), $"objective {k} coefficient {j}");
        }
    }

    [Test]
    public void AlphaSelectionPicksTheKnownBestOnAnIllPosedProblem()
    {
        // n_train = 20 ≈ D = 16 with heavy noise: least squares overfits, a huge α underfits, so the validation optimum
        // lies inside the grid. The best α is computed independently, and must be neither end of the grid.
        var (x, y, train, validation) = Problem(330, 16, 3.0, 7);
        train = train.Take(20).ToArray();
        var heads = RidgeStage.Fit(x, y, train, validation, ["a", "b"], posteriorRank: null);
        var yk = Column(y, 0);
        var mse = RidgeStage.Alphas.Select(alpha =>
        {
            var (a, b) = Dense.Normal(x, yk, train, alpha);
            var w = Dense.Solve(a, b);
            return validation.Average(r => Math.Pow(Dense.Dot(x, r, w) - yk[r], 2));
        }).ToArray();
        var best = RidgeStage.Alphas[Array.IndexOf(mse, mse.Min())];
        TestContext.Out.WriteLine($"validation MSE per α: {string.Join(", ", mse.Select(m => m.ToString("G4")))}; best α = {best}");
        Assert.That(best, Is.Not.EqualTo(RidgeStage.Alphas[0]).And.Not.EqualTo(RidgeStage.Alphas[^1]), "the synthetic problem has an interior optimum");
        Assert.That(heads.Fits[0].Alpha, Is.EqualTo(best));
        Assert.That(heads.PosteriorFactor, Is.Null);
    }

    [Test]
    public void PosteriorIsResidualVarianceTimesTheInverseAndFactorsExactly()
    {
        var (x, y, train, validation) = Problem(90, 6, 0.5, 3);
        var heads = RidgeStage.Fit(x, y, train, validation, ["a", "b"]);
        Assert.That(heads.PosteriorFactor!.GetLength(2), Is.EqualTo(6), "full rank R = D");
        for (var k = 0; k < 2; k++)
        {
            var yk = Column(y, k);
            var tr = Labelled(y, k, train);
            var alpha = heads.Fits[k].Alpha;
            var (a, b) = Dense.Normal(x, yk, tr, alpha);
            var w = Dense.Solve(a, b);
            var inv = Dense.Inverse(a);
            // s² = RSS / (n − df), df = tr(X (XᵀX + αI)⁻¹ Xᵀ) computed row by row (not through the trace identity).
            var rss = tr.Sum(r => Math.Pow(Dense.Dot(x, r, w) - yk[r], 2));
            double df = 0;
            foreach (var r in tr)
                for (var i = 0; i < 6; i++)
                    for (var j = 0; j < 6; j++)
                        df += x[r, i] * inv[i, j] * x[r, j];
            var s2 = rss / (tr.Length - df);
            Assert.That(heads.Fits[k].ResidualVariance, Is.EqualTo(s2).Within(1e-9).Percent);
            Assert.That(heads.Fits[k].EffectiveDof, Is.EqualTo(df).Within(1e-9).Percent);
            var scale = Enumerable.Range(0, 6).Max(i => s2 * inv[i, i]);
            for (var i = 0; i < 6; i++)
                for (var j = 0; j < 6; j++)
                {
                    double ffT = 0;
                    for (var c = 0; c < 6; c++)
                        ffT += (double)heads.PosteriorFactor[k, i, c] * heads.PosteriorFactor[k, j, c];
                    // F is float32: (F Fᵀ)_ij carries ~1e-7 relative rounding of the largest entries.
                    Assert.That(Math.Abs(ffT - s2 * inv[i, j]) / scale, Is.LessThan(1e-5), $"Σ[{i},{j}] objective {k}");
                }
        }
    }

    [Test]
    public void TruncatedFactorKeepsTheLargestPosteriorVariances()
    {
        var (x, y, train, validation) = Problem(90, 6, 0.5, 3);
        var full = RidgeStage.Fit(x, y, train, validation, ["a", "b"]);
        var truncated = RidgeStage.Fit(x, y, train, validation, ["a", "b"], posteriorRank: 2);
        // tr(F_R F_Rᵀ) = s² Σ_{2 smallest λ} 1/(λ+α) ≤ tr(Σ), and ≥ 2/6 of it (the kept directions are the largest).
        double Trace(float[,,] f, int k) => Enumerable.Range(0, 6).Sum(i => Enumerable.Range(0, f.GetLength(2)).Sum(c => (double)f[k, i, c] * f[k, i, c]));
        var t = Trace(truncated.PosteriorFactor!, 0);
        var tf = Trace(full.PosteriorFactor!, 0);
        Assert.That(t, Is.LessThanOrEqualTo(tf * (1 + 1e-6)).And.GreaterThanOrEqualTo(tf * 2 / 6));
    }

    [Test]
    public void ErrorsNameTheProblem()
    {
        var (x, y, train, _) = Problem(30, 3, 0.5, 1);
        var e = Assert.Throws<ArgumentException>(() => RidgeStage.Fit(x, y, train, [], ["a", "b"]))!;
        Assert.That(e.Message, Does.Contain("'a'").And.Contain("0 validation labels"));
        Assert.Throws<ArgumentException>(() => RidgeStage.Fit(x, y, train, train, ["a"]));
        Assert.Throws<ArgumentOutOfRangeException>(() => RidgeStage.Fit(x, y, [99], train, ["a", "b"]));
    }
}
