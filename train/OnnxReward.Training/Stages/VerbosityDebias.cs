using System.Globalization;
using System.Text;

namespace OnnxReward.Training.Stages;

// Shape legend: M = reference responses (chosen and rejected, flattened), K = objectives.

/// <summary>One objective's debiasing outcome. <see cref="Reached"/> is false when no λ of the grid brought the
/// Spearman correlation with verbosity to the threshold (λ then stays 1.0, as in the reference code).</summary>
public sealed record DebiasRow(string Objective, double Lambda, double SpearmanBefore, double SpearmanAfter, bool Reached, bool IsVerbosity);

/// <summary>The reward transform T [K, K] (checkpoint key <c>reward_transform_matrix</c>) and the per-objective table.</summary>
public sealed record DebiasResult(float[,] Transform, IReadOnlyList<double> Lambdas, IReadOnlyList<DebiasRow> Rows, double Threshold)
{
    public string Markdown()
    {
        var ci = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine(ci, $"Verbosity debiasing (armorm.md §2.2), threshold ρ ≤ {Threshold}:").AppendLine();
        sb.AppendLine("| objective | λ | Spearman with verbosity before | after | reached threshold |");
        sb.AppendLine("| --- | ---: | ---: | ---: | --- |");
        foreach (var r in Rows)
            sb.AppendLine(ci, $"| {r.Objective} | {r.Lambda:0.###} | {r.SpearmanBefore:F4} | {r.SpearmanAfter:F4} | {(r.IsVerbosity ? "(verbosity: T[v,v] = 0)" : r.Reached ? "yes" : "**no** (λ = 1.0)")} |");
        return sb.ToString();
    }
}

/// <summary>
/// ArmoRM's <c>find_proper_verbosity_penalties</c> (armorm.md §2.2, §1.4): with reference rewards R [M, K] (both
/// chosen and rejected responses), for each λ of <see cref="LambdaGrid"/> in ascending order and each still-unassigned
/// objective i ≠ v: ρ = Spearman(r_i − λ r_v, r_v); if ρ ≤ threshold, λ_i = λ. Unassigned objectives and v keep 1.0.
/// T = I; T[v, :] −= λ, so r' = r T gives r'_i = r_i − λ_i r_v and r'_v = 0.
/// </summary>
public static class VerbosityDebias
{
    /// <summary>The λ grid of <c>stage-2_train.py</c>.</summary>
    public static readonly IReadOnlyList<double> LambdaGrid =
        [0, 0.01, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95];

    /// <summary>
    /// <see cref="LambdaGrid"/> continued past 0.95 (an OnnxReward extension, not in ArmoRM's code): an objective whose
    /// correlation with verbosity the original grid cannot remove would otherwise keep ArmoRM's fallback λ = 1.0 without
    /// reaching the threshold; continuing the same search finds the smallest λ that does.
    /// </summary>
    public static readonly IReadOnlyList<double> ExtendedLambdaGrid =
        [.. LambdaGrid, 1.0, 1.1, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0, 5.0];

    /// <summary>The CLI default of <c>corr_threshold</c>.</summary>
    public const double DefaultThreshold = 0.03;

    /// <param name="referenceRewards">R = Z Wᵀ [M, K] over the reference set.</param>
    /// <param name="names">K objective names.</param>
    /// <param name="verbosity">Index v of the verbosity objective.</param>
    /// <param name="threshold">corr_threshold: an objective is debiased once ρ ≤ threshold.</param>
    /// <param name="grid">λ values tried in ascending order; default <see cref="LambdaGrid"/> (ArmoRM's).</param>
    public static DebiasResult Fit(float[,] referenceRewards, IReadOnlyList<string> names, int verbosity, double threshold = DefaultThreshold,
        IReadOnlyList<double>? grid = null)
    {
        ArgumentNullException.ThrowIfNull(referenceRewards);
        ArgumentNullException.ThrowIfNull(names);
        int m = referenceRewards.GetLength(0), k = referenceRewards.GetLength(1);
        if (names.Count != k)
            throw new ArgumentException($"{names.Count} names for {k} reward columns: pass one name per objective.", nameof(names));
        if (verbosity < 0 || verbosity >= k)
            throw new ArgumentOutOfRangeException(nameof(verbosity), $"Verbosity index {verbosity} is outside [0, {k}).");
        if (m < 3)
            throw new ArgumentException($"{m} reference responses: a rank correlation needs at least 3 (use both chosen and rejected of the reference set).", nameof(referenceRewards));
        if (!double.IsFinite(threshold))
            throw new ArgumentOutOfRangeException(nameof(threshold), "The correlation threshold must be finite (default 0.03).");

        double[] Column(int j) => Enumerable.Range(0, m).Select(i => (double)referenceRewards[i, j]).ToArray();
        var rv = Column(verbosity);
        var lambda = Enumerable.Repeat(1.0, k).ToArray();
        var assigned = new bool[k];
        assigned[verbosity] = true;
        foreach (var l in grid ?? LambdaGrid)
            for (var i = 0; i < k; i++)
            {
                if (assigned[i])
                    continue;
                var ri = Column(i);
                var adjusted = ri.Select((r, n) => r - l * rv[n]).ToArray();
                if (Spearman(adjusted, rv) <= threshold)
                    (lambda[i], assigned[i]) = (l, true);
            }

        var transform = new float[k, k];                                         // T = I; T[v, :] −= λ
        for (var i = 0; i < k; i++)
            transform[i, i] = 1f;
        for (var j = 0; j < k; j++)
            transform[verbosity, j] -= (float)lambda[j];

        var rows = new DebiasRow[k];
        for (var i = 0; i < k; i++)
        {
            var ri = Column(i);
            var after = ri.Select((r, n) => r - lambda[i] * rv[n]).ToArray();
            var isV = i == verbosity;
            rows[i] = new DebiasRow(names[i], lambda[i], Spearman(ri, rv), isV ? double.NaN : Spearman(after, rv),
                !isV && Spearman(after, rv) <= threshold, isV);
        }
        return new DebiasResult(transform, lambda, rows, threshold);
    }

    /// <summary>Spearman's ρ: Pearson correlation of the average ranks (ties share the mean of their ranks), as
    /// <c>scipy.stats.spearmanr</c>. NaN when either side is constant.</summary>
    public static double Spearman(IReadOnlyList<double> a, IReadOnlyList<double> b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (a.Count != b.Count)
            throw new ArgumentException($"Spearman needs equal lengths, got {a.Count} and {b.Count}.", nameof(b));
        return Pearson(AverageRanks(a), AverageRanks(b));
    }

    /// <summary>1-based ranks; tied values get the mean of the ranks they span.</summary>
    public static double[] AverageRanks(IReadOnlyList<double> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        var order = Enumerable.Range(0, values.Count).OrderBy(i => values[i]).ToArray();
        var ranks = new double[values.Count];
        for (var start = 0; start < order.Length;)
        {
            var end = start;
            while (end + 1 < order.Length && values[order[end + 1]] == values[order[start]])
                end++;
            var rank = (start + end) / 2.0 + 1;                                 // mean of ranks start+1 … end+1
            for (var i = start; i <= end; i++)
                ranks[order[i]] = rank;
            start = end + 1;
        }
        return ranks;
    }

    private static double Pearson(double[] x, double[] y)
    {
        double mx = x.Average(), my = y.Average(), sxy = 0, sxx = 0, syy = 0;
        for (var i = 0; i < x.Length; i++)
        {
            sxy += (x[i] - mx) * (y[i] - my);
            sxx += (x[i] - mx) * (x[i] - mx);
            syy += (y[i] - my) * (y[i] - my);
        }
        return sxx == 0 || syy == 0 ? double.NaN : sxy / Math.Sqrt(sxx * syy);
    }
}
