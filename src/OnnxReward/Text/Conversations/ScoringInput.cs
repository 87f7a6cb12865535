using System.Text.Json;
using OnnxReward.Text;

namespace OnnxReward.Text.Conversations;

/// <summary>
/// One input line as the commands and the HTTP server accept it: <c>{"messages": [...]}</c>,
/// <c>{"prompt": "...", "response": "..."}</c> (hh-rlhf transcripts accepted as prompts), <c>{"text": "&lt;templated&gt;"}</c>
/// or <c>{"input_ids": [...]}</c>. Exactly one of the three payloads is set; <see cref="InputEncoder.Encode(ScoringInput, int, bool, CancellationToken)"/>
/// turns any of them into an <see cref="EncodedInput"/>.
/// </summary>
public sealed record ScoringInput
{
    internal ScoringInput(Conversation? conversation, string? text, int[]? inputIds)
    {
        Conversation = conversation;
        Text = text;
        InputIds = inputIds;
    }

    /// <summary>A conversation, rendered with the model's chat template.</summary>
    public Conversation? Conversation { get; }

    /// <summary>Text already rendered with the chat template (special tokens recognised, no BOS added).</summary>
    public string? Text { get; }

    /// <summary>Token ids as the model's tokenizer produces them.</summary>
    public IReadOnlyList<int>? InputIds { get; }

    /// <summary>A conversation to render with the model's chat template.</summary>
    public static ScoringInput FromConversation(Conversation conversation) =>
        new(conversation ?? throw new ArgumentNullException(nameof(conversation)), null, null);

    /// <summary>Text already rendered with the model's chat template.</summary>
    public static ScoringInput FromTemplatedText(string text) => new(null, text ?? throw new ArgumentNullException(nameof(text)), null);

    /// <summary>Token ids (copied).</summary>
    public static ScoringInput FromTokenIds(IReadOnlyList<int> inputIds) =>
        new(null, null, (inputIds ?? throw new ArgumentNullException(nameof(inputIds))).ToArray());

    /// <summary>Parses one JSON value; errors name the field and the fix (callers add the line number).</summary>
    public static ScoringInput FromJson(JsonElement e)
    {
        if (e.ValueKind != JsonValueKind.Object)
            throw new FormatException($"expected a JSON object with \"messages\", \"prompt\"+\"response\", \"text\" or \"input_ids\", got {Kind(e)}.");
        var has = new[] { "messages", "prompt", "text", "input_ids" }.Where(k => e.TryGetProperty(k, out _)).ToList();
        if (has.Count == 0)
            throw new FormatException(
                "the object has none of \"messages\", \"prompt\"+\"response\", \"text\" or \"input_ids\": give one of them.");
        if (has.Count > 1)
            throw new FormatException($"the object has both \"{has[0]}\" and \"{has[1]}\": give exactly one form of input.");
        switch (has[0])
        {
            case "messages":
                return new ScoringInput(Conversation.FromMessages(ParseMessages(e.GetProperty("messages"))), null, null);
            case "prompt":
                if (!e.TryGetProperty("response", out var response))
                    throw new FormatException("\"prompt\" needs a \"response\" beside it (the assistant reply to score).");
                return new ScoringInput(Conversation.FromPromptResponse(String(e, "prompt"), String(e, "response")), null, null);
            case "text":
                return new ScoringInput(null, String(e, "text"), null);
            default:
            {
                var ids = e.GetProperty("input_ids");
                if (ids.ValueKind != JsonValueKind.Array)
                    throw new FormatException($"\"input_ids\" is {Kind(ids)}, expected an array of token ids.");
                var list = new int[ids.GetArrayLength()];
                var k = 0;
                foreach (var id in ids.EnumerateArray())
                {
                    if (id.ValueKind != JsonValueKind.Number || !id.TryGetInt32(out var v) || v < 0)
                        throw new FormatException($"\"input_ids\"[{k}] is {id.GetRawText()}, expected a non-negative integer token id.");
                    list[k++] = v;
                }
                return new ScoringInput(null, null, list);
            }
        }
    }

    /// <summary>A chat turn list: objects with a string "role" and a string "content".</summary>
    public static List<ChatMessage> ParseMessages(JsonElement messages)
    {
        if (messages.ValueKind != JsonValueKind.Array)
            throw new FormatException($"\"messages\" is {Kind(messages)}, expected an array of {{\"role\", \"content\"}} objects.");
        var list = new List<ChatMessage>();
        var t = 0;
        foreach (var m in messages.EnumerateArray())
        {
            if (m.ValueKind != JsonValueKind.Object)
                throw new FormatException($"\"messages\"[{t}] is {Kind(m)}, expected an object with \"role\" and \"content\".");
            if (!m.TryGetProperty("role", out var role) || role.ValueKind != JsonValueKind.String)
                throw new FormatException($"\"messages\"[{t}] has no string \"role\": use \"system\", \"user\" or \"assistant\".");
            if (!m.TryGetProperty("content", out var content) || content.ValueKind == JsonValueKind.Null)
                throw new FormatException($"\"messages\"[{t}] ({role.GetString()}) has null or missing \"content\": give the turn's text (\"\" is allowed).");
            if (content.ValueKind != JsonValueKind.String)
                throw new FormatException($"\"messages\"[{t}].content is {Kind(content)}, expected a string (multi-part content is not supported).");
            list.Add(new ChatMessage(role.GetString()!, content.GetString()!));
            t++;
        }
        return list;
    }

    private static string String(JsonElement e, string field)
    {
        var v = e.GetProperty(field);
        return v.ValueKind == JsonValueKind.String ? v.GetString()!
            : throw new FormatException($"\"{field}\" is {Kind(v)}, expected a string.");
    }

    private static string Kind(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Null => "null", JsonValueKind.Array => "an array", JsonValueKind.Object => "an object",
        JsonValueKind.String => "a string", JsonValueKind.Number => "a number", _ => "a boolean",
    };
}
