namespace OnnxReward;

/// <summary>One chat turn: a role (<c>system</c>, <c>user</c> or <c>assistant</c>) and its text.</summary>
public sealed record ChatMessage(string Role, string Content);

/// <summary>
/// A conversation to score: its last turn is the assistant's response, and the turns before it are the prompt.
/// <code>
/// Conversation.FromPromptResponse("What is 2+2?", "4")
/// Conversation.FromPromptResponse("\n\nHuman: hi\n\nAssistant: hello\n\nHuman: bye\n\nAssistant:", "bye!")   // hh-rlhf
/// Conversation.FromMessages([new("system", "Be brief."), new("user", "Hi"), new("assistant", "Hello")])
/// </code>
/// </summary>
public sealed class Conversation
{
    private static readonly string[] Roles = ["system", "user", "assistant"];

    private Conversation(IReadOnlyList<ChatMessage> messages) => Messages = messages;

    /// <summary>The turns, in order.</summary>
    public IReadOnlyList<ChatMessage> Messages { get; }

    /// <summary>A conversation from its turns (not validated until it is scored: see <see cref="Validate"/>).</summary>
    public static Conversation FromMessages(IEnumerable<ChatMessage> messages)
    {
        ArgumentNullException.ThrowIfNull(messages);
        return new Conversation(messages.ToList());
    }

    /// <summary>A prompt and a response. A prompt in hh-rlhf transcript form (<c>\n\nHuman: … \n\nAssistant: …</c>)
    /// becomes its alternating user/assistant turns; any other prompt is one user turn.</summary>
    public static Conversation FromPromptResponse(string prompt, string response)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentNullException.ThrowIfNull(response);
        var turns = IsTranscript(prompt) ? ParseTranscript(prompt) : [new ChatMessage("user", prompt)];
        if (turns.Count > 0 && turns[^1].Role == "assistant" && turns[^1].Content.Length == 0)
            turns.RemoveAt(turns.Count - 1);                 // the trailing "\n\nAssistant:" is where the response goes
        turns.Add(new ChatMessage("assistant", response));
        return new Conversation(turns);
    }

    /// <summary>A whole hh-rlhf transcript (prompt and response in one string, as the dataset's chosen/rejected fields are).</summary>
    public static Conversation FromTranscript(string transcript)
    {
        ArgumentNullException.ThrowIfNull(transcript);
        if (!IsTranscript(transcript))
            throw new ArgumentException("a transcript starts with \"\\n\\nHuman:\" (hh-rlhf form); pass prompt and response separately otherwise.", nameof(transcript));
        return new Conversation(ParseTranscript(transcript));
    }

    /// <summary>True for the hh-rlhf transcript form.</summary>
    public static bool IsTranscript(string text) =>
        text.StartsWith("\n\nHuman:", StringComparison.Ordinal) || text.StartsWith("Human:", StringComparison.Ordinal);

    private static List<ChatMessage> ParseTranscript(string text)
    {
        // Turns are introduced by "\n\nHuman:" and "\n\nAssistant:"; content is stripped of the spaces around it.
        var turns = new List<ChatMessage>();
        var i = text.StartsWith("Human:", StringComparison.Ordinal) ? 0 : 2;
        while (i < text.Length)
        {
            var (role, marker) = string.CompareOrdinal(text, i, "Human:", 0, 6) == 0 ? ("user", "Human:")
                : string.CompareOrdinal(text, i, "Assistant:", 0, 10) == 0 ? ("assistant", "Assistant:")
                : throw new ArgumentException($"hh-rlhf transcript: expected 'Human:' or 'Assistant:' at character {i}.", nameof(text));
            var start = i + marker.Length;
            var next = NextMarker(text, start);
            turns.Add(new ChatMessage(role, Text.Chat.JinjaBuiltins.PyStrip(text[start..next])));
            i = next + 2;
        }
        return turns;
    }

    private static int NextMarker(string text, int from)
    {
        var h = text.IndexOf("\n\nHuman:", from, StringComparison.Ordinal);
        var a = text.IndexOf("\n\nAssistant:", from, StringComparison.Ordinal);
        if (h < 0) return a < 0 ? text.Length : a;
        return a < 0 ? h : Math.Min(h, a);
    }

    /// <summary>
    /// Checks that the conversation can be scored: at least one user turn, known roles, text content, and the
    /// assistant's response last (that turn's header is where ArmoRM reads the prompt for gating).
    /// </summary>
    /// <exception cref="RewardModelException">The message names the conversation (<paramref name="index"/>), the
    /// turn and what to do.</exception>
    public void Validate(int index = 0)
    {
        if (Messages.Count == 0)
            throw new RewardModelException($"conversation {index} is empty: give at least a user turn and the assistant's response.", index);
        for (var t = 0; t < Messages.Count; t++)
        {
            var m = Messages[t];
            if (m is null)
                throw new RewardModelException($"conversation {index}, turn {t} is null: every turn needs a role and content.", index);
            if (m.Role is null || !Roles.Contains(m.Role))
                throw new RewardModelException(
                    $"conversation {index}, turn {t} has role '{m.Role ?? "null"}': use 'system', 'user' or 'assistant'.", index);
            if (m.Content is null)
                throw new RewardModelException(
                    $"conversation {index}, turn {t} ({m.Role}) has null content: give text (an empty string is allowed).", index);
        }
        if (Messages[^1].Role != "assistant")
            throw new RewardModelException(
                $"conversation {index}: the last turn is the {Messages[^1].Role}'s, not the assistant's. A reward model scores the " +
                "assistant's response: end the conversation with the assistant turn to score.", index);
        if (!Messages.Take(Messages.Count - 1).Any(m => m.Role == "user"))
            throw new RewardModelException(
                $"conversation {index} has no user turn before the assistant's response: give the prompt as a user turn " +
                "(the gating network reads the prompt).", index);
    }
}
