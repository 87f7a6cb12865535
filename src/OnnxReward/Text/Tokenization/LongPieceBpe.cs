using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Text;

namespace OnnxReward.Text.Tokenization;

/// <summary>
/// Byte-level BPE for the long pieces of whitespace-free text (runs of letters, digits-free punctuation or spaces longer
/// than <see cref="MinPieceChars"/>), giving exactly the ids Microsoft.ML.Tokenizers' TiktokenTokenizer gives (tiktoken's
/// rule: repeatedly merge the adjacent pair whose concatenated bytes have the lowest rank, the leftmost on a tie; the
/// merged part's id is that rank), at a fraction of its cost. Written here because the package (2.0.1) merges a piece by
/// rescanning it and re-hashing byte slices for every merge: with <see cref="BoundedPreTokenizer.MaxPieceChars"/>-long
/// pieces 1 MB of 'a' or of DNA took 4.5–5× the per-byte time of ordinary text, whose short words its cache serves
/// (issue 16 asks for at most 3×). Here every part is its token id, the rank of a pair comes from one
/// <c>(left id, right id) → id</c> table lookup, and the lowest rank is found with a vectorised scan.
/// <para>The pair table holds, for every vocabulary token, each split of its bytes into two vocabulary tokens (so a pair
/// merges exactly when its concatenation is a token, tiktoken's rule). It is built on the first long piece a tokenizer
/// sees (Llama-3: 280 K pairs, ~0.27 s and ~16 MB, measured by LongPieceBpeTests), never for text without long pieces.</para>
/// </summary>
internal sealed class LongPieceBpe
{
    /// <summary>Pieces longer than this take this path (TiktokenTokenizer caches pieces of at most 15 characters and
    /// merges longer ones from scratch every time, so it has no advantage on them; 32 keeps ordinary text, which has
    /// few such pieces, on the package's path).</summary>
    public const int MinPieceChars = 32;

    private readonly int[] _byteIds;
    private readonly Dictionary<long, int> _pairs;

    private LongPieceBpe(int[] byteIds, Dictionary<long, int> pairs)
    {
        _byteIds = byteIds;
        _pairs = pairs;
    }

    /// <summary>Builds the tables from tiktoken rank text ("base64(bytes) rank" per line); null when some single byte
    /// has no rank (not a byte-level vocabulary: the package's path is kept for every piece then).</summary>
    public static LongPieceBpe? Create(byte[] tiktokenText)
    {
        var byToken = new Dictionary<string, int>(StringComparer.Ordinal);
        var text = Encoding.ASCII.GetString(tiktokenText);
        foreach (var range in text.AsSpan().Split('\n'))
        {
            var line = text.AsSpan(range).Trim();
            if (line.IsEmpty)
                continue;
            var space = line.IndexOf(' ');
            if (space <= 0 || !int.TryParse(line[(space + 1)..], out var rank))
                return null;
            var bytes = Convert.FromBase64String(line[..space].ToString());
            // Bytes as Latin-1 characters: a cheap ordinal key whose slices are the byte slices.
            byToken.TryAdd(string.Create(bytes.Length, bytes, static (s, b) => { for (var i = 0; i < b.Length; i++) s[i] = (char)b[i]; }), rank);
        }
        var byteIds = new int[256];
        Span<char> one = stackalloc char[1];
        var lookup = byToken.GetAlternateLookup<ReadOnlySpan<char>>();
        for (var b = 0; b < 256; b++)
        {
            one[0] = (char)b;
            if (!lookup.TryGetValue(one, out byteIds[b]))
                return null;
        }
        var pairs = new Dictionary<long, int>(byToken.Count * 4, MixedHash.Instance);
        foreach (var (token, id) in byToken)
            for (var k = 1; k < token.Length; k++)
                if (lookup.TryGetValue(token.AsSpan(0, k), out var left) && lookup.TryGetValue(token.AsSpan(k), out var right))
                    pairs.TryAdd(Key(left, right), id);
        return new LongPieceBpe(byteIds, pairs);
    }

    /// <summary>long's own hash is left ^ right: every (x, x) pair and most small ids would share a few buckets
    /// ('a' × 1 MB took 4 s). Fibonacci hashing spreads the pairs.</summary>
    private sealed class MixedHash : IEqualityComparer<long>
    {
        public static readonly MixedHash Instance = new();

        public bool Equals(long x, long y) => x == y;

        public int GetHashCode(long key) => (int)(((ulong)key * 0x9E3779B97F4A7C15UL) >> 32);
    }

    /// <summary>Entries of the pair table.</summary>
    public int PairCount => _pairs.Count;

    private static long Key(int left, int right) => ((long)left << 32) | (uint)right;

    private int Rank(int left, int right) => _pairs.TryGetValue(Key(left, right), out var id) ? id : int.MaxValue;

    /// <summary>Appends the ids of one piece (at most a few thousand characters: pieces come from the bounded pre-tokenizer).</summary>
    public void Encode(ReadOnlySpan<char> piece, List<int> ids)
    {
        var max = Encoding.UTF8.GetMaxByteCount(piece.Length);
        byte[]? rented = null;
        int[]? rentedInts = null;
        var bytes = max <= 1024 ? stackalloc byte[1024] : (rented = System.Buffers.ArrayPool<byte>.Shared.Rent(max));
        var n = Encoding.UTF8.GetBytes(piece, bytes);
        var work = n <= 1024 ? stackalloc int[2 * 1024] : (rentedInts = System.Buffers.ArrayPool<int>.Shared.Rent(2 * n));
        var parts = work[..n];
        var ranks = work.Slice(n, n);      // ranks[i]: the id of parts[i] + parts[i + 1], or int.MaxValue
        for (var i = 0; i < n; i++)
            parts[i] = _byteIds[bytes[i]];
        for (var i = 0; i + 1 < n; i++)
            ranks[i] = Rank(parts[i], parts[i + 1]);
        var count = n;
        while (count > 1)
        {
            var j = LeftmostMin(ranks[..(count - 1)], out var merged);
            if (j < 0)
                break;
            parts[j] = merged;
            parts[(j + 2)..count].CopyTo(parts[(j + 1)..]);
            ranks[(j + 1)..(count - 1)].CopyTo(ranks[j..]);
            count--;
            if (j + 1 < count)
                ranks[j] = Rank(parts[j], parts[j + 1]);
            if (j > 0)
                ranks[j - 1] = Rank(parts[j - 1], parts[j]);
        }
        for (var i = 0; i < count; i++)
            ids.Add(parts[i]);
        if (rented is not null)
            System.Buffers.ArrayPool<byte>.Shared.Return(rented);
        if (rentedInts is not null)
            System.Buffers.ArrayPool<int>.Shared.Return(rentedInts);
    }

    /// <summary>Index of the first smallest value other than int.MaxValue, or -1.</summary>
    private static int LeftmostMin(ReadOnlySpan<int> values, out int min)
    {
        var m = int.MaxValue;
        var i = 0;
        if (Vector256.IsHardwareAccelerated && values.Length >= Vector256<int>.Count)
        {
            ref var start = ref MemoryMarshal.GetReference(values);
            var acc = Vector256.Create(int.MaxValue);
            for (; i <= values.Length - Vector256<int>.Count; i += Vector256<int>.Count)
                acc = Vector256.Min(acc, Vector256.LoadUnsafe(ref start, (nuint)i));
            for (var k = 0; k < Vector256<int>.Count; k++)
                m = Math.Min(m, acc[k]);
        }
        for (; i < values.Length; i++)
            if (values[i] < m)
                m = values[i];
        min = m;
        return m == int.MaxValue ? -1 : values.IndexOf(m);
    }
}
