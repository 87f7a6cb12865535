using OnnxReward.Export;
using OnnxReward.Export.Checkpoints;
using OnnxReward.Testing;
using OnnxReward.Training.Reference;

namespace OnnxReward.Training.Tests.Reference;

/// <summary>
/// The layer-streaming fp32 reference (the 8B accuracy run's reference, perf/accuracy.sh) against the whole-model
/// reference and the 47 armorm-tiny goldens, and its streaming itself: layers are read in order, one at a time, and
/// the embedding table only row by row.
/// </summary>
[TestFixture]
public sealed class LayerStreamingReferenceTests
{
    // Same modules, same kernels, same shapes per sequence (batch of one, unpadded) as the whole model's batch-of-one
    // forward, so the hidden states come out bit-identical (measured: 0); only the head runs on all 47 rows at once
    // instead of one, and a GEMM instead of a GEMV changes the summation order (measured: 5.4e-7 on score, rewards and
    // gating). Bound: 1e-5 absolute, as for the padded batch in ArmormTinyReferenceTests (only summation order changes);
    // a wrong layer order, a skipped layer or a wrong embedding row moves these by O(0.01–1).
    private const double WholeModelAbs = 1e-5;

    // README "Tolerance": |ours - golden| <= 1e-4 + 1e-4·|golden| (float32 vs float64 moves the goldens by <= 1.1e-6).
    private const double GoldenAbs = 1e-4, GoldenRel = 1e-4;

    private IReadOnlyList<ArmormGolden> _goldens = null!;
    private IReadOnlyList<ReferenceReward> _streamed = null!;
    private IReadOnlyList<ReferenceReward> _whole = null!;
    private List<string> _reads = null!;

    [OneTimeSetUp]
    public void SetUp()
    {
        _goldens = Goldens.ArmormTiny();
        var ids = _goldens.Select(g => g.InputIds).ToArray();
        var reward = _goldens.Select(g => g.RewardPosition).ToArray();
        var gating = _goldens.Select(g => g.GatingPosition).ToArray();
        using (var checkpoint = Checkpoint.Open(SharedData.ArmormTiny))
        {
            using var model = ReferenceRewardModel.Load(checkpoint);
            _whole = _goldens.Select(g => TorchReference.Score(model, [g.InputIds], [g.RewardPosition], [g.GatingPosition])[0]).ToArray();
        }
        using var recorded = Recorded(SharedData.ArmormTiny, out _reads);
        _streamed = LayerStreamingReference.Score(recorded, ids, reward, gating);
    }

    [Test]
    public void Streamed_EqualsWholeModel_EveryField()
    {
        Assert.That(_streamed, Has.Count.EqualTo(_goldens.Count));
        var fields = new (string Name, Func<ReferenceReward, float[]> Get)[]
        {
            ("score", r => [r.Score]), ("rewards", r => r.Rewards), ("gating", r => r.Gating),
            ("last_hidden_reward", r => r.RewardHidden), ("prompt_hidden", r => r.PromptHidden),
        };
        Assert.Multiple(() =>
        {
            foreach (var (name, get) in fields)
            {
                double worst = 0;
                for (var n = 0; n < _goldens.Count; n++)
                    worst = Math.Max(worst, Goldens.MaxAbsDiff(get(_streamed[n]), get(_whole[n])));
                TestContext.Out.WriteLine($"armorm-tiny, {name}: max |streamed - whole model| = {worst:E2}");
                Assert.That(worst, Is.LessThanOrEqualTo(WholeModelAbs), name);
            }
        });
    }

    [Test]
    public void Streamed_MatchesGoldens()
    {
        Assert.Multiple(() =>
        {
            double worst = 0;
            for (var n = 0; n < _goldens.Count; n++)
            {
                var g = _goldens[n];
                foreach (var (name, ours, golden) in new[]
                {
                    ("score", new[] { _streamed[n].Score }, new[] { g.Score }), ("rewards", _streamed[n].Rewards, g.Rewards),
                    ("gating_output", _streamed[n].Gating, g.GatingOutput), ("last_hidden_reward", _streamed[n].RewardHidden, g.LastHiddenReward),
                    ("prompt_hidden", _streamed[n].PromptHidden, g.PromptHidden),
                })
                {
                    worst = Math.Max(worst, Goldens.MaxAbsDiff(ours, golden));
                    var bad = Goldens.FirstOutside(ours, golden, GoldenAbs, GoldenRel);
                    Assert.That(bad, Is.EqualTo(-1), $"{g.Id}: {name}[{bad}] outside 1e-4 + 1e-4·|golden|");
                }
            }
            TestContext.Out.WriteLine($"armorm-tiny: max |streamed - golden| over every field = {worst:E2}");
        });
    }

    [Test]
    public void Streams_LayersInOrder_AndTheEmbeddingRowByRow()
    {
        // What makes the 8B reference fit: no whole-table read of the embedding (a [V, D] fp32 table is 2.1 GB at 8B),
        // and every tensor of layer i read before any of layer i + 1 (one layer resident at a time).
        var layerOf = _reads.Where(r => r.StartsWith("full model.layers.", StringComparison.Ordinal))
            .Select(r => int.Parse(r.Split('.')[2], System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        Assert.Multiple(() =>
        {
            Assert.That(_reads, Has.None.EqualTo("full model.embed_tokens.weight"));
            Assert.That(_reads.Count(r => r == "range model.embed_tokens.weight"), Is.EqualTo(_goldens.Sum(g => g.InputIds.Length)),
                "one row read per token");
            Assert.That(layerOf, Is.Ordered, "layer tensors are read layer by layer");
            Assert.That(layerOf.Distinct(), Is.EqualTo(new[] { 0, 1 }), "armorm-tiny has 2 layers, each read");
            Assert.That(layerOf, Has.Length.EqualTo(2 * 9), "9 tensors per layer (2 norms, 4 attention, 3 MLP), each read once");
        });
    }

    [Test]
    public void OutOfVocabularyId_IsRejected_NamingItAndTheFix()
    {
        using var checkpoint = Checkpoint.Open(SharedData.ArmormTiny);
        var g = _goldens[0];
        var ids = g.InputIds.ToArray();
        ids[3] = checkpoint.Config.VocabSize;
        var e = Assert.Throws<ArgumentException>(() => LayerStreamingReference.Score(checkpoint, [ids], [g.RewardPosition], [g.GatingPosition]))!;
        Assert.That(e.Message, Does.Contain($"id {checkpoint.Config.VocabSize} at position 3").And.Contain("Tokenize with this checkpoint's tokenizer"));
    }

    [Test]
    public void ReadFloat32Range_EqualsTheSliceOfTheWholeTensor_AndChecksTheRange()
    {
        using var checkpoint = Checkpoint.Open(SharedData.ArmormTiny);
        const string name = "model.embed_tokens.weight";                      // BF16 in armorm-tiny
        var d = checkpoint.Config.HiddenSize;
        var all = checkpoint.Tensors.ReadFloat32(name);
        var row = new float[3 * d];
        checkpoint.Tensors.ReadFloat32Range(name, 1000L * d, row);
        Assert.Multiple(() =>
        {
            Assert.That(checkpoint.Tensors.GetInfo(name).DType, Is.EqualTo(ElementType.BFloat16));
            Assert.That(row, Is.EqualTo(all.AsSpan(1000 * d, 3 * d).ToArray()), "exact: the same bf16 → fp32 widening");
            var e = Assert.Throws<ArgumentOutOfRangeException>(() => checkpoint.Tensors.ReadFloat32Range(name, all.Length - d + 1, new float[d]))!;
            Assert.That(e.Message, Does.Contain(name).And.Contain("outside"));
        });
    }

    /// <summary>The checkpoint at <paramref name="folder"/> with a tensor source that logs each read
    /// ("full NAME" / "range NAME") in order.</summary>
    private static Checkpoint Recorded(string folder, out List<string> reads)
    {
        var inner = Checkpoint.Open(folder);
        var log = new List<string>();
        reads = log;
        return new Checkpoint
        {
            Config = inner.Config, Head = inner.Head, Classifier = inner.Classifier, Format = inner.Format,
            SourceFiles = inner.SourceFiles, Location = inner.Location, Tensors = new RecordingSource(inner, log),
        };
    }

    /// <summary>Forwards to the checkpoint's own source (and owns it), logging every read.</summary>
    private sealed class RecordingSource(Checkpoint inner, List<string> log) : ITensorSource
    {
        public IReadOnlyList<string> Names => inner.Tensors.Names;

        public bool Contains(string name) => inner.Tensors.Contains(name);

        public TensorInfo GetInfo(string name) => inner.Tensors.GetInfo(name);

        public void ReadFloat32(string name, Span<float> destination)
        {
            log.Add("full " + name);
            inner.Tensors.ReadFloat32(name, destination);
        }

        public void ReadFloat32Range(string name, long firstElement, Span<float> destination)
        {
            log.Add("range " + name);
            inner.Tensors.ReadFloat32Range(name, firstElement, destination);
        }

        public void ReadRaw(string name, Span<byte> destination)
        {
            log.Add("raw " + name);
            inner.Tensors.ReadRaw(name, destination);
        }

        public void Dispose() => inner.Dispose();
    }
}
