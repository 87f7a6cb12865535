using System.Text.Json;
using OnnxReward.Testing;

namespace OnnxReward.Cli.Tests;

/// <summary>`onnxreward tokenize` through the built executable: raw text, conversations, files and bad lines.</summary>
public class TokenizeCommandTests
{
    private static List<JsonElement> Lines(string stdout) =>
        stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToList();

    private static int[] Ints(JsonElement e) => e.EnumerateArray().Select(x => x.GetInt32()).ToArray();

    [Test]
    public void TextLinesFromAFileGiveTheReferenceIds()
    {
        // All 600 texts of ../shared/tokenizers/llama3/reference_ids.jsonl (an independent tokenizer's output), tokenized
        // with armorm-tiny's tokenizer.json: raw encode, no BOS added. The reference lines carry an "ids" field too, which
        // the command ignores.
        var reference = Path.Combine(SharedData.Llama3Tokenizer, "reference_ids.jsonl");
        var (code, stdout, stderr) = CliRunner.Run(null, "tokenize", "--tokenizer", SharedData.ArmormTiny, "--input", reference);
        Assert.That(code, Is.Zero, stderr);
        var lines = Lines(stdout);
        var expected = File.ReadLines(reference).Select(l => Ints(JsonDocument.Parse(l).RootElement.GetProperty("ids"))).ToList();
        Assert.That(lines, Has.Count.EqualTo(600));
        var exact = lines.Zip(expected).Count(p => Ints(p.First.GetProperty("input_ids")).SequenceEqual(p.Second));
        Assert.That(exact, Is.EqualTo(600), "exact id sequences out of 600");
        Assert.That(lines.Any(l => l.TryGetProperty("reward_position", out _)), Is.False, "text lines get ids only");
    }

    [Test]
    public void PromptResponseAndTranscriptsAreTemplatedAndBadLinesAreReportedInPlace()
    {
        var stdin = string.Join('\n',
            """{"prompt": "What is 2+2?", "response": "4"}""",
            """{"prompt": "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: 2+2?\n\nAssistant:", "response": "4"}""",
            """{"input_ids": [128000, 9906]}""",
            """{"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "x"}]}""",
            "",
            """{"messages": [{"role": "user", "content": null}, {"role": "assistant", "content": "x"}]}""",
            """{"text": "<|begin_of_text|>Hi"}""") + "\n";
        var (code, stdout, stderr) = CliRunner.Run(stdin, "tokenize", "--tokenizer", SharedData.ArmormTiny);
        var lines = Lines(stdout);
        Assert.That(lines, Has.Count.EqualTo(6), "one result per non-blank line, in order");

        var single = Ints(lines[0].GetProperty("input_ids"));
        // <|begin_of_text|> user header "What is 2+2?" <|eot_id|> assistant header "4" <|eot_id|>: the template's own BOS only.
        Assert.That(single.Count(id => id == 128000), Is.EqualTo(1));
        Assert.That(single[0], Is.EqualTo(128000));
        Assert.That(single[^1], Is.EqualTo(128009));
        Assert.That(lines[0].GetProperty("reward_position").GetInt32(), Is.EqualTo(single.Length - 1));
        Assert.That(single[lines[0].GetProperty("gating_position").GetInt32()..][..5], Is.EqualTo(new[] { 128009, 128006, 78191, 128007, 271 }));

        var transcript = Ints(lines[1].GetProperty("input_ids"));
        Assert.That(transcript.Count(id => id == 128006), Is.EqualTo(4), "user, assistant, user, assistant headers");

        Assert.That(lines[2].GetProperty("line").GetInt32(), Is.EqualTo(3));
        Assert.That(lines[2].GetProperty("error").GetString(), Does.Contain("tokenize takes {\"text\""));
        Assert.That(lines[3].GetProperty("error").GetString(), Does.Contain("has role 'bot'"));
        Assert.That(lines[4].GetProperty("line").GetInt32(), Is.EqualTo(6), "blank line 5 is skipped but still counted");
        Assert.That(lines[4].GetProperty("error").GetString(), Does.Contain("null or missing \"content\""));
        Assert.That(Ints(lines[5].GetProperty("input_ids")), Is.EqualTo(new[] { 128000, 13347 }));
        Assert.That(stderr, Does.Contain("line 3:").And.Contain("line 4:").And.Contain("line 6:"));
        Assert.That(code, Is.EqualTo(1));
    }

    [Test]
    public void ATokenizerWithoutChatTemplateStillEncodesTextAndSaysWhyMessagesCannot()
    {
        var dir = SharedData.NewTempDirectory("cli-tok");
        File.Copy(Path.Combine(SharedData.ArmormTiny, "tokenizer.json"), Path.Combine(dir, "tokenizer.json"));
        var stdin = """{"text": "Hello world"}""" + "\n" + """{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}""" + "\n";
        var (code, stdout, _) = CliRunner.Run(stdin, "tokenize", "--tokenizer", dir);
        var lines = Lines(stdout);
        Assert.That(Ints(lines[0].GetProperty("input_ids")), Is.EqualTo(new[] { 9906, 1917 }));
        Assert.That(lines[1].GetProperty("error").GetString(), Does.Contain("has no chat template"));
        Assert.That(code, Is.EqualTo(1));
    }

    [Test]
    public void MissingOrBrokenTokenizerIsAOneLineError()
    {
        var (code, _, stderr) = CliRunner.Run("", "tokenize", "--tokenizer", Path.Combine(SharedData.NewTempDirectory(), "none"));
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.StartWith("error: ").And.Contain("does not exist"));

        var dir = SharedData.NewTempDirectory("cli-tok-bad");
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), """{"model": {"type": "BPE", "vocab": {}}}""");
        (code, _, stderr) = CliRunner.Run("", "tokenize", "--tokenizer", dir);
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.Contain("tokenizer.json: it has no 'model.merges'"));
        Assert.That(stderr, Does.Not.Contain("   at "), "no stack trace");
    }
}
