using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace OnnxReward.Text.Tokenization;

/// <summary>
/// A regex pre-tokenizer whose pieces are never longer than <see cref="MaxPieceChars"/> characters, so byte-level BPE
/// (whose merge loop is quadratic in the piece length: 'a' × 100 K took 3.3 s, × 1 M over 120 s) costs at most
/// O(<see cref="MaxPieceChars"/>) per character: tokenization is linear in the input for any input. A longer regex
/// match (a run of letters, punctuation or whitespace) is cut into consecutive chunks of at most that length, never
/// inside a surrogate pair; each chunk is merged on its own (the bound tiktoken's and Hugging Face's encoders apply to
/// over-long pieces). Ordinary text never has such pieces, so its tokens are unchanged (the 600 reference encodings
/// hold). Shared by every byte-level BPE tokenizer of the library (it only needs the model's split regex).
/// <para>The regex must not backtrack catastrophically: Llama-3's and Qwen's split patterns do a bounded amount of work
/// per character consumed (every alternative is a greedy class run with at most a one-character look-ahead), and the
/// regex carries a match timeout so that a hostile pattern from a tokenizer.json fails instead of hanging.</para>
/// <para>Cancellation: <see cref="Cancellation"/> is checked every <see cref="CancellationStride"/> pieces while the
/// BPE consumes them, so a deadline stops a long encode within milliseconds.</para>
/// </summary>
internal sealed class BoundedPreTokenizer : PreTokenizer
{
    /// <summary>Longest piece handed to BPE. 256 characters: far above any word, number group or indentation run of
    /// real text (the 600 reference texts' longest piece is well below it), and a chunk of 256 costs microseconds.</summary>
    public const int MaxPieceChars = 256;

    private const int CancellationStride = 256;

    [ThreadStatic] private static CancellationToken t_cancellation;

    private readonly Regex _regex;

    public BoundedPreTokenizer(Regex regex) => _regex = regex;

    /// <summary>The token checked while the calling thread encodes (set for one call by <see cref="Scope"/>).</summary>
    internal static CancellationToken Cancellation => t_cancellation;

    /// <summary>Makes <paramref name="token"/> the calling thread's cancellation for the encode calls inside the scope.</summary>
    internal static CancellationScope Scope(CancellationToken token)
    {
        var previous = t_cancellation;
        t_cancellation = token;
        return new CancellationScope(previous);
    }

    internal readonly struct CancellationScope(CancellationToken previous) : IDisposable
    {
        public void Dispose() => t_cancellation = previous;
    }

    [ThreadStatic] private static IEnumerable<(int Offset, int Length)>? t_provided;

    /// <summary>Makes the calling thread's next <see cref="PreTokenize(ReadOnlySpan{char})"/> return
    /// <paramref name="pieces"/> (already split by <see cref="Split"/>, offsets into the text the tokenizer is given;
    /// they may cover only part of it) instead of matching the regex again.</summary>
    internal static void Provide(IEnumerable<(int Offset, int Length)>? pieces) => t_provided = pieces;

    public override IEnumerable<(int Offset, int Length)> PreTokenize(string text) =>
        text is null ? [] : PreTokenize(text.AsSpan());

    public override IEnumerable<(int Offset, int Length)> PreTokenize(ReadOnlySpan<char> text)
    {
        var pieces = t_provided;
        t_provided = null;
        pieces ??= Split(text);
        var ct = t_cancellation;
        return ct.CanBeCanceled ? Checked(pieces, ct) : pieces;
    }

    /// <summary>The bounded pieces of <paramref name="text"/> (cancellation checked while matching).</summary>
    internal List<(int Offset, int Length)> Split(ReadOnlySpan<char> text) => Pieces(_regex, text);

    private static List<(int Offset, int Length)> Pieces(Regex regex, ReadOnlySpan<char> text)
    {
        var ct = t_cancellation;
        var pieces = new List<(int, int)>(text.Length / 4 + 1);
        var matches = 0;
        foreach (var m in regex.EnumerateMatches(text))
        {
            if ((++matches & (CancellationStride - 1)) == 0)
                ct.ThrowIfCancellationRequested();
            if (m.Length <= MaxPieceChars)
            {
                pieces.Add((m.Index, m.Length));
                continue;
            }
            var end = m.Index + m.Length;
            for (var start = m.Index; start < end;)
            {
                var length = Math.Min(MaxPieceChars, end - start);
                if (start + length < end && char.IsHighSurrogate(text[start + length - 1]) && char.IsLowSurrogate(text[start + length]))
                    length--;   // keep the pair together: its UTF-8 bytes belong to one chunk
                pieces.Add((start, length));
                start += length;
            }
        }
        ct.ThrowIfCancellationRequested();
        return pieces;
    }

    /// <summary>The pieces, checking the token while the BPE consumes them.</summary>
    private static IEnumerable<(int Offset, int Length)> Checked(IEnumerable<(int Offset, int Length)> pieces, CancellationToken ct)
    {
        var i = 0;
        foreach (var piece in pieces)
        {
            if ((i++ & (CancellationStride - 1)) == 0)
                ct.ThrowIfCancellationRequested();
            yield return piece;
        }
    }
}
