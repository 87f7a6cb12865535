using OnnxReward.Text;
using OnnxReward.Training.Data;

namespace OnnxReward.Training.Pipeline;

/// <summary>Every labelled example tokenized once: ids and the two positions, or null when it cannot be used.</summary>
internal sealed class EncodedDataset
{
    public const int PadTokenId = 128256;

    public required ObjectiveLabels Labels { get; init; }
    public required EncodedInput?[] Encoded { get; init; }
    public required int TooLong { get; init; }
    public required int Unencodable { get; init; }
    public required int Shortened { get; init; }

    /// <summary>The first encoding error seen, for the log (null when every example encoded).</summary>
    public string? FirstError { get; init; }

    public bool IsUsable(int row) => Encoded[row] is not null;

    /// <summary>Tokenizes examples with the model's chat template through the one encoder scoring uses: over-long ones
    /// lose their oldest turns (DropOldestTurns) and are skipped, counted, when still too long; an example whose text
    /// holds the pad token is never fed to the model.</summary>
    public static EncodedDataset Build(ObjectiveLabels labels, InputEncoder encoder, int maxLength)
    {
        encoder = encoder.With(encoder.Options with
        {
            MaxSequenceLength = maxLength,
            Truncation = TruncationPolicy.DropOldestTurns,
            PadTokens = PadTokenRule.Reject,
            PadTokenId = PadTokenId,
        });
        var encoded = new EncodedInput?[labels.Examples.Count];
        int tooLong = 0, unencodable = 0, shortened = 0;
        string? firstError = null;
        Parallel.For(0, encoded.Length, new ParallelOptions { MaxDegreeOfParallelism = 2 }, i =>
        {
            var e = labels.Examples[i];
            try
            {
                var enc = encoder.Encode(Conversation.FromPromptResponse(e.Prompt, e.Response), i);
                if (enc.WasTruncated)
                    Interlocked.Increment(ref shortened);
                encoded[i] = enc;
            }
            catch (RewardModelException ex) when (ex.Code == RewardErrorCode.InputTooLong)
            {
                Interlocked.Increment(ref tooLong);
            }
            catch (RewardModelException ex) when (ex.Code == RewardErrorCode.PadTokenInInput)
            {
                Interlocked.Increment(ref unencodable);          // a literal "[PAD]" in the text: never fed to the model
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
