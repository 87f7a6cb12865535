using OnnxReward.Export.Checkpoints;
using OnnxReward.Export.Exporting;
using static TorchSharp.torch;

namespace OnnxReward.Training.Reference;

// Shape legend: B = batch, T = seq (longest sequence), D = hidden_size, V = vocab_size, K = num_objectives.

/// <summary>
/// Reference outputs of a checkpoint for a batch of token-id sequences, as plain arrays, for tests and benchmarks that
/// compare another implementation (the exported ONNX graph) against the TorchSharp reference. Sequences of different
/// lengths run as one right-padded batch (pad_token_id, or 0 without one; causal attention keeps pads out of real
/// positions); outputs are per sequence, unpadded.
/// </summary>
internal static class TorchReference
{
    /// <summary>Loads <paramref name="checkpoint"/>, scores <paramref name="ids"/> and disposes the model.</summary>
    public static IReadOnlyList<ReferenceReward> Score(Checkpoint checkpoint, IReadOnlyList<long[]> ids,
        IReadOnlyList<long>? rewardPositions = null, IReadOnlyList<long>? gatingPositions = null)
    {
        using var model = ReferenceRewardModel.Load(checkpoint);
        return Score(model, ids, rewardPositions, gatingPositions);
    }

    /// <summary>
    /// ArmoRM outputs per sequence. Positions default to the reference rules (armorm.md §1.3): reward = the last token,
    /// gating = start of the last [128009, 128006, 78191, 128007, 271] (Llama-3 "end of user turn, assistant header").
    /// </summary>
    /// <exception cref="ArgumentException">An empty sequence, a position outside its sequence, or no gating pattern.</exception>
    public static IReadOnlyList<ReferenceReward> Score(ReferenceRewardModel model, IReadOnlyList<long[]> ids,
        IReadOnlyList<long>? rewardPositions = null, IReadOnlyList<long>? gatingPositions = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        var (reward, gating) = Positions(ids, rewardPositions, gatingPositions);

        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var inputIds = PadRight(ids, model.Config.PadTokenId ?? 0);               // [B, T]
        using var o = model.Forward(inputIds, tensor(reward), tensor(gating));
        return Unbatch(o.Score, o.Rewards, o.Gating, o.RewardHidden, o.PromptHidden);
    }

    /// <summary>
    /// The reward and gating position of each sequence: the given ones, else the reference rules (reward = the last
    /// token, gating = start of the last Llama-3 gating pattern), checked to lie inside the sequence.
    /// </summary>
    /// <exception cref="ArgumentException">An empty batch or sequence, a position outside its sequence, or no gating pattern.</exception>
    internal static (long[] Reward, long[] Gating) Positions(IReadOnlyList<long[]> ids, IReadOnlyList<long>? rewardPositions,
        IReadOnlyList<long>? gatingPositions)
    {
        CheckBatch(ids);
        var reward = new long[ids.Count];
        var gating = new long[ids.Count];
        for (var i = 0; i < ids.Count; i++)
        {
            reward[i] = rewardPositions?[i] ?? ids[i].Length - 1;
            gating[i] = gatingPositions?[i] ?? GatingPosition(ids[i])
                ?? throw new ArgumentException(
                    $"Sequence {i} has no [128009, 128006, 78191, 128007, 271] (<|eot_id|> + assistant header), so it has no " +
                    "gating position. Render it with the chat template, or pass gatingPositions.", nameof(ids));
            if (reward[i] < 0 || reward[i] >= ids[i].Length || gating[i] < 0 || gating[i] >= ids[i].Length)
                throw new ArgumentException(
                    $"Sequence {i} (length {ids[i].Length}) has reward position {reward[i]} / gating position {gating[i]} " +
                    "outside the sequence.", nameof(ids));
        }
        return (reward, gating);
    }

    /// <summary>Per-sequence records from the batched head outputs: score [B], rewards/gating [B, K], hidden [B, D].</summary>
    internal static IReadOnlyList<ReferenceReward> Unbatch(Tensor score, Tensor rewards, Tensor gating, Tensor rewardHidden, Tensor promptHidden)
    {
        float[] s = score.data<float>().ToArray(), r = rewards.data<float>().ToArray(), g = gating.data<float>().ToArray(),
            hr = rewardHidden.data<float>().ToArray(), hp = promptHidden.data<float>().ToArray();
        int b = (int)score.shape[0], k = (int)rewards.shape[1], d = (int)rewardHidden.shape[1];
        return Enumerable.Range(0, b).Select(i => new ReferenceReward(
            s[i], r[(i * k)..((i + 1) * k)], g[(i * k)..((i + 1) * k)],
            hr[(i * d)..((i + 1) * d)], hp[(i * d)..((i + 1) * d)])).ToArray();
    }

    /// <summary>Sequence-classifier outputs per sequence: the logits [L] and the pooled token's final hidden state [D]
    /// (the rows run as one batch right-padded with pad_token_id, which the pooling rule skips).</summary>
    public static IReadOnlyList<(float[] Logits, float[] PooledHidden)> Classify(ReferenceRewardModel model, IReadOnlyList<long[]> ids)
    {
        ArgumentNullException.ThrowIfNull(model);
        CheckBatch(ids);
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var inputIds = PadRight(ids, model.Config.PadTokenId ?? 0);               // [B, T]
        var (logits, pooled) = model.ForwardClassifier(inputIds);
        int l = (int)logits.shape[1], d = (int)pooled.shape[1];
        float[] lg = logits.data<float>().ToArray(), h = pooled.data<float>().ToArray();
        return Enumerable.Range(0, ids.Count).Select(i => (lg[(i * l)..((i + 1) * l)], h[(i * d)..((i + 1) * d)])).ToArray();
    }

    /// <summary>Backbone outputs per sequence: last_hidden_state at every position and the last position's logits
    /// (null when the checkpoint has no classifier).</summary>
    public static IReadOnlyList<ReferenceBackbone> Backbone(ReferenceRewardModel model, IReadOnlyList<long[]> ids)
    {
        ArgumentNullException.ThrowIfNull(model);
        CheckBatch(ids);
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var inputIds = PadRight(ids, model.Config.PadTokenId ?? 0);               // [B, T]
        using var o = model.ForwardBackbone(inputIds, withLogits: false);
        var d = (int)o.LastHiddenState.shape[2];
        var result = new ReferenceBackbone[ids.Count];
        for (var i = 0; i < ids.Count; i++)
        {
            var length = ids[i].Length;
            var hidden = o.LastHiddenState[i, TensorIndex.Slice(0, length)];        // [T_i, D]
            var last = hidden[length - 1];                                          // [D]
            float[]? logits = model.Backbone.HasClassifier ? model.Backbone.Logits(last).data<float>().ToArray() : null; // [V]
            result[i] = new ReferenceBackbone(length, d, hidden.contiguous().data<float>().ToArray(), logits);
        }
        return result;
    }

    /// <summary>Start of the last occurrence of the Llama-3 gating pattern, or null (find_token_for_gating): the
    /// library's one gating search (<see cref="OnnxReward.Text.InputEncoder.FindLast"/>) over the ids.</summary>
    public static long? GatingPosition(ReadOnlySpan<long> ids)
    {
        var ints = new int[ids.Length];
        for (var i = 0; i < ints.Length; i++)
            ints[i] = ids[i] is >= int.MinValue and <= int.MaxValue ? (int)ids[i] : -1;   // an id beyond int32 matches nothing
        var j = OnnxReward.Text.InputEncoder.FindLast(ints, ModelExporter.Llama3GatingTokenPattern);
        return j >= 0 ? j : null;
    }

    private static void CheckBatch(IReadOnlyList<long[]> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        if (ids.Count == 0)
            throw new ArgumentException("The batch is empty: pass at least one token-id sequence.", nameof(ids));
        for (var i = 0; i < ids.Count; i++)
            if (ids[i] is null || ids[i].Length == 0)
                throw new ArgumentException($"Sequence {i} is empty: every sequence needs at least one token.", nameof(ids));
    }

    private static Tensor PadRight(IReadOnlyList<long[]> ids, long padId)
    {
        var t = ids.Max(s => s.Length);
        var flat = new long[ids.Count * t];
        Array.Fill(flat, padId);
        for (var i = 0; i < ids.Count; i++)
            ids[i].CopyTo(flat, i * t);
        return tensor(flat, [ids.Count, t]);                                   // [B, T]
    }
}

/// <summary>One sequence's ArmoRM outputs: score, rewards [K], gating [K], reward_hidden [D], prompt_hidden [D].</summary>
public sealed record ReferenceReward(float Score, float[] Rewards, float[] Gating, float[] RewardHidden, float[] PromptHidden);

/// <summary>One sequence's last_hidden_state [Length, D] (row-major) and last-position logits [V] (or null).</summary>
internal sealed record ReferenceBackbone(int Length, int HiddenSize, float[] Hidden, float[]? LastLogits);
