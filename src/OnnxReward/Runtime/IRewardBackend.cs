namespace OnnxReward.Runtime;

/// <summary>The outputs a batch run should produce.</summary>
[Flags]
public enum RewardOutputs
{
    /// <summary>score [B], rewards [B·K], gating [B·K] (+ score_std [B] when the backend has a posterior); for a
    /// sequence classifier score [B] and logits [B·L].</summary>
    Head = 1,

    /// <summary>The final hidden state at the reward position, embedding [B·D].</summary>
    Embedding = 2,
}

/// <summary>Caller-owned output spans for one batch, row-major; a span is empty when its output was not requested.</summary>
public readonly ref struct RewardBatchOutputs
{
    /// <summary>score [B].</summary>
    public Span<float> Score { get; init; }

    /// <summary>Per-objective rewards [B·K].</summary>
    public Span<float> Rewards { get; init; }

    /// <summary>Gating weights [B·K].</summary>
    public Span<float> Gating { get; init; }

    /// <summary>Posterior standard deviation of the score [B] (empty without a posterior).</summary>
    public Span<float> ScoreStd { get; init; }

    /// <summary>Hidden state at the reward position [B·D].</summary>
    public Span<float> Embedding { get; init; }

    /// <summary>A sequence-classification head's logits [B·L] (empty for ArmoRM models).</summary>
    public Span<float> Logits { get; init; }
}

/// <summary>
/// The seam between batching and execution (TEI's <c>Backend</c>): runs one right-padded batch and fills the outputs.
/// <see cref="RewardModel"/> plans token-budget batches over it, and <see cref="RewardScorer"/> merges concurrent requests
/// into rounds over it, so every backend is compared through the same batcher. Implemented by the ONNX Runtime session
/// (CPU and CUDA execution providers) and, in OnnxReward.Training, by the TorchSharp reference model.
/// <para>Contract: row r is <c>inputIds[r]</c> right-padded to <c>paddedLength</c>; positions index into the unpadded row;
/// a row's outputs must not depend on the other rows (causal attention, right padding). Implementations are thread-safe
/// and stop promptly, throwing <see cref="OperationCanceledException"/>, when the token is cancelled.</para>
/// </summary>
public interface IRewardBackend : IDisposable
{
    /// <summary>What runs the batches, for logs and metrics (<c>CPU</c>, <c>CUDA</c>, <c>TorchSharp</c>).</summary>
    string Name { get; }

    /// <summary>True when <see cref="RewardBatchOutputs.ScoreStd"/> is filled (the model carries a posterior).</summary>
    bool HasScoreStd { get; }

    /// <summary>True when <see cref="RewardOutputs.Embedding"/> can be requested.</summary>
    bool HasEmbedding { get; }

    /// <summary>Runs one batch and writes the requested outputs.</summary>
    void Run(IReadOnlyList<ReadOnlyMemory<int>> inputIds, ReadOnlySpan<int> rewardPositions, ReadOnlySpan<int> gatingPositions,
        int paddedLength, RewardOutputs outputs, in RewardBatchOutputs results, CancellationToken cancellationToken = default);
}
