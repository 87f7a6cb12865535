using OnnxReward.Export.Checkpoints;
using OnnxReward.Training.Reference;
using TorchSharp;
using static TorchSharp.torch;

namespace OnnxReward.Training.Pipeline;

/// <summary>
/// The analogue of ArmoRM's frozen FsfairX backbone: a small Llama trained from scratch as a Bradley–Terry reward model
/// on the preference training pairs. r(x, y) = wᵀ h_T (the final hidden state at the last token, after model.norm);
/// loss = −log σ(r(x, y⁺) − r(x, y⁻)). Shapes: B = pairs per batch, T = padded length, D = hidden size.
/// </summary>
internal sealed class BackboneTrainer : IDisposable
{
    public LlamaBackbone Backbone { get; }
    public nn.Module<Tensor, Tensor> ScoreHead { get; }
    public LlamaConfig Config { get; }
    public List<float> TrainLoss { get; } = [];
    public List<(int Step, float Accuracy)> ValidationAccuracy { get; } = [];

    public BackboneTrainer(LlamaConfig config, long seed)
    {
        torch.manual_seed(seed);
        Config = config;
        Backbone = new LlamaBackbone(config, hasLmHead: false);
        ScoreHead = nn.Linear(config.HiddenSize, 1, hasBias: false);
    }

    public void Train(EncodedDataset data, IReadOnlyList<(int Chosen, int Rejected)> trainPairs, IReadOnlyList<(int Chosen, int Rejected)> validationPairs,
        int epochs, int pairsPerBatch, double learningRate, long seed, IProgress<string>? progress)
    {
        var parameters = Backbone.parameters().Concat(ScoreHead.parameters()).ToList();
        using var optimizer = torch.optim.AdamW(parameters, lr: learningRate, weight_decay: 0.0);
        var rng = new Random((int)seed);
        var totalSteps = epochs * ((trainPairs.Count + pairsPerBatch - 1) / pairsPerBatch);
        var step = 0;
        for (var epoch = 0; epoch < epochs; epoch++)
        {
            // Shuffle, then sort within windows of 32 batches by length so batches pad little.
            var order = trainPairs.OrderBy(_ => rng.Next()).ToList();
            var batches = new List<List<(int, int)>>();
            for (var w = 0; w < order.Count; w += pairsPerBatch * 32)
            {
                var window = order.Skip(w).Take(pairsPerBatch * 32)
                    .OrderBy(p => Math.Max(data.Encoded[p.Chosen]!.TokenCount, data.Encoded[p.Rejected]!.TokenCount)).ToList();
                for (var b = 0; b < window.Count; b += pairsPerBatch)
                    batches.Add(window.Skip(b).Take(pairsPerBatch).ToList());
            }
            foreach (var batch in batches.OrderBy(_ => rng.Next()))
            {
                Backbone.train();
                using var scope = torch.NewDisposeScope();
                // Cosine decay of the learning rate to 10 % over the run.
                var lr = learningRate * (0.1 + 0.9 * 0.5 * (1 + Math.Cos(Math.PI * step / Math.Max(1, totalSteps))));
                foreach (var g in optimizer.ParamGroups)
                    g.LearningRate = lr;
                var rewards = Rewards(data, batch.SelectMany(p => new[] { p.Item1, p.Item2 }).ToList());   // [2B]
                var pairRewards = rewards.view(-1, 2);                                                     // [B, 2]
                var loss = -nn.functional.logsigmoid(pairRewards[.., 0] - pairRewards[.., 1]).mean();
                optimizer.zero_grad();
                loss.backward();
                nn.utils.clip_grad_norm_(parameters, 1.0);
                optimizer.step();
                TrainLoss.Add(loss.item<float>());
                step++;
                if (step % 50 == 0 || step == totalSteps)
                {
                    var acc = Accuracy(data, validationPairs);
                    ValidationAccuracy.Add((step, acc));
                    progress?.Report($"backbone step {step}/{totalSteps}: loss {TrainLoss.Skip(Math.Max(0, TrainLoss.Count - 50)).Average():F4}, validation accuracy {acc:P1}");
                }
            }
        }
    }

    /// <summary>r for each row (a dataset index), as one right-padded batch: [N].</summary>
    private Tensor Rewards(EncodedDataset data, IReadOnlyList<int> rows)
    {
        var (ids, positions) = Pad(data, rows);
        var hidden = Backbone.forward(ids);                                          // [N, T, D]
        var last = hidden.gather(1, positions.view(-1, 1, 1).expand(-1, 1, Config.HiddenSize)).squeeze(1); // [N, D]
        return ScoreHead.forward(last).squeeze(-1);                                 // [N]
    }

    public float Accuracy(EncodedDataset data, IReadOnlyList<(int Chosen, int Rejected)> pairs)
    {
        if (pairs.Count == 0)
            return float.NaN;
        Backbone.eval();
        using var _ = torch.no_grad();
        var correct = 0;
        foreach (var chunk in pairs.Chunk(32))
        {
            using var scope = torch.NewDisposeScope();
            var r = Rewards(data, chunk.SelectMany(p => new[] { p.Chosen, p.Rejected }).ToList()).view(-1, 2);
            correct += (r[.., 0] > r[.., 1]).sum().item<long>() is var c ? (int)c : 0;
        }
        return (float)correct / pairs.Count;
    }

    /// <summary>Right-pads rows with [PAD] (causal attention: real tokens never see the pads) → ids [N, T], reward positions [N].</summary>
    internal static (Tensor Ids, Tensor RewardPositions) Pad(EncodedDataset data, IReadOnlyList<int> rows)
    {
        var t = rows.Max(r => data.Encoded[r]!.TokenCount);
        var ids = new long[rows.Count * t];
        Array.Fill(ids, EncodedDataset.PadTokenId);
        var pos = new long[rows.Count];
        for (var i = 0; i < rows.Count; i++)
        {
            var e = data.Encoded[rows[i]]!;
            for (var j = 0; j < e.TokenCount; j++)
                ids[i * t + j] = e.InputIds.Span[j];
            pos[i] = e.RewardPosition;
        }
        return (torch.tensor(ids, [rows.Count, t]), torch.tensor(pos));
    }

    /// <summary>Final hidden states at the reward and gating positions of every usable row: two [N, D] arrays (NaN rows for unusable ones).</summary>
    public (float[,] Reward, float[,] Gating) Extract(EncodedDataset data, IProgress<string>? progress)
    {
        Backbone.eval();
        using var _ = torch.no_grad();
        int n = data.Encoded.Length, d = Config.HiddenSize;
        var reward = new float[n, d];
        var gating = new float[n, d];
        var usable = Enumerable.Range(0, n).Where(data.IsUsable).OrderBy(r => data.Encoded[r]!.TokenCount).ToList();
        var done = 0;
        foreach (var chunk in usable.Chunk(64))
        {
            using var scope = torch.NewDisposeScope();
            var (ids, rewardPos) = Pad(data, chunk);
            var hidden = Backbone.forward(ids);                                      // [N, T, D]
            var gatingPos = torch.tensor(chunk.Select(r => (long)data.Encoded[r]!.GatingPosition).ToArray());
            var hr = hidden.gather(1, rewardPos.view(-1, 1, 1).expand(-1, 1, d)).squeeze(1).contiguous().data<float>().ToArray();
            var hp = hidden.gather(1, gatingPos.view(-1, 1, 1).expand(-1, 1, d)).squeeze(1).contiguous().data<float>().ToArray();
            for (var i = 0; i < chunk.Length; i++)
                for (var k = 0; k < d; k++)
                {
                    reward[chunk[i], k] = hr[i * d + k];
                    gating[chunk[i], k] = hp[i * d + k];
                }
            done += chunk.Length;
            if (done % 2048 < 64)
                progress?.Report($"embeddings: {done}/{usable.Count}");
        }
        return (reward, gating);
    }

    /// <summary>Rounds the embedding table to fp16 values in place: the checkpoint stores it as F16 (half the size of the
    /// exported model), and extraction, export and scoring then all use exactly the same table.</summary>
    public void RoundEmbeddingsToHalf()
    {
        using var _ = torch.no_grad();
        var w = Backbone.EmbedWeight;
        w.copy_(w.to(ScalarType.Float16).to(ScalarType.Float32));
    }

    /// <summary>Backbone parameters by Hugging Face name, and the BT score head's weight.</summary>
    public IEnumerable<(string Name, long[] Shape, float[] Values)> BackboneParameters() =>
        Backbone.named_parameters().Select(p => (p.name, p.parameter.shape, p.parameter.detach().contiguous().data<float>().ToArray()));

    public float[] ScoreWeights() => ScoreHead.parameters().Single().detach().contiguous().data<float>().ToArray();

    public void Dispose()
    {
        Backbone.Dispose();
        ScoreHead.Dispose();
    }
}
