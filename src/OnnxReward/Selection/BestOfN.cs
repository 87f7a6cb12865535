// Shape legend: n = candidate responses to one prompt, K = objectives.
using OnnxReward.Transforms;

namespace OnnxReward.Selection;

/// <summary>Which uncertainty penalty <see cref="BestOfN.SelectUncertaintyPenalized(ReadOnlySpan{double}, ReadOnlySpan{double}, double, UncertaintyPenalty)"/> applies.</summary>
public enum UncertaintyPenalty
{
    /// <summary><c>r̃ = μ − k·σ</c> (std-based penalty).</summary>
    StandardDeviation,

    /// <summary><c>r̃ = μ − k·σ²</c> (variance-based penalty).</summary>
    Variance,
}

/// <summary>
/// Best-of-n selection: pick one of n candidate responses to a prompt by the reward model's score (<see cref="ArgMax"/>), by
/// an uncertainty-penalized score (Yang et al. 2024, Bayesian reward models, docs/armorm.md §5:
/// <see cref="SelectUncertaintyPenalized(ReadOnlySpan{double}, ReadOnlySpan{double}, double, UncertaintyPenalty)"/>), or by the
/// LSC-AND of several objectives (<see cref="SelectByLscAnd(IReadOnlyList{IReadOnlyList{double}}, ReadOnlySpan{double}, ObjectiveSubset?)"/>).
/// <para><b>Ties</b>: every rule returns the <b>lowest index</b> among equal best keys (the first candidate generated wins);
/// <see cref="BestOfNEstimator"/> ranks ties the same way.</para>
/// </summary>
public static class BestOfN
{
    /// <summary>The index of the largest score; ties → the lowest index.</summary>
    /// <param name="scores">[n] one score per candidate, n ≥ 1, none NaN (±∞ compare as usual).</param>
    /// <exception cref="ArgumentException">no candidate, or a NaN score.</exception>
    public static int ArgMax(ReadOnlySpan<double> scores)
    {
        RewardChecks.NotEmpty(scores, nameof(scores), "candidate score");
        int best = 0;
        for (int i = 0; i < scores.Length; i++)
        {
            if (double.IsNaN(scores[i]))
                throw new ArgumentException(
                    $"scores[{i}] is NaN: a NaN score cannot be ranked; check the model output for candidate {i} or leave it out.", nameof(scores));
            if (scores[i] > scores[best]) best = i;       // strict: an equal later score does not replace the earlier one
        }
        return best;
    }

    /// <summary>The penalized score <c>μ − k·σ</c> (<see cref="UncertaintyPenalty.StandardDeviation"/>) or <c>μ − k·σ²</c>
    /// (<see cref="UncertaintyPenalty.Variance"/>).</summary>
    /// <exception cref="ArgumentException">μ or σ not finite, σ &lt; 0, k negative or not finite, or an unknown penalty.</exception>
    public static double PenalizedScore(double mean, double std, double k, UncertaintyPenalty penalty = UncertaintyPenalty.StandardDeviation)
    {
        CheckK(k, penalty);
        RewardChecks.Finite(mean, nameof(mean));
        CheckStd(std, nameof(std));
        return Penalize(mean, std, k, penalty);
    }

    /// <summary>
    /// <c>argmax_i μ_i − k·σ_i</c> (or <c>μ_i − k·σ_i²</c>): prefer candidates the reward model is sure about. k = 0 is
    /// <see cref="ArgMax"/> of the means. Ties → the lowest index.
    /// </summary>
    /// <param name="means">[n] the score means μ (the model's <c>score</c>).</param>
    /// <param name="stds">[n] the score standard deviations σ ≥ 0 (the model's <c>score_std</c>).</param>
    /// <param name="k">the penalty weight, finite, ≥ 0. The papers' values were not published; Coste et al.'s ensemble
    /// pipeline uses 0.5 for a variance penalty in best-of-n.</param>
    /// <param name="penalty">std-based (default) or variance-based.</param>
    /// <exception cref="ArgumentException">no candidate, mismatched lengths, a NaN/infinite μ or σ, σ &lt; 0, or k invalid.</exception>
    public static int SelectUncertaintyPenalized(
        ReadOnlySpan<double> means, ReadOnlySpan<double> stds, double k, UncertaintyPenalty penalty = UncertaintyPenalty.StandardDeviation)
    {
        CheckK(k, penalty);
        CheckCandidates(means, stds.Length, nameof(stds));
        for (int i = 0; i < stds.Length; i++) CheckStd(stds[i], $"{nameof(stds)}[{i}]", nameof(stds));

        int best = 0;
        double bestKey = Penalize(means[0], stds[0], k, penalty);
        for (int i = 1; i < means.Length; i++)
        {
            double key = Penalize(means[i], stds[i], k, penalty);
            if (key > bestKey) { best = i; bestKey = key; }
        }
        return best;
    }

    /// <summary>
    /// As <see cref="SelectUncertaintyPenalized(ReadOnlySpan{double}, ReadOnlySpan{double}, double, UncertaintyPenalty)"/>, for
    /// standard deviations that a model without a posterior leaves null: a null σ is an error that says so, never silently 0.
    /// </summary>
    /// <exception cref="ArgumentException">as the other overload, or any σ is null (the model has no posterior).</exception>
    public static int SelectUncertaintyPenalized(
        ReadOnlySpan<double> means, ReadOnlySpan<double?> stds, double k, UncertaintyPenalty penalty = UncertaintyPenalty.StandardDeviation)
    {
        CheckCandidates(means, stds.Length, nameof(stds));
        var values = new double[stds.Length];
        for (int i = 0; i < stds.Length; i++)
        {
            values[i] = stds[i] ?? throw new ArgumentException(
                $"stds[{i}] is null: candidate {i} has no score standard deviation because the reward model has no posterior " +
                "(reward_model.json has_posterior = false), so uncertainty-penalized selection is undefined; " +
                "export a model with a posterior, or select by the score alone (ArgMax, i.e. k = 0).", nameof(stds));
        }
        return SelectUncertaintyPenalized(means, values, k, penalty);
    }

    /// <summary>
    /// <c>argmax_c Σ_{i∈S} log σ(r_{c,i} − r_i^ref)</c>: the candidate most likely to beat the reference on every selected
    /// objective (<see cref="RewardAggregation.LscAnd"/>). Ties → the lowest index (LSC saturates at 0, so candidates far above
    /// the reference on every objective can tie).
    /// </summary>
    /// <param name="candidateRewards">[n][K] the objective rewards of each candidate.</param>
    /// <param name="referenceRewards">[K] r_ref per objective for this prompt.</param>
    /// <param name="objectives">the objectives S; null = all K.</param>
    /// <exception cref="ArgumentException">no candidate, or any check of <see cref="RewardAggregation.LscAnd"/> fails (the
    /// message names the candidate).</exception>
    public static int SelectByLscAnd(
        IReadOnlyList<IReadOnlyList<double>> candidateRewards, ReadOnlySpan<double> referenceRewards, ObjectiveSubset? objectives = null) =>
        ArgMax(LscAndKeys(candidateRewards, referenceRewards, objectives));

    /// <summary>
    /// The selection key of <see cref="SelectByLscAnd(IReadOnlyList{IReadOnlyList{double}}, ReadOnlySpan{double}, ObjectiveSubset?)"/>
    /// for each candidate: <c>u_c = Σ_{i∈S} log σ(r_{c,i} − r_i^ref)</c> (<see cref="RewardAggregation.LscAnd"/>), [n].
    /// </summary>
    /// <exception cref="ArgumentException">no candidate, a null candidate, or any check of <see cref="RewardAggregation.LscAnd"/>
    /// fails (the message names the candidate).</exception>
    public static double[] LscAndKeys(
        IReadOnlyList<IReadOnlyList<double>> candidateRewards, ReadOnlySpan<double> referenceRewards, ObjectiveSubset? objectives = null)
    {
        ArgumentNullException.ThrowIfNull(candidateRewards);
        if (candidateRewards.Count == 0)
            throw new ArgumentException("candidateRewards is empty: pass at least one candidate's objective rewards.", nameof(candidateRewards));
        var keys = new double[candidateRewards.Count];
        for (int c = 0; c < keys.Length; c++)
        {
            IReadOnlyList<double> row = candidateRewards[c]
                ?? throw new ArgumentException($"candidateRewards[{c}] is null: pass the objective rewards of every candidate.", nameof(candidateRewards));
            double[] rewards = row as double[] ?? row.ToArray();
            try
            {
                keys[c] = RewardAggregation.LscAnd(rewards, referenceRewards, objectives);
            }
            catch (ArgumentException e)
            {
                throw new ArgumentException($"candidate {c}: {StripParamSuffix(e)}", nameof(candidateRewards), e);
            }
        }
        return keys;
    }

    /// <summary>
    /// <see cref="SelectUncertaintyPenalized(ReadOnlySpan{double}, ReadOnlySpan{double?}, double, UncertaintyPenalty)"/> over
    /// scored candidates: μ = <see cref="RewardScore.Score"/>, σ = <see cref="RewardScore.ScoreStd"/>. A model without a posterior
    /// leaves σ null, and this throws saying so.
    /// </summary>
    /// <exception cref="ArgumentException">no candidate, a null candidate, a missing σ (no posterior), or any check of the
    /// other overload fails.</exception>
    public static int SelectUncertaintyPenalized(
        IReadOnlyList<RewardScore> candidates, double k, UncertaintyPenalty penalty = UncertaintyPenalty.StandardDeviation)
    {
        CheckScores(candidates);
        var means = new double[candidates.Count];
        var stds = new double?[candidates.Count];
        for (int i = 0; i < means.Length; i++)
        {
            means[i] = candidates[i].Score;
            stds[i] = candidates[i].ScoreStd;
        }
        return SelectUncertaintyPenalized(means, stds, k, penalty);
    }

    /// <summary><see cref="SelectByLscAnd(IReadOnlyList{IReadOnlyList{double}}, ReadOnlySpan{double}, ObjectiveSubset?)"/> over
    /// scored candidates' objective rewards (<see cref="RewardScore.RewardValues"/>).</summary>
    public static int SelectByLscAnd(
        IReadOnlyList<RewardScore> candidates, ReadOnlySpan<double> referenceRewards, ObjectiveSubset? objectives = null) =>
        ArgMax(LscAndKeys(candidates, referenceRewards, objectives));

    /// <summary><see cref="LscAndKeys(IReadOnlyList{IReadOnlyList{double}}, ReadOnlySpan{double}, ObjectiveSubset?)"/> over
    /// scored candidates' objective rewards (<see cref="RewardScore.RewardValues"/>).</summary>
    /// <exception cref="ArgumentException">no candidate, a null candidate, or any check of the other overload fails.</exception>
    public static double[] LscAndKeys(
        IReadOnlyList<RewardScore> candidates, ReadOnlySpan<double> referenceRewards, ObjectiveSubset? objectives = null)
    {
        CheckScores(candidates);
        var rewards = new double[candidates.Count][];
        for (int c = 0; c < rewards.Length; c++)
            rewards[c] = candidates[c].RewardValues.Select(v => (double)v).ToArray();
        return LscAndKeys(rewards, referenceRewards, objectives);
    }

    static void CheckScores(IReadOnlyList<RewardScore> candidates)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        if (candidates.Count == 0)
            throw new ArgumentException("candidates is empty: pass the scores of at least one candidate response.", nameof(candidates));
        for (int i = 0; i < candidates.Count; i++)
            if (candidates[i] is null)
                throw new ArgumentException($"candidates[{i}] is null: pass a score for every candidate.", nameof(candidates));
    }

    static double Penalize(double mean, double std, double k, UncertaintyPenalty penalty) =>
        penalty == UncertaintyPenalty.Variance ? mean - k * (std * std) : mean - k * std;

    static void CheckK(double k, UncertaintyPenalty penalty)
    {
        if (!(k >= 0.0 && double.IsFinite(k)))
            throw new ArgumentOutOfRangeException(nameof(k), k,
                $"k = {k}: the uncertainty penalty weight must be a finite number ≥ 0 (0 = plain argmax of the mean; larger = more cautious).");
        if (penalty is not (UncertaintyPenalty.StandardDeviation or UncertaintyPenalty.Variance))
            throw new ArgumentOutOfRangeException(nameof(penalty), penalty,
                $"unknown penalty {penalty}: use StandardDeviation (μ − kσ) or Variance (μ − kσ²).");
    }

    static void CheckCandidates(ReadOnlySpan<double> means, int stdCount, string stdsName)
    {
        RewardChecks.NotEmpty(means, nameof(means), "candidate");
        if (stdCount != means.Length)
            throw new ArgumentException(
                $"{stdsName} has {stdCount} values but means has {means.Length}: pass one standard deviation per candidate.", stdsName);
        RewardChecks.Finite(means, nameof(means));
    }

    static void CheckStd(double std, string what, string? paramName = null)
    {
        if (!(std >= 0.0 && double.IsFinite(std)))
            throw new ArgumentException(
                $"{what} is {std}: a standard deviation must be a finite number ≥ 0; check the model's score_std output.", paramName ?? what);
    }

    static string StripParamSuffix(ArgumentException e) =>
        e.ParamName is null ? e.Message : e.Message.Replace($" (Parameter '{e.ParamName}')", "", StringComparison.Ordinal);
}
