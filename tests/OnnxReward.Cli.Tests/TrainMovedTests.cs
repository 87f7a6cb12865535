namespace OnnxReward.Cli.Tests;

/// <summary>Issue 14: training left `onnxreward` for the `onnxreward-train` tool. The old command is hidden from the
/// help and answers with one line naming the new tool, whatever arguments follow.</summary>
public class TrainMovedTests
{
    [TestCase("train")]
    [TestCase("train", "run", "--out", "/tmp/work", "--quick")]
    [TestCase("train", "split", "--part", "test", "--out", "/tmp/test.jsonl")]
    public void TrainPointsToTheTrainTool(params string[] args)
    {
        var (code, stdout, stderr) = CliRunner.Run(null, args);
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stdout, Is.Empty);
        Assert.That(stderr.Trim().Split('\n'), Has.Length.EqualTo(1), "one line");
        Assert.That(stderr, Does.StartWith("error: training is not part of `onnxreward`").And.Contain("onnxreward-train run"));
    }

    [Test]
    public void HelpDoesNotListTrain()
    {
        var (code, stdout, _) = CliRunner.Run(null, "--help");
        Assert.That(code, Is.Zero);
        Assert.That(stdout, Does.Contain("score").And.Contain("serve"), "the help lists the commands");
        Assert.That(stdout, Does.Not.Match(@"(?m)^\s+train\b"));
    }

    [Test]
    public void TheToolShipsNoTorch()
    {
        // The build output of `onnxreward` is what `dotnet publish` ships: no TorchSharp or libtorch in it.
        var bin = Path.GetDirectoryName(typeof(TrainMovedTests).Assembly.Location)!;
        var cliBin = Path.Combine(OnnxReward.Testing.SharedData.RepositoryRoot, "src", "OnnxReward.Cli", "bin", "Release", "net10.0", "linux-x64");
        foreach (var dir in new[] { bin, cliBin })
            Assert.That(Directory.GetFiles(dir).Select(Path.GetFileName),
                Has.None.Contains("torch").IgnoreCase.And.None.EqualTo("OnnxReward.Training.dll"), dir);
    }
}
