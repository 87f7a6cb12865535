using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using OnnxReward.Testing;
using OnnxReward.Text.Tokenization;

namespace OnnxReward.Tests.Text;

/// <summary>Issue 16 items 1 and 3: tokenization is linear in the input for any input, a lone surrogate is a clear
/// error, and an encode can be cancelled.</summary>
public class TokenizerWorkBoundTests
{
    private static readonly Lazy<Llama3Tokenizer> Tok = new(() => Llama3Tokenizer.FromDirectory(SharedData.ArmormTiny));

    private static string RandomLetters(int n, string alphabet, int seed)
    {
        var rng = new Random(seed);
        var sb = new StringBuilder(n);
        for (var i = 0; i < n; i++)
            sb.Append(alphabet[rng.Next(alphabet.Length)]);
        return sb.ToString();
    }

    private static IEnumerable<TestCaseData> Hostile()
    {
        const int M = 1_000_000;
        yield return new TestCaseData(new string('a', M)).SetName("a x 1M");
        yield return new TestCaseData(RandomLetters(M, "ACGT", 1)).SetName("DNA 1M");
        yield return new TestCaseData(RandomLetters(M, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", 2)).SetName("random letters 1M");
        yield return new TestCaseData(RandomLetters(M / 2, "éàüßøñçЖя", 3)).SetName("non-ASCII letters 500K");
        yield return new TestCaseData(RandomLetters(M, "!#$%&()*+,-./:;<=>?@[]^_`{|}~", 4)).SetName("punctuation 1M");
        yield return new TestCaseData(new string(' ', M) + "x").SetName("spaces 1M then a letter");
        yield return new TestCaseData(string.Concat(Enumerable.Repeat(" \n", M / 2))).SetName("space-newline x 500K");
        yield return new TestCaseData(string.Concat(Enumerable.Repeat("\t \r", M / 3)) + "!").SetName("tab-space-CR x 333K");
        yield return new TestCaseData(string.Concat(Enumerable.Repeat("😀", M / 2))).SetName("emoji (surrogate pairs) x 500K");
        yield return new TestCaseData(string.Concat(Enumerable.Repeat("'s'", M / 3))).SetName("contractions x 333K");
    }

    [TestCaseSource(nameof(Hostile))]
    public void OneMegabyteWithoutWhitespaceTokenizesInLinearTime(string text)
    {
        var tok = Tok.Value;
        tok.Encode(text[..1000]);   // JIT and regex compilation out of the timing
        var sw = Stopwatch.StartNew();
        var ids = tok.Encode(text);
        sw.Stop();
        TestContext.Out.WriteLine($"{text.Length:N0} chars -> {ids.Length:N0} tokens in {sw.Elapsed.TotalSeconds:F2} s");
        // Before the piece bound 'a' x 1M took over 120 s (quadratic BPE); now it is ~1 s on this 2-core box. 10 s is
        // a generous bound (a shared, loaded machine) that a quadratic encoder cannot meet (400K alone took 37 s).
        Assert.That(sw.Elapsed.TotalSeconds, Is.LessThan(10));
        Assert.That(tok.Decode(ids), Is.EqualTo(text), "chunked pieces still decode to the input");
    }

    [Test]
    public void EncodeTimeGrowsLinearlyWithARunOfLetters()
    {
        // Work per character is bounded: doubling the run (random letters, so the piece cache does not help) at most
        // about doubles the time. Quadratic BPE made it 3.4x (200K 11 s vs 100K 3.3 s); 3x leaves room for timer noise.
        var tok = Tok.Value;
        var small = RandomLetters(200_000, "abcdefghijklmnopqrstuvwxyz", 5);
        var large = RandomLetters(800_000, "abcdefghijklmnopqrstuvwxyz", 6);
        tok.Encode(small);
        double Best(string s) => Enumerable.Range(0, 3).Min(_ => { var sw = Stopwatch.StartNew(); tok.Encode(s); return sw.Elapsed.TotalSeconds; });
        var (ts, tl) = (Best(small), Best(large));
        TestContext.Out.WriteLine($"200K: {ts:F3} s, 800K: {tl:F3} s, ratio {tl / ts:F2} (linear = 4, quadratic = 16)");
        Assert.That(tl / ts, Is.LessThan(8), "4x the input must cost about 4x (8 allows noise), not 16x");
    }

    [Test]
    public void NoReferencePieceReachesTheBoundSoOrdinaryTokensAreUnchanged()
    {
        // The bound only changes tokens of pieces longer than MaxPieceChars; the 600 reference texts (byte-identical
        // in Llama3TokenizerTests) have none, checked here against the model's own split regex.
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(SharedData.ArmormTiny, "tokenizer.json")));
        var pattern = doc.RootElement.GetProperty("pre_tokenizer").GetProperty("pretokenizers")[0].GetProperty("pattern").GetProperty("Regex").GetString()!;
        var regex = new Regex(pattern);
        var longest = 0;
        foreach (var line in File.ReadLines(Path.Combine(SharedData.Llama3Tokenizer, "reference_ids.jsonl")))
        {
            using var d = JsonDocument.Parse(line);
            foreach (Match m in regex.Matches(d.RootElement.GetProperty("text").GetString()!))
                longest = Math.Max(longest, m.Length);
        }
        TestContext.Out.WriteLine($"longest reference piece: {longest} chars (bound {BoundedPreTokenizer.MaxPieceChars})");
        Assert.That(longest, Is.LessThan(BoundedPreTokenizer.MaxPieceChars));
    }

    [Test]
    public void APieceLongerThanTheBoundIsMergedInChunks()
    {
        var tok = Tok.Value;
        var n = BoundedPreTokenizer.MaxPieceChars;
        var chunk = tok.Encode(new string('a', n));
        Assert.That(tok.Encode(new string('a', 3 * n)), Is.EqualTo(chunk.Concat(chunk).Concat(chunk).ToArray()));
        Assert.That(tok.Encode(new string('a', n - 1)), Is.Not.EqualTo(chunk), "below the bound the piece is one");
    }

    [Test]
    public void ALoneSurrogateIsAClearArgumentError()
    {
        var tok = Tok.Value;
        foreach (var (text, at) in new[] { ("a\ud800b", 1), ("\udc00", 0), ("ok 😀 then \ud83d", 11), ("😀\udc00😀", 2) })
        {
            var e = Assert.Throws<ArgumentException>(() => tok.Encode(text))!;
            Assert.That(e.Message, Does.Contain("lone UTF-16 surrogate").And.Contain($"at character {at}"));
            Assert.That(Llama3Tokenizer.LoneSurrogateIndex(text), Is.EqualTo(at));
        }
        Assert.That(Llama3Tokenizer.LoneSurrogateIndex("plain 😀 text é"), Is.EqualTo(-1));
        Assert.That(tok.Decode(tok.Encode("😀")), Is.EqualTo("😀"), "a surrogate pair is fine");
    }

    [Test]
    public void ACancelledEncodeStops()
    {
        var tok = Tok.Value;
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.Throws<OperationCanceledException>(() => tok.Encode(RandomLetters(100_000, "ab c", 7), cts.Token));
        Assert.Throws<OperationCanceledException>(() => tok.Encode("x<|eot_id|>" + RandomLetters(100_000, "ab c", 7), cts.Token));
        Assert.That(tok.Encode("hello world", CancellationToken.None), Has.Length.EqualTo(2));
    }
}
