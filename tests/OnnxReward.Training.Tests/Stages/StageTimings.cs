using System.Diagnostics;
using OnnxReward.Training.Stages;

namespace OnnxReward.Training.Tests.Stages;

/// <summary>Timing at a realistic width (explicit: a few seconds each on the 2-core build machine).</summary>
[TestFixture, Explicit("timing only")]
public sealed class StageTimings
{
    [Test]
    public void RidgeAndBtAtD1024()
    {
        const int n = 6000, d = 1024;
        var random = new Random(1);
        var x = new float[n, d];
        var y = new float[n, 2];
        for (var i = 0; i < n; i++)
        {
            for (var j = 0; j < d; j++)
                x[i, j] = (float)Dense.Normal01(random);
            (y[i, 0], y[i, 1]) = (x[i, 0] + 0.1f * x[i, 5], i % 2 == 0 ? float.NaN : x[i, 3]);
        }
        int[] train = Enumerable.Range(0, 4800).ToArray(), validation = Enumerable.Range(4800, 1200).ToArray();
        var watch = Stopwatch.StartNew();
        var heads = RidgeStage.Fit(x, y, train, validation, ["a", "b"]);
        TestContext.Out.WriteLine($"ridge N={n} D={d} K=2, 9 α + full posterior: {watch.Elapsed.TotalSeconds:F2} s; α = {heads.Fits[0].Alpha}, {heads.Fits[1].Alpha}");
        var half = n / 2;
        var c = new float[half, d];
        var r = new float[half, d];
        for (var i = 0; i < half; i++)
            for (var j = 0; j < d; j++)
                (c[i, j], r[i, j]) = (x[i, j], x[i + half, j]);
        watch.Restart();
        var bt = BradleyTerryStage.Fit(c, r, Enumerable.Range(0, 2400).ToArray(), Enumerable.Range(2400, 600).ToArray());
        TestContext.Out.WriteLine($"BT Newton N={half} D={d}, {BradleyTerryStage.DefaultLambdas.Count} λ: {watch.Elapsed.TotalSeconds:F2} s (λ = {bt.Lambda}, {bt.Iterations} steps)");
    }
}
