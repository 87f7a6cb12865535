using System.Diagnostics;
using OnnxReward.Export.Checkpoints;
using static TorchSharp.torch;

namespace OnnxReward.Training.Reference;

// Shape legend: B = sequences, T_i = length of sequence i, D = hidden_size, Dh = head_dim, K = num_objectives.

/// <summary>
/// The TorchSharp fp32 reference of an ArmoRM checkpoint too large to hold in fp32 (Llama-3-8B: ~30 GB), computed one
/// decoder layer at a time: each sequence's embedding rows are read from the checkpoint (no fp32 table), then for each
/// layer i the <see cref="LlamaDecoderLayer"/> is built, loaded from <c>model.layers.{i}.*</c> (bf16 → fp32, exact),
/// applied to every sequence's hidden states and disposed; then <c>model.norm</c> and the <see cref="ArmoRmHead"/> as
/// <see cref="ReferenceRewardModel.Forward"/> does. The modules, the loading rule and the position rules are the
/// whole-model reference's own (<see cref="ReferenceRewardModel.CopyIn"/>, <see cref="TorchReference.Positions"/>);
/// only the order of the loops differs (layers outside, sequences inside), so the results equal the whole model's
/// batch-of-one forward. Peak memory: one layer's fp32 weights (0.87 GB at 8B widths) plus every sequence's hidden
/// states (T_i × D × 4 bytes each) plus one sequence's attention scores (H × T_i² × 4 bytes).
/// </summary>
public static class LayerStreamingReference
{
    /// <summary>
    /// ArmoRM outputs per sequence (each sequence runs alone, unpadded). Positions default to the reference rules
    /// (<see cref="TorchReference.Score(ReferenceRewardModel, IReadOnlyList{long[]}, IReadOnlyList{long}?, IReadOnlyList{long}?)"/>).
    /// <paramref name="progress"/> gets one line per layer (seconds so far).
    /// </summary>
    /// <exception cref="ArgumentException">An empty batch or sequence, an id outside the vocabulary, a position outside
    /// its sequence, or no gating pattern.</exception>
    /// <exception cref="InvalidOperationException">The checkpoint has no ArmoRM head.</exception>
    /// <exception cref="CheckpointException">A tensor is missing or has another shape.</exception>
    public static IReadOnlyList<ReferenceReward> Score(Checkpoint checkpoint, IReadOnlyList<long[]> ids,
        IReadOnlyList<long>? rewardPositions = null, IReadOnlyList<long>? gatingPositions = null, Action<string>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        var headConfig = checkpoint.Head ?? throw new InvalidOperationException(
            $"The checkpoint at {checkpoint.Location} has no ArmoRM head (no regression_layer / gating tensors), so it has no reward.");
        var (reward, gating) = TorchReference.Positions(ids, rewardPositions, gatingPositions);
        var config = checkpoint.Config;
        for (var i = 0; i < ids.Count; i++)
            for (var j = 0; j < ids[i].Length; j++)
                if (ids[i][j] < 0 || ids[i][j] >= config.VocabSize)
                    throw new ArgumentException(
                        $"Sequence {i} has id {ids[i][j]} at position {j}, outside the vocabulary [0, {config.VocabSize}). " +
                        "Tokenize with this checkpoint's tokenizer.", nameof(ids));

        var clock = Stopwatch.StartNew();
        using var noGrad = no_grad();
        var hidden = new Tensor[ids.Count];                                          // each [1, T_i, D]
        var rotary = new Dictionary<long, (Tensor Cos, Tensor Sin)>();               // [T_i, Dh] by length
        try
        {
            for (var i = 0; i < ids.Count; i++)
            {
                hidden[i] = Embed(checkpoint, ids[i]);
                if (!rotary.ContainsKey(ids[i].Length))
                    rotary[ids[i].Length] = LlamaRotary.CosSin(ids[i].Length, config);
            }
            for (var layerIndex = 0; layerIndex < config.NumHiddenLayers; layerIndex++)
            {
                using (var layer = new LlamaDecoderLayer(config))
                {
                    ReferenceRewardModel.CopyIn(layer, checkpoint, $"model.layers.{layerIndex}.");
                    layer.eval();
                    for (var i = 0; i < hidden.Length; i++)
                    {
                        var (cos, sin) = rotary[ids[i].Length];
                        var next = layer.forward(hidden[i], cos, sin);               // [1, T_i, D]
                        hidden[i].Dispose();
                        hidden[i] = next;
                    }
                }
                progress?.Invoke($"layer {layerIndex + 1}/{config.NumHiddenLayers}: {clock.Elapsed.TotalSeconds:F1} s");
            }

            using var scope = NewDisposeScope();
            using var norm = new LlamaRMSNorm(config.HiddenSize, config.RmsNormEps);
            ReferenceRewardModel.CopyIn(norm, checkpoint, "model.norm.");
            using var head = new ArmoRmHead(config.HiddenSize, headConfig);
            ReferenceRewardModel.CopyIn(head, checkpoint);
            head.eval();
            var rewardRows = new Tensor[ids.Count];
            var promptRows = new Tensor[ids.Count];
            for (var i = 0; i < ids.Count; i++)
            {
                var last = norm.forward(hidden[i])[0];                                 // [T_i, D] = last_hidden_state
                rewardRows[i] = last[reward[i]];                                       // [D] = h_r
                promptRows[i] = last[gating[i]];                                       // [D] = h_p
            }
            var rewardHidden = stack(rewardRows);                                      // [B, D]
            var promptHidden = stack(promptRows);                                      // [B, D]
            using var o = head.forward(rewardHidden, promptHidden);                    // [B], [B, K], [B, K]
            return TorchReference.Unbatch(o.Score, o.Rewards, o.Gating, rewardHidden, promptHidden);
        }
        finally
        {
            foreach (var h in hidden)
                h?.Dispose();
            foreach (var (cos, sin) in rotary.Values)
            {
                cos.Dispose();
                sin.Dispose();
            }
        }
    }

    /// <summary>embed_tokens.forward for one sequence: its rows of <c>model.embed_tokens.weight</c> [V, D], read one
    /// by one (bf16 → fp32, exact, as the whole model's fp32 table holds them) → [1, T, D].</summary>
    private static Tensor Embed(Checkpoint checkpoint, long[] ids)
    {
        const string name = "model.embed_tokens.weight";
        var d = checkpoint.Config.HiddenSize;
        var rows = new float[ids.Length * d];
        for (var j = 0; j < ids.Length; j++)
            checkpoint.Tensors.ReadFloat32Range(name, ids[j] * d, rows.AsSpan(j * d, d));
        return tensor(rows, [1, ids.Length, d]);
    }
}
