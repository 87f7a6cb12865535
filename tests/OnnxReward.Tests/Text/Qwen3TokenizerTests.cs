using System.Text.Json;
using OnnxReward.Testing;
using OnnxReward.Text.Tokenization;

namespace OnnxReward.Tests.Text;

/// <summary>
/// The Qwen3 tokenizer (byte-level BPE from tokenizer.json, NFC normalizer, its own Split regex with one digit per
/// piece, 26 added tokens incl. the non-special &lt;think&gt;) against skywork-qwen3-tiny's goldens: the ids of every
/// rendered conversation, which two independent tokenizers produced too (README "How the oracle itself was checked").
/// </summary>
public class Qwen3TokenizerTests
{
    private static readonly Lazy<Llama3Tokenizer> Qwen3 = new(() => Llama3Tokenizer.FromDirectory(SharedData.SkyworkQwen3Tiny));

    [Test]
    public void EveryGoldenRenderingEncodesToItsIdsExactly()
    {
        var n = 0;
        foreach (var line in File.ReadLines(Path.Combine(SharedData.SkyworkQwen3Tiny, "golden.jsonl")))
        {
            using var g = JsonDocument.Parse(line);
            var ids = g.RootElement.GetProperty("input_ids").EnumerateArray().Select(x => x.GetInt32()).ToArray();
            Assert.That(Qwen3.Value.Encode(g.RootElement.GetProperty("rendered").GetString()!), Is.EqualTo(ids), g.RootElement.GetProperty("id").GetString());
            n++;
        }
        Assert.That(n, Is.EqualTo(40));
    }

    [Test]
    public void TextIsNfcNormalizedBetweenAddedTokensAndDigitsAreSingle()
    {
        var tok = Qwen3.Value;
        var decomposed = "Cha\u0300o e\u0301";                           // NFD: a + U+0300, e + U+0301
        const string composed = "Ch\u00E0o \u00E9";
        Assert.That(tok.Encode(decomposed), Is.EqualTo(tok.Encode(composed)));
        Assert.That(tok.Encode("<|im_start|>" + decomposed), Is.EqualTo(tok.Encode("<|im_start|>" + composed)));
        var llama = Llama3Tokenizer.FromDirectory(SharedData.SkyworkLlama31Tiny);            // no normalizer
        Assert.That(llama.Encode(decomposed), Is.Not.EqualTo(llama.Encode(composed)), "without NFC the two spellings differ");
        Assert.That(tok.Encode("12345"), Has.Length.EqualTo(5), "the Qwen pattern's \\p{N} takes one digit per piece");
        Assert.That(tok.Encode("<think>"), Is.EqualTo(new[] { 151667 }), "<think> is an added (non-special) token");
    }
}

/// <summary>The managed NFC (UnicodeNfc) against Python's unicodedata (TestData/make_nfc_goldens.py, same Unicode
/// version as the tables): every canonically decomposable character from its NFD form, and 400 seeded random
/// sequences that mix starters, combining marks of several classes (reordering, blocking) and Hangul jamo.</summary>
public class UnicodeNfcTests
{
    [Test]
    public void MatchesPythonUnicodedataOnEveryDecomposableCharacterAndRandomSequences()
    {
        var n = 0;
        foreach (var line in File.ReadLines(Path.Combine(AppContext.BaseDirectory, "TestData", "nfc_goldens.jsonl")))
        {
            using var g = JsonDocument.Parse(line);
            var input = g.RootElement.GetProperty("input").GetString()!;
            Assert.That(UnicodeNfc.Normalize(input), Is.EqualTo(g.RootElement.GetProperty("nfc").GetString()), $"line {n + 1}: {input}");
            n++;
        }
        Assert.That(n, Is.EqualTo(2061 + 400));
    }

    [Test]
    public void AsciiAndLatin1AreReturnedUnchanged()
    {
        Assert.That(UnicodeNfc.IsTriviallyNormalized("Hello, wörld ÿ"), Is.True);
        Assert.That(UnicodeNfc.Normalize("Hello, wörld"), Is.EqualTo("Hello, wörld"));
        Assert.That(UnicodeNfc.Normalize("e\u0301\U0001F600"), Is.EqualTo("é\U0001F600"));
    }
}
