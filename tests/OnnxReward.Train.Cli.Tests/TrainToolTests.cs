using System.Text.Json;
using OnnxReward.Testing;
using OnnxReward.Training.Data;
using OnnxReward.Training.Pipeline;

namespace OnnxReward.Train.Cli.Tests;

/// <summary>`onnxreward-train split` and `run` through the built app host: the same pairs as the library, a quick run
/// that installs a loadable model, and one-line errors for bad arguments.</summary>
[NonParallelizable]
public class TrainToolTests
{
    private static (int Code, string Out, string Err) Train(TimeSpan limit, params string[] args) =>
        ToolRunner.Run(ToolRunner.AppHost(Path.Combine("train", "OnnxReward.Train.Cli"), "onnxreward-train"), limit, null, args);

    private static (int Code, string Out, string Err) Train(params string[] args) => Train(TimeSpan.FromSeconds(120), args);

    [TestCase("test", SplitPart.Test)]
    [TestCase("validation", SplitPart.Validation)]
    public void SplitWritesExactlyThePipelinesPairs(string part, SplitPart expectedPart)
    {
        var work = SharedData.NewTempDirectory("train-split");
        try
        {
            var output = Path.Combine(work, "pairs.jsonl");
            var (code, _, err) = Train("split", "--part", part, "--data", SharedData.PathOf("data"), "--tokenizer", SharedData.ArmormTiny,
                "--out", output);
            Assert.That(code, Is.Zero, err);
            var expected = TrainingPipeline.UsablePairs(new TrainingOptions
            {
                DataDirectory = SharedData.PathOf("data"), TokenizerDirectory = SharedData.ArmormTiny, OutputDirectory = work,
            }, expectedPart);
            var lines = File.ReadAllLines(output).Select(l => JsonDocument.Parse(l).RootElement).ToList();
            Assert.That(lines, Has.Count.EqualTo(expected.Count).And.Count.GreaterThan(0));
            for (var i = 0; i < lines.Count; i++)
            {
                Assert.That(lines[i].GetProperty("prompt").GetString(), Is.EqualTo(expected[i].Prompt), $"pair {i}");
                Assert.That(lines[i].GetProperty("chosen").GetString(), Is.EqualTo(expected[i].Chosen), $"pair {i}");
                Assert.That(lines[i].GetProperty("rejected").GetString(), Is.EqualTo(expected[i].Rejected), $"pair {i}");
                Assert.That(lines[i].GetProperty("source").GetString(), Is.EqualTo(expected[i].Dataset), $"pair {i}");
            }
            Assert.That(err, Does.Contain($"{expected.Count} {part} pairs written"));
        }
        finally
        {
            Directory.Delete(work, true);
        }
    }

    [Test]
    public void BadArgumentsAreOneLineErrors()
    {
        var missing = Path.Combine(Path.GetTempPath(), $"onnxreward-no-such-dir-{Guid.NewGuid():N}");
        var cases = new (string[] Args, string Expected)[]
        {
            (["split", "--part", "holdout", "--out", "/tmp/x.jsonl"], "--part 'holdout' is not one of train, validation, test."),
            (["split", "--data", missing, "--out", "/tmp/x.jsonl"], $"--data {missing} does not exist."),
            (["run", "--data", SharedData.PathOf("data"), "--tokenizer", missing, "--out", missing], $"--tokenizer {missing} does not exist."),
        };
        foreach (var (args, expected) in cases)
        {
            var (code, stdout, err) = Train(args);
            Assert.That(code, Is.EqualTo(1), string.Join(' ', args));
            Assert.That(err.Trim(), Is.EqualTo($"error: {expected}"), "one line, no stack trace");
            Assert.That(stdout, Is.Empty);
        }
        var (helpCode, help, _) = Train("--help");
        Assert.That(helpCode, Is.Zero);
        Assert.That(help, Does.Contain("run").And.Contain("split"));
        Assert.That(Train("run").Err, Does.Contain("--out"), "--out is required");
    }

    [Test]
    public void QuickRunInstallsALoadableModelWithItsReport()
    {
        var work = SharedData.NewTempDirectory("train-run");
        try
        {
            var install = Path.Combine(work, "installed");
            // Issue 7: the reduced run finishes in well under 5 minutes on this machine (the pipeline test runs it twice).
            var (code, stdout, err) = Train(TimeSpan.FromMinutes(5), "run", "--quick", "--data", SharedData.PathOf("data"),
                "--tokenizer", SharedData.ArmormTiny, "--out", Path.Combine(work, "work"), "--install", install, "--seed", "3");
            Assert.That(code, Is.Zero, err);
            Assert.That(stdout, Does.Contain("test accuracy").And.Contain($"installed: {install}"));
            Assert.That(err, Does.Contain("backbone trained"), "progress goes to stderr");
            foreach (var file in new[] { "reward_model.json", "MODEL_CARD.md", Path.Combine("training", "report.md"), Path.Combine("training", "gating-curves.png") })
                Assert.That(File.Exists(Path.Combine(install, file)), file);
            using var model = RewardModel.Load(install, new RewardModelOptions { ExecutionProvider = ExecutionProviderKind.Cpu });
            Assert.That(model.HasPosterior, Is.True);
            Assert.That(float.IsFinite(model.Score(Conversation.FromPromptResponse("What is 2+2?", "4")).Score));
        }
        finally
        {
            Directory.Delete(work, true);
        }
    }
}
