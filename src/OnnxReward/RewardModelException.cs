namespace OnnxReward;

/// <summary>
/// A model directory, an execution provider or an input that cannot be used as asked. The message names the problem
/// and the fix; <see cref="InputIndex"/> names the offending input (0-based) when one is to blame.
/// </summary>
public sealed class RewardModelException : Exception
{
    public RewardModelException(string message, int? inputIndex = null, Exception? inner = null)
        : base(message, inner) => InputIndex = inputIndex;

    /// <summary>Index of the input (conversation) the error is about, when there is one.</summary>
    public int? InputIndex { get; }
}
