using System.Diagnostics;
using OnnxReward.Export;
using OnnxReward.Export.Checkpoints;
using OnnxReward.Testing;
using OnnxReward.Training.Pipeline;

namespace OnnxReward.Training.Tests.Pipeline;

/// <summary>The whole ArmoRM pipeline at test scale (tiny backbone, 60 examples per dataset, few steps): it must produce a
/// loadable model with a posterior, a report with every table and curve, and the same checkpoint when re-run.</summary>
[NonParallelizable]
public class TrainingPipelineTests
{
    [Test]
    public void QuickRunProducesAScorableModelAndIsReproducible()
    {
        var work = SharedData.NewTempDirectory("train");
        try
        {
            var clock = Stopwatch.StartNew();
            var options = TrainingOptions.Quick(SharedData.PathOf("data"), SharedData.ArmormTiny, Path.Combine(work, "a"));
            var log = new List<string>();
            var a = TrainingPipeline.Run(options, new Progress<string>(log.Add));
            var firstRun = clock.Elapsed;
            var b = TrainingPipeline.Run(options with { OutputDirectory = Path.Combine(work, "b") });
            TestContext.Out.WriteLine($"two quick runs: {clock.Elapsed.TotalSeconds:F0} s (first {firstRun.TotalSeconds:F0} s)");
            Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromMinutes(5)), "issue 7: the reduced run finishes in under 5 minutes");

            // Same seed → same checkpoint, tensor by tensor (CPU float32 with fixed thread counts is deterministic here).
            using (var ca = Checkpoint.Open(a.CheckpointDirectory))
            using (var cb = Checkpoint.Open(b.CheckpointDirectory))
            {
                Assert.That(cb.Tensors.Names, Is.EqualTo(ca.Tensors.Names));
                foreach (var name in ca.Tensors.Names)
                    Assert.That(cb.Tensors.ReadFloat32(name), Is.EqualTo(ca.Tensors.ReadFloat32(name)), name);
                Assert.That(ca.Head!.HasPosterior, Is.True);
                Assert.That(ca.Head.ObjectiveNames, Does.Contain("verbosity"));
                Assert.That(ca.Tensors.GetInfo("model.embed_tokens.weight").DType, Is.EqualTo(ElementType.Float16));
            }

            using var model = RewardModel.Load(a.ModelDirectory, new RewardModelOptions { ExecutionProvider = ExecutionProviderKind.Cpu });
            Assert.That(model.HasPosterior, Is.True);
            var s = model.Score(Conversation.FromPromptResponse("What is 2+2?", "4"));
            Assert.That(s.ScoreStd, Is.Not.Null.And.GreaterThan(0f));
            Assert.That(s.Gating.Values.Sum(), Is.GreaterThan(0f));

            var report = File.ReadAllText(a.ReportPath);
            foreach (var section in new[] { "## Data", "## Data split", "## Objectives", "## Results on the held-out test split", "## Stage 1: ridge fits",
                         "## Verbosity debiasing", "ArmoRM gating score", "BT head alone", "plain mean of objectives", "response length" })
                Assert.That(report, Does.Contain(section));
            foreach (var png in new[] { "backbone-loss.png", "backbone-validation-accuracy.png", "gating-curves.png" })
                Assert.That(new FileInfo(Path.Combine(options.OutputDirectory, png)).Length, Is.GreaterThan(1000), png);
            Assert.That(File.Exists(Path.Combine(a.ModelDirectory, "MODEL_CARD.md")));
            Assert.That(log, Has.Some.StartsWith("backbone trained"));
        }
        finally
        {
            Directory.Delete(work, true);
        }
    }
}
