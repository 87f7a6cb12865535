using System.Text.Json;
using OnnxReward.Testing;
using OnnxReward.Text.Tokenization;

namespace OnnxReward.Tests.Text;

public class Llama3TokenizerTests
{
    private static readonly Lazy<Llama3Tokenizer> FromTiktoken = new(() => Llama3Tokenizer.FromDirectory(SharedData.Llama3Tokenizer));
    private static readonly Lazy<Llama3Tokenizer> FromJson = new(() => Llama3Tokenizer.FromDirectory(SharedData.ArmormTiny));

    private static IEnumerable<(string Text, int[] Ids)> ReferenceEncodings() =>
        File.ReadLines(Path.Combine(SharedData.Llama3Tokenizer, "reference_ids.jsonl")).Select(line =>
        {
            using var d = JsonDocument.Parse(line);
            return (d.RootElement.GetProperty("text").GetString()!,
                d.RootElement.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()).ToArray());
        });

    [TestCase("tiktoken")]
    [TestCase("tokenizer.json")]
    public void All600ReferenceEncodingsAreReproducedExactlyAndDecodeRoundTrips(string source)
    {
        var tok = source == "tiktoken" ? FromTiktoken.Value : FromJson.Value;
        var cases = ReferenceEncodings().ToList();
        Assert.That(cases, Has.Count.EqualTo(600));
        var exact = 0;
        foreach (var (text, ids) in cases)
        {
            var ours = tok.Encode(text);
            Assert.That(ours, Is.EqualTo(ids), $"encoding of: {text[..Math.Min(80, text.Length)]}");
            Assert.That(tok.Decode(ours), Is.EqualTo(text));
            exact++;
        }
        TestContext.Out.WriteLine($"{source}: {exact}/600 exact, decode round-trips all");
    }

    [Test]
    public void SpecialAndAddedTokensAreOneIdAndNothingIsAdded()
    {
        var tok = FromJson.Value;
        Assert.That(tok.Encode("<|begin_of_text|>Hi<|eot_id|>"), Is.EqualTo(new[] { 128000, 13347, 128009 }));
        Assert.That(tok.Encode("[PAD]"), Is.EqualTo(new[] { 128256 }), "ArmoRM's added [PAD]");
        Assert.That(tok.Encode("<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"),
            Is.EqualTo(new[] { 128009, 128006, 78191, 128007, 271 }), "armorm.md §1.3 gating pattern");
        Assert.That(tok.Encode("<|reserved_special_token_5|>"), Is.EqualTo(new[] { 128010 }));
        Assert.That(tok.Encode("<|eot_id"), Does.Not.Contain(128009), "an unclosed special is ordinary text");
        Assert.That(tok.Encode(""), Is.Empty);
        Assert.That(tok.VocabularySize, Is.EqualTo(128257));
        Assert.That(FromTiktoken.Value.VocabularySize, Is.EqualTo(128256));
        Assert.That(FromTiktoken.Value.Encode("[PAD]"), Has.Length.GreaterThan(1), "the plain Llama-3 tokenizer has no [PAD]");
    }

    [Test]
    public void SpecialTokensSurviveAFullEncodingCache()
    {
        // Microsoft.ML.Tokenizers 2.0.1's Tiktoken finds special tokens through an 8K-entry LRU cache; after enough
        // distinct words they were evicted and "<|eot_id|>" became text tokens. Our tokenizer splits them out itself.
        var tok = Llama3Tokenizer.FromDirectory(SharedData.ArmormTiny);
        var rng = new Random(1);
        for (var i = 0; i < 3000; i++)
            tok.Encode(string.Join(' ', Enumerable.Range(0, 10).Select(_ => "w" + rng.Next(1_000_000))));
        Assert.That(tok.Encode("<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"),
            Is.EqualTo(new[] { 128009, 128006, 78191, 128007, 271 }));
        Assert.That(tok.Encode("a[PAD]b"), Is.EqualTo(tok.Encode("a").Concat([128256]).Concat(tok.Encode("b"))));
    }

    [Test]
    public void BrokenTokenizerFilesGiveClearErrors()
    {
        var dir = SharedData.NewTempDirectory("tok");
        try
        {
            var e = Assert.Throws<TokenizerException>(() => Llama3Tokenizer.FromDirectory(dir))!;
            Assert.That(e.Message, Does.Contain("tokenizer.json is missing"));
            var path = Path.Combine(dir, "tokenizer.json");
            File.WriteAllText(path, "{\"version\": \"1.0\", ");
            Assert.That(Assert.Throws<TokenizerException>(() => Llama3Tokenizer.FromDirectory(dir))!.Message, Does.Contain("is not valid JSON"));
            File.WriteAllText(path, "{\"version\": \"1.0\"}");
            Assert.That(Assert.Throws<TokenizerException>(() => Llama3Tokenizer.FromDirectory(dir))!.Message, Does.Contain("it has no 'model' object"));
            File.WriteAllText(path, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}}");
            Assert.That(Assert.Throws<TokenizerException>(() => Llama3Tokenizer.FromDirectory(dir))!.Message, Does.Contain("it has no 'model.merges'"));
            File.WriteAllText(path, "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}");
            Assert.That(Assert.Throws<TokenizerException>(() => Llama3Tokenizer.FromDirectory(dir))!.Message, Does.Contain("model.type is \"WordPiece\""));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
