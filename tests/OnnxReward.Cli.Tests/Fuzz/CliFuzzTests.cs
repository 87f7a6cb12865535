using System.Diagnostics;
using System.Text.Json;
using OnnxReward.Testing;

namespace OnnxReward.Cli.Tests.Fuzz;

/// <summary>
/// Seeded fuzzing of the line-oriented commands through the built executable: every hostile line ends in a result or a
/// one-line <c>{"line": N, "error": …}</c> in its place, every valid line around it is answered, the process exits 1
/// (never a crash or a stack trace) within a bound proportional to the input size. Hostile chat templates end each
/// line in a one-line error within the template budget.
/// </summary>
[NonParallelizable]
public class CliFuzzTests
{
    private const int Seed = 16;
    private const int Cases = 60;        // half valid, half hostile: ~1-3 MB of input per command

    /// <summary>Time bound of one run: 10 s of start-up and model load on a loaded 2-core machine, plus 3 s per MB of
    /// input (tokenizing runs at ~1 MB/s for whitespace-free text; most lines are rejected long before that).</summary>
    private static TimeSpan Bound(long bytes) => TimeSpan.FromSeconds(10 + 3.0 * bytes / 1_000_000);

    private static string Write(IEnumerable<FuzzCorpus.Case> cases, out long bytes)
    {
        var path = Path.Combine(SharedData.NewTempDirectory("cli-fuzz"), "in.jsonl");
        using (var f = File.Create(path))
            foreach (var c in cases)
            {
                f.Write(c.Bytes);
                f.WriteByte((byte)'\n');
            }
        bytes = new FileInfo(path).Length;
        return path;
    }

    [TestCase("score", "score")]
    [TestCase("embed", "embedding")]
    [TestCase("tokenize", "input_ids")]
    [TestCase("bon", "chosen")]
    public void EveryLineGetsAResultOrAOneLineErrorInPlace(string command, string resultKey)
    {
        var cases = new FuzzCorpus(Seed + command.Length).Mixed(command == "bon" ? "bon" : "conversation", Cases);
        var input = Write(cases, out var bytes);
        var clock = Stopwatch.StartNew();
        var (code, stdout, stderr) = command == "tokenize"
            ? CliRunner.Run(Bound(bytes), null, "tokenize", "--tokenizer", CliRunner.ArmormTiny, "--input", input)
            : CliRunner.Run(Bound(bytes), null, command, "--model", CliRunner.ArmormTiny, "--ep", "cpu", "--input", input);
        TestContext.Out.WriteLine($"{command}: {cases.Count} lines, {bytes / 1e6:F2} MB in {clock.Elapsed.TotalSeconds:F1} s");

        Assert.That(stderr, Does.Not.Contain("   at ").And.Not.Contain("Unhandled exception"));
        Assert.That(code, Is.EqualTo(1), "some lines failed");
        var outputs = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var expected = cases.Select((c, i) => (Case: c, Line: i + 1)).Where(x => !FuzzCorpus.IsBlank(x.Case.Bytes)).ToList();
        Assert.That(outputs, Has.Length.EqualTo(expected.Count), "one output line per non-blank input line, in order");
        for (var k = 0; k < outputs.Length; k++)
        {
            var (c, line) = expected[k];
            var o = JsonDocument.Parse(outputs[k]).RootElement;
            if (o.TryGetProperty("error", out var error))
            {
                Assert.That(c.Valid, Is.False, $"line {line} ({c.Kind}) is valid but failed: {error}");
                Assert.That(o.GetProperty("line").GetInt32(), Is.EqualTo(line), $"error in place of line {line}");
                Assert.That(error.GetString(), Is.Not.Empty.And.Not.Contain("\n"), "one line");
                Assert.That(error.GetString(), Does.Not.Contain("internal error"), $"line {line} ({c.Kind}) hit an unexpected exception");
            }
            else
                Assert.That(o.TryGetProperty(resultKey, out _), Is.True, $"line {line} ({c.Kind}) has neither {resultKey} nor error");
        }
        Assert.That(expected.Count(x => x.Case.Valid), Is.EqualTo(Cases / 2), "the valid lines were all answered (checked above)");
    }

    [Test]
    public void EvalCountsEveryValidPairAndNamesEveryBadLine()
    {
        var cases = new FuzzCorpus(Seed).Mixed("pair", Cases);
        var input = Write(cases, out var bytes);
        var (code, stdout, stderr) = CliRunner.Run(Bound(bytes), null, "eval", input, "--model", CliRunner.ArmormTiny, "--ep", "cpu", "--json");
        Assert.That(stderr, Does.Not.Contain("   at ").And.Not.Contain("Unhandled exception").And.Not.Contain("internal error"));
        Assert.That(code, Is.EqualTo(1));
        var n = JsonDocument.Parse(stdout).RootElement.GetProperty("n").GetInt32();
        var nonBlank = cases.Count(c => !FuzzCorpus.IsBlank(c.Bytes));
        var named = stderr.Split('\n').Count(l => l.StartsWith("in.jsonl line ", StringComparison.Ordinal));
        Assert.That(n, Is.GreaterThanOrEqualTo(Cases / 2), "every valid pair is counted");
        Assert.That(n + named, Is.EqualTo(nonBlank), "every other line is named on stderr");
    }

    /// <summary>Hostile chat_template values (tokenizer_config.json comes with the model): each renders into the one
    /// budget of steps and built characters and ends that line with a one-line error; a template that does not even
    /// parse is one line for the whole command.</summary>
    [TestCase("{% set ns = namespace(s='') %}{% for i in range(100000) %}{% set ns.s = ns.s ~ messages[0].content ~ 'xxxxxxxxxx' %}{% endfor %}{{ ns.s }}")]
    // (The step limit alone (4,000,000) is left to the library's TemplateBudgetTests: it takes ~3 s per render here.)
    [TestCase("{% set ns = namespace(s='abcdefgh') %}{% for i in range(30) %}{% set ns.s = ns.s.replace('a', ns.s) %}{% endfor %}{{ ns.s }}")]
    [TestCase("{% for m in messages %}{% for c in m.content %}{{ m.content }}{% endfor %}{% endfor %}")]
    [TestCase("{% for m in messages %}{% for i in range(100000) if (m.content * 300)|length > 0 %}{% endfor %}{% endfor %}")]
    [TestCase("{{ raise_exception('this template refuses everything') }}")]
    [TestCase("{% if true %}{{ (((((((((((((((((((((((((((((((((1))))))))))))))))))))))))))))))))) }}{% endif %}{{ 1 +  }}")]
    public void HostileTemplatesEndEachLineInAOneLineError(string template)
    {
        var dir = SharedData.NewTempDirectory("cli-fuzz-template");
        File.Copy(Path.Combine(CliRunner.ArmormTiny, "tokenizer.json"), Path.Combine(dir, "tokenizer.json"));
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), JsonSerializer.Serialize(new { chat_template = template }));
        var content = new string('x', 10_000);
        var input = Write([
            new("valid", System.Text.Encoding.UTF8.GetBytes(JsonSerializer.Serialize(new { prompt = content, response = "y" })), false),
            new("valid", System.Text.Encoding.UTF8.GetBytes("""{"text": "<|begin_of_text|>pre-rendered text bypasses the template"}"""), true),
            new("valid", System.Text.Encoding.UTF8.GetBytes(JsonSerializer.Serialize(new { prompt = "hi", response = "ok" })), false),
        ], out _);
        var clock = Stopwatch.StartNew();
        // Bound: start-up plus the template budget (about 1 s of steps or built characters per render) for each of
        // two rendered lines, with room for a loaded machine.
        var (code, stdout, stderr) = CliRunner.Run(TimeSpan.FromSeconds(20), null, "tokenize", "--tokenizer", dir, "--input", input);
        TestContext.Out.WriteLine($"{clock.Elapsed.TotalSeconds:F1} s: {stderr}");
        Assert.That(stderr, Does.Not.Contain("   at ").And.Not.Contain("Unhandled exception"));
        Assert.That(code, Is.EqualTo(1));
        if (stdout.Length == 0)
        {
            Assert.That(stderr.Trim().Split('\n'), Has.Length.EqualTo(1), "a template that does not parse: one line for the command");
            Assert.That(stderr, Does.StartWith("error: ").And.Contain("chat_template"));
            return;
        }
        var outputs = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.That(outputs, Has.Count.EqualTo(3));
        Assert.That(outputs[0].GetProperty("error").GetString(), Is.Not.Empty.And.Not.Contain("internal error"));
        Assert.That(outputs[1].TryGetProperty("input_ids", out _), Is.True, "the line that needs no template is answered");
        Assert.That(outputs[2].TryGetProperty("error", out _) || outputs[2].TryGetProperty("input_ids", out _), Is.True, "a short conversation may fit");
    }
}
