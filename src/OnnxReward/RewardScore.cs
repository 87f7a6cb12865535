namespace OnnxReward;

/// <summary>
/// The reward of one conversation: the gated score, the named objective rewards and gating weights that explain it,
/// and its standard deviation when the model carries a posterior. For a sequence-classification reward model
/// (Skywork-Reward, FsfairX, …) the score is its one logit, <see cref="Logits"/> holds the head's raw output, and there
/// are no objectives, gating weights or standard deviation.
/// </summary>
public sealed class RewardScore
{
    internal RewardScore(float score, float[] rewards, float[] gating, float? scoreStd, int tokenCount, IReadOnlyList<string> names,
        float[]? logits = null)
    {
        Logits = logits ?? [];
        Score = score;
        RewardValues = rewards;
        GatingValues = gating;
        ScoreStd = scoreStd;
        TokenCount = tokenCount;
        ObjectiveNames = names;
    }

    /// <summary>ArmoRM: score = Σ_k gating_k · (rewards · T)_k (armorm.md §1.3). A sequence classifier: its logit.</summary>
    public float Score { get; }

    /// <summary>Standard deviation of <see cref="Score"/> under the head's posterior (fixed gating); null when the
    /// model has no posterior.</summary>
    public float? ScoreStd { get; }

    /// <summary>Tokens scored (after the chat template and any truncation policy).</summary>
    public int TokenCount { get; }

    /// <summary>The sequence-classification head's logits (num_labels values; <see cref="Score"/> is the one logit of a
    /// reward model); empty for an ArmoRM model, whose score is gated.</summary>
    public IReadOnlyList<float> Logits { get; }

    /// <summary>Objective names, in the model's fixed order (empty for a sequence classifier).</summary>
    public IReadOnlyList<string> ObjectiveNames { get; }

    /// <summary>Objective rewards in <see cref="ObjectiveNames"/> order (before the transform matrix).</summary>
    public IReadOnlyList<float> RewardValues { get; }

    /// <summary>Gating weights in <see cref="ObjectiveNames"/> order (non-negative, summing to the model's logit_scale).</summary>
    public IReadOnlyList<float> GatingValues { get; }

    /// <summary>Objective rewards by name.</summary>
    public IReadOnlyDictionary<string, float> Objectives => ToDictionary(RewardValues);

    /// <summary>Gating weights by name.</summary>
    public IReadOnlyDictionary<string, float> Gating => ToDictionary(GatingValues);

    private Dictionary<string, float> ToDictionary(IReadOnlyList<float> values)
    {
        var d = new Dictionary<string, float>(ObjectiveNames.Count, StringComparer.Ordinal);
        for (var i = 0; i < ObjectiveNames.Count; i++)
            d[ObjectiveNames[i]] = values[i];
        return d;
    }

    public override string ToString() => ScoreStd is { } s ? $"{Score:G6} ± {s:G4}" : Score.ToString("G6");
}
