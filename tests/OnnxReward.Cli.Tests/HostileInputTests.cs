using System.Text;
using System.Text.Json;
using OnnxReward.Testing;

namespace OnnxReward.Cli.Tests;

/// <summary>
/// Issue 16 regressions through the built executable: a lone surrogate (item 3), invalid UTF-8 (item 13) and NaN/∞
/// model output (item 11) are each that line's one-line error, every other line is still answered, stdout stays one
/// JSON object per input line, and nothing ends in a stack trace.
/// </summary>
public class HostileInputTests
{
    private static List<JsonElement> Lines(string stdout) =>
        stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToList();

    private static string File(string name, byte[] content)
    {
        var path = Path.Combine(SharedData.NewTempDirectory("cli-hostile"), name);
        System.IO.File.WriteAllBytes(path, content);
        return path;
    }

    private static string File(string name, string content) => File(name, Encoding.UTF8.GetBytes(content));

    private static void NoTrace(string stderr) => Assert.That(stderr, Does.Not.Contain("   at ").And.Not.Contain("Unhandled exception"));

    private const string Surrogate = "\\ud800";      // the JSON escape of a lone high surrogate

    [TestCase("score")]
    [TestCase("embed")]
    [TestCase("tokenize")]
    [TestCase("bon")]
    public void LoneSurrogateIsThatLinesErrorAndTheOthersAreAnswered(string command)
    {
        var lines = command == "bon"
            ? new[] { """{"prompt": "hi", "candidates": ["a", "b"]}""", $$"""{"prompt": "hi", "candidates": ["a", "x{{Surrogate}}"]}""", """{"prompt": "yo", "candidates": ["c"]}""" }
            : new[] { """{"prompt": "hi", "response": "ok"}""", $$"""{"prompt": "hi", "response": "x{{Surrogate}}y"}""", """{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}""" };
        var input = File("in.jsonl", string.Join('\n', lines) + "\n");
        var (code, stdout, stderr) = command == "tokenize"
            ? CliRunner.Run(null, "tokenize", "--tokenizer", CliRunner.ArmormTiny, "--input", input)
            : CliRunner.Run(null, command, "--model", CliRunner.ArmormTiny, "--ep", "cpu", "--input", input);
        NoTrace(stderr);
        var output = Lines(stdout);
        Assert.That(output, Has.Count.EqualTo(3), stdout + stderr);
        Assert.That(output[1].GetProperty("line").GetInt32(), Is.EqualTo(2));
        Assert.That(output[1].GetProperty("error").GetString(), Does.Contain("lone surrogate").And.Contain("byte"));
        Assert.That(output[0].TryGetProperty("error", out _) || output[2].TryGetProperty("error", out _), Is.False, "the other lines are answered");
        Assert.That(stderr, Does.Contain("line 2: a lone surrogate"));
        Assert.That(code, Is.EqualTo(1));
    }

    [Test]
    public void EvalSkipsALoneSurrogateLineAndCountsTheOthers()
    {
        var pairs = File("pairs.jsonl", string.Join('\n',
            """{"prompt": "Say hi", "chosen": "Hi there!", "rejected": "Go away."}""",
            $$"""{"prompt": "Say hi", "chosen": "{{Surrogate}}", "rejected": "Go away."}""",
            """{"prompt": "Name a color", "chosen": "Blue.", "rejected": "Seven."}""") + "\n");
        var (code, stdout, stderr) = CliRunner.Run(null, "eval", pairs, "--model", CliRunner.ArmormTiny, "--ep", "cpu", "--json");
        NoTrace(stderr);
        Assert.That(JsonDocument.Parse(stdout).RootElement.GetProperty("n").GetInt32(), Is.EqualTo(2));
        Assert.That(stderr, Does.Contain("pairs.jsonl line 2: a lone surrogate"));
        Assert.That(code, Is.EqualTo(1));
    }

    [Test]
    public void OneBadLineNeverLosesTheRestOfItsChunk()
    {
        // score reads 512-line chunks; the lone surrogate used to throw out of the chunk and lose all 511 scored lines.
        var lines = Enumerable.Range(1, 600).Select(i => i switch
        {
            300 => $$"""{"prompt": "q", "response": "{{Surrogate}}"}""",
            _ => $$"""{"prompt": "question {{i}}", "response": "answer {{i}}"}""",
        });
        var input = File("chunk.jsonl", string.Join('\n', lines) + "\n");
        var (code, stdout, stderr) = CliRunner.Run(null, "score", "--model", CliRunner.ArmormTiny, "--ep", "cpu", "--input", input);
        NoTrace(stderr);
        var output = Lines(stdout);
        Assert.That(output, Has.Count.EqualTo(600));
        Assert.That(output.Count(o => o.TryGetProperty("score", out _)), Is.EqualTo(599));
        Assert.That(output[299].GetProperty("line").GetInt32(), Is.EqualTo(300));
        Assert.That(code, Is.EqualTo(1));
    }

    [TestCase("score")]
    [TestCase("tokenize")]
    [TestCase("eval")]
    public void InvalidUtf8IsThatLinesErrorNamingTheByteNotReplacementCharacters(string command)
    {
        // Line 1 starts with a BOM and ends in CRLF (both fine); line 2 has a stray 0xFF at byte 27 (it used to be
        // scored as U+FFFD); line 3 is valid multi-byte UTF-8.
        var good1 = command == "eval" ? """{"prompt": "Say hi", "chosen": "Hi!", "rejected": "No."}""" : """{"prompt": "hi", "response": "ok"}""";
        var good3 = command == "eval" ? """{"prompt": "Café?", "chosen": "Oui ☕", "rejected": "No."}""" : """{"prompt": "Café?", "response": "Oui ☕"}""";
        var bad = Encoding.UTF8.GetBytes(command == "eval" ? """{"prompt": "hi", "chosen": "xx""" : """{"prompt": "hi", "response": "xx""")
            .Concat(new byte[] { 0xFF }).Concat(Encoding.UTF8.GetBytes("\"}")).ToArray();
        var badOffset = Array.IndexOf(bad, (byte)0xFF);
        var bytes = new byte[] { 0xEF, 0xBB, 0xBF }.Concat(Encoding.UTF8.GetBytes(good1 + "\r\n")).Concat(bad).Concat("\n"u8.ToArray())
            .Concat(Encoding.UTF8.GetBytes(good3 + "\n")).ToArray();
        var input = File("utf8.jsonl", bytes);
        var (code, stdout, stderr) = command switch
        {
            "tokenize" => CliRunner.Run(null, "tokenize", "--tokenizer", CliRunner.ArmormTiny, "--input", input),
            "eval" => CliRunner.Run(null, "eval", input, "--model", CliRunner.ArmormTiny, "--ep", "cpu", "--json"),
            _ => CliRunner.Run(null, command, "--model", CliRunner.ArmormTiny, "--ep", "cpu", "--input", input),
        };
        NoTrace(stderr);
        Assert.That(stderr, Does.Contain($"line 2: invalid UTF-8 at byte {badOffset} (0xFF)"));
        Assert.That(code, Is.EqualTo(1));
        if (command == "eval")
        {
            Assert.That(JsonDocument.Parse(stdout).RootElement.GetProperty("n").GetInt32(), Is.EqualTo(2));
            return;
        }
        var output = Lines(stdout);
        Assert.That(output, Has.Count.EqualTo(3));
        Assert.That(output[1].GetProperty("error").GetString(), Does.StartWith($"invalid UTF-8 at byte {badOffset}"));
        Assert.That(output[0].TryGetProperty("error", out _) || output[2].TryGetProperty("error", out _), Is.False, "BOM, CRLF and é/☕ are fine");
    }

    [TestCase("score")]
    [TestCase("embed")]
    public void NanModelOutputIsThatLinesErrorAndStdoutStaysJson(string command)
    {
        // Lines 2 and 3 hold the NaN token (as text and as ids); they used to abort the run with a System.Text.Json
        // exception after a stray '{' on stdout.
        var input = File("nan.jsonl", string.Join('\n',
            """{"prompt": "hi", "response": "ok"}""",
            $$"""{"prompt": "hi", "response": "{{HostileModels.NanText}}"}""",
            $$"""{"input_ids": [128000, 128006, 882, 128007, 271, {{HostileModels.NanToken}}, 128009, 128006, 78191, 128007, 271, 65, 128009]}""",
            """{"prompt": "a", "response": "b"}""") + "\n");
        var (code, stdout, stderr) = CliRunner.Run(null, command, "--model", HostileModels.NanModel, "--ep", "cpu", "--input", input);
        NoTrace(stderr);
        var output = Lines(stdout);
        Assert.That(output, Has.Count.EqualTo(4), stdout + stderr);
        foreach (var i in new[] { 1, 2 })
        {
            Assert.That(output[i].GetProperty("line").GetInt32(), Is.EqualTo(i + 1));
            Assert.That(output[i].GetProperty("error").GetString(), Does.StartWith("the model produced NaN for this input"));
        }
        var key = command == "score" ? "score" : "embedding";
        Assert.That(output[0].TryGetProperty(key, out _) && output[3].TryGetProperty(key, out _), Is.True, "finite lines are answered");
        Assert.That(code, Is.EqualTo(1));
    }

    [Test]
    public void NanModelOutputInBonIsThatLinesError()
    {
        var input = File("bon.jsonl", string.Join('\n',
            $$"""{"prompt": "hi", "candidates": ["ok", "{{HostileModels.NanText}}"]}""",
            """{"prompt": "hi", "candidates": ["a", "b"]}""") + "\n");
        var (code, stdout, stderr) = CliRunner.Run(null, "bon", "--model", HostileModels.NanModel, "--ep", "cpu", "--input", input);
        NoTrace(stderr);
        var output = Lines(stdout);
        Assert.That(output, Has.Count.EqualTo(2));
        // The selection rule refuses to rank a NaN score first (the library's own message names the candidate).
        Assert.That(output[0].GetProperty("error").GetString(), Does.Contain("scores[1] is NaN"));
        Assert.That(output[1].GetProperty("chosen").GetInt32(), Is.InRange(0, 1));
        Assert.That(code, Is.EqualTo(1));
    }

    [Test]
    public void EvalSkipsNanPairsAndRefusesToReportWithoutValidPairs()
    {
        var mixed = File("mixed.jsonl", string.Join('\n',
            """{"prompt": "Say hi", "chosen": "Hi there!", "rejected": "Go away."}""",
            $$"""{"prompt": "Say hi", "chosen": "{{HostileModels.NanText}}", "rejected": "Go away."}""") + "\n");
        var (code, stdout, stderr) = CliRunner.Run(null, "eval", mixed, "--model", HostileModels.NanModel, "--ep", "cpu", "--json");
        NoTrace(stderr);
        Assert.That(JsonDocument.Parse(stdout).RootElement.GetProperty("n").GetInt32(), Is.EqualTo(1));
        Assert.That(stderr, Does.Contain("mixed.jsonl line 2: the model produced NaN"));
        Assert.That(code, Is.EqualTo(1));

        // No valid pair at all: plain eval printed a NaN table and exited 0, --json threw after a stray '{'.
        var none = File("none.jsonl", $$"""{"prompt": "Say hi", "chosen": "{{HostileModels.NanText}}", "rejected": "x"}""" + "\n{\"prompt\": 1}\n");
        foreach (var json in new[] { true, false })
        {
            (code, stdout, stderr) = json
                ? CliRunner.Run(null, "eval", none, "--model", HostileModels.NanModel, "--ep", "cpu", "--json")
                : CliRunner.Run(null, "eval", none, "--model", HostileModels.NanModel, "--ep", "cpu");
            NoTrace(stderr);
            Assert.That(code, Is.EqualTo(1), $"--json {json}");
            Assert.That(stdout.Trim(), Is.Empty, "no table or JSON of nothing");
            Assert.That(stderr, Does.Contain("error: no valid pairs to evaluate in none.jsonl (2 line(s) could not be evaluated"));
        }
    }
}
