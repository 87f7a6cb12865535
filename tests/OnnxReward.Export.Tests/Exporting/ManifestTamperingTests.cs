using System.Text.Json.Nodes;
using OnnxReward.Export.Exporting;
using OnnxReward.Model;
using OnnxReward.Testing;

namespace OnnxReward.Export.Tests.Exporting;

/// <summary>Issue 16 item 12: a tampered or damaged model directory is a clear <see cref="RewardModelException"/> at
/// <see cref="RewardModel.Load"/>, before ONNX Runtime runs anything (max_sequence_length 1e8 used to crash mid-run).</summary>
[NonParallelizable]
public class ManifestTamperingTests
{
    private string _root = "", _model = "";

    [OneTimeSetUp]
    public void ExportOnce()
    {
        _root = SharedData.NewTempDirectory("manifest-tamper");
        _model = Path.Combine(_root, "model");
        ModelExporter.Export(SharedData.ArmormTiny, _model);
    }

    [OneTimeTearDown]
    public void CleanUp() => Directory.Delete(_root, recursive: true);

    private string CopyModel()
    {
        var dir = Path.Combine(_root, Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        foreach (var f in Directory.GetFiles(_model))
            File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        return dir;
    }

    private static void EditManifest(string dir, Action<JsonObject> edit) =>
        CheckpointCopies.EditJson(dir, edit, RewardModelManifest.FileName);

    private static RewardModelException LoadFails(string dir)
    {
        var e = Assert.Throws<RewardModelException>(() => RewardModel.Load(dir).Dispose())!;
        TestContext.Out.WriteLine(e.Message);
        Assert.That(e.InnerException, Is.Null, "found by the manifest checks, not by ONNX Runtime");
        return e;
    }

    [Test]
    public void MaxSequenceLength1e8_IsOutOfBounds()
    {
        var dir = CopyModel();
        EditManifest(dir, m => m["max_sequence_length"] = 100_000_000);
        Assert.That(LoadFails(dir).Message, Does.Contain("'max_sequence_length' is 100000000, outside [2, 16,777,216]"));
    }

    [Test]
    public void MaxSequenceLengthBeyondTheGraphsRotaryTable_IsRefused()
    {
        var dir = CopyModel();
        EditManifest(dir, m => m["max_sequence_length"] = 9000);              // the graph has 8192 positions
        Assert.That(LoadFails(dir).Message, Does.Contain("is 9000, but the graph's rotary table has 8192 positions"));
    }

    [TestCase("hidden_size", 1_000_000)]
    [TestCase("vocab_size", 1_000_000_000)]
    [TestCase("num_layers", 1_000_000)]
    public void OtherShapeFields_OutOfBounds(string field, int value)
    {
        var dir = CopyModel();
        EditManifest(dir, m => m[field] = value);
        Assert.That(LoadFails(dir).Message, Does.Contain($"'{field}' is {value}, outside"));
    }

    [Test]
    public void VocabSizeInconsistentWithTheGraph_IsRefused()
    {
        var dir = CopyModel();
        EditManifest(dir, m => m["vocab_size"] = 200_000);
        Assert.That(LoadFails(dir).Message, Does.Contain("the graph's embedding table is [128257, 64]"));
    }

    [Test]
    public void DuplicateObjectiveNames_InTheManifest_AreRefused()
    {
        var dir = CopyModel();
        EditManifest(dir, m => m["objectives"]![1] = m["objectives"]![0]!.GetValue<string>());
        Assert.That(LoadFails(dir).Message, Does.Contain("times; scores are keyed by objective name"));
    }

    [Test]
    public void TruncatedWeights_AreNamedWithBothSizes_BeforeOnnxRuntimeOpensThem()
    {
        var dir = CopyModel();
        var data = Path.Combine(dir, ModelExporter.DataFile);
        using (var f = new FileStream(data, FileMode.Open)) f.SetLength(f.Length - 4096);
        Assert.That(LoadFails(dir).Message, Does.Contain("model.onnx.data is").And.Contain("bytes but reward_model.json records"));

        // Without the recorded sizes (an older manifest), the graph's external-data ranges still catch it.
        EditManifest(dir, m => m.Remove("files"));
        Assert.That(LoadFails(dir).Message, Does.Contain("needs bytes").And.Contain("truncated"));
    }

    [Test]
    public void ChangedGraph_FailsItsHash_AndChangedWeights_FailVerifyHashes()
    {
        var dir = CopyModel();
        var graph = Path.Combine(dir, ModelExporter.GraphFile);
        var bytes = File.ReadAllBytes(graph);
        bytes[^1] ^= 1;
        File.WriteAllBytes(graph, bytes);
        Assert.That(LoadFails(dir).Message, Does.Contain("does not match the SHA-256"));

        dir = CopyModel();
        var data = Path.Combine(dir, ModelExporter.DataFile);
        CheckpointCopies.Overwrite(data, 10, [0x42]);
        Assert.DoesNotThrow(() => RewardModelManifest.Load(dir), "Load checks the weights' size, not their hash (cost: see VerifyHashes)");
        var e = Assert.Throws<RewardModelException>(() => RewardModelManifest.VerifyHashes(dir))!;
        Assert.That(e.Message, Does.Contain("model.onnx.data has SHA-256"));
        Assert.DoesNotThrow(() => RewardModelManifest.VerifyHashes(_model));
    }
}
