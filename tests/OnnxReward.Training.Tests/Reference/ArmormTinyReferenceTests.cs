using OnnxReward.Export;
using OnnxReward.Export.Checkpoints;
using OnnxReward.Testing;
using OnnxReward.Training.Reference;
using static TorchSharp.torch;

namespace OnnxReward.Training.Tests.Reference;

/// <summary>
/// The TorchSharp reference (backbone + ArmoRM head) against the 47 armorm-tiny goldens
/// (../shared/reference/armorm-tiny): an independent PyTorch float32 implementation of HF LlamaModel +
/// LlamaForRewardModelWithGating, one conversation at a time. Inputs are the golden input_ids and positions.
/// </summary>
[TestFixture]
public sealed class ArmormTinyReferenceTests
{
    // README "Tolerance": "Recommended check: |ours - golden| <= 1e-4 + 1e-4 * |golden| for every element (about 1e-4
    // relative)"; float32 vs float64 moves the goldens by at most 1.1e-6, so a correct implementation lands far inside.
    private const double Abs = 1e-4, Rel = 1e-4;

    private Checkpoint checkpoint = null!;
    private ReferenceRewardModel model = null!;
    private IReadOnlyList<ArmormGolden> goldens = null!;
    private ReferenceReward[] single = null!;

    [OneTimeSetUp]
    public void SetUp()
    {
        checkpoint = Checkpoint.Open(SharedData.ArmormTiny);
        model = ReferenceRewardModel.Load(checkpoint);
        goldens = Goldens.ArmormTiny();
        // Batch of one, no padding, exactly as the goldens were computed.
        single = goldens.Select(g => TorchReference.Score(model, [g.InputIds], [g.RewardPosition], [g.GatingPosition])[0]).ToArray();
    }

    [OneTimeTearDown]
    public void TearDown()
    {
        model?.Dispose();
        checkpoint?.Dispose();
    }

    [Test]
    public void Forward_BatchOfOne_MatchesAllGoldenFields()
    {
        Assert.That(goldens, Has.Count.EqualTo(47));
        var fields = new (string Name, Func<ReferenceReward, float[]> Ours, Func<ArmormGolden, float[]> Golden)[]
        {
            ("last_hidden_reward", o => o.RewardHidden, g => g.LastHiddenReward),
            ("prompt_hidden", o => o.PromptHidden, g => g.PromptHidden),
            ("rewards", o => o.Rewards, g => g.Rewards),
            ("gating_output", o => o.Gating, g => g.GatingOutput),
            ("score", o => [o.Score], g => [g.Score]),
        };
        Assert.Multiple(() =>
        {
            foreach (var (name, ours, golden) in fields)
            {
                double worst = 0;
                for (var n = 0; n < goldens.Count; n++)
                {
                    float[] a = ours(single[n]), e = golden(goldens[n]);
                    worst = Math.Max(worst, Goldens.MaxAbsDiff(a, e));
                    var bad = Goldens.FirstOutside(a, e, Abs, Rel);
                    Assert.That(bad, Is.EqualTo(-1),
                        $"{goldens[n].Id}: {name}[{bad}] = {(bad >= 0 ? a[bad] : 0)} vs golden {(bad >= 0 ? e[bad] : 0)} " +
                        "outside 1e-4 + 1e-4·|golden| (README recommended check)");
                }
                TestContext.Out.WriteLine($"armorm-tiny batch of one, {name}: max |ours - golden| = {worst:E2}");
            }
        });
    }

    [Test]
    public void Forward_AllCasesAsOnePaddedBatch_EqualsBatchOfOne()
    {
        // The 47 conversations (16..577 tokens) right-padded with [PAD] = 128256 into one [47, 577] batch, positions
        // 0..T-1 in every row and no mask: causal attention keeps pads out of real positions, so only summation order
        // changes (README: a padded batch moved the goldens by at most 4.8e-7). Bound: 1e-5 absolute.
        Assert.That(checkpoint.Config.PadTokenId, Is.EqualTo(128256));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var batch = TorchReference.Score(model, goldens.Select(g => g.InputIds).ToArray(),
            goldens.Select(g => g.RewardPosition).ToArray(), goldens.Select(g => g.GatingPosition).ToArray());
        TestContext.Out.WriteLine($"armorm-tiny [47, 577] batch forward: {clock.Elapsed.TotalMilliseconds:F0} ms");
        double worst = 0;
        for (var n = 0; n < goldens.Count; n++)
        {
            worst = Math.Max(worst, Goldens.MaxAbsDiff([batch[n].Score], [single[n].Score]));
            worst = Math.Max(worst, Goldens.MaxAbsDiff(batch[n].Rewards, single[n].Rewards));
            worst = Math.Max(worst, Goldens.MaxAbsDiff(batch[n].Gating, single[n].Gating));
            worst = Math.Max(worst, Goldens.MaxAbsDiff(batch[n].RewardHidden, single[n].RewardHidden));
            worst = Math.Max(worst, Goldens.MaxAbsDiff(batch[n].PromptHidden, single[n].PromptHidden));
        }
        TestContext.Out.WriteLine($"armorm-tiny padded batch of 47 vs batch of one: max |Δ| over all fields = {worst:E2}");
        Assert.That(worst, Is.LessThanOrEqualTo(1e-5));
    }

    [Test]
    public void Gating_EveryRow_SumsToLogitScale()
    {
        // softmax(z / 10) sums to 1, times logit_scale = 1.7 (README, Tensors); float32 rounding of 19 terms ~1e-7.
        var scale = checkpoint.Tensors.ReadFloat32("gating.logit_scale")[0];
        Assert.That(scale, Is.EqualTo(1.7f));
        Assert.Multiple(() =>
        {
            foreach (var (o, g) in single.Zip(goldens))
            {
                Assert.That(o.Gating.Sum(v => (double)v), Is.EqualTo(1.7).Within(1e-5), g.Id);
                Assert.That(o.Gating, Has.All.GreaterThanOrEqualTo(0f), g.Id);
            }
        });
    }

    [Test]
    public void DefaultPositions_FollowTheReferenceRules_MatchGoldenPositions()
    {
        // TorchReference's defaults: reward = last token, gating = last [128009, 128006, 78191, 128007, 271].
        Assert.Multiple(() =>
        {
            foreach (var g in goldens)
            {
                Assert.That(TorchReference.GatingPosition(g.InputIds), Is.EqualTo(g.GatingPosition), g.Id);
                Assert.That(g.InputIds.Length - 1, Is.EqualTo(g.RewardPosition), g.Id);
            }
        });
        var defaults = TorchReference.Score(model, goldens.Take(3).Select(g => g.InputIds).ToArray());
        for (var n = 0; n < 3; n++)
            Assert.That(defaults[n].Score, Is.EqualTo(single[n].Score).Within(1e-5), goldens[n].Id);
    }

    [Test]
    public void ExportParameters_EqualCheckpointTensorsBitForBit()
    {
        var exported = model.ExportParameters();
        var expected = checkpoint.Tensors.Names.ToArray();
        Assert.That(exported.Keys, Is.EquivalentTo(expected), "every checkpoint tensor is a parameter, under the same name");
        Assert.Multiple(() =>
        {
            foreach (var name in expected)
            {
                Assert.That(exported[name].Shape, Is.EqualTo(checkpoint.Tensors.GetInfo(name).Shape), name);
                Assert.That(exported[name].Values, Is.EqualTo(checkpoint.Tensors.ReadFloat32(name)), name);
            }
        });
    }

    [Test]
    public void ExportParameters_WrittenAndReloaded_ScoresIdentically()
    {
        // The path training will use to write a checkpoint: parameters → HuggingFaceCheckpointWriter (F32) → Open → Load.
        var dir = SharedData.NewTempDirectory();
        try
        {
            using (var writer = new HuggingFaceCheckpointWriter(dir))
            {
                foreach (var (name, p) in model.ExportParameters())
                    writer.Add(name, ElementType.Float, p.Shape, p.Values);
                writer.Complete(checkpoint.Config, checkpoint.Head);
            }
            using var reopened = Checkpoint.Open(dir);
            var cases = goldens.Take(4).ToArray();
            long[][] ids = cases.Select(g => g.InputIds).ToArray();
            long[] rewardAt = cases.Select(g => g.RewardPosition).ToArray(), gatingAt = cases.Select(g => g.GatingPosition).ToArray();
            var again = TorchReference.Score(reopened, ids, rewardAt, gatingAt);
            var first = TorchReference.Score(model, ids, rewardAt, gatingAt);
            for (var n = 0; n < cases.Length; n++)
            {
                Assert.That(again[n].Score, Is.EqualTo(first[n].Score), "same weights, same batch: bit-identical");
                Assert.That(again[n].Rewards, Is.EqualTo(first[n].Rewards));
                Assert.That(again[n].Gating, Is.EqualTo(first[n].Gating));
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void Head_IsTrainable_BackboneIsFrozen()
    {
        var g = goldens[0];
        using var scope = NewDisposeScope();
        var ids = tensor(g.InputIds, [1, g.InputIds.Length]);
        using var o = model.Forward(ids, tensor(new[] { g.RewardPosition }), tensor(new[] { g.GatingPosition }));
        o.Score.sum().backward();
        Assert.Multiple(() =>
        {
            foreach (var (name, p) in model.Head!.named_parameters())
            {
                Assert.That(p.requires_grad, Is.True, name);
                Assert.That(p.grad, Is.Not.Null, name);
                Assert.That(p.grad!.abs().max().item<float>(), Is.GreaterThan(0f), name);
            }
            foreach (var (name, p) in model.Backbone.named_parameters())
                Assert.That(p.requires_grad, Is.False, name);
            Assert.That(model.Backbone.training, Is.False);
        });
        model.Head!.zero_grad();
    }

    [Test]
    public void Forward_InvalidInputs_FailWithMessages()
    {
        using var scope = NewDisposeScope();
        var ids = tensor(new long[] { 128000, 9906, 128009 }, [1, 3]);
        var pos = tensor(new long[] { 2 });
        Assert.Multiple(() =>
        {
            Assert.That(() => model.Forward(tensor(new long[] { 0, 128257 }, [1, 2]), tensor(new long[] { 1 }), tensor(new long[] { 0 })),
                Throws.ArgumentException.With.Message.Contains("outside the vocabulary [0, 128257)"));
            Assert.That(() => model.Forward(ids, tensor(new long[] { 3 }), pos),
                Throws.ArgumentException.With.Message.Contains("reward_positions holds indices in [3, 3], outside [0, 3)"));
            Assert.That(() => model.Forward(ids, pos, tensor(new long[] { 0, 1 })),
                Throws.ArgumentException.With.Message.Contains("gating_positions must be an int64 tensor [1]"));
            Assert.That(() => model.Forward(tensor(new[] { 1, 2 }, [1, 2]), pos, pos),
                Throws.ArgumentException.With.Message.Contains("input_ids must be a non-empty int64 tensor"));
            Assert.That(() => TorchReference.Score(model, [new long[] { 128000, 9906 }]),
                Throws.ArgumentException.With.Message.Contains("has no gating position"));
        });
    }

    [Test]
    public void Load_TensorShapeContradictsConfig_NamesTheTensor()
    {
        var lying = new RewiredSource(checkpoint.Tensors, reshape: ("gating.layers.1.weight", [32, 31]));
        using var bad = new Checkpoint
        {
            Config = checkpoint.Config, Head = checkpoint.Head, Tensors = lying, Format = "huggingface",
            SourceFiles = [], Location = "/fake/armorm",
        };
        var e = Assert.Throws<CheckpointException>(() => ReferenceRewardModel.Load(bad))!;
        Assert.Multiple(() =>
        {
            Assert.That(e.Tensor, Is.EqualTo("gating.layers.1.weight"));
            Assert.That(e.Message, Does.Contain("has shape [32, 31]").And.Contain("implies [32, 32]"));
        });
    }

    [Test]
    public void Load_TensorMissing_NamesTheTensor()
    {
        var lying = new RewiredSource(checkpoint.Tensors, hide: "model.layers.1.mlp.up_proj.weight");
        using var bad = new Checkpoint
        {
            Config = checkpoint.Config, Head = checkpoint.Head, Tensors = lying, Format = "huggingface",
            SourceFiles = [], Location = "/fake/armorm",
        };
        var e = Assert.Throws<CheckpointException>(() => ReferenceRewardModel.Load(bad))!;
        Assert.Multiple(() =>
        {
            Assert.That(e.Tensor, Is.EqualTo("model.layers.1.mlp.up_proj.weight"));
            Assert.That(e.Message, Does.Contain("is missing").And.Contain("[176, 64]"));
        });
    }

    /// <summary>A view of a real tensor source that hides one tensor or reports another shape for one (it does not own
    /// the inner source).</summary>
    private sealed class RewiredSource(ITensorSource inner, (string Name, long[] Shape)? reshape = null, string? hide = null)
        : ITensorSource
    {
        public IReadOnlyList<string> Names => inner.Names.Where(n => n != hide).ToArray();

        public bool Contains(string name) => name != hide && inner.Contains(name);

        public TensorInfo GetInfo(string name) =>
            reshape is { } r && r.Name == name ? inner.GetInfo(name) with { Shape = r.Shape } : inner.GetInfo(name);

        public void ReadFloat32(string name, Span<float> destination) => inner.ReadFloat32(name, destination);

        public void ReadRaw(string name, Span<byte> destination) => inner.ReadRaw(name, destination);

        public void Dispose()
        {
        }
    }
}
