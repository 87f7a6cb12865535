namespace OnnxReward;

/// <summary>What kind of problem a <see cref="RewardModelException"/> reports, for callers that treat some kinds apart
/// (training skips over-long examples and counts them; a server maps every kind to 4xx).</summary>
public enum RewardErrorCode
{
    /// <summary>Any other problem; the message says which.</summary>
    Other,

    /// <summary>The input is longer than the length limit (and the truncation policy could not make it fit).</summary>
    InputTooLong,

    /// <summary>The input holds the pad token, which only ever pads (it would move the reward position).</summary>
    PadTokenInInput,
}

/// <summary>
/// A model directory, an execution provider or an input that cannot be used as asked. The message names the problem
/// and the fix; <see cref="InputIndex"/> names the offending input (0-based) when one is to blame.
/// </summary>
public sealed class RewardModelException : Exception
{
    public RewardModelException(string message, int? inputIndex = null, Exception? inner = null, RewardErrorCode code = RewardErrorCode.Other)
        : base(message, inner)
    {
        InputIndex = inputIndex;
        Code = code;
    }

    /// <summary>Index of the input (conversation) the error is about, when there is one.</summary>
    public int? InputIndex { get; }

    /// <summary>The kind of problem.</summary>
    public RewardErrorCode Code { get; }
}
