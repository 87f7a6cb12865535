using System.Diagnostics;
using System.Runtime.CompilerServices;
using OnnxReward.Diagnostics;
using OnnxReward.Batching;
using OnnxReward.Runtime;
using OnnxReward.Text.Conversations;

namespace OnnxReward;

public sealed partial class RewardModel
{
    // Encoded inputs → token-budget batches → backend → results in input order. Every public overload below encodes
    // (EncodeAll) and then calls Score/Embed of encoded inputs: one path.
    // Legend: N = inputs, B = rows in one batch, K = objectives, D = hidden size.

    /// <summary>Scores encoded inputs in token-budget batches; results are in input order.</summary>
    /// <exception cref="RewardModelException">This is a backbone-only model, or an input was encoded without a gating
    /// position (for embedding).</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled; a running batch
    /// is stopped (ONNX Runtime's RunOptions.Terminate).</exception>
    public IReadOnlyList<RewardScore> Score(IReadOnlyList<EncodedInput> inputs, CancellationToken cancellationToken = default)
    {
        CheckScorable(inputs);
        var n = inputs.Count;
        var k = Manifest.Objectives.Count;
        var score = new float[n];
        var rewards = new float[n * k];
        var gating = new float[n * k];
        var std = _backend.HasScoreStd ? new float[n] : null;
        var l = Manifest.Labels.Count;
        var logits = new float[n * l];
        RunBatches(inputs, RewardOutputs.Head, (plan, buffers) =>
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
                std?[i], inputs[i].TokenCount, Manifest.Objectives, logits.AsSpan(i * l, l).ToArray());
        return results;
    }

    /// <summary>The final hidden state at the reward position of each encoded input (any encoding: gating is not used).</summary>
    /// <exception cref="RewardModelException">The graph has no embedding output.</exception>
    public IReadOnlyList<float[]> Embed(IReadOnlyList<EncodedInput> inputs, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        if (!_backend.HasEmbedding)
            throw new RewardModelException("this model's graph has no 'embedding' output. Re-export it with this version's `onnxreward export`.");
        for (var i = 0; i < inputs.Count; i++)
            if (inputs[i] is null)
                throw new RewardModelException($"input {i} is null.", i);
        var d = Manifest.HiddenSize;
        var result = new float[inputs.Count][];
        RunBatches(inputs, RewardOutputs.Embedding, (plan, buffers) =>
        {
            for (var r = 0; r < plan.Items.Length; r++)
                result[plan.Items[r]] = buffers.Embedding.AsSpan(r * d, d).ToArray();
        }, cancellationToken);
        return result;
    }

    /// <summary>Encodes and scores inputs of any form (conversations, templated text, token ids).</summary>
    /// <exception cref="RewardModelException">An input cannot be scored; <see cref="RewardModelException.InputIndex"/> names it.</exception>
    public IReadOnlyList<RewardScore> Score(IReadOnlyList<ScoringInput> inputs, CancellationToken cancellationToken = default) =>
        Score(EncodeAll(inputs, 0, forEmbedding: false, cancellationToken), cancellationToken);

    /// <summary>Scores one conversation.</summary>
    /// <exception cref="RewardModelException">The conversation cannot be scored.</exception>
    public RewardScore Score(Conversation conversation) => Score([conversation])[0];

    /// <summary>Scores conversations in batches; results are in input order.</summary>
    /// <exception cref="RewardModelException">An input cannot be scored; <see cref="RewardModelException.InputIndex"/> names it.</exception>
    public IReadOnlyList<RewardScore> Score(IReadOnlyList<Conversation> conversations, CancellationToken cancellationToken = default) =>
        Score(Inputs(conversations), cancellationToken);

    /// <summary>Scores conversations on the thread pool (ONNX Runtime work is CPU/GPU bound; this frees the caller).
    /// For many concurrent callers, <see cref="RewardScorer"/> merges their requests into shared batches.</summary>
    public Task<IReadOnlyList<RewardScore>> ScoreAsync(IReadOnlyList<Conversation> conversations, CancellationToken cancellationToken = default) =>
        Task.Run(() => Score(conversations, cancellationToken), cancellationToken);

    /// <summary>
    /// Scores a stream of conversations chunk by chunk (each chunk is batched by the token budget), yielding results in
    /// input order; memory stays bounded by <paramref name="chunkSize"/>.
    /// </summary>
    public async IAsyncEnumerable<RewardScore> ScoreStreamAsync(IAsyncEnumerable<Conversation> conversations, int chunkSize = 256,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(conversations);
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkSize, 1);
        var chunk = new List<Conversation>(chunkSize);
        var offset = 0;
        await foreach (var c in conversations.WithCancellation(cancellationToken))
        {
            chunk.Add(c);
            if (chunk.Count < chunkSize)
                continue;
            foreach (var r in await ScoreChunkAsync(chunk, offset, cancellationToken))
                yield return r;
            offset += chunk.Count;
            chunk = new List<Conversation>(chunkSize);
        }
        if (chunk.Count > 0)
            foreach (var r in await ScoreChunkAsync(chunk, offset, cancellationToken))
                yield return r;
    }

    private Task<IReadOnlyList<RewardScore>> ScoreChunkAsync(List<Conversation> chunk, int offset, CancellationToken ct) =>
        Task.Run(() => Score(EncodeAll(Inputs(chunk), offset, forEmbedding: false, ct), ct), ct);

    /// <summary>Scores already templated texts (special tokens in the text are recognised; no BOS is added).</summary>
    /// <exception cref="RewardModelException">A text cannot be scored; <see cref="RewardModelException.InputIndex"/> names it.</exception>
    public IReadOnlyList<RewardScore> ScoreTemplated(IReadOnlyList<string> texts, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(texts);
        var inputs = new ScoringInput[texts.Count];
        for (var i = 0; i < inputs.Length; i++)
            inputs[i] = new ScoringInput(null, texts[i] ?? throw new RewardModelException($"text {i} is null.", i), null);
        return Score(inputs, cancellationToken);
    }

    /// <summary>Scores already tokenized inputs (ids as the model's tokenizer produces them, special tokens included).</summary>
    /// <exception cref="RewardModelException">An input cannot be scored; <see cref="RewardModelException.InputIndex"/> names it.</exception>
    public IReadOnlyList<RewardScore> ScoreTokens(IReadOnlyList<int[]> inputIds, CancellationToken cancellationToken = default) =>
        Score(Ids(inputIds), cancellationToken);

    /// <summary>The final hidden state at the reward position of each conversation.</summary>
    public IReadOnlyList<float[]> Embed(IReadOnlyList<Conversation> conversations, CancellationToken cancellationToken = default) =>
        Embed(EncodeAll(Inputs(conversations), 0, forEmbedding: true, cancellationToken), cancellationToken);

    /// <summary>The final hidden state at the reward position of each input of any form.</summary>
    public IReadOnlyList<float[]> Embed(IReadOnlyList<ScoringInput> inputs, CancellationToken cancellationToken = default) =>
        Embed(EncodeAll(inputs, 0, forEmbedding: true, cancellationToken), cancellationToken);

    /// <summary>The final hidden state at the reward position for each input (works for backbone-only models too).</summary>
    public IReadOnlyList<float[]> EmbedTokens(IReadOnlyList<int[]> inputIds, CancellationToken cancellationToken = default) =>
        Embed(EncodeAll(Ids(inputIds), 0, forEmbedding: true, cancellationToken), cancellationToken);

    private static ScoringInput[] Inputs(IReadOnlyList<Conversation> conversations)
    {
        ArgumentNullException.ThrowIfNull(conversations);
        var inputs = new ScoringInput[conversations.Count];
        for (var i = 0; i < inputs.Length; i++)
            inputs[i] = new ScoringInput(conversations[i], null, null);      // a null conversation is input i's error
        return inputs;
    }

    private static ScoringInput[] Ids(IReadOnlyList<int[]> inputIds)
    {
        ArgumentNullException.ThrowIfNull(inputIds);
        var inputs = new ScoringInput[inputIds.Count];
        for (var i = 0; i < inputs.Length; i++)
            inputs[i] = new ScoringInput(null, null, inputIds[i] ?? []);      // no ids is input i's error
        return inputs;
    }

    /// <summary>Encodes every input; the first that fails throws its error.</summary>
    private EncodedInput[] EncodeAll(IReadOnlyList<ScoringInput> inputs, int firstIndex, bool forEmbedding, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        var encoded = new EncodedInput[inputs.Count];
        for (var i = 0; i < encoded.Length; i++)
        {
            ct.ThrowIfCancellationRequested();
            encoded[i] = EncodeFor(inputs[i], firstIndex + i, forEmbedding, ct);
        }
        return encoded;
    }

    private sealed class Buffers
    {
        public float[] Score = [], Rewards = [], Gating = [], Std = [], Embedding = [], Logits = [];
    }

    private void RunBatches(IReadOnlyList<EncodedInput> inputs, RewardOutputs what, Action<BatchPlan, Buffers> collect,
        CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if (inputs.Count == 0)
            return;
        var lengths = new int[inputs.Count];
        for (var i = 0; i < lengths.Length; i++)
            lengths[i] = inputs[i].TokenCount;
        var k = Manifest.Objectives.Count;
        var d = Manifest.HiddenSize;
        var head = (what & RewardOutputs.Head) != 0;
        var embedding = (what & RewardOutputs.Embedding) != 0;
        var buffers = new Buffers();
        var batchIds = new List<ReadOnlyMemory<int>>(Options.MaxBatchSize);
        foreach (var plan in TokenBudgetBatcher.Plan(lengths, Options.MaxBatchTokens, Options.MaxBatchSize, Options.MaxPaddingWaste))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var b = plan.Items.Length;
            var rewardPos = new int[b];
            var gatingPos = new int[b];
            batchIds.Clear();
            for (var r = 0; r < b; r++)
            {
                var input = inputs[plan.Items[r]];
                batchIds.Add(input.InputIds);
                rewardPos[r] = input.RewardPosition;
                gatingPos[r] = input.GatingPosition;
            }
            Grow(ref buffers.Score, b);
            Grow(ref buffers.Rewards, b * k);
            Grow(ref buffers.Gating, b * k);
            Grow(ref buffers.Std, b);
            Grow(ref buffers.Logits, b * Manifest.Labels.Count);
            if (embedding)
                Grow(ref buffers.Embedding, b * d);
            long tokens = 0;
            for (var r = 0; r < b; r++)
                tokens += lengths[plan.Items[r]];
            using var activity = RewardModelTelemetry.Source.StartActivity("onnxreward.batch");
            activity?.SetTag("onnxreward.rows", b);
            activity?.SetTag("onnxreward.tokens", tokens);
            activity?.SetTag("onnxreward.padded_length", plan.PaddedLength);
            var started = Stopwatch.GetTimestamp();
            try
            {
                _backend.Run(batchIds, rewardPos, gatingPos, plan.PaddedLength, what, new RewardBatchOutputs
                {
                    Score = buffers.Score.AsSpan(0, head ? b : 0),
                    Rewards = buffers.Rewards.AsSpan(0, head ? b * k : 0),
                    Gating = buffers.Gating.AsSpan(0, head ? b * k : 0),
                    ScoreStd = buffers.Std.AsSpan(0, _backend.HasScoreStd && head ? b : 0),
                    Embedding = buffers.Embedding.AsSpan(0, embedding ? b * d : 0),
                    Logits = buffers.Logits.AsSpan(0, head ? b * Manifest.Labels.Count : 0),
                }, cancellationToken);
            }
            catch (Exception e)
            {
                activity?.SetStatus(ActivityStatusCode.Error, e is OperationCanceledException ? "cancelled" : e.Message);
                throw;
            }
            RewardModelTelemetry.RecordBatch(b, tokens, plan.PaddedLength, Stopwatch.GetElapsedTime(started).TotalSeconds);
            collect(plan, buffers);
        }
    }

    private static void Grow(ref float[] buffer, int length)
    {
        if (buffer.Length < length)
            buffer = new float[length];
    }

    /// <summary>Fails when this model cannot score <paramref name="inputs"/>: it has no reward head, an input is null, or
    /// (ArmoRM, which gates) an input was encoded without a gating position. The one check <see cref="Score(IReadOnlyList{EncodedInput}, CancellationToken)"/>
    /// and <see cref="RewardScorer"/> make before anything runs.</summary>
    internal void CheckScorable(IReadOnlyList<EncodedInput> inputs)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        RequireReward();
        for (var i = 0; i < inputs.Count; i++)
            if (inputs[i] is not { } input)
                throw new RewardModelException($"input {i} is null.", i);
            else if (Manifest.IsArmoRm && !input.HasGatingPosition)
                throw new RewardModelException(
                    $"input {i} was encoded without a gating position (for embedding); encode it with RewardModel.Encode to score it.", i);
    }

    private void RequireReward()
    {
        if (!Manifest.IsReward)
            throw new RewardModelException(
                "this is a backbone-only model (no reward head): it can embed but not score. Use `onnxreward embed`, " +
                "or export a checkpoint that has a reward head (ArmoRM, or a *ForSequenceClassification score head).");
    }
}
