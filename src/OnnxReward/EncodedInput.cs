namespace OnnxReward;

/// <summary>
/// One input ready for the graph, as <see cref="Text.InputEncoder"/> produces it: token ids plus the two positions the fused
/// graph gathers (armorm.md §1.3), and what the truncation policy did. Immutable; created only by the encoder, so
/// every instance has been validated against the model's vocabulary, pad token and length limit.
/// </summary>
public sealed class EncodedInput
{
    private readonly int[] _ids;

    internal EncodedInput(int[] ids, int rewardPosition, int? gatingPosition, int droppedTurns = 0, int? originalTokenCount = null)
    {
        HasGatingPosition = gatingPosition is not null;
        _ids = ids;
        RewardPosition = rewardPosition;
        GatingPosition = gatingPosition ?? 0;
        DroppedTurns = droppedTurns;
        OriginalTokenCount = originalTokenCount ?? ids.Length;
    }

    /// <summary>The token ids, special tokens included, exactly as the graph sees them.</summary>
    public ReadOnlyMemory<int> InputIds => _ids;

    /// <summary>Number of tokens (the length of <see cref="InputIds"/>).</summary>
    public int TokenCount => _ids.Length;

    /// <summary>Where the reward head reads the final hidden state.</summary>
    public int RewardPosition { get; }

    /// <summary>Where the gating network reads the prompt's hidden state: the start of the last assistant header
    /// (0 where no gating position is needed: embedding, backbone-only models).</summary>
    public int GatingPosition { get; }

    /// <summary>False when the input was encoded without looking for a gating position (for embedding, or for a
    /// backbone-only model): such an input cannot be scored by a reward model.</summary>
    public bool HasGatingPosition { get; }

    /// <summary>Oldest turns removed by <see cref="TruncationPolicy.DropOldestTurns"/> (0: nothing was truncated).</summary>
    public int DroppedTurns { get; }

    /// <summary>Token count before truncation (equal to <see cref="TokenCount"/> when nothing was dropped).</summary>
    public int OriginalTokenCount { get; }

    /// <summary>True when the truncation policy shortened this input.</summary>
    public bool WasTruncated => DroppedTurns > 0;

    /// <summary>A copy of the ids.</summary>
    public int[] ToArray() => (int[])_ids.Clone();

    public override string ToString() =>
        $"EncodedInput({TokenCount} tokens, reward at {RewardPosition}, gating at {GatingPosition}" +
        (WasTruncated ? $", {DroppedTurns} turns dropped from {OriginalTokenCount} tokens)" : ")");
}

/// <summary>The result of encoding one input of a list: the encoded input, or the error that input alone caused.</summary>
public readonly record struct EncodeResult(EncodedInput? Input, RewardModelException? Error)
{
    /// <summary>True when the input encoded.</summary>
    public bool IsSuccess => Input is not null;
}
