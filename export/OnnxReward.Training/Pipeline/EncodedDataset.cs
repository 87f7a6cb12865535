using OnnxReward.Text;
using OnnxReward.Training.Data;

namespace OnnxReward.Training.Pipeline;

/// <summary>Every labelled example tokenized once: ids and the two positions, or null when it cannot be used.</summary>
internal sealed class EncodedDataset
{
    public const int PadTokenId = 128256;

    public required ObjectiveLabels Labels { get; init; }
    public required EncodedConversation?[] Encoded { get; init; }
    public required int TooLong { get; init; }
    public required int Unencodable { get; init; }
    public required int Shortened { get; init; }

    /// <summary>The first encoding error seen, for the log (null when every example encoded).</summary>
    public string? FirstError { get; init; }

    public bool IsUsable(int row) => Encoded[row] is not null;

    /// <summary>Tokenizes examples with the model's chat template; over-long ones lose their oldest turns (the same
    /// policy as scoring's DropOldestTurns) and are skipped, counted, when still too long.</summary>
    public static EncodedDataset Build(ObjectiveLabels labels, ConversationEncoder encoder, int maxLength)
    {
        var encoded = new EncodedConversation?[labels.Examples.Count];
        int tooLong = 0, unencodable = 0, shortened = 0;
        string? firstError = null;
        Parallel.For(0, encoded.Length, new ParallelOptions { MaxDegreeOfParallelism = 2 }, i =>
        {
            var e = labels.Examples[i];
            try
            {
                var messages = Conversation.FromPromptResponse(e.Prompt, e.Response).Messages.ToList();
                var lastUser = messages.FindLastIndex(m => m.Role == "user");
                var enc = encoder.Encode(Conversation.FromMessages(messages), i);
                var cut = false;
                while (enc.InputIds.Length > maxLength)
                {
                    var oldest = messages.FindIndex(m => m.Role != "system");
                    if (oldest >= lastUser)
                        break;
                    messages.RemoveAt(oldest);
                    lastUser--;
                    cut = true;
                    enc = encoder.Encode(Conversation.FromMessages(messages), i);
                }
                if (Array.IndexOf(enc.InputIds, PadTokenId) >= 0)
                {
                    Interlocked.Increment(ref unencodable);          // a literal "[PAD]" in the text: never fed to the model
                    return;
                }
                if (enc.InputIds.Length > maxLength)
                {
                    Interlocked.Increment(ref tooLong);
                    return;
                }
                if (cut)
                    Interlocked.Increment(ref shortened);
                encoded[i] = enc;
            }
            catch (Exception ex) when (ex is RewardModelException or ArgumentException)
            {
                Interlocked.Increment(ref unencodable);
                Interlocked.CompareExchange(ref firstError, $"example {i} ({e.Dataset} {e.File}:{e.Row}): {ex.Message}", null);
            }
        });
        return new EncodedDataset
        {
            Labels = labels, Encoded = encoded, TooLong = tooLong, Unencodable = unencodable, Shortened = shortened, FirstError = firstError,
        };
    }
}
