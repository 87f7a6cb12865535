using System.Text.Json;
using OnnxReward.Testing;

namespace OnnxReward.Cli.Tests;

/// <summary>`tokenize`, `score`, `embed` and `eval` end to end through the built executable.</summary>
public class ScoringCommandsTests
{
    private static List<JsonElement> Lines(string stdout) =>
        stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToList();

    private static List<JsonElement> Goldens() =>
        File.ReadLines(Path.Combine(SharedData.ArmormTiny, "golden.jsonl")).Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToList();

    [Test]
    public void TokenizeReproducesEveryGoldenAndKeepsGoingPastBadLines()
    {
        var goldens = Goldens();
        var stdin = string.Join('\n', goldens.Select(g => JsonSerializer.Serialize(new { messages = g.GetProperty("messages") })))
                    + "\n{not json}\n{\"messages\": [{\"role\": \"user\", \"content\": \"only a prompt\"}]}\n"
                    + "{\"text\": \"<|begin_of_text|>Hi<|eot_id|>[PAD]\"}\n";
        var (code, stdout, stderr) = CliRunner.Run(stdin, "tokenize", "--tokenizer", SharedData.ArmormTiny);
        var lines = Lines(stdout);
        Assert.That(lines, Has.Count.EqualTo(goldens.Count + 3), "one result line per input, in order");
        for (var i = 0; i < goldens.Count; i++)
        {
            Assert.That(lines[i].GetProperty("input_ids").EnumerateArray().Select(x => x.GetInt32()),
                Is.EqualTo(goldens[i].GetProperty("input_ids").EnumerateArray().Select(x => x.GetInt32())), goldens[i].GetProperty("id").GetString());
            Assert.That(lines[i].GetProperty("reward_position").GetInt32(), Is.EqualTo(goldens[i].GetProperty("reward_position").GetInt32()));
            Assert.That(lines[i].GetProperty("gating_position").GetInt32(), Is.EqualTo(goldens[i].GetProperty("gating_position").GetInt32()));
        }
        Assert.That(lines[^3].GetProperty("line").GetInt32(), Is.EqualTo(goldens.Count + 1));
        Assert.That(lines[^3].GetProperty("error").GetString(), Does.Contain("invalid JSON"));
        Assert.That(lines[^2].GetProperty("error").GetString(), Does.Contain("the last turn is the user's"));
        Assert.That(lines[^1].GetProperty("input_ids").EnumerateArray().Select(x => x.GetInt32()), Is.EqualTo(new[] { 128000, 13347, 128009, 128256 }));
        Assert.That(stderr, Does.Contain($"line {goldens.Count + 1}: invalid JSON").And.Contain($"line {goldens.Count + 2}:"));
        Assert.That(code, Is.EqualTo(1), "non-zero at the end when any line failed");
    }

    [Test]
    public void ScoreMatchesTheGoldensInOrderAndReportsBadLinesInPlace()
    {
        var goldens = Goldens();
        var input = Path.Combine(SharedData.NewTempDirectory("cli-score"), "in.jsonl");
        File.WriteAllLines(input, goldens.Select(g => JsonSerializer.Serialize(new { messages = g.GetProperty("messages") }))
            .Append("{\"messages\": []}"));
        var (code, stdout, stderr) = CliRunner.Run(null, "score", "--model", CliRunner.ArmormTiny, "--input", input, "--ep", "cpu");
        var lines = Lines(stdout);
        Assert.That(lines, Has.Count.EqualTo(goldens.Count + 1));
        for (var i = 0; i < goldens.Count; i++)
        {
            var golden = goldens[i].GetProperty("score").GetSingle();
            // armorm-tiny README tolerance: |ours − golden| ≤ 1e-4 + 1e-4·|golden|.
            Assert.That(lines[i].GetProperty("score").GetSingle(), Is.EqualTo(golden).Within(1e-4 + 1e-4 * Math.Abs(golden)));
            Assert.That(lines[i].GetProperty("objectives").EnumerateObject().Count(), Is.EqualTo(19));
            Assert.That(lines[i].GetProperty("gating").GetProperty("helpsteer-verbosity").GetSingle(),
                Is.EqualTo(goldens[i].GetProperty("gating_output")[4].GetSingle()).Within(1e-4));
            Assert.That(lines[i].TryGetProperty("score_std", out _), Is.False, "armorm-tiny has no posterior");
        }
        Assert.That(lines[^1].GetProperty("error").GetString(), Does.Contain("is empty"));
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.Contain($"line {goldens.Count + 1}:"));
    }

    [Test]
    public void EmbedGivesTheRewardPositionHiddenState()
    {
        var g = Goldens()[3];
        var stdin = JsonSerializer.Serialize(new { input_ids = g.GetProperty("input_ids") }) + "\n"
                    + JsonSerializer.Serialize(new { messages = g.GetProperty("messages") }) + "\n";
        var (code, stdout, stderr) = CliRunner.Run(stdin, "embed", "--model", CliRunner.ArmormTiny, "--ep", "cpu");
        Assert.That(code, Is.Zero, stderr);
        var golden = g.GetProperty("last_hidden_reward").EnumerateArray().Select(x => x.GetSingle()).ToArray();
        foreach (var line in Lines(stdout))
        {
            var e = line.GetProperty("embedding").EnumerateArray().Select(x => x.GetSingle()).ToArray();
            Assert.That(e, Has.Length.EqualTo(64));
            Assert.That(e.Select((v, k) => Math.Abs(v - golden[k])).Max(), Is.LessThan(1e-4));
        }
    }

    [Test]
    public void EvalReportsPerSourceAccuracyAndTies()
    {
        var dir = SharedData.NewTempDirectory("cli-eval");
        var file = Path.Combine(dir, "pairs.jsonl");
        File.WriteAllLines(file,
        [
            """{"prompt": "Say hi", "chosen": "Hi there!", "rejected": "Go away.", "source": "a"}""",
            """{"prompt": "Say hi", "chosen": "Same", "rejected": "Same", "source": "a"}""",
            """{"prompt": "\n\nHuman: Name a color\n\nAssistant:", "chosen": "Blue.", "rejected": "Seven.", "source": "b"}""",
            """{"prompt": "x", "chosen": "y"}""",
        ]);
        var (code, stdout, stderr) = CliRunner.Run(null, "eval", file, "--model", CliRunner.ArmormTiny, "--ep", "cpu", "--json");
        var report = JsonDocument.Parse(stdout).RootElement;
        Assert.That(report.GetProperty("n").GetInt32(), Is.EqualTo(3));
        Assert.That(report.GetProperty("ties").GetInt32(), Is.EqualTo(1), "identical responses tie and count as wrong");
        Assert.That(report.GetProperty("per_source").GetProperty("a").GetProperty("n").GetInt32(), Is.EqualTo(2));
        Assert.That(report.GetProperty("per_source").GetProperty("a").GetProperty("accuracy").GetDouble(), Is.LessThanOrEqualTo(0.5));
        Assert.That(stderr, Does.Contain("pairs.jsonl line 4: field \"rejected\" is missing"));
        Assert.That(code, Is.EqualTo(1));
    }

    [Test]
    public void MissingModelAndCudaRequestsAreOneLineErrors()
    {
        var (code, _, stderr) = CliRunner.Run("", "score", "--model", Path.Combine(SharedData.NewTempDirectory(), "none"));
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.StartWith("error: ").And.Contain("does not exist"));
        (code, _, stderr) = CliRunner.Run("", "score", "--model", CliRunner.ArmormTiny, "--ep", "cuda");
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.Contain("error: the CUDA execution provider does not load on this machine"));
        Assert.That(stderr, Does.Not.Contain("   at "));
    }

    [Test]
    public void PaddingBoundChangesBatchesNotScores()
    {
        // The 47 golden conversations under three padding bounds: only equal lengths share a batch (0), the default
        // (0.10) and the token budget alone (1). Scores must not move with the batch plan: right padding + causal
        // attention; float32 GEMMs blocked for other batch shapes move them ≤ 1e-6 here, so 1e-5 is the bound.
        var input = Path.Combine(SharedData.NewTempDirectory("cli-padding"), "in.jsonl");
        File.WriteAllLines(input, Goldens().Select(g => JsonSerializer.Serialize(new { messages = g.GetProperty("messages") })));
        var runs = new[] { "0", "0.10", "1" }.Select(bound =>
        {
            var (code, stdout, stderr) = CliRunner.Run(null, "score", "--model", CliRunner.ArmormTiny, "--input", input, "--ep", "cpu",
                "--max-padding-waste", bound);
            Assert.That(code, Is.EqualTo(0), stderr);
            return Lines(stdout).Select(l => l.GetProperty("score").GetSingle()).ToArray();
        }).ToArray();
        Assert.That(runs[0], Has.Length.EqualTo(47));
        Assert.That(runs[0], Is.EqualTo(runs[1]).Within(1e-5));
        Assert.That(runs[2], Is.EqualTo(runs[1]).Within(1e-5));

        var (bad, _, err) = CliRunner.Run("", "score", "--model", CliRunner.ArmormTiny, "--ep", "cpu", "--max-padding-waste", "1.5");
        Assert.That(bad, Is.EqualTo(1));
        Assert.That(err, Does.Contain("--max-padding-waste is 1.5"));
    }
}
