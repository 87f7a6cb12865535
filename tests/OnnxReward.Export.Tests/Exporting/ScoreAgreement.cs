namespace OnnxReward.Export.Tests.Exporting;

/// <summary>How far an approximate variant's scores are from a reference's, in the terms a reward model is used in:
/// the largest absolute difference, Spearman's rank correlation, and the share of pairwise orders kept (the quantity
/// best-of-n and preference accuracy depend on; pairs the reference ties are skipped).</summary>
internal readonly record struct ScoreAgreement(double MaxAbsDiff, double Spearman, double PairsKept, int Pairs, double ReferenceRange)
{
    public static ScoreAgreement Of(IReadOnlyList<double> reference, IReadOnlyList<double> approximate)
    {
        if (reference.Count != approximate.Count || reference.Count < 2)
            throw new ArgumentException("need two score lists of one length ≥ 2");
        var n = reference.Count;
        double max = 0;
        for (var i = 0; i < n; i++) max = Math.Max(max, Math.Abs(reference[i] - approximate[i]));
        int pairs = 0, kept = 0;
        for (var a = 0; a < n; a++)
            for (var b = a + 1; b < n; b++)
            {
                if (reference[a] == reference[b]) continue;
                pairs++;
                if ((approximate[a] > approximate[b]) == (reference[a] > reference[b]) && approximate[a] != approximate[b]) kept++;
            }
        return new ScoreAgreement(max, Pearson(Ranks(reference), Ranks(approximate)), pairs == 0 ? 1 : (double)kept / pairs, pairs,
            reference.Max() - reference.Min());
    }

    public override string ToString() =>
        $"max |Δ| {MaxAbsDiff:E2} (reference range {ReferenceRange:F3}), Spearman {Spearman:F4}, pairwise order kept {PairsKept:P1} of {Pairs}";

    private static double[] Ranks(IReadOnlyList<double> v)
    {
        var order = Enumerable.Range(0, v.Count).OrderBy(i => v[i]).ToArray();
        var ranks = new double[v.Count];
        for (var i = 0; i < order.Length;)
        {
            var j = i;
            while (j + 1 < order.Length && v[order[j + 1]] == v[order[i]]) j++;
            for (var k = i; k <= j; k++) ranks[order[k]] = (i + j) / 2.0;    // ties share the mean rank
            i = j + 1;
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
        return sxy / Math.Sqrt(sxx * syy);
    }
}
