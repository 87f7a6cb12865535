// Shape legend: S = reference responses scored for one prompt, K = objectives.
namespace OnnxReward.Transforms;

/// <summary>How <see cref="ReferenceReward"/> turns reference-sample rewards into r_ref(x).</summary>
public enum ReferenceRewardMethod
{
    /// <summary>Fit a normal to the rewards and take its q-quantile, <c>μ + Φ⁻¹(q)·σ</c> with the population std (ddof = 0).</summary>
    NormalFit,

    /// <summary>The empirical q-quantile with numpy's default <c>'linear'</c> interpolation (Hyndman–Fan type 7).</summary>
    EmpiricalQuantile,
}

/// <summary>
/// The prompt-specific reference reward r_ref(x) of the LSC transform <c>u = log σ(r − r_ref(x))</c> (docs/armorm.md §4):
/// the reward of a "good enough" response, taken as a high quantile (default 0.85) of the rewards of reference responses to
/// the same prompt, usually samples of the base/SFT policy. Three ways to get it:
/// <list type="bullet">
/// <item><see cref="NormalFit"/>: <c>μ + Φ⁻¹(q)·σ</c>, what <c>PorUna-byte/PAR</c> (<c>reward_shaper.py</c>, <c>--reward_lsc</c>)
/// does with <c>scipy.stats.norm.ppf(0.85, np.mean(r), np.std(r))</c>; <c>np.std</c> is the population std (ddof = 0),
/// and so is ours.</item>
/// <item><see cref="EmpiricalQuantile"/>: <c>np.quantile(r, q)</c> with numpy's default linear interpolation.</item>
/// <item>given directly: pass the number to <see cref="LogSigmoidCentered.Transform"/>.</item>
/// </list>
/// </summary>
public static class ReferenceReward
{
    /// <summary>The quantile the LSC paper reportedly uses (85th percentile; corroborated by two reimplementations).</summary>
    public const double DefaultQuantile = 0.85;

    /// <summary>
    /// <c>r_ref = μ + Φ⁻¹(q)·σ</c> with μ the mean and σ the <b>population</b> standard deviation (divide by S, numpy's
    /// <c>np.std</c> default) of the reference rewards; <c>Φ⁻¹(0.85) = 1.0364333894937898</c>. When σ = 0 (one sample, or all
    /// equal) the result is μ, the limit σ → 0 (scipy would return NaN for a zero scale).
    /// </summary>
    /// <param name="referenceRewards">[S] rewards of the reference responses to one prompt, S ≥ 1, all finite.</param>
    /// <param name="quantile">q in the open interval (0, 1).</param>
    /// <exception cref="ArgumentException">the set is empty, holds a NaN or infinite reward, or q is outside (0, 1).</exception>
    public static double NormalFit(ReadOnlySpan<double> referenceRewards, double quantile = DefaultQuantile)
    {
        CheckSamples(referenceRewards, nameof(referenceRewards));
        if (!(quantile > 0.0 && quantile < 1.0))
            throw new ArgumentOutOfRangeException(nameof(quantile), quantile,
                $"quantile = {quantile} is outside (0, 1): the normal-fit reference reward μ + Φ⁻¹(q)·σ is finite only for 0 < q < 1; " +
                $"pass e.g. {DefaultQuantile} (the LSC default), or use EmpiricalQuantile for q = 0 or 1 (the min or max reference reward).");

        // two passes, as np.mean / np.std: μ = Σ r / S, σ² = Σ (r − μ)² / S
        int s = referenceRewards.Length;
        double sum = 0.0;
        foreach (double r in referenceRewards) sum += r;
        double mean = sum / s;
        double squares = 0.0;
        foreach (double r in referenceRewards) squares += (r - mean) * (r - mean);
        double std = Math.Sqrt(squares / s);

        double rRef = std == 0.0 ? mean : mean + StandardNormal.InverseCdf(quantile) * std;
        if (!double.IsFinite(rRef))
            throw new ArgumentException(
                $"the reference rewards are too large in magnitude for a normal fit (mean {mean}, std {std}): rewards of a reward model are O(10); check the model output.",
                nameof(referenceRewards));
        return rRef;
    }

    /// <summary>
    /// The empirical q-quantile exactly as <c>np.quantile(r, q)</c> (default <c>method='linear'</c>, Hyndman–Fan type 7):
    /// sort ascending, <c>h = (S − 1)·q</c>, <c>r_ref = r₍⌊h⌋₎ + (h − ⌊h⌋)·(r₍⌊h⌋+1₎ − r₍⌊h⌋₎)</c>, evaluated with numpy's
    /// two-sided lerp. Example: quantile([1, 2, 3, 4], 0.85) = 3.55.
    /// </summary>
    /// <param name="referenceRewards">[S] rewards of the reference responses to one prompt, S ≥ 1, all finite. Not modified.</param>
    /// <param name="quantile">q in the closed interval [0, 1] (0 = min, 1 = max).</param>
    /// <exception cref="ArgumentException">the set is empty, holds a NaN or infinite reward, or q is outside [0, 1].</exception>
    public static double EmpiricalQuantile(ReadOnlySpan<double> referenceRewards, double quantile = DefaultQuantile)
    {
        CheckSamples(referenceRewards, nameof(referenceRewards));
        if (!(quantile >= 0.0 && quantile <= 1.0))
            throw new ArgumentOutOfRangeException(nameof(quantile), quantile,
                $"quantile = {quantile} is outside [0, 1]: pass a probability, e.g. {DefaultQuantile} (the LSC default).");

        double[] sorted = referenceRewards.ToArray();
        Array.Sort(sorted);
        double h = (sorted.Length - 1) * quantile;           // numpy 'linear': virtual index (n − 1)·q
        int lo = (int)Math.Floor(h);
        int hi = Math.Min(lo + 1, sorted.Length - 1);
        double t = h - lo;
        double a = sorted[lo], b = sorted[hi], diff = b - a;
        return t >= 0.5 ? b - diff * (1.0 - t) : a + diff * t; // numpy _lerp: exact at both ends, monotone
    }

    /// <summary>Dispatches to <see cref="NormalFit"/> or <see cref="EmpiricalQuantile"/>.</summary>
    public static double Compute(ReadOnlySpan<double> referenceRewards, ReferenceRewardMethod method, double quantile = DefaultQuantile) =>
        method switch
        {
            ReferenceRewardMethod.NormalFit => NormalFit(referenceRewards, quantile),
            ReferenceRewardMethod.EmpiricalQuantile => EmpiricalQuantile(referenceRewards, quantile),
            _ => throw new ArgumentOutOfRangeException(nameof(method), method,
                $"unknown reference-reward method {method}: use NormalFit or EmpiricalQuantile."),
        };

    /// <summary>
    /// One reference reward per objective: column k of the [S, K] matrix of reference-sample rewards gives r_ref[k].
    /// </summary>
    /// <param name="referenceRewards">[S][K]: row s holds the K objective rewards of reference response s; S ≥ 1, every row of
    /// the same length K ≥ 1.</param>
    /// <param name="method">normal fit or empirical quantile, applied to each objective's column.</param>
    /// <param name="quantile">q, as for the chosen method.</param>
    /// <returns>[K] reference rewards.</returns>
    /// <exception cref="ArgumentException">no rows, ragged rows, a NaN/infinite reward, or an invalid quantile.</exception>
    public static double[] PerObjective(
        IReadOnlyList<IReadOnlyList<double>> referenceRewards, ReferenceRewardMethod method, double quantile = DefaultQuantile)
    {
        ArgumentNullException.ThrowIfNull(referenceRewards);
        if (referenceRewards.Count == 0)
            throw new ArgumentException(
                "referenceRewards has no rows: the reference reward needs the rewards of at least one reference response to this prompt; " +
                "score some (e.g. samples of the base policy), or pass r_ref directly.", nameof(referenceRewards));
        int k = referenceRewards[0]?.Count ?? 0;
        if (k == 0)
            throw new ArgumentException("referenceRewards[0] has no objectives: each row must hold the K objective rewards of one reference response.",
                nameof(referenceRewards));
        for (int s = 0; s < referenceRewards.Count; s++)
        {
            IReadOnlyList<double>? row = referenceRewards[s];
            int len = row?.Count ?? 0;
            if (len != k)
                throw new ArgumentException(
                    $"referenceRewards[{s}] has {len} objective rewards but row 0 has {k}: every reference response must be scored on the same objectives.",
                    nameof(referenceRewards));
            for (int j = 0; j < k; j++)
                if (!double.IsFinite(row![j]))
                    throw new ArgumentException(
                        $"referenceRewards[{s}][{j}] (response {s}, objective {j}) is {row[j]}: every reference reward must be finite; " +
                        "check the model output for that response (NaN usually means a broken or fp16-overflowed graph) or leave the response out.",
                        nameof(referenceRewards));
        }

        // [S, K] → column j [S] → r_ref[j]
        var column = new double[referenceRewards.Count];
        var result = new double[k];
        for (int j = 0; j < k; j++)
        {
            for (int s = 0; s < column.Length; s++) column[s] = referenceRewards[s][j];
            result[j] = Compute(column, method, quantile);
        }
        return result;
    }

    static void CheckSamples(ReadOnlySpan<double> rewards, string paramName)
    {
        if (rewards.IsEmpty)
            throw new ArgumentException(
                $"{paramName} is empty: the reference reward r_ref(x) needs the rewards of at least one reference response to this prompt; " +
                "score some (e.g. samples of the base policy), or pass r_ref directly to LogSigmoidCentered.Transform.", paramName);
        for (int i = 0; i < rewards.Length; i++)
            if (!double.IsFinite(rewards[i]))
                throw new ArgumentException(
                    $"{paramName}[{i}] is {rewards[i]}: every reference reward must be finite; check the model output for that response " +
                    "(NaN usually means a broken or fp16-overflowed graph) or leave the response out.", paramName);
    }
}
