using System.Text.Json;
using OnnxReward.Testing;

namespace OnnxReward.Cli.Tests;

/// <summary>`onnxreward bon` end to end on armorm-tiny (no posterior) through the built executable.</summary>
public class BonCommandTests
{
    private static readonly string Sample = Path.Combine(SharedData.RepositoryRoot, "samples", "bon.jsonl");

    [Test]
    public void ScoreRuleChoosesTheHighestScoreAndLscTransformsAgainstTheReferences()
    {
        var (code, stdout, stderr) = CliRunner.Run(null, "bon", "--model", CliRunner.ArmormTiny, "--input", Sample, "--ep", "cpu");
        Assert.That(code, Is.Zero, stderr);
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.That(lines, Has.Count.EqualTo(2));
        foreach (var line in lines)
        {
            var scores = line.GetProperty("scores").EnumerateArray().Select(x => x.GetDouble()).ToArray();
            Assert.That(line.GetProperty("chosen").GetInt32(), Is.EqualTo(Array.IndexOf(scores, scores.Max())));
        }
        Assert.That(lines[0].TryGetProperty("transformed", out _), Is.False, "no references: no LSC transform");
        var rRef = lines[1].GetProperty("reference_reward").GetDouble();
        var transformed = lines[1].GetProperty("transformed").EnumerateArray().Select(x => x.GetDouble()).ToArray();
        var s = lines[1].GetProperty("scores").EnumerateArray().Select(x => x.GetDouble()).ToArray();
        for (var i = 0; i < s.Length; i++)
            Assert.That(transformed[i], Is.EqualTo(-Math.Log(1 + Math.Exp(-(s[i] - rRef)))).Within(1e-12), "log σ(r − r_ref)");
    }

    [Test]
    public void RulesThatCannotApplySaySoInsteadOfPretending()
    {
        var (code, _, stderr) = CliRunner.Run(null, "bon", "--model", CliRunner.ArmormTiny, "--input", Sample, "--rule", "mean-minus-k-std");
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.Contain("needs a score standard deviation, but").And.Contain("has no posterior"));

        string stdout;
        (code, stdout, stderr) = CliRunner.Run(null, "bon", "--model", CliRunner.ArmormTiny, "--input", Sample, "--rule", "lsc-and");
        Assert.That(code, Is.EqualTo(1), "line 1 has no reference responses");
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.That(lines[0].GetProperty("error").GetString(), Does.Contain("the lsc-and rule needs reference_responses"));
        Assert.That(lines[1].GetProperty("rule").GetString(), Is.EqualTo("lsc-and"));
        var t = lines[1].GetProperty("transformed").EnumerateArray().Select(x => x.GetDouble()).ToArray();
        Assert.That(lines[1].GetProperty("chosen").GetInt32(), Is.EqualTo(Array.IndexOf(t, t.Max())));
        Assert.That(t, Has.All.LessThan(0.0), "a sum of log-probabilities");

        (code, stdout, _) = CliRunner.Run("{\"prompt\": \"x\", \"candidates\": []}\n{\"prompt\": 3}\n", "bon", "--model", CliRunner.ArmormTiny);
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stdout, Does.Contain("the request has no candidates").And.Contain("is missing or not a string"));
    }
}
