using OnnxReward.Export.Checkpoints;
using OnnxReward.Export.Exporting;
using OnnxReward.Export.Tests.Exporting;
using OnnxReward.Export.Tests.Graph;
using OnnxReward.Testing;

namespace OnnxReward.Export.Tests.Checkpoints;

/// <summary>ExportedModelCheckpoint: an fp32 model directory gives back the checkpoint it was exported from, bit for
/// bit (every recovery step is a copy or a transpose), so re-exporting it writes the same weights file.</summary>
public class ExportedModelCheckpointTests
{
    [Test]
    public void Write_RecoversEveryTensorExactly_AndReExportsToTheSameWeights()
    {
        // 3 layers, GQA 4/2, posterior rank 3: every packed, transposed and permuted layout the exporter writes.
        var config = OptimizedGraphTests.SmallConfig;
        using var ckpt = InMemoryCheckpoint.Create(config, OptimizedGraphTests.SmallHead, seed: 21, posteriorRank: 3);
        var model = SharedData.NewTempDirectory();
        ModelExporter.Export(ckpt, "in-memory", model, new ExportOptions { GatingTokenPattern = [1] }, null, CancellationToken.None);

        var recovered = SharedData.NewTempDirectory();
        ExportedModelCheckpoint.Write(model, recovered, ckpt.Config, ckpt.Head!);

        using var back = Checkpoint.Open(recovered);
        Assert.That(back.Tensors.Names, Is.EquivalentTo(ckpt.Tensors.Names), "every tensor of the source, no other");
        foreach (var name in ckpt.Tensors.Names)
            Assert.That(back.Tensors.ReadFloat32(name), Is.EqualTo(ckpt.Tensors.ReadFloat32(name)), $"{name}: bit-exact (bf16 values widen exactly to float32)");

        var again = SharedData.NewTempDirectory();
        ModelExporter.Export(recovered, again, new ExportOptions { GatingTokenPattern = [1], Overwrite = true });
        Assert.That(File.ReadAllBytes(Path.Combine(again, "model.onnx.data")), Is.EqualTo(File.ReadAllBytes(Path.Combine(model, "model.onnx.data"))),
            "the recovered checkpoint exports to the original weights file");
    }

    [Test]
    public void Write_RefusesAQuantizedModel_SayingWhy()
    {
        using var ckpt = InMemoryCheckpoint.Create(OptimizedGraphTests.SmallConfig, OptimizedGraphTests.SmallHead, seed: 22);
        var model = SharedData.NewTempDirectory();
        ModelExporter.Export(ckpt, "in-memory", model, new ExportOptions { Precision = ExportPrecision.Parse("int8"), GatingTokenPattern = [1] },
            null, CancellationToken.None);
        var ex = Assert.Throws<CheckpointException>(() => ExportedModelCheckpoint.Write(model, SharedData.NewTempDirectory(), ckpt.Config, ckpt.Head!));
        Assert.That(ex!.Message, Does.Contain("int8").And.Contain("only an fp32 model"));
    }

    [Test]
    public void Write_NamesTheTensorWhoseShapeContradictsTheConfig()
    {
        using var ckpt = InMemoryCheckpoint.Create(OptimizedGraphTests.SmallConfig, OptimizedGraphTests.SmallHead, seed: 23);
        var model = SharedData.NewTempDirectory();
        ModelExporter.Export(ckpt, "in-memory", model, new ExportOptions { GatingTokenPattern = [1] }, null, CancellationToken.None);
        var wrong = ckpt.Head! with { GatingHiddenDim = 8 };
        var ex = Assert.Throws<CheckpointException>(() => ExportedModelCheckpoint.Write(model, SharedData.NewTempDirectory(), ckpt.Config, wrong));
        Assert.That(ex!.Message, Does.Contain("gating.layers.0.weight"));
    }
}
