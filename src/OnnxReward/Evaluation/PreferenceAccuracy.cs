namespace OnnxReward.Evaluation;

/// <summary>The two scores a reward model gave one preference pair.</summary>
public readonly record struct PairOutcome(string Source, double ChosenScore, double RejectedScore)
{
    /// <summary>Correct only when chosen scores strictly higher (RewardBench's rule: ties count as wrong).</summary>
    public bool IsCorrect => ChosenScore > RejectedScore;

    public bool IsTie => ChosenScore == RejectedScore;
}

/// <summary>Accuracy on one group of pairs, with a 95 % Wilson score interval.</summary>
public sealed record AccuracyFigure(int Pairs, int Correct, int Ties)
{
    public double Accuracy => Pairs == 0 ? double.NaN : (double)Correct / Pairs;

    /// <summary>95 % Wilson score interval for <see cref="Accuracy"/> (z = 1.959964).</summary>
    public (double Low, double High) Interval95 => WilsonInterval(Correct, Pairs, 1.959963984540054);

    public static (double Low, double High) WilsonInterval(int successes, int trials, double z)
    {
        if (trials == 0)
            return (double.NaN, double.NaN);
        double n = trials, p = successes / n, z2 = z * z;
        var centre = (p + z2 / (2 * n)) / (1 + z2 / n);
        var half = z * Math.Sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n);
        return (Math.Max(0, centre - half), Math.Min(1, centre + half));
    }
}

/// <summary>Overall and per-source pairwise accuracy (what `onnxreward eval` prints).</summary>
public sealed record PreferenceAccuracy(AccuracyFigure Overall, IReadOnlyDictionary<string, AccuracyFigure> PerSource)
{
    public static PreferenceAccuracy Summarize(IEnumerable<PairOutcome> outcomes)
    {
        ArgumentNullException.ThrowIfNull(outcomes);
        var groups = new SortedDictionary<string, (int n, int correct, int ties)>(StringComparer.Ordinal);
        int total = 0, totalCorrect = 0, totalTies = 0;
        foreach (var o in outcomes)
        {
            if (double.IsNaN(o.ChosenScore) || double.IsNaN(o.RejectedScore))
                throw new ArgumentException($"a pair from source '{o.Source}' has a NaN score; scores must be numbers.", nameof(outcomes));
            var g = groups.GetValueOrDefault(o.Source);
            groups[o.Source] = (g.n + 1, g.correct + (o.IsCorrect ? 1 : 0), g.ties + (o.IsTie ? 1 : 0));
            total++;
            totalCorrect += o.IsCorrect ? 1 : 0;
            totalTies += o.IsTie ? 1 : 0;
        }
        return new PreferenceAccuracy(
            new AccuracyFigure(total, totalCorrect, totalTies),
            groups.ToDictionary(kv => kv.Key, kv => new AccuracyFigure(kv.Value.n, kv.Value.correct, kv.Value.ties), StringComparer.Ordinal));
    }
}
