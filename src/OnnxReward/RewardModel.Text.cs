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
            _encoder = ConversationEncoder.Load(Directory, Manifest.GatingTokenPattern.Count > 0 ? Manifest.GatingTokenPattern : null);
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
            rows[i] = EncodeRow(new ScoringInput(conversations[i] ?? throw new RewardModelException($"conversation {i} is null.", i), null, null), i, needGating: true);
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
                rows[i] = EncodeRow(new ScoringInput(chunk[i], null, null), offset + i, needGating: true);
            return ScoreRows(rows, ct);
        }, ct);

    /// <summary>Scores already templated texts (special tokens in the text are recognised; no BOS is added).</summary>
    public IReadOnlyList<RewardScore> ScoreTemplated(IReadOnlyList<string> texts, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(texts);
        var rows = new ScoringRow[texts.Count];
        for (var i = 0; i < rows.Length; i++)
            rows[i] = EncodeRow(new ScoringInput(null, texts[i] ?? throw new RewardModelException($"text {i} is null.", i), null), i, needGating: true);
        return ScoreRows(rows, cancellationToken);
    }

    /// <summary>The final hidden state at the reward position of each conversation.</summary>
    public IReadOnlyList<float[]> Embed(IReadOnlyList<Conversation> conversations, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(conversations);
        var rows = new ScoringRow[conversations.Count];
        for (var i = 0; i < rows.Length; i++)
            rows[i] = EncodeRow(new ScoringInput(conversations[i], null, null), i, needGating: false);
        return EmbedRows(rows, cancellationToken);
    }

    /// <summary>Tokenizes a conversation as scoring would (template, truncation policy, positions).</summary>
    public (int[] InputIds, int RewardPosition, int GatingPosition) Tokenize(Conversation conversation)
    {
        var row = EncodeRow(new ScoringInput(conversation, null, null), 0, needGating: Manifest.IsReward);
        return (row.Ids.ToArray(), row.RewardPosition, row.GatingPosition);
    }

    internal IReadOnlyList<RewardScore> ScoreInputs(IReadOnlyList<ScoringInput> inputs, CancellationToken cancellationToken = default)
    {
        var rows = new ScoringRow[inputs.Count];
        for (var i = 0; i < rows.Length; i++)
            rows[i] = EncodeRow(inputs[i], i, needGating: true);
        return ScoreRows(rows, cancellationToken);
    }

    internal IReadOnlyList<float[]> EmbedInputs(IReadOnlyList<ScoringInput> inputs, CancellationToken cancellationToken = default)
    {
        var rows = new ScoringRow[inputs.Count];
        for (var i = 0; i < rows.Length; i++)
            rows[i] = EncodeRow(inputs[i], i, needGating: false);
        return EmbedRows(rows, cancellationToken);
    }

    /// <summary>One input → ids and positions, applying the truncation policy to conversations.</summary>
    internal ScoringRow EncodeRow(ScoringInput input, int index, bool needGating)
    {
        if (input.InputIds is { } ids)
            return RowFromIds(ids, index, needGating);
        if (input.Text is { } text)
            return RowFromIds(Encoder.Tokenizer.Encode(text), index, needGating);

        var conversation = input.Conversation!;
        var encoded = Encoder.Tokenizer.Encode(Encoder.Render(conversation, index));
        if (encoded.Length <= MaxSequenceLength || Options.Truncation == TruncationPolicy.Error)
            return RowFromIds(encoded, index, needGating);

        // DropOldestTurns: remove the oldest non-system turns, never the last user turn or the response, until it fits.
        var messages = conversation.Messages.ToList();
        var lastUser = messages.FindLastIndex(m => m.Role == "user");
        var original = encoded.Length;
        while (encoded.Length > MaxSequenceLength)
        {
            var oldest = messages.FindIndex(m => m.Role != "system");
            if (oldest >= lastUser)
                throw new RewardModelException(
                    $"conversation {index} is {original} tokens long, over the limit of {MaxSequenceLength}, and still {encoded.Length} " +
                    "tokens with only its system turns, last user turn and response left (DropOldestTurns keeps those). Shorten the " +
                    $"prompt or response, or raise MaxSequenceLength (the model allows up to {Manifest.MaxSequenceLength}).", index);
            messages.RemoveAt(oldest);
            lastUser--;
            encoded = Encoder.Tokenizer.Encode(Encoder.Render(Conversation.FromMessages(messages), index));
        }
        return RowFromIds(encoded, index, needGating);
    }
}
