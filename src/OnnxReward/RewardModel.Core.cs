using OnnxReward.Batching;
using OnnxReward.Model;
using OnnxReward.Runtime;

namespace OnnxReward;

/// <summary>One tokenized input ready for the graph: ids plus the two positions the graph gathers.</summary>
internal readonly record struct ScoringRow(ReadOnlyMemory<int> Ids, int RewardPosition, int GatingPosition);

public sealed partial class RewardModel
{
    // Core path shared by every public overload: rows → token-budget batches → session → results in input order.
    // Legend: N = inputs, B = rows in one batch, K = objectives, D = hidden size.

    internal IReadOnlyList<RewardScore> ScoreRows(IReadOnlyList<ScoringRow> rows, CancellationToken cancellationToken = default)
    {
        RequireReward();
        var n = rows.Count;
        var k = _session.Objectives;
        var score = new float[n];
        var rewards = new float[n * k];
        var gating = new float[n * k];
        var std = _session.HasScoreStd ? new float[n] : null;
        var l = _session.Labels;
        var logits = new float[n * l];
        RunBatches(rows, RunOutputs.Head, (plan, batchRows, buffers) =>
        {
            for (var r = 0; r < plan.Items.Length; r++)
            {
                var i = plan.Items[r];
                score[i] = buffers.Score[r];
                Array.Copy(buffers.Logits, r * l, logits, i * l, l);
                Array.Copy(buffers.Rewards, r * k, rewards, i * k, k);
                Array.Copy(buffers.Gating, r * k, gating, i * k, k);
                if (std is not null)
                    std[i] = buffers.Std[r];
            }
        }, cancellationToken);

        var results = new RewardScore[n];
        for (var i = 0; i < n; i++)
            results[i] = new RewardScore(score[i], rewards.AsSpan(i * k, k).ToArray(), gating.AsSpan(i * k, k).ToArray(),
                std?[i], rows[i].Ids.Length, Manifest.Objectives, logits.AsSpan(i * l, l).ToArray());
        return results;
    }

    internal float[][] EmbedRows(IReadOnlyList<ScoringRow> rows, CancellationToken cancellationToken = default)
    {
        if (!_session.HasEmbeddingOutput)
            throw new RewardModelException("this model's graph has no 'embedding' output. Re-export it with this version's `onnxreward export`.");
        var d = _session.HiddenSize;
        var result = new float[rows.Count][];
        RunBatches(rows, RunOutputs.Embedding, (plan, _, buffers) =>
        {
            for (var r = 0; r < plan.Items.Length; r++)
                result[plan.Items[r]] = buffers.Embedding.AsSpan(r * d, d).ToArray();
        }, cancellationToken);
        return result;
    }

    private sealed class Buffers
    {
        public float[] Score = [], Rewards = [], Gating = [], Std = [], Embedding = [], Logits = [];
    }

    private void RunBatches(IReadOnlyList<ScoringRow> rows, RunOutputs what, Action<BatchPlan, ScoringRow[], Buffers> collect,
        CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if (rows.Count == 0)
            return;
        var lengths = new int[rows.Count];
        for (var i = 0; i < lengths.Length; i++)
            lengths[i] = rows[i].Ids.Length;
        var k = _session.Objectives;
        var d = _session.HiddenSize;
        var buffers = new Buffers();
        var batchIds = new List<ReadOnlyMemory<int>>(Options.MaxBatchSize);
        foreach (var plan in TokenBudgetBatcher.Plan(lengths, Options.MaxBatchTokens, Options.MaxBatchSize, Options.MaxPaddingWaste))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var b = plan.Items.Length;
            var batchRows = new ScoringRow[b];
            var rewardPos = new int[b];
            var gatingPos = new int[b];
            batchIds.Clear();
            for (var r = 0; r < b; r++)
            {
                batchRows[r] = rows[plan.Items[r]];
                batchIds.Add(batchRows[r].Ids);
                rewardPos[r] = batchRows[r].RewardPosition;
                gatingPos[r] = batchRows[r].GatingPosition;
            }
            Grow(ref buffers.Score, b);
            Grow(ref buffers.Rewards, b * k);
            Grow(ref buffers.Gating, b * k);
            Grow(ref buffers.Std, b);
            Grow(ref buffers.Logits, b * _session.Labels);
            if ((what & RunOutputs.Embedding) != 0)
                Grow(ref buffers.Embedding, b * d);
            _session.Run(batchIds, rewardPos, gatingPos, plan.PaddedLength, what, new OrtRewardSession.BatchOutputs
            {
                Score = buffers.Score.AsSpan(0, (what & RunOutputs.Head) != 0 ? b : 0),
                Rewards = buffers.Rewards.AsSpan(0, (what & RunOutputs.Head) != 0 ? b * k : 0),
                Gating = buffers.Gating.AsSpan(0, (what & RunOutputs.Head) != 0 ? b * k : 0),
                ScoreStd = buffers.Std.AsSpan(0, _session.HasScoreStd && (what & RunOutputs.Head) != 0 ? b : 0),
                Embedding = buffers.Embedding.AsSpan(0, (what & RunOutputs.Embedding) != 0 ? b * d : 0),
                Logits = buffers.Logits.AsSpan(0, (what & RunOutputs.Head) != 0 ? b * _session.Labels : 0),
            }, cancellationToken);
            collect(plan, batchRows, buffers);
        }
    }

    private static void Grow(ref float[] buffer, int length)
    {
        if (buffer.Length < length)
            buffer = new float[length];
    }

    private void RequireReward()
    {
        if (!Manifest.IsReward)
            throw new RewardModelException(
                "this is a backbone-only model (no reward head): it can embed but not score. Use `onnxreward embed`, " +
                "or export a checkpoint that has a reward head (ArmoRM, or a *ForSequenceClassification score head).");
    }
}
