using OnnxReward.Transforms;

namespace OnnxReward.Selection;

/// <summary>How <see cref="BestOfNSelector"/> picks a candidate.</summary>
public enum SelectionRule
{
    /// <summary>The highest score.</summary>
    Score,

    /// <summary>The highest Σ_k log σ(r_k − r_ref,k) over the chosen objectives (LSC-AND, armorm.md §4); needs reference
    /// responses (scored to get per-objective reference rewards).</summary>
    LscAnd,

    /// <summary>The highest μ − kσ (needs a model with a posterior).</summary>
    MeanMinusKStd,

    /// <summary>The highest μ − kσ² (needs a model with a posterior).</summary>
    MeanMinusKVariance,
}

/// <summary>Options for one best-of-n selection.</summary>
public sealed record BestOfNOptions
{
    public SelectionRule Rule { get; init; } = SelectionRule.Score;

    /// <summary>The penalty weight k of the μ − kσ rules (≥ 0).</summary>
    public double K { get; init; } = 1.0;

    /// <summary>Objectives the LSC-AND rule combines; null = all of them.</summary>
    public IReadOnlyList<string>? Objectives { get; init; }

    /// <summary>How reference rewards become r_ref: a normal fit μ + z_q σ (default) or the empirical quantile.</summary>
    public ReferenceRewardMethod ReferenceMethod { get; init; } = ReferenceRewardMethod.NormalFit;

    /// <summary>The quantile q of r_ref (0.85 by default, as in the LSC paper's reimplementations).</summary>
    public double Quantile { get; init; } = ReferenceReward.DefaultQuantile;
}

/// <summary>
/// One prompt and its candidate responses. Optional references set r_ref(x) for the LSC transform:
/// <see cref="ReferenceRewards"/> (scores of reference samples, e.g. from the base policy) or
/// <see cref="ReferenceResponses"/> (scored here; they also give per-objective references for LSC-AND).
/// </summary>
public sealed record BestOfNRequest(string Prompt, IReadOnlyList<string> Candidates,
    IReadOnlyList<double>? ReferenceRewards = null, IReadOnlyList<string>? ReferenceResponses = null);

/// <summary>The chosen candidate and every candidate's numbers.</summary>
/// <param name="Chosen">Index of the chosen candidate (ties → the lowest index).</param>
/// <param name="Scores">The model's score per candidate.</param>
/// <param name="Transformed">The selection key per candidate: log σ(score − r_ref) for <see cref="SelectionRule.Score"/>
/// when a reference exists (else null), the LSC-AND sum, or μ − kσ / μ − kσ².</param>
/// <param name="ScoreStd">σ per candidate when the model has a posterior, else null.</param>
/// <param name="ReferenceReward">r_ref(x) of the overall score when references were given.</param>
/// <param name="Candidates">The full scores (objectives, gating) of each candidate.</param>
public sealed record BestOfNResult(int Chosen, IReadOnlyList<double> Scores, IReadOnlyList<double>? Transformed,
    IReadOnlyList<double>? ScoreStd, double? ReferenceReward, IReadOnlyList<RewardScore> Candidates);

/// <summary>Scores the candidates of a <see cref="BestOfNRequest"/> with a model and selects one by a <see cref="SelectionRule"/>.</summary>
public static class BestOfNSelector
{
    /// <exception cref="ArgumentException">No candidates, an LSC-AND request without reference responses, or bad options.</exception>
    /// <exception cref="RewardModelException">A candidate cannot be scored, or a μ − kσ rule on a model without a posterior.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled (tokenization, template
    /// rendering and ONNX Runtime runs stop).</exception>
    public static BestOfNResult Select(RewardModel model, BestOfNRequest request, BestOfNOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(request);
        options ??= new BestOfNOptions();
        if (request.Candidates is null || request.Candidates.Count == 0)
            throw new ArgumentException("the request has no candidates: give at least one response to choose from.");
        if (request.Candidates.Any(c => c is null))
            throw new ArgumentException("a candidate is null: every candidate must be a string.");
        if (!(options.K >= 0) || double.IsInfinity(options.K))
            throw new ArgumentException($"k is {options.K}; it must be a finite number ≥ 0.");
        if (options.Rule == SelectionRule.LscAnd && (request.ReferenceResponses is null || request.ReferenceResponses.Count == 0))
            throw new ArgumentException(
                "the lsc-and rule needs reference_responses (responses of a reference policy to the same prompt): the per-objective " +
                "reference rewards r_ref(x) come from scoring them. The candidates themselves are not a reference.");
        if (options.Rule is SelectionRule.MeanMinusKStd or SelectionRule.MeanMinusKVariance && !model.HasPosterior)
            throw new RewardModelException(
                $"the {options.Rule} rule needs a score standard deviation, but this model has no posterior (its reward_model.json " +
                "says has_posterior: false" + (model.Manifest.IsClassifier ? "; a sequence-classification model has one logit and no posterior" : "") +
                "). Use --rule score" + (model.ObjectiveNames.Count > 0 ? " or lsc-and" : "") +
                ", or a model trained with a posterior (onnxreward-train).");
        if (options.Rule == SelectionRule.LscAnd && model.ObjectiveNames.Count == 0)
            throw new RewardModelException(
                "the lsc-and rule combines per-objective rewards, but this model has no objectives (its reward_model.json lists " +
                "none: a sequence-classification head has one logit). Use --rule score (with reference responses or rewards for the " +
                "LSC transform of the score), or a multi-objective (ArmoRM) model.");

        var references = request.ReferenceResponses ?? [];
        var all = request.Candidates.Concat(references).Select(r => Conversation.FromPromptResponse(request.Prompt, r)).ToList();
        var scored = model.Score(all, cancellationToken);
        var candidates = scored.Take(request.Candidates.Count).ToList();
        var referenceScores = scored.Skip(request.Candidates.Count).ToList();
        var scores = candidates.Select(c => (double)c.Score).ToArray();
        double[]? std = model.HasPosterior ? candidates.Select(c => (double)(c.ScoreStd ?? 0)).ToArray() : null;

        // r_ref of the overall score: given reference rewards, else the scored reference responses.
        double? rRef = request.ReferenceRewards is { Count: > 0 } given
            ? ReferenceReward.Compute(given.ToArray(), options.ReferenceMethod, options.Quantile)
            : referenceScores.Count > 0
                ? ReferenceReward.Compute(referenceScores.Select(s => (double)s.Score).ToArray(), options.ReferenceMethod, options.Quantile)
                : null;

        double[]? transformed;
        int chosen;
        switch (options.Rule)
        {
            case SelectionRule.Score:
                chosen = BestOfN.ArgMax(scores);
                transformed = rRef is { } r ? scores.Select(s => LogSigmoidCentered.Transform(s, r)).ToArray() : null;
                break;
            case SelectionRule.LscAnd:
            {
                var perObjective = ReferenceReward.PerObjective(
                    referenceScores.Select(s => (IReadOnlyList<double>)s.RewardValues.Select(v => (double)v).ToList()).ToList(),
                    options.ReferenceMethod, options.Quantile);
                var subset = options.Objectives is null ? ObjectiveSubset.All(model.ObjectiveNames.Count)
                    : ObjectiveSubset.FromNames(model.ObjectiveNames, options.Objectives);
                transformed = BestOfN.LscAndKeys(candidates, perObjective, subset);
                chosen = BestOfN.ArgMax(transformed);
                break;
            }
            default:
            {
                var penalty = options.Rule == SelectionRule.MeanMinusKStd ? UncertaintyPenalty.StandardDeviation : UncertaintyPenalty.Variance;
                transformed = scores.Select((m, i) => BestOfN.PenalizedScore(m, std![i], options.K, penalty)).ToArray();
                chosen = BestOfN.SelectUncertaintyPenalized(scores, std!, options.K, penalty);
                break;
            }
        }
        return new BestOfNResult(chosen, scores, transformed, std, rRef, candidates);
    }
}
