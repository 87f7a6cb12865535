using OnnxReward.Export.Checkpoints;
using OnnxReward.Runtime;
using static TorchSharp.torch;

namespace OnnxReward.Training.Reference;

/// <summary>
/// The TorchSharp reference model behind the library's backend seam: <c>RewardModel.Create(modelDir, new
/// TorchRewardBackend(checkpoint))</c> scores through the same encoder, token-budget batches and
/// <see cref="RewardScorer"/> as the ONNX Runtime session, so tests and benchmarks compare the two backends on
/// identical batches. fp32 on the CPU, no posterior (score_std) — the reference has none. Thread-safe: runs are
/// serialized (TorchSharp modules are not re-entrant), and a cancelled token stops before the next batch.
/// </summary>
public sealed class TorchRewardBackend : IRewardBackend
{
    // B = rows, T = padded length, K = objectives, D = hidden size.
    private readonly ReferenceRewardModel _model;
    private readonly Lock _gate = new();
    private int _disposed;

    /// <summary>Loads <paramref name="checkpoint"/> (a Hugging Face-layout ArmoRM checkpoint folder) into TorchSharp.</summary>
    /// <exception cref="CheckpointException">The checkpoint cannot be read.</exception>
    public TorchRewardBackend(string checkpoint)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        var ckpt = HuggingFaceCheckpoint.Open(checkpoint);
        _model = ReferenceRewardModel.Load(ckpt);
    }

    /// <inheritdoc/>
    public string Name => "TorchSharp";

    /// <inheritdoc/>
    public bool HasScoreStd => false;

    /// <inheritdoc/>
    public bool HasEmbedding => true;

    /// <inheritdoc/>
    public void Run(IReadOnlyList<ReadOnlyMemory<int>> inputIds, ReadOnlySpan<int> rewardPositions, ReadOnlySpan<int> gatingPositions,
        int paddedLength, RewardOutputs outputs, in RewardBatchOutputs results, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        cancellationToken.ThrowIfCancellationRequested();
        var b = inputIds.Count;
        var pad = _model.Config.PadTokenId ?? 0;
        var ids = new long[b * paddedLength];                                  // [B, T], right-padded
        Array.Fill(ids, pad);
        var reward = new long[b];
        var gating = new long[b];
        for (var r = 0; r < b; r++)
        {
            var row = inputIds[r].Span;
            for (var j = 0; j < row.Length; j++)
                ids[r * paddedLength + j] = row[j];
            reward[r] = rewardPositions[r];
            gating[r] = gatingPositions[r];
        }
        float[] score, rewards, gate, hidden;
        lock (_gate)
        {
            using var noGrad = no_grad();
            using var scope = NewDisposeScope();
            using var o = _model.Forward(tensor(ids, [b, paddedLength]), tensor(reward), tensor(gating));
            score = o.Score.data<float>().ToArray();                          // [B]
            rewards = o.Rewards.data<float>().ToArray();                      // [B·K]
            gate = o.Gating.data<float>().ToArray();                          // [B·K]
            hidden = o.RewardHidden.data<float>().ToArray();                  // [B·D]
        }
        cancellationToken.ThrowIfCancellationRequested();
        if ((outputs & RewardOutputs.Head) != 0)
        {
            score.CopyTo(results.Score);
            rewards.CopyTo(results.Rewards);
            gate.CopyTo(results.Gating);
        }
        if ((outputs & RewardOutputs.Embedding) != 0)
            hidden.CopyTo(results.Embedding);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
            _model.Dispose();
    }
}
