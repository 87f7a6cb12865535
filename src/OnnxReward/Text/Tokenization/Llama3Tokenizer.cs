using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace OnnxReward.Text.Tokenization;

/// <summary>
/// The Llama-3 byte-level BPE tokenizer of a model directory, on Microsoft.ML.Tokenizers' <see cref="TiktokenTokenizer"/>.
/// Ranks come from the directory's <c>*.tiktoken</c> file when there is one, else from <c>tokenizer.json</c>'s
/// <c>model.vocab</c> (GPT-2 byte↔unicode strings, rank = id; Llama-3's merges are rank-ordered, so tiktoken's
/// "lowest rank merges first" is the same BPE). The pre-tokenizer regex is tokenizer.json's own Split pattern, and its
/// <c>normalizer</c> is honoured: none (Llama-3) or NFC (Qwen2 / Qwen3, applied to the text between added tokens). Every
/// entry of <c>added_tokens</c> (the 256 specials, and e.g. ArmoRM's <c>[PAD]</c> = 128256) is recognised as one id
/// wherever it appears in text. Nothing is added implicitly: no BOS, no EOS. Thread-safe.
/// </summary>
public sealed class Llama3Tokenizer
{
    public const string TokenizerJson = "tokenizer.json";

    /// <summary>Entries in TiktokenTokenizer's LRU cache of encoded pre-tokens (words). Its default, 8192, is below the
    /// distinct-word count of a few MB of English, so most words were re-merged; 64K keeps the common ones (a few MB).</summary>
    private const int PreTokenCacheSize = 65_536;

    /// <summary>Largest tokenizer.json read (whole, to parse it): a bound on memory for a wrong or hostile file.</summary>
    private const long MaxTokenizerJsonBytes = 256L << 20;

    private readonly TiktokenTokenizer _tokenizer;
    private readonly Dictionary<string, int> _added;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _addedLookup;
    private readonly Dictionary<int, string> _addedById;
    private readonly Regex? _addedPattern;

    private readonly BoundedPreTokenizer _pre;

    /// <summary>tokenizer.json's normalizer is NFC (Qwen): text between added tokens is NFC-normalized before BPE.</summary>
    private readonly bool _nfc;

    /// <summary>Exact BPE for long pieces (whitespace-free text), built from the rank text on the first long piece.</summary>
    private readonly Lazy<LongPieceBpe?> _longPieces;

    private Llama3Tokenizer(TiktokenTokenizer tokenizer, BoundedPreTokenizer pre, byte[] ranks, Dictionary<string, int> added, int vocabularySize,
        bool nfc = false)
    {
        _nfc = nfc;
        _tokenizer = tokenizer;
        _pre = pre;
        _longPieces = new Lazy<LongPieceBpe?>(() => LongPieceBpe.Create(ranks), LazyThreadSafetyMode.ExecutionAndPublication);
        _added = added;
        _addedLookup = added.GetAlternateLookup<ReadOnlySpan<char>>();
        _addedById = added.ToDictionary(kv => kv.Value, kv => kv.Key);
        VocabularySize = vocabularySize;
        // Added tokens are split out first (as Hugging Face tokenizers do), longest first so no token shadows a longer
        // one; only the text between them goes through BPE.
        _addedPattern = added.Count == 0 ? null
            : new Regex(string.Join("|", added.Keys.OrderByDescending(k => k.Length).ThenBy(k => k, StringComparer.Ordinal).Select(Regex.Escape)),
                RegexOptions.Compiled | RegexOptions.CultureInvariant);
    }

    /// <summary>Number of ids: BPE ranks plus added tokens (128257 for ArmoRM).</summary>
    public int VocabularySize { get; }

    /// <summary>Added/special tokens by text.</summary>
    public IReadOnlyDictionary<string, int> AddedTokens => _added;

    /// <summary>The id of an added token (e.g. <c>&lt;|eot_id|&gt;</c>), or null.</summary>
    public int? AddedTokenId(string token) => _added.TryGetValue(token, out var id) ? id : null;

    /// <summary>Loads <c>tokenizer.json</c> (and a <c>*.tiktoken</c> file when present) from a model directory.</summary>
    /// <exception cref="TokenizerException">A file is missing or malformed; the message names it and the field.</exception>
    public static Llama3Tokenizer FromDirectory(string directory)
    {
        var jsonPath = Path.Combine(directory, TokenizerJson);
        if (!File.Exists(jsonPath))
            throw new TokenizerException(
                $"{jsonPath} is missing: the model directory needs the Hugging Face tokenizer.json of its model " +
                "(copy it from the checkpoint, or re-export the model).", jsonPath);
        var length = new FileInfo(jsonPath).Length;
        if (length > MaxTokenizerJsonBytes)
            throw new TokenizerException(
                $"{jsonPath} is {length:N0} bytes, over the {MaxTokenizerJsonBytes:N0} bytes a tokenizer.json can plausibly be " +
                "(Llama-3's is 9 MB): it is not a tokenizer file. Use the tokenizer.json that came with the model.", jsonPath);
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllBytes(jsonPath), new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException e)
        {
            throw new TokenizerException($"{jsonPath} is not valid JSON ({e.Message}). Copy an intact tokenizer.json.", jsonPath, e);
        }
        using (doc)
        {
            var root = doc.RootElement;
            TokenizerException Bad(string what) => new($"{jsonPath}: {what}. Use the tokenizer.json that came with the model.", jsonPath);
            if (root.ValueKind != JsonValueKind.Object)
                throw Bad("the file is not a JSON object");
            if (!root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object)
                throw Bad("it has no 'model' object (the BPE vocabulary and merges live there)");
            if (!model.TryGetProperty("type", out var type) || type.GetString() != "BPE")
                throw Bad($"model.type is {(model.TryGetProperty("type", out var t) ? t.GetRawText() : "missing")}, but a Llama-3 tokenizer is \"BPE\"");
            if (!model.TryGetProperty("vocab", out var vocab) || vocab.ValueKind != JsonValueKind.Object)
                throw Bad("it has no 'model.vocab' object");
            if (!model.TryGetProperty("merges", out var merges) || merges.ValueKind != JsonValueKind.Array || merges.GetArrayLength() == 0)
                throw Bad("it has no 'model.merges' (a byte-level BPE needs its merges)");

            var nfc = ReadNormalizer(root) is { } normalizer
                ? normalizer == "NFC" ? true : throw Bad($"its normalizer is {normalizer}; OnnxReward's byte-level BPE supports no normalizer (Llama-3) or NFC (Qwen)")
                : false;
            var pattern = FindSplitPattern(root) ?? throw Bad(
                "its pre_tokenizer has no Split regex; OnnxReward reads Llama-3-style byte-level BPE tokenizers only");
            var added = new Dictionary<string, int>(StringComparer.Ordinal);
            if (root.TryGetProperty("added_tokens", out var addedTokens) && addedTokens.ValueKind == JsonValueKind.Array)
                foreach (var a in addedTokens.EnumerateArray())
                {
                    if (!a.TryGetProperty("content", out var c) || c.ValueKind != JsonValueKind.String
                        || !a.TryGetProperty("id", out var id) || !id.TryGetInt32(out var idValue) || idValue < 0)
                        throw Bad($"added_tokens holds an entry without a string 'content' and a non-negative 'id': {a.GetRawText()}");
                    added[c.GetString()!] = idValue;
                }

            var tiktoken = Directory.EnumerateFiles(directory, "*.tiktoken").Order(StringComparer.Ordinal).FirstOrDefault();
            // The rank text is kept (1-2 MB) for LongPieceBpe, which builds its tables from it on the first long piece.
            var rankText = tiktoken is not null ? File.ReadAllBytes(tiktoken) : RanksFromVocab(vocab, jsonPath).ToArray();
            using var ranks = new MemoryStream(rankText, writable: false);
            var maxRank = vocab.EnumerateObject().Count() - 1;
            TiktokenTokenizer tokenizer;
            BoundedPreTokenizer pre;
            try
            {
                // Added tokens are NOT given to TiktokenTokenizer: in Microsoft.ML.Tokenizers 2.0.1 it finds them through
                // its LRU cache, so once ~8K distinct words have been encoded they are evicted and "<|eot_id|>" comes
                // out as 7 text tokens (seen after encoding the shared data; regression test
                // SpecialTokensSurviveAFullEncodingCache). Encode splits them out itself instead.
                // The pattern comes from the file: a match timeout turns a catastrophically backtracking one into an
                // exception instead of a hang (Llama-3's own pattern matches in linear time).
                // BoundedPreTokenizer caps the piece length the BPE sees, so encoding is linear in the input.
                pre = new BoundedPreTokenizer(new Regex(pattern, RegexOptions.Compiled, TimeSpan.FromSeconds(10)));
                tokenizer = TiktokenTokenizer.Create(ranks, pre, normalizer: null, specialTokens: null, cacheSize: PreTokenCacheSize);
            }
            catch (Exception e) when (e is ArgumentException or FormatException or InvalidOperationException)
            {
                throw new TokenizerException(
                    $"{tiktoken ?? jsonPath}: the BPE vocabulary could not be loaded ({e.Message}). Use the files that came with the model.",
                    tiktoken ?? jsonPath, e);
            }
            var size = Math.Max(maxRank, added.Count == 0 ? 0 : added.Values.Max()) + 1;
            return new Llama3Tokenizer(tokenizer, pre, rankText, added, size, nfc);
        }
    }

    /// <summary>The normalizer's type: null for none (or an empty Sequence), "NFC" for NFC (also as a one-step
    /// Sequence), else its JSON for the error message.</summary>
    private static string? ReadNormalizer(JsonElement root)
    {
        if (!root.TryGetProperty("normalizer", out var n) || n.ValueKind == JsonValueKind.Null)
            return null;
        var type = n.ValueKind == JsonValueKind.Object && n.TryGetProperty("type", out var t) ? t.GetString() : null;
        if (type == "NFC")
            return "NFC";
        if (type == "Sequence" && n.TryGetProperty("normalizers", out var list) && list.ValueKind == JsonValueKind.Array)
        {
            var steps = list.EnumerateArray().Select(e => e.TryGetProperty("type", out var st) ? st.GetString() : null).ToList();
            if (steps.Count == 0) return null;
            if (steps is ["NFC"]) return "NFC";
        }
        var raw = n.GetRawText();
        return raw.Length > 200 ? raw[..200] + "…" : raw;
    }

    private static string? FindSplitPattern(JsonElement root)
    {
        if (!root.TryGetProperty("pre_tokenizer", out var pre) || pre.ValueKind != JsonValueKind.Object)
            return null;
        IEnumerable<JsonElement> steps = pre.TryGetProperty("pretokenizers", out var list) && list.ValueKind == JsonValueKind.Array
            ? list.EnumerateArray() : [pre];
        foreach (var step in steps)
            if (step.TryGetProperty("type", out var t) && t.GetString() == "Split"
                && step.TryGetProperty("pattern", out var p) && p.TryGetProperty("Regex", out var r) && r.ValueKind == JsonValueKind.String)
                return r.GetString();
        return null;
    }

    /// <summary>tokenizer.json's byte-level vocab → tiktoken text ("base64(bytes) rank" per line).</summary>
    private static MemoryStream RanksFromVocab(JsonElement vocab, string jsonPath)
    {
        var byteOf = ByteLevelDecoding();
        var text = new StringBuilder(2_000_000);
        var bytes = new List<byte>(64);
        foreach (var entry in vocab.EnumerateObject())
        {
            if (!entry.Value.TryGetInt32(out var rank) || rank < 0)
                throw new TokenizerException($"{jsonPath}: model.vocab['{entry.Name}'] is {entry.Value.GetRawText()}, expected a non-negative id.", jsonPath);
            bytes.Clear();
            foreach (var ch in entry.Name)
            {
                if (!byteOf.TryGetValue(ch, out var b))
                    throw new TokenizerException(
                        $"{jsonPath}: model.vocab entry '{entry.Name}' holds U+{(int)ch:X4}, which is not a byte-level BPE character. " +
                        "This is not a byte-level (GPT-2/Llama-3 style) vocabulary.", jsonPath);
                bytes.Add(b);
            }
            text.Append(Convert.ToBase64String(bytes.ToArray())).Append(' ').Append(rank).Append('\n');
        }
        return new MemoryStream(Encoding.ASCII.GetBytes(text.ToString()));
    }

    /// <summary>GPT-2's bytes_to_unicode, inverted: printable bytes map to themselves, the rest to U+0100 onwards.</summary>
    private static Dictionary<char, byte> ByteLevelDecoding()
    {
        var map = new Dictionary<char, byte>(256);
        var n = 0;
        for (var b = 0; b < 256; b++)
        {
            var printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            map[printable ? (char)b : (char)(256 + n++)] = (byte)b;
        }
        return map;
    }

    /// <summary>Encodes text; added tokens in the text become their ids; nothing is added. Work is linear in the
    /// length of the text (see <see cref="BoundedPreTokenizer"/>); <paramref name="cancellationToken"/> is checked
    /// while it runs.</summary>
    /// <exception cref="ArgumentException">The text holds a lone UTF-16 surrogate (it is not Unicode text).</exception>
    public int[] Encode(string text, CancellationToken cancellationToken = default) =>
        Encode(text, recogniseAddedTokens: true, cancellationToken);

    /// <summary>Encodes text; with <paramref name="recogniseAddedTokens"/> false, added/special token strings in it
    /// are encoded as the plain text they are (e.g. "&lt;|eot_id|&gt;" → 7 ordinary tokens).</summary>
    /// <exception cref="ArgumentException">The text holds a lone UTF-16 surrogate (it is not Unicode text).</exception>
    public int[] Encode(string text, bool recogniseAddedTokens, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(text);
        ThrowOnLoneSurrogate(text);
        using var scope = BoundedPreTokenizer.Scope(cancellationToken);
        return !recogniseAddedTokens || _addedPattern is null ? ToArray(EncodeOrdinary(text)) : EncodeSegments(text, escape: null, cancellationToken);
    }

    /// <summary>
    /// Encodes text in which <paramref name="escape"/> marks characters that must not take part in an added token:
    /// added tokens are found in the text as it is (an escape character inside one breaks it), then the escapes are
    /// removed from the ordinary segments before BPE (a doubled escape stands for one literal escape character). This
    /// is how message content becomes plain text while the template's own special tokens stay special.
    /// </summary>
    internal int[] EncodeEscaped(string text, char escape, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(text);
        ThrowOnLoneSurrogate(text);
        using var scope = BoundedPreTokenizer.Scope(cancellationToken);
        return _addedPattern is null ? ToArray(EncodeOrdinary(Unescape(text, escape))) : EncodeSegments(text, escape, cancellationToken);
    }

    private int[] EncodeSegments(string text, char? escape, CancellationToken cancellationToken)
    {
        if (!_addedPattern!.IsMatch(text))
            return ToArray(EncodeOrdinary(escape is { } e0 ? Unescape(text, e0) : text));
        // Segments between added tokens are encoded as spans of the text (no substrings unless escapes are removed).
        var ids = new List<int>(text.Length / 3 + 4);
        var start = 0;
        foreach (var m in _addedPattern.EnumerateMatches(text))
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (m.Index > start)
                ids.AddRange(Ordinary(text.AsSpan(start, m.Index - start)));
            ids.Add(_addedLookup[text.AsSpan(m.Index, m.Length)]);
            start = m.Index + m.Length;
        }
        if (start < text.Length)
            ids.AddRange(Ordinary(text.AsSpan(start)));
        return ids.ToArray();

        IReadOnlyList<int> Ordinary(ReadOnlySpan<char> segment) =>
            escape is { } e && segment.Contains(e) ? EncodeOrdinary(Unescape(segment, e)) : EncodeOrdinary(segment);
    }

    /// <summary>
    /// The inverse of <see cref="EncodeEscaped"/>'s unescaping for one piece of untrusted text (message content): every
    /// added token in it gets <paramref name="escape"/> after each of its characters but the last, so no added token
    /// survives in it, nor forms with the text around it; literal escape characters are doubled. Removing the escapes
    /// gives the text back exactly.
    /// </summary>
    internal string EscapeAddedTokens(string text, char escape)
    {
        ArgumentNullException.ThrowIfNull(text);
        var hasEscape = text.Contains(escape);
        if (!hasEscape && (_addedPattern is null || !_addedPattern.IsMatch(text)))
            return text;
        var sb = new StringBuilder(text.Length + 32);
        var start = 0;
        if (_addedPattern is not null)
            foreach (var m in _addedPattern.EnumerateMatches(text))
            {
                Plain(text.AsSpan(start, m.Index - start));
                for (var i = m.Index; i < m.Index + m.Length - 1; i++)
                    sb.Append(text[i]).Append(escape);
                sb.Append(text[m.Index + m.Length - 1]);
                start = m.Index + m.Length;
            }
        Plain(text.AsSpan(start));
        return sb.ToString();

        void Plain(ReadOnlySpan<char> part)
        {
            if (!hasEscape)
            {
                sb.Append(part);
                return;
            }
            foreach (var c in part)
            {
                sb.Append(c);
                if (c == escape)
                    sb.Append(escape);
            }
        }
    }

    /// <summary>Removes escape characters; a doubled one stands for one literal.</summary>
    private static string Unescape(ReadOnlySpan<char> text, char escape)
    {
        if (!text.Contains(escape))
            return text.ToString();
        var sb = new StringBuilder(text.Length);
        for (var i = 0; i < text.Length; i++)
        {
            if (text[i] != escape)
                sb.Append(text[i]);
            else if (i + 1 < text.Length && text[i + 1] == escape)
                sb.Append(text[++i]);
        }
        return sb.ToString();
    }

    /// <summary>Index of the first unpaired UTF-16 surrogate in <paramref name="text"/>, or -1 (vectorised scan).</summary>
    public static int LoneSurrogateIndex(ReadOnlySpan<char> text)
    {
        var i = text.IndexOfAnyInRange('\uD800', '\uDFFF');
        while (i >= 0)
        {
            if (!char.IsHighSurrogate(text[i]) || i + 1 >= text.Length || !char.IsLowSurrogate(text[i + 1]))
                return i;
            i += 2;
            var next = text[i..].IndexOfAnyInRange('\uD800', '\uDFFF');
            i = next < 0 ? -1 : i + next;
        }
        return -1;
    }

    private static void ThrowOnLoneSurrogate(string text)
    {
        var at = LoneSurrogateIndex(text);
        if (at >= 0)
            throw new ArgumentException(
                $"the text holds a lone UTF-16 surrogate (U+{(int)text[at]:X4} at character {at}), which is not a Unicode " +
                "character and has no UTF-8 encoding: fix the input's escapes (a JSON \\ud800 must be followed by its low " +
                "surrogate \\udc00-\\udfff).");
    }

    /// <summary>BPE of text without added tokens. The text is split once; runs of ordinary pieces go to
    /// TiktokenTokenizer (given those pieces, so it does not split again), pieces longer than
    /// <see cref="LongPieceBpe.MinPieceChars"/> to <see cref="LongPieceBpe"/>, which gives the same ids at a fraction of
    /// the cost.</summary>
    private IReadOnlyList<int> EncodeOrdinary(ReadOnlySpan<char> text)
    {
        if (text.IsEmpty)
            return [];
        // NFC: decomposed accents (e + U+0301) become precomposed characters, as Hugging Face's normalizer does.
        // (UnicodeNfc, not string.Normalize: that does nothing under InvariantGlobalization.)
        if (_nfc && !UnicodeNfc.IsTriviallyNormalized(text))
            return EncodeNormalized(UnicodeNfc.Normalize(text));
        return EncodeNormalized(text);
    }

    private IReadOnlyList<int> EncodeNormalized(ReadOnlySpan<char> text)
    {
        var pieces = _pre.Split(text);
        var firstLong = pieces.FindIndex(p => p.Length > LongPieceBpe.MinPieceChars);
        if (firstLong < 0 || _longPieces.Value is not { } bpe)
            return Package(text, pieces);
        var ct = BoundedPreTokenizer.Cancellation;
        var ids = new List<int>(text.Length / 3 + 4);
        var runStart = 0;
        for (var i = firstLong; i < pieces.Count; i++)
        {
            var (offset, length) = pieces[i];
            if (length <= LongPieceBpe.MinPieceChars)
                continue;
            if (i > runStart)
                ids.AddRange(Package(text, Range(pieces, runStart, i)));
            if ((i & 255) == 0)
                ct.ThrowIfCancellationRequested();
            bpe.Encode(text.Slice(offset, length), ids);
            runStart = i + 1;
        }
        if (pieces.Count > runStart)
            ids.AddRange(Package(text, Range(pieces, runStart, pieces.Count)));
        return ids;
    }

    private static IEnumerable<(int Offset, int Length)> Range(List<(int Offset, int Length)> pieces, int from, int to)
    {
        for (var i = from; i < to; i++)
            yield return pieces[i];
    }

    /// <summary>TiktokenTokenizer's ids of <paramref name="pieces"/> of <paramref name="text"/>.</summary>
    private IReadOnlyList<int> Package(ReadOnlySpan<char> text, IEnumerable<(int Offset, int Length)> pieces)
    {
        BoundedPreTokenizer.Provide(pieces);
        try
        {
            return _tokenizer.EncodeToIds(text, considerPreTokenization: true, considerNormalization: false);
        }
        finally
        {
            BoundedPreTokenizer.Provide(null);
        }
    }

    /// <summary>Test seam: the ids of text without added tokens from TiktokenTokenizer alone (every piece, long ones
    /// too), which <see cref="LongPieceBpe"/> must reproduce.</summary>
    internal int[] EncodeWithPackageOnly(string text) => text.Length == 0 ? [] : ToArray(Package(text, _pre.Split(text)));

    private static int[] ToArray(IReadOnlyList<int> ids) => ids switch
    {
        int[] array => array,
        List<int> list => list.ToArray(),
        _ => ids.ToArray(),
    };

    /// <summary>Decodes ids back to text (added tokens as their text).</summary>
    public string Decode(IEnumerable<int> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var sb = new StringBuilder();
        var run = new List<int>();
        foreach (var id in ids)
        {
            if ((uint)id >= (uint)VocabularySize)
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"token id {id} is outside the vocabulary [0, {VocabularySize}).");
            if (_addedById.TryGetValue(id, out var special))
            {
                Flush();
                sb.Append(special);
            }
            else
                run.Add(id);
        }
        Flush();
        return sb.ToString();

        void Flush()
        {
            if (run.Count == 0)
                return;
            sb.Append(_tokenizer.Decode(run));
            run.Clear();
        }
    }
}
