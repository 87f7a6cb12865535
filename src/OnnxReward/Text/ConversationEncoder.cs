using OnnxReward.Text.Chat;
using OnnxReward.Text.Tokenization;

namespace OnnxReward.Text;

/// <summary>Token ids of one input and the two positions the graph gathers (armorm.md §1.3).</summary>
internal readonly record struct EncodedConversation(int[] InputIds, int RewardPosition, int GatingPosition);

/// <summary>
/// Conversation → the model directory's chat template → Llama-3 tokenizer → positions. The one place the scoring
/// library turns text into ids. Thread-safe.
/// </summary>
internal sealed class ConversationEncoder
{
    /// <summary>Marks content characters that must not form special tokens (<see cref="ContentSpecialTokens.Text"/>):
    /// U+FDD0 is a Unicode noncharacter, so text does not use it; a literal one in content is doubled, so nothing is lost.</summary>
    internal const char ContentEscape = '\uFDD0';

    public ConversationEncoder(Llama3Tokenizer tokenizer, ChatTemplate? template, IReadOnlyList<int> gatingPattern, int? padTokenId = null,
        ContentSpecialTokens contentSpecialTokens = ContentSpecialTokens.Special)
    {
        Tokenizer = tokenizer;
        Template = template;
        GatingPattern = gatingPattern;
        PadTokenId = padTokenId;
        ContentSpecialTokens = contentSpecialTokens;
    }

    public Llama3Tokenizer Tokenizer { get; }

    /// <summary>Null when the model directory has no chat template (then only templated text and ids can be scored).</summary>
    public ChatTemplate? Template { get; }

    public IReadOnlyList<int> GatingPattern { get; }

    /// <summary>The id of tokenizer_config.json's <c>pad_token</c> (ArmoRM: <c>[PAD]</c> = 128256), or null.</summary>
    public int? PadTokenId { get; }

    /// <summary>What special-token strings inside message content become (templated text always recognises them).</summary>
    public ContentSpecialTokens ContentSpecialTokens { get; }

    /// <summary>Loads tokenizer.json and tokenizer_config.json from a model directory.</summary>
    public static ConversationEncoder Load(string directory, IReadOnlyList<int>? gatingPattern = null,
        ContentSpecialTokens contentSpecialTokens = ContentSpecialTokens.Special)
    {
        var tokenizer = Llama3Tokenizer.FromDirectory(directory);
        ChatTemplate? template = File.Exists(Path.Combine(directory, ChatTemplate.ConfigFile)) ? ChatTemplate.FromDirectory(directory) : null;
        gatingPattern ??= tokenizer.Encode("<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
        var pad = template?.PadToken is { } padText ? tokenizer.AddedTokenId(padText) : null;
        return new ConversationEncoder(tokenizer, template, gatingPattern, pad, contentSpecialTokens);
    }

    /// <summary>Renders (add_generation_prompt = false) a validated conversation.</summary>
    public string Render(Conversation conversation, int index = 0, CancellationToken cancellationToken = default) =>
        Render(conversation.Messages, conversation, index, escapeContent: false, cancellationToken);

    /// <summary>Chat-template renders done on this thread (test seam: bounds the work of DropOldestTurns without timing).</summary>
    [ThreadStatic] internal static int RendersOnThisThread;

    private string Render(IReadOnlyList<ChatMessage> messages, Conversation conversation, int index, bool escapeContent, CancellationToken ct)
    {
        RendersOnThisThread++;
        conversation.Validate(index);
        if (Template is null)
            throw new RewardModelException(
                $"conversation {index}: this model directory has no chat template (tokenizer_config.json with chat_template), so " +
                "messages cannot be rendered. Give already templated text ({\"text\": …}) or token ids.", index);
        if (escapeContent)
            messages = messages.Select(m => m with { Content = Tokenizer.EscapeAddedTokens(m.Content, ContentEscape) }).ToList();
        try
        {
            return Template.Render(messages, addGenerationPrompt: false, ct);
        }
        catch (TemplateException e)
        {
            throw new RewardModelException($"conversation {index}: {e.Message}", index, e);
        }
    }

    /// <summary>The ids of a rendered conversation (no positions), honouring <see cref="ContentSpecialTokens"/>.</summary>
    public int[] EncodeIds(Conversation conversation, int index = 0, CancellationToken cancellationToken = default) =>
        EncodeIds(conversation.Messages, conversation, index, cancellationToken);

    /// <summary>The ids of <paramref name="messages"/> (a subset of <paramref name="conversation"/>'s, e.g. after
    /// dropping turns), honouring <see cref="ContentSpecialTokens"/>.</summary>
    internal int[] EncodeIds(IReadOnlyList<ChatMessage> messages, Conversation conversation, int index, CancellationToken cancellationToken)
    {
        var text = ContentSpecialTokens == ContentSpecialTokens.Text;
        var rendered = Render(messages, conversation, index, text, cancellationToken);
        return Guard(index, () => text ? Tokenizer.EncodeEscaped(rendered, ContentEscape, cancellationToken) : Tokenizer.Encode(rendered, cancellationToken));
    }

    /// <summary>Renders and encodes a conversation; <paramref name="index"/> (the input's number) only labels errors.</summary>
    public EncodedConversation Encode(Conversation conversation, int index = 0, CancellationToken cancellationToken = default) =>
        WithPositions(EncodeIds(conversation, index, cancellationToken), index);

    /// <summary>Raw ids of text: added/special tokens in it are recognised, nothing (no BOS) is added, no positions.</summary>
    public int[] EncodeText(string text, int index = 0, CancellationToken cancellationToken = default) =>
        Guard(index, () => Tokenizer.Encode(text, cancellationToken));

    /// <summary>Ids back to text (added tokens as their text).</summary>
    public string Decode(IEnumerable<int> ids) => Tokenizer.Decode(ids);

    /// <summary>Encodes already templated text (special tokens recognised, nothing added) and finds the positions.
    /// The reward position follows HF <c>modeling_custom.py</c>: the token before the first pad token, else the last
    /// token (a literal <c>[PAD]</c> in the text is the pad token, as it is for HF).</summary>
    public EncodedConversation EncodeTemplated(string text, int index = 0, CancellationToken cancellationToken = default) =>
        WithPositions(EncodeText(text, index, cancellationToken), index);

    private EncodedConversation WithPositions(int[] ids, int index)
    {
        if (ids.Length == 0)
            throw new RewardModelException($"input {index} is empty text: nothing to score.", index);
        return new EncodedConversation(ids, Positions.RewardPosition(ids, PadTokenId), FindGatingPosition(ids, index));
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

    /// <summary>Start of the last occurrence of the gating pattern; an error naming the fix when it is absent.</summary>
    public int FindGatingPosition(ReadOnlySpan<int> ids, int index) => Positions.GatingPosition(ids, GatingPattern, index);
}

/// <summary>armorm.md §1.3: the reward position is the last non-pad token; the gating position is the start of the
/// LAST occurrence of <c>&lt;|eot_id|&gt;&lt;|start_header_id|&gt;assistant&lt;|end_header_id|&gt;\n\n</c>.</summary>
internal static class Positions
{
    public static int RewardPosition(ReadOnlySpan<int> ids, int? padId)
    {
        if (padId is { } pad)
        {
            var first = ids.IndexOf(pad);
            if (first >= 0)
                return first == 0 ? ids.Length - 1 : first - 1;     // HF: (argmax(ids == pad) − 1) mod T
        }
        return ids.Length - 1;
    }

    public static int GatingPosition(ReadOnlySpan<int> ids, IReadOnlyList<int> pattern, int index)
    {
        for (var j = ids.Length - pattern.Count; j >= 0; j--)
        {
            var match = true;
            for (var p = 0; p < pattern.Count && match; p++)
                match = ids[j + p] == pattern[p];
            if (match)
                return j;
        }
        throw new RewardModelException(
            $"input {index}: no assistant header: the gating position cannot be found (the tokens [{string.Join(", ", pattern)}] " +
            "that open the assistant's reply never occur). Give a conversation whose last turn is the assistant's, rendered with " +
            "the model's chat template.", index);
    }
}
