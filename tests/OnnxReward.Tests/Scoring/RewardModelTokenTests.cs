using OnnxReward.Model;
using OnnxReward.Testing;

namespace OnnxReward.Tests.Scoring;

/// <summary>Scoring token ids end to end: export (fp32) → RewardModel.Load (CPU EP) → golden outputs.</summary>
public class RewardModelTokenTests
{
    private static RewardModel Load(RewardModelOptions? o = null) =>
        RewardModel.Load(ExportedModels.ArmormTiny, (o ?? new RewardModelOptions()) with { ExecutionProvider = ExecutionProviderKind.Cpu });

    [Test]
    public void EveryArmormTinyGoldenMatchesWithinTheReadmeTolerance()
    {
        var goldens = ExportedModels.ArmormTinyGoldens();
        using var model = Load();
        var scores = model.ScoreTokens(goldens.Select(g => g.InputIds).ToList());
        var embeddings = model.EmbedTokens(goldens.Select(g => g.InputIds).ToList());
        double maxScore = 0, maxReward = 0, maxGating = 0, maxHidden = 0;
        for (var i = 0; i < goldens.Count; i++)
        {
            var g = goldens[i];
            ExportedModels.AssertClose([scores[i].Score], [g.Score], g.Id + " score");
            ExportedModels.AssertClose(scores[i].RewardValues, g.Rewards, g.Id + " rewards");
            ExportedModels.AssertClose(scores[i].GatingValues, g.Gating, g.Id + " gating");
            ExportedModels.AssertClose(embeddings[i], g.LastHiddenReward, g.Id + " embedding");
            Assert.That(scores[i].TokenCount, Is.EqualTo(g.InputIds.Length));
            maxScore = Math.Max(maxScore, Math.Abs(scores[i].Score - g.Score));
            maxReward = Math.Max(maxReward, g.Rewards.Select((v, k) => Math.Abs(v - scores[i].RewardValues[k])).Max());
            maxGating = Math.Max(maxGating, g.Gating.Select((v, k) => Math.Abs(v - scores[i].GatingValues[k])).Max());
            maxHidden = Math.Max(maxHidden, g.LastHiddenReward.Select((v, k) => Math.Abs(v - embeddings[i][k])).Max());
        }
        TestContext.Out.WriteLine($"max abs diff vs goldens: score {maxScore:E2}, rewards {maxReward:E2}, gating {maxGating:E2}, embedding {maxHidden:E2}");
        Assert.That(scores[0].ObjectiveNames, Is.EqualTo(model.ObjectiveNames));
        Assert.That(scores[0].Objectives["helpsteer-verbosity"], Is.EqualTo(scores[0].RewardValues[4]));
        Assert.That(model.HasPosterior, Is.False);
        Assert.That(scores[0].ScoreStd, Is.Null);
    }

    [Test]
    public void AScoreDoesNotDependOnWhatItIsBatchedWith()
    {
        var ids = ExportedModels.ArmormTinyGoldens().Select(g => g.InputIds).ToList();
        using var batched = Load();
        using var alone = Load(new RewardModelOptions { MaxBatchSize = 1 });
        using var small = Load(new RewardModelOptions { MaxBatchTokens = 1500, MaxBatchSize = 5 });
        var a = alone.ScoreTokens(ids);
        var b = batched.ScoreTokens(ids);
        var order = Enumerable.Range(0, ids.Count).OrderBy(i => (i * 7919) % ids.Count).ToArray();
        var c = small.ScoreTokens(order.Select(i => ids[i]).ToList());
        double worst = 0;
        for (var j = 0; j < order.Length; j++)
        {
            var i = order[j];
            // Right padding + causal attention: only float summation order may differ (ORT's GEMM blocking changes
            // with the batch shape), hence 1e-5 rather than exact equality.
            Assert.That(b[i].Score, Is.EqualTo(a[i].Score).Within(1e-5));
            Assert.That(c[j].Score, Is.EqualTo(a[i].Score).Within(1e-5));
            for (var k = 0; k < a[i].RewardValues.Count; k++)
            {
                Assert.That(b[i].RewardValues[k], Is.EqualTo(a[i].RewardValues[k]).Within(1e-5));
                Assert.That(c[j].GatingValues[k], Is.EqualTo(a[i].GatingValues[k]).Within(1e-5));
            }
            worst = Math.Max(worst, Math.Max(Math.Abs(b[i].Score - a[i].Score), Math.Abs(c[j].Score - a[i].Score)));
        }
        TestContext.Out.WriteLine($"max |batched - alone| score: {worst:E2}");
    }

    [Test]
    public void EightThreadsScoringConcurrentlyGiveTheSingleThreadedResults()
    {
        var goldens = ExportedModels.ArmormTinyGoldens();
        var inputs = Enumerable.Range(0, 1000).Select(i => goldens[i % goldens.Count].InputIds[..Math.Max(8, goldens[i % goldens.Count].InputIds.Length - i % 5)]).ToList();
        // Every input must still contain the gating pattern: keep only those that do (trimming may cut it).
        using var model = Load();
        var valid = inputs.Where(ids => { try { model.Encoder.GatingPosition(ids, 0); return true; } catch (RewardModelException) { return false; } }).ToList();
        Assert.That(valid, Has.Count.GreaterThan(500));
        var expected = model.ScoreTokens(valid);
        // 8 threads at once; thread t scores the inputs with (i + t) % 4 == 0, in calls of 37, so every input is scored
        // by two threads in different batch company, concurrently.
        var results = new RewardScore?[8][];
        Parallel.For(0, 8, new ParallelOptions { MaxDegreeOfParallelism = 8 }, t =>
        {
            var mine = new RewardScore?[valid.Count];
            var idx = Enumerable.Range(0, valid.Count).Where(i => (i + t) % 4 == 0).ToList();
            foreach (var chunk in idx.Chunk(37))
            {
                var s = model.ScoreTokens(chunk.Select(i => valid[i]).ToList());
                for (var j = 0; j < chunk.Length; j++)
                    mine[chunk[j]] = s[j];
            }
            results[t] = mine;
        });
        for (var i = 0; i < valid.Count; i++)
        {
            var scored = 0;
            for (var t = 0; t < 8; t++)
                if (results[t][i] is { } r)
                {
                    scored++;
                    Assert.That(r.Score, Is.EqualTo(expected[i].Score).Within(1e-5), $"thread {t} input {i}");
                }
            Assert.That(scored, Is.EqualTo(2), $"input {i}");
        }
    }

    [Test]
    public void InputsThatCannotBeScoredGiveClearErrors()
    {
        using var model = Load(new RewardModelOptions { MaxSequenceLength = 100 });
        var good = ExportedModels.ArmormTinyGoldens().First(g => g.InputIds.Length < 100).InputIds;

        var e = Assert.Throws<RewardModelException>(() => model.ScoreTokens([good, [.. good, 128256]]))!;
        Assert.That(e.Message, Does.Contain("input 1 contains the pad token 128256"));
        Assert.That(e.InputIndex, Is.EqualTo(1));

        e = Assert.Throws<RewardModelException>(() => model.ScoreTokens([[1, 2, 999999]]))!;
        Assert.That(e.Message, Does.Contain("token id 999999 at position 2, outside the model's vocabulary [0, 128257)"));

        e = Assert.Throws<RewardModelException>(() => model.ScoreTokens([Enumerable.Repeat(271, 150).ToArray()]))!;
        Assert.That(e.Message, Does.Contain("input 0 is 150 tokens long, over the limit of 100"));
        Assert.That(e.Message, Does.Contain("DropOldestTurns"));

        // armorm-tiny golden_errors.jsonl: a conversation with no assistant header.
        var bad = File.ReadLines(Path.Combine(SharedData.ArmormTiny, "golden_errors.jsonl")).Select(l => System.Text.Json.JsonDocument.Parse(l)).Single();
        var ids = bad.RootElement.GetProperty("input_ids").EnumerateArray().Select(x => x.GetInt32()).ToArray();
        var expected = bad.RootElement.GetProperty("expected_error").GetString()!;
        e = Assert.Throws<RewardModelException>(() => model.ScoreTokens([ids]))!;
        Assert.That(e.Message, Does.Contain(expected));

        e = Assert.Throws<RewardModelException>(() => model.ScoreTokens([[]]))!;
        Assert.That(e.Message, Does.Contain("input 0 has no tokens"));
    }

    [Test]
    public void ABackboneOnlyModelEmbedsButDoesNotScore()
    {
        using var model = RewardModel.Load(ExportedModels.Stories260K, new RewardModelOptions { ExecutionProvider = ExecutionProviderKind.Cpu });
        var golden = File.ReadLines(Path.Combine(SharedData.Stories260K, "golden.jsonl")).Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement).ToList();
        var ids = golden.Select(g => g.GetProperty("tokens").EnumerateArray().Select(x => x.GetInt32()).ToArray()).ToList();
        var emb = model.EmbedTokens(ids);
        for (var i = 0; i < ids.Count; i++)
        {
            var last = golden[i].GetProperty("hidden").EnumerateArray().Last().EnumerateArray().Select(x => x.GetSingle()).ToArray();
            // stories260K README: agreement to about 1e-4 absolute in float32 (different summation order).
            Assert.That(emb[i].Select((v, k) => Math.Abs(v - last[k])).Max(), Is.LessThanOrEqualTo(1e-4));
        }
        var e = Assert.Throws<RewardModelException>(() => model.ScoreTokens(ids))!;
        Assert.That(e.Message, Does.Contain("backbone-only model"));
    }

    [Test]
    public void ModelDirectoryProblemsAndCudaRequestsGiveClearErrors()
    {
        var dir = SharedData.NewTempDirectory("model-dir");
        try
        {
            var e = Assert.Throws<RewardModelException>(() => RewardModel.Load(dir))!;
            Assert.That(e.Message, Does.Contain("reward_model.json is missing"));
            Assert.That(e.Message, Does.Contain("onnxreward export"));

            foreach (var f in Directory.GetFiles(ExportedModels.ArmormTiny))
                File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
            var manifest = Path.Combine(dir, RewardModelManifest.FileName);
            var json = File.ReadAllText(manifest);

            File.WriteAllText(manifest, json.Replace("\"kind\": \"reward\"", "\"kind\": \"classifier\""));
            e = Assert.Throws<RewardModelException>(() => RewardModel.Load(dir))!;
            Assert.That(e.Message, Does.Contain("field 'kind' is 'classifier'"));

            File.WriteAllText(manifest, json.Replace("\"kind\": \"reward\"", "\"kind\": \"backbone\""));
            using (var m = RewardModel.Load(dir, new RewardModelOptions { ExecutionProvider = ExecutionProviderKind.Cpu }))
                Assert.That(m.Manifest.IsReward, Is.False);   // a reward graph still has the embedding output

            File.WriteAllText(manifest, json[..(json.Length / 2)]);
            e = Assert.Throws<RewardModelException>(() => RewardModel.Load(dir))!;
            Assert.That(e.Message, Does.Contain("is not a valid manifest"));

            File.WriteAllText(manifest, json);
            File.Delete(Path.Combine(dir, "model.onnx"));
            e = Assert.Throws<RewardModelException>(() => RewardModel.Load(dir))!;
            Assert.That(e.Message, Does.Contain("model.onnx is missing although reward_model.json names it"));
        }
        finally
        {
            Directory.Delete(dir, true);
        }

        // This machine's CPU-only ORT package (and CI's) has no CUDA provider: asking for CUDA explicitly fails with the
        // reason and the fix; Auto falls back to the CPU.
        var cuda = Assert.Throws<RewardModelException>(() =>
            RewardModel.Load(ExportedModels.ArmormTiny, new RewardModelOptions { ExecutionProvider = ExecutionProviderKind.Cuda }))!;
        Assert.That(cuda.Message, Does.Contain("the CUDA execution provider does not load on this machine"));
        Assert.That(cuda.Message, Does.Contain("Use ExecutionProvider = Auto or Cpu"));
        var log = new Diagnostics.ListLoggerFactory();
        using var auto = RewardModel.Load(ExportedModels.ArmormTiny, new RewardModelOptions { LoggerFactory = log });
        Assert.That(auto.ExecutionProvider, Is.EqualTo("CPU"));
        Assert.That(log.Messages, Has.Some.Contains("execution provider: CPU"));
        Assert.That(log.Entries.Where(e => e.Message.StartsWith("execution provider", StringComparison.Ordinal)).Select(e => e.Category),
            Has.All.EqualTo("OnnxReward.Runtime.OrtRewardSession"), "one category per component");
    }
}
