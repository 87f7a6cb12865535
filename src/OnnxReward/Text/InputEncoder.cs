using OnnxReward.Text.Chat;
using OnnxReward.Text.Conversations;
using OnnxReward.Text.Tokenization;

namespace OnnxReward.Text;

/// <summary>Where the reward position goes when the ids hold the pad token (armorm.md §1.3).</summary>
public enum PadTokenRule
{
    /// <summary>The pad token only ever pads: an input holding it is an error (<see cref="RewardErrorCode.PadTokenInInput"/>),
    /// and the reward position is the last token. What scoring uses: a literal "[PAD]" can never move the reward position
    /// silently.</summary>
    Reject,

    /// <summary>Hugging Face's <c>modeling_custom.py</c> rule: the token before the first pad token, else the last token.
    /// What the Python reference (and so the goldens and <c>onnxreward tokenize</c>) computes.</summary>
    PoolBeforeFirstPad,

    /// <summary>Current transformers' <c>*ForSequenceClassification</c> pooling: the rightmost token that is not the pad
    /// id (<c>(arange(T) * (input_ids != pad_token_id)).argmax(-1)</c>); a pad id inside the text is an ordinary token.
    /// What sequence-classification reward models (Skywork-Reward, FsfairX, …) use.</summary>
    PoolRightmostNonPad,
}

/// <summary>How <see cref="InputEncoder"/> turns inputs into ids: limits, truncation and position rules.</summary>
public sealed record InputEncoderOptions
{
    /// <summary>Longest accepted input in tokens; null: no limit.</summary>
    public int? MaxSequenceLength { get; init; }

    /// <summary>The model's own limit, named in the too-long message as how far <see cref="MaxSequenceLength"/> can be raised.</summary>
    public int? ModelMaxSequenceLength { get; init; }

    /// <summary>What happens to conversations over <see cref="MaxSequenceLength"/>.</summary>
    public TruncationPolicy Truncation { get; init; } = TruncationPolicy.Error;

    /// <summary>What special-token strings inside message content become (templated text always recognises them).</summary>
    public ContentSpecialTokens ContentSpecialTokens { get; init; } = ContentSpecialTokens.Special;

    /// <summary>Where the reward position goes when the ids hold the pad token.</summary>
    public PadTokenRule PadTokens { get; init; } = PadTokenRule.Reject;

    /// <summary>The pad token id; null: tokenizer_config.json's <c>pad_token</c> (ArmoRM: <c>[PAD]</c> = 128256).</summary>
    public int? PadTokenId { get; init; }

    /// <summary>Ids at or above this are rejected (the model's vocabulary size); null: the tokenizer decides.</summary>
    public int? VocabSize { get; init; }

    /// <summary>The tokens that open the assistant's reply (the gating position is the start of their last occurrence);
    /// null or empty: the tokenizer's encoding of Llama-3's <c>&lt;|eot_id|&gt;&lt;|start_header_id|&gt;assistant&lt;|end_header_id|&gt;\n\n</c>.</summary>
    public IReadOnlyList<int>? GatingTokenPattern { get; init; }
}

/// <summary>
/// The one place text becomes model input: conversation → the model directory's chat template → Llama-3 tokenizer →
/// truncation policy → reward and gating positions, for scoring, <c>tokenize</c>, training, the reference model and the
/// benchmarks alike. Also validates raw token ids (vocabulary, pad token, length). Thread-safe and immutable.
/// <code>
/// conversation ─Render─▶ text ─Tokenizer─▶ ids ─(too long? DropOldestTurns: fewest oldest turns, binary search)─▶ positions ─▶ EncodedInput
/// templated text ───────────────────────▶ ids ─────────────────────────────────────────────────────────────────▶ positions ─▶ EncodedInput
/// token ids ─(vocabulary, pad, length)─────────────────────────────────────────────────────────────────────────▶ positions ─▶ EncodedInput
/// </code>
/// Errors are <see cref="RewardModelException"/>s whose <see cref="RewardModelException.InputIndex"/> is the index passed in.
/// </summary>
public sealed class InputEncoder
{
    /// <summary>Marks content characters that must not form special tokens (<see cref="ContentSpecialTokens.Text"/>):
    /// U+FDD0 is a Unicode noncharacter, so text does not use it; a literal one in content is doubled, so nothing is lost.</summary>
    internal const char ContentEscape = '\uFDD0';

    private readonly Llama3Tokenizer? _tokenizer;
    private readonly string _source;

    private InputEncoder(Llama3Tokenizer? tokenizer, ChatTemplate? template, InputEncoderOptions options, string source)
    {
        _tokenizer = tokenizer;
        _source = source;
        Template = template;
        Options = options;
        GatingPattern = options.GatingTokenPattern is { Count: > 0 } p ? p.ToArray()
            : tokenizer?.Encode("<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n") ?? [];
        PadTokenId = options.PadTokenId ?? (template?.PadToken is { } padText ? tokenizer?.AddedTokenId(padText) : null);
    }

    /// <summary>Loads tokenizer.json and tokenizer_config.json (chat template, pad token) from a model or checkpoint
    /// directory. Without tokenizer.json only token ids can be encoded (text and conversations fail with that reason).</summary>
    /// <exception cref="TokenizerException">tokenizer.json exists but cannot be used.</exception>
    /// <exception cref="TemplateException">The chat template does not parse.</exception>
    public static InputEncoder Load(string directory, InputEncoderOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(directory);
        options ??= new InputEncoderOptions();
        var tokenizer = File.Exists(Path.Combine(directory, Llama3Tokenizer.TokenizerJson)) ? Llama3Tokenizer.FromDirectory(directory) : null;
        ChatTemplate? template = tokenizer is not null && File.Exists(Path.Combine(directory, ChatTemplate.ConfigFile))
            ? ChatTemplate.FromDirectory(directory) : null;
        return new InputEncoder(tokenizer, template, options, directory);
    }

    /// <summary>The options this encoder applies.</summary>
    public InputEncoderOptions Options { get; }

    /// <summary>True when text and conversations can be encoded (the directory has tokenizer.json).</summary>
    public bool HasTokenizer => _tokenizer is not null;

    /// <summary>The tokenizer.</summary>
    /// <exception cref="RewardModelException">The directory has no tokenizer.json.</exception>
    public Llama3Tokenizer Tokenizer => _tokenizer ?? throw new RewardModelException(
        $"{_source} has no tokenizer.json, so text cannot be tokenized: score token ids (ScoreTokens, {{\"input_ids\": …}}) " +
        "or re-export the model from a checkpoint folder that has its tokenizer files.");

    /// <summary>Null when the directory has no chat template (then only templated text and ids can be encoded).</summary>
    public ChatTemplate? Template { get; }

    /// <summary>The tokens whose last occurrence starts the gating position.</summary>
    public IReadOnlyList<int> GatingPattern { get; }

    /// <summary>The pad token id, or null when the model has none.</summary>
    public int? PadTokenId { get; }

    /// <summary>
    /// Templated text as a Hugging Face tokenizer call with <c>add_special_tokens=True</c> would see it, without doubling
    /// BOS: the model's BOS text (tokenizer_config.json's <c>bos_token</c>; <c>&lt;|begin_of_text|&gt;</c> when there is
    /// no config but the vocabulary has it) is prepended when the text does not already start with it. Models without a
    /// BOS token (Qwen3) get the text unchanged.
    /// </summary>
    public string WithBos(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var bos = Template is { } t ? t.BosToken : _tokenizer?.AddedTokenId(Llama3Bos) is not null ? Llama3Bos : null;
        return bos is null || text.StartsWith(bos, StringComparison.Ordinal) ? text : bos + text;
    }

    private const string Llama3Bos = "<|begin_of_text|>";

    /// <summary>
    /// A query as OpenRLHF's remote reward-model server (<c>openrlhf.cli.serve_rm</c>, the <c>strip_sequence</c>
    /// version) prepares it: trainers send decoded sequences with their padding (left pads before the prompt, pads and
    /// EOS after the response), and the server removes the leading and the trailing run of pad and EOS token texts, then
    /// appends one EOS, so the reward is read at that EOS whatever the padding was. The BOS is then added when missing
    /// (<see cref="WithBos"/>; OpenRLHF's tokenizer call would add a second one to a query that already starts with BOS).
    /// </summary>
    /// <exception cref="RewardModelException">The model's tokenizer_config.json names no EOS token, so the rule cannot
    /// apply.</exception>
    public string PrepareOpenRlhfQuery(string query)
    {
        ArgumentNullException.ThrowIfNull(query);
        var eos = Template?.EosToken is { Length: > 0 } e ? e : throw new RewardModelException(
            $"{_source} names no eos_token in tokenizer_config.json, so an OpenRLHF query's padding cannot be stripped and EOS " +
            "re-appended: add the tokenizer's eos_token to tokenizer_config.json, or send unpadded templated text to /v1/classify.");
        var pad = Template?.PadToken is { Length: > 0 } p && p != eos ? p : null;
        var span = query.AsSpan();
        while (true)
        {
            if (span.StartsWith(eos, StringComparison.Ordinal)) span = span[eos.Length..];
            else if (pad is not null && span.StartsWith(pad, StringComparison.Ordinal)) span = span[pad.Length..];
            else break;
        }
        while (true)
        {
            if (span.EndsWith(eos, StringComparison.Ordinal)) span = span[..^eos.Length];
            else if (pad is not null && span.EndsWith(pad, StringComparison.Ordinal)) span = span[..^pad.Length];
            else break;
        }
        return WithBos(string.Concat(span, eos));
    }

    /// <summary>The same tokenizer and template with other options (a cheap copy: nothing is reloaded).</summary>
    public InputEncoder With(InputEncoderOptions options) => new(_tokenizer, Template, options, _source);

    /// <summary>Encodes one input of any form (conversation, templated text or token ids). <c>index</c> is the input's
    /// number (it only labels errors); <c>findGating</c> is false where no gating position is needed (embedding,
    /// backbone-only models).</summary>
    /// <exception cref="RewardModelException">The input cannot be encoded; the message says why and what to do.</exception>
    public EncodedInput Encode(ScoringInput input, int index = 0, bool findGating = true, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.InputIds is { } ids)
            return EncodeIds(ids, index, findGating);
        if (input.Text is { } text)
            return EncodeTemplated(text, index, findGating, cancellationToken);
        return Encode(input.Conversation!, index, findGating, cancellationToken);
    }

    /// <summary>Renders, tokenizes and, when it is too long, truncates a conversation as <see cref="InputEncoderOptions.Truncation"/> says.</summary>
    /// <exception cref="RewardModelException">The conversation is invalid, does not render, or is too long.</exception>
    public EncodedInput Encode(Conversation conversation, int index = 0, bool findGating = true, CancellationToken cancellationToken = default)
    {
        if (conversation is null)
            throw new RewardModelException($"conversation {index} is null.", index);
        var ids = EncodeIds(conversation.Messages, conversation, index, cancellationToken);
        if (ids.Length <= Limit || Options.Truncation == TruncationPolicy.Error)
            return Finish(ids, index, findGating);
        var (kept, dropped) = DropOldestTurns(conversation, ids.Length, index, cancellationToken);
        return Finish(kept, index, findGating, dropped, ids.Length);
    }

    /// <summary>Encodes already templated text: special tokens in it are recognised (it is templated on purpose), no BOS is added.</summary>
    /// <exception cref="RewardModelException">The text is empty, not Unicode, or too long.</exception>
    public EncodedInput EncodeTemplated(string text, int index = 0, bool findGating = true, CancellationToken cancellationToken = default)
    {
        if (text is null)
            throw new RewardModelException($"text {index} is null.", index);
        var ids = TokenizeText(text, index, cancellationToken);
        if (ids.Length == 0)
            throw new RewardModelException(
                $"input {index} is empty text: nothing to score. Give the conversation rendered with the model's chat template.", index);
        return Finish(ids, index, findGating);
    }

    /// <summary>Validates token ids as the model's tokenizer produces them (special tokens included).</summary>
    /// <exception cref="RewardModelException">No ids, an id outside the vocabulary, the pad token (under
    /// <see cref="PadTokenRule.Reject"/>), or too long.</exception>
    public EncodedInput EncodeIds(IReadOnlyList<int> ids, int index = 0, bool findGating = true)
    {
        if (ids is null || ids.Count == 0)
            throw new RewardModelException($"input {index} has no tokens: give at least one token id.", index);
        var copy = ids.ToArray();                                   // EncodedInput is immutable: never alias the caller's array
        if (Options.VocabSize is { } vocab)
            for (var j = 0; j < copy.Length; j++)
                if ((uint)copy[j] >= (uint)vocab)
                    throw new RewardModelException(
                        $"input {index} has token id {copy[j]} at position {j}, outside the model's vocabulary [0, {vocab}). " +
                        "Tokenize with the model's own tokenizer.", index);
        return Finish(copy, index, findGating);
    }

    /// <summary>Renders (add_generation_prompt = false) a validated conversation with the chat template.</summary>
    /// <exception cref="RewardModelException">The conversation is invalid or the directory has no chat template.</exception>
    public string Render(Conversation conversation, int index = 0, CancellationToken cancellationToken = default) =>
        Render(conversation.Messages, conversation, index, escapeContent: false, cancellationToken);

    /// <summary>Raw ids of text: added/special tokens in it are recognised, nothing (no BOS) is added, no positions or limits.</summary>
    /// <exception cref="RewardModelException">No tokenizer, or the text is not Unicode (a lone surrogate).</exception>
    public int[] TokenizeText(string text, int index = 0, CancellationToken cancellationToken = default) =>
        Guard(index, () => Tokenizer.Encode(text, cancellationToken));

    /// <summary>Ids back to text (added tokens as their text).</summary>
    public string Decode(IEnumerable<int> ids) => Tokenizer.Decode(ids);

    /// <summary>Start of the last occurrence of <paramref name="pattern"/> in <paramref name="ids"/>, or -1.</summary>
    public static int FindLast(ReadOnlySpan<int> ids, IReadOnlyList<int> pattern)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        if (pattern.Count == 0)
            return -1;
        for (var j = ids.Length - pattern.Count; j >= 0; j--)
        {
            var match = true;
            for (var p = 0; p < pattern.Count && match; p++)
                match = ids[j + p] == pattern[p];
            if (match)
                return j;
        }
        return -1;
    }

    /// <summary>The gating position of <paramref name="ids"/>: the start of the last <see cref="GatingPattern"/>.</summary>
    /// <exception cref="RewardModelException">The pattern never occurs (no assistant header).</exception>
    public int GatingPosition(ReadOnlySpan<int> ids, int index = 0)
    {
        var j = FindLast(ids, GatingPattern);
        return j >= 0 ? j : throw new RewardModelException(
            $"input {index}: no assistant header: the gating position cannot be found (the tokens [{string.Join(", ", GatingPattern)}] " +
            "that open the assistant's reply never occur). Give a conversation whose last turn is the assistant's, rendered with " +
            "the model's chat template.", index);
    }

    /// <summary>The reward position of <paramref name="ids"/> under <see cref="InputEncoderOptions.PadTokens"/>.</summary>
    /// <exception cref="RewardModelException">The ids hold the pad token and the rule is <see cref="PadTokenRule.Reject"/>.</exception>
    public int RewardPosition(ReadOnlySpan<int> ids, int index = 0)
    {
        if (Options.PadTokens == PadTokenRule.PoolRightmostNonPad)
        {
            var position = PadTokenId is { } padId ? ids.LastIndexOfAnyExcept(padId) : ids.Length - 1;
            return position >= 0 ? position : throw new RewardModelException(
                $"input {index} holds only the pad token {PadTokenId}: nothing to pool. Give the conversation's tokens.", index);
        }
        var first = PadTokenId is { } pad ? ids.IndexOf(pad) : -1;
        if (first < 0)
            return ids.Length - 1;
        if (Options.PadTokens == PadTokenRule.PoolBeforeFirstPad)
            return first == 0 ? ids.Length - 1 : first - 1;            // HF: (argmax(ids == pad) − 1) mod T
        throw new RewardModelException(
            $"input {index} contains the pad token {PadTokenId} at position {first}; the pad token only ever pads and would move the " +
            "reward position. Remove it from the input (or, for untrusted text, score with ContentSpecialTokens = Text).",
            index, code: RewardErrorCode.PadTokenInInput);
    }

    private int Limit => Options.MaxSequenceLength ?? int.MaxValue;

    private EncodedInput Finish(int[] ids, int index, bool findGating, int droppedTurns = 0, int? originalLength = null)
    {
        if (ids.Length > Limit)
            throw TooLong(ids.Length, index);
        var reward = RewardPosition(ids, index);
        int? gating = findGating ? GatingPosition(ids, index) : null;
        return new EncodedInput(ids, reward, gating, droppedTurns, originalLength);
    }

    private RewardModelException TooLong(int length, int index) => new(
        $"input {index} is {length} tokens long, over the limit of {Limit}. Shorten it, raise MaxSequenceLength" +
        (Options.ModelMaxSequenceLength is { } max ? $" (the model allows up to {max})" : "") + ", or score it with " +
        "Truncation = DropOldestTurns (`--truncation drop-oldest-turns`), which keeps the last user turn and the response.",
        index, code: RewardErrorCode.InputTooLong);

    /// <summary>Chat-template renders done on this thread (test seam: bounds the work of DropOldestTurns without timing).</summary>
    [ThreadStatic] internal static int RendersOnThisThread;

    private string Render(IReadOnlyList<ChatMessage> messages, Conversation conversation, int index, bool escapeContent, CancellationToken ct)
    {
        RendersOnThisThread++;
        conversation.Validate(index);
        var tokenizer = Tokenizer;
        if (Template is null)
            throw new RewardModelException(
                $"conversation {index}: this model directory has no chat template (tokenizer_config.json with chat_template), so " +
                "messages cannot be rendered. Give already templated text ({\"text\": …}) or token ids.", index);
        if (escapeContent)
            messages = messages.Select(m => m with { Content = tokenizer.EscapeAddedTokens(m.Content, ContentEscape) }).ToList();
        try
        {
            return Template.Render(messages, addGenerationPrompt: false, ct);
        }
        catch (TemplateException e)
        {
            throw new RewardModelException($"conversation {index}: {e.Message}", index, e);
        }
    }

    /// <summary>The ids of <paramref name="messages"/> (a subset of <paramref name="conversation"/>'s, e.g. after
    /// dropping turns), honouring <see cref="ContentSpecialTokens"/>.</summary>
    private int[] EncodeIds(IReadOnlyList<ChatMessage> messages, Conversation conversation, int index, CancellationToken cancellationToken)
    {
        var text = Options.ContentSpecialTokens == ContentSpecialTokens.Text;
        var rendered = Render(messages, conversation, index, text, cancellationToken);
        return Guard(index, () => text ? Tokenizer.EncodeEscaped(rendered, ContentEscape, cancellationToken) : Tokenizer.Encode(rendered, cancellationToken));
    }

    /// <summary>
    /// DropOldestTurns: removes the fewest oldest non-system turns (never the last user turn or the response) that make
    /// the conversation fit. The rendered length shrinks as turns are dropped (every turn of a chat template is its own
    /// special-token-delimited block), so the fewest is found by binary search over the number dropped: O(log n)
    /// renders instead of one per dropped turn (4,000 turn pairs took 109 s), with the result the one-at-a-time loop
    /// gave.
    /// </summary>
    private (int[] Ids, int Dropped) DropOldestTurns(Conversation conversation, int originalLength, int index, CancellationToken ct)
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
            return EncodeIds(kept, conversation, index, ct);
        }

        var best = droppable.Count == 0 ? null : Dropping(droppable.Count);
        if (best is null || best.Length > Limit)
            throw new RewardModelException(
                $"conversation {index} is {originalLength} tokens long, over the limit of {Limit}, and still " +
                $"{(best ?? EncodeIds(messages, conversation, index, ct)).Length} tokens with only its system turns, last user turn and " +
                "response left (DropOldestTurns keeps those). Shorten the prompt or response, or raise MaxSequenceLength" +
                (Options.ModelMaxSequenceLength is { } max ? $" (the model allows up to {max})." : "."),
                index, code: RewardErrorCode.InputTooLong);
        // Invariant: dropping hi turns fits (best is that encoding); dropping lo − 1 does not (0 does not: we are here).
        int lo = 1, hi = droppable.Count;
        while (lo < hi)
        {
            var mid = lo + (hi - lo) / 2;
            var attempt = Dropping(mid);
            if (attempt.Length <= Limit)
                (hi, best) = (mid, attempt);
            else
                lo = mid + 1;
        }
        return (best, hi);
    }

    /// <summary>Text that is not Unicode (a lone surrogate) is this input's error, not a crash.</summary>
    private static int[] Guard(int index, Func<int[]> encode)
    {
        try
        {
            return encode();
        }
        catch (ArgumentException e) when (e is not ArgumentNullException)
        {
            throw new RewardModelException($"input {index}: {e.Message}", index, e);
        }
    }
}
