using System.Runtime.CompilerServices;
using OnnxReward.Text;
using OnnxReward.Text.Conversations;

namespace OnnxReward;

public sealed partial class RewardModel
{
    // Conversation → chat template → tokenizer → positions → (truncation policy) → ScoringRow.
    private ConversationEncoder? _encoder;

    private void InitializeText()
    {
        if (File.Exists(Path.Combine(Directory, Text.Tokenization.Llama3Tokenizer.TokenizerJson)))
            _encoder = ConversationEncoder.Load(Directory, Manifest.GatingTokenPattern.Count > 0 ? Manifest.GatingTokenPattern : null,
                Options.ContentSpecialTokens);
    }

    private void DisposeText() => _encoder = null;

    internal ConversationEncoder Encoder => _encoder ?? throw new RewardModelException(
        $"{Directory} has no tokenizer.json, so text cannot be tokenized: score token ids (ScoreTokens, {{\"input_ids\": …}}) " +
        "or re-export the model from a checkpoint folder that has its tokenizer files.");

    /// <summary>Scores one conversation.</summary>
    public RewardScore Score(Conversation conversation) => Score([conversation])[0];

    /// <summary>Scores conversations in batches; results are in input order.</summary>
    /// <exception cref="RewardModelException">An input cannot be scored; <see cref="RewardModelException.InputIndex"/> names it.</exception>
    public IReadOnlyList<RewardScore> Score(IReadOnlyList<Conversation> conversations, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(conversations);
        var rows = new ScoringRow[conversations.Count];
        for (var i = 0; i < rows.Length; i++)
            rows[i] = EncodeRow(new ScoringInput(conversations[i] ?? throw new RewardModelException($"conversation {i} is null.", i), null, null), i, needGating: true, cancellationToken);
        return ScoreRows(rows, cancellationToken);
    }

    /// <summary>Scores conversations on the thread pool (ONNX Runtime work is CPU/GPU bound; this frees the caller).</summary>
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
        Task.Run(() =>
        {
            var rows = new ScoringRow[chunk.Count];
            for (var i = 0; i < rows.Length; i++)
                rows[i] = EncodeRow(new ScoringInput(chunk[i], null, null), offset + i, needGating: true, ct);
            return ScoreRows(rows, ct);
        }, ct);

    /// <summary>Scores already templated texts (special tokens in the text are recognised; no BOS is added).</summary>
    public IReadOnlyList<RewardScore> ScoreTemplated(IReadOnlyList<string> texts, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(texts);
        var rows = new ScoringRow[texts.Count];
        for (var i = 0; i < rows.Length; i++)
            rows[i] = EncodeRow(new ScoringInput(null, texts[i] ?? throw new RewardModelException($"text {i} is null.", i), null), i, needGating: true, cancellationToken);
        return ScoreRows(rows, cancellationToken);
    }

    /// <summary>The final hidden state at the reward position of each conversation.</summary>
    public IReadOnlyList<float[]> Embed(IReadOnlyList<Conversation> conversations, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(conversations);
        var rows = new ScoringRow[conversations.Count];
        for (var i = 0; i < rows.Length; i++)
            rows[i] = EncodeRow(new ScoringInput(conversations[i], null, null), i, needGating: false, cancellationToken);
        return EmbedRows(rows, cancellationToken);
    }

    /// <summary>Tokenizes a conversation as scoring would (template, truncation policy, positions).</summary>
    public (int[] InputIds, int RewardPosition, int GatingPosition) Tokenize(Conversation conversation)
    {
        var row = EncodeRow(new ScoringInput(conversation, null, null), 0, needGating: Manifest.IsArmoRm);
        return (row.Ids.ToArray(), row.RewardPosition, row.GatingPosition);
    }

    internal IReadOnlyList<RewardScore> ScoreInputs(IReadOnlyList<ScoringInput> inputs, CancellationToken cancellationToken = default)
    {
        var rows = new ScoringRow[inputs.Count];
        for (var i = 0; i < rows.Length; i++)
            rows[i] = EncodeRow(inputs[i], i, needGating: true, cancellationToken);
        return ScoreRows(rows, cancellationToken);
    }

    internal IReadOnlyList<float[]> EmbedInputs(IReadOnlyList<ScoringInput> inputs, CancellationToken cancellationToken = default)
    {
        var rows = new ScoringRow[inputs.Count];
        for (var i = 0; i < rows.Length; i++)
            rows[i] = EncodeRow(inputs[i], i, needGating: false, cancellationToken);
        return EmbedRows(rows, cancellationToken);
    }

    /// <summary>One input → ids and positions, applying the truncation policy to conversations.</summary>
    internal ScoringRow EncodeRow(ScoringInput input, int index, bool needGating, CancellationToken cancellationToken = default)
    {
        if (input.InputIds is { } ids)
            return RowFromIds(ids, index, needGating);
        if (input.Text is { } text)
        {
            // Pre-rendered text always has its special tokens recognised: it is templated on purpose.
            var textIds = Encoder.EncodeText(text, index, cancellationToken);
            if (textIds.Length == 0)
                throw new RewardModelException(
                    $"input {index} is empty text: nothing to score. Give the conversation rendered with the model's chat template.", index);
            return RowFromIds(textIds, index, needGating);
        }

        var conversation = input.Conversation!;
        var encoded = Encoder.EncodeIds(conversation, index, cancellationToken);
        if (encoded.Length <= MaxSequenceLength || Options.Truncation == TruncationPolicy.Error)
            return RowFromIds(encoded, index, needGating);
        return RowFromIds(DropOldestTurns(conversation, encoded.Length, index, cancellationToken), index, needGating);
    }

    /// <summary>
    /// DropOldestTurns: removes the fewest oldest non-system turns (never the last user turn or the response) that make
    /// the conversation fit. The rendered length shrinks as turns are dropped (every turn of a chat template is its own
    /// special-token-delimited block), so the fewest is found by binary search over the number dropped: O(log n)
    /// renders instead of one per dropped turn (4,000 turn pairs took 109 s), with the result the one-at-a-time loop
    /// gave.
    /// </summary>
    private int[] DropOldestTurns(Conversation conversation, int originalLength, int index, CancellationToken ct)
    {
        var messages = conversation.Messages;
        var lastUser = -1;
        for (var i = messages.Count - 1; i >= 0 && lastUser < 0; i--)
            if (messages[i].Role == "user")
                lastUser = i;
        var droppable = new List<int>();     // indices of the droppable turns, oldest first
        for (var i = 0; i < lastUser; i++)
            if (messages[i].Role != "system")
                droppable.Add(i);

        int[] Dropping(int count)
        {
            var kept = new List<ChatMessage>(messages.Count - count);
            var dropped = new HashSet<int>(droppable.Take(count));
            for (var i = 0; i < messages.Count; i++)
                if (!dropped.Contains(i))
                    kept.Add(messages[i]);
            return Encoder.EncodeIds(kept, conversation, index, ct);
        }

        var best = droppable.Count == 0 ? null : Dropping(droppable.Count);
        if (best is null || best.Length > MaxSequenceLength)
            throw new RewardModelException(
                $"conversation {index} is {originalLength} tokens long, over the limit of {MaxSequenceLength}, and still " +
                $"{(best ?? Encoder.EncodeIds(conversation, index, ct)).Length} tokens with only its system turns, last user turn and " +
                "response left (DropOldestTurns keeps those). Shorten the prompt or response, or raise MaxSequenceLength (the model " +
                $"allows up to {Manifest.MaxSequenceLength}).", index);
        // Invariant: dropping hi turns fits (best is that encoding); dropping lo − 1 does not (0 does not: we are here).
        int lo = 1, hi = droppable.Count;
        while (lo < hi)
        {
            var mid = lo + (hi - lo) / 2;
            var attempt = Dropping(mid);
            if (attempt.Length <= MaxSequenceLength)
                (hi, best) = (mid, attempt);
            else
                lo = mid + 1;
        }
        return best;
    }
}
