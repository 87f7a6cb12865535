using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using OnnxReward.Testing;
using OnnxReward.Text.Tokenization;

namespace OnnxReward.Tests.Text;

/// <summary>Issue 16 item 1 (throughput part): <see cref="LongPieceBpe"/>, the fast BPE for pieces longer than
/// <see cref="LongPieceBpe.MinPieceChars"/>, gives exactly the ids of Microsoft.ML.Tokenizers' TiktokenTokenizer on
/// the same pieces. Throughput itself is measured in perf/ (TokenizerWorstCaseBenchmarks), not asserted here.</summary>
public class LongPieceBpeTests
{
    private static readonly Lazy<Llama3Tokenizer> FromJson = new(() => Llama3Tokenizer.FromDirectory(SharedData.ArmormTiny));
    private static readonly Lazy<Llama3Tokenizer> FromTiktoken = new(() => Llama3Tokenizer.FromDirectory(SharedData.Llama3Tokenizer));

    private static Llama3Tokenizer Tok(string source) => source == "tiktoken" ? FromTiktoken.Value : FromJson.Value;

    private static string Random(int n, string alphabet, Random rng)
    {
        var sb = new StringBuilder(n);
        var elements = System.Globalization.StringInfo.GetTextElementEnumerator(alphabet);
        var units = new List<string>();
        while (elements.MoveNext())
            units.Add((string)elements.Current);
        while (sb.Length < n)
            sb.Append(units[rng.Next(units.Count)]);
        return sb.ToString();
    }

    private static readonly string[] Alphabets =
    [
        "a", "ab", "ACGT", "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        "-", "=-", "!#$%&()*+,-./:;<=>?@[]^_`{|}~", " ", " \t", "éàüßøñçЖя", "日本語中文한국어", "😀🎉👍", "aé😀Ж",
    ];

    [TestCase("tokenizer.json")]
    [TestCase("tiktoken")]
    public void LongPiecesGetExactlyThePackagesIds(string source)
    {
        var tok = Tok(source);
        var rng = new Random(1616);
        var checkedPieces = 0;
        foreach (var alphabet in Alphabets)
            foreach (var length in new[] { LongPieceBpe.MinPieceChars + 1, 47, 100, 200, BoundedPreTokenizer.MaxPieceChars - 1, BoundedPreTokenizer.MaxPieceChars, 700, 5_000 })
                for (var rep = 0; rep < 3; rep++)
                {
                    var text = Random(length, alphabet, rng);
                    Assert.That(tok.Encode(text), Is.EqualTo(tok.EncodeWithPackageOnly(text)), $"{alphabet} x {length}");
                    // Embedded between ordinary words: the runs on either side go through the package, in order.
                    var half = length / 2 - (char.IsHighSurrogate(text[length / 2 - 1]) ? 1 : 0);   // never split a pair
                    var mixed = "Hello there, " + text + " and more words 123 here.\n" + text[..half];
                    Assert.That(tok.Encode(mixed), Is.EqualTo(tok.EncodeWithPackageOnly(mixed)), $"mixed {alphabet} x {length}");
                    Assert.That(tok.Decode(tok.Encode(mixed)), Is.EqualTo(mixed));
                    checkedPieces += 2;
                }
        TestContext.Out.WriteLine($"{source}: {checkedPieces} texts identical");
    }

    [Test]
    public void ThePreferenceDataGetsThePackagesIdsAndHasLongPieces()
    {
        // The shared preference texts (13 MB) hold real long pieces (rules of '-' or '=', indentation, long words);
        // every text's ids are the package's.
        var tok = FromJson.Value;
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(SharedData.ArmormTiny, "tokenizer.json")));
        var regex = new Regex(doc.RootElement.GetProperty("pre_tokenizer").GetProperty("pretokenizers")[0].GetProperty("pattern").GetProperty("Regex").GetString()!);
        int texts = 0, withLong = 0, longPieces = 0;
        foreach (var file in Directory.GetFiles(SharedData.PathOf("data", "preferences"), "*.jsonl").Order(StringComparer.Ordinal))
            foreach (var line in File.ReadLines(file))
            {
                using var d = JsonDocument.Parse(line);
                foreach (var field in new[] { "prompt", "chosen", "rejected" })
                {
                    if (d.RootElement.GetProperty(field).ValueKind != JsonValueKind.String)
                        continue;
                    var text = d.RootElement.GetProperty(field).GetString()!;
                    var n = regex.Matches(text).Count(m => m.Length > LongPieceBpe.MinPieceChars);
                    texts++;
                    if (n == 0)
                        continue;
                    withLong++;
                    longPieces += n;
                    Assert.That(tok.Encode(text, recogniseAddedTokens: false), Is.EqualTo(tok.EncodeWithPackageOnly(text)), text[..Math.Min(80, text.Length)]);
                }
            }
        TestContext.Out.WriteLine($"{texts} texts, {withLong} with {longPieces} pieces over {LongPieceBpe.MinPieceChars} chars: all identical");
        Assert.That(withLong, Is.GreaterThan(0), "the data exercises the long-piece path");
    }

    [Test]
    public void ThePairTableCoversEveryTokenOfTwoOrMoreBytes()
    {
        var file = Directory.GetFiles(SharedData.Llama3Tokenizer, "*.tiktoken").Single();
        var memory = GC.GetTotalMemory(forceFullCollection: true);
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var bpe = LongPieceBpe.Create(File.ReadAllBytes(file))!;
        sw.Stop();
        var bytes = GC.GetTotalMemory(forceFullCollection: true) - memory;
        TestContext.Out.WriteLine($"pair table: {bpe.PairCount:N0} pairs, built in {sw.Elapsed.TotalMilliseconds:F0} ms, ~{bytes / 1e6:F1} MB");
        // Every multi-byte token is reachable by some merge (BPE made it from two tokens), so there are at least as many
        // pairs as such tokens: 128,000 ranks - 256 single bytes.
        Assert.That(bpe.PairCount, Is.GreaterThanOrEqualTo(128_000 - 256));
        GC.KeepAlive(bpe);
    }

    [Test]
    public void ACancelledEncodeOfLongPiecesStops()
    {
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.Throws<OperationCanceledException>(() => FromJson.Value.Encode(new string('a', 100_000), cts.Token));
    }
}
