using System.Diagnostics;
using System.Text.Json.Nodes;
using OnnxReward.Export.Checkpoints;
using OnnxReward.Export.Exporting;
using OnnxReward.Export.Tests.Exporting;
using OnnxReward.Testing;

namespace OnnxReward.Export.Tests.Checkpoints;

/// <summary>Issue 16 item 4: absurd config values are refused when config.json is read, before anything is sized from
/// them, with the key, the value and the bound; every real model's values pass.</summary>
public class ConfigBoundsTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp() => _dir = SharedData.NewTempDirectory("config-bounds");

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private string Config(Action<JsonObject> edit)
    {
        var node = JsonNode.Parse(File.ReadAllText(Path.Combine(SharedData.ArmormTiny, "config.json")))!.AsObject();
        edit(node);
        var path = Path.Combine(_dir, "config.json");
        File.WriteAllText(path, node.ToJsonString());
        return path;
    }

    [TestCase("num_hidden_layers", 1_000_000_000L, "1,024")]
    [TestCase("gating_n_hidden", 1_000_000_000L, "64")]
    [TestCase("max_position_embeddings", 2_147_483_647L, "16,777,216")]
    [TestCase("vocab_size", 1_000_000_000L, "4,194,304")]
    [TestCase("intermediate_size", 1_000_000_000L, "262,144")]
    [TestCase("gating_hidden_dim", 1_000_000_000L, "65,536")]
    [TestCase("num_objectives", 1_000_000_000L, "4,096")]
    public void AbsurdValue_IsRefusedWithKeyValueAndBound_BeforeAnyAllocation(string key, long value, string bound)
    {
        var path = Config(c => c[key] = value);
        var allocated = GC.GetTotalAllocatedBytes(precise: true);
        var clock = Stopwatch.StartNew();
        var e = Assert.Throws<CheckpointException>(() => HuggingFaceCheckpoint.ReadConfig(path))!;
        TestContext.Out.WriteLine(e.Message);
        Assert.That(e.Message, Does.Contain($"'{key}' is {value}").And.Contain(bound).And.Contain("config.json"));
        // Bound: reading a 1 KB config allocates a few KB; 16 MB is far below what sizing anything from these values takes.
        Assert.That(GC.GetTotalAllocatedBytes(precise: true) - allocated, Is.LessThan(16 << 20));
        Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(5)), "no work proportional to the value (2-core CI bound)");
    }

    [TestCase("gating_n_hidden", "\"3\"")]
    [TestCase("gating_n_hidden", "[3]")]
    [TestCase("hidden_act", "5")]
    [TestCase("hidden_act", "{\"name\": \"silu\"}")]
    public void ValueOfAnUnexpectedJsonType_IsACheckpointException(string key, string json)
    {
        // Found by ExportFuzzTests: gating_n_hidden and hidden_act of other JSON types threw InvalidOperationException.
        var path = Config(c => c[key] = JsonNode.Parse(json));
        var e = Assert.Throws<CheckpointException>(() => HuggingFaceCheckpoint.ReadConfig(path))!;
        Assert.That(e.Message, Does.Contain(key).And.Contain("config.json"));
    }

    [Test]
    public void HugeHiddenSizeWithFewHeads_IsRefusedByTheRotaryTableBound()
    {
        // Within every single bound, but positions × head_dim (16,777,216 × 65,536) would be a 4-PB rotary table.
        var path = Config(c => { c["hidden_size"] = 65536; c["num_attention_heads"] = 1; c["num_key_value_heads"] = 1; c["max_position_embeddings"] = 16_777_216; });
        var e = Assert.Throws<CheckpointException>(() => HuggingFaceCheckpoint.ReadConfig(path))!;
        Assert.That(e.Message, Does.Contain("rotary-table entries, over the bound"));
    }

    [Test]
    public void MaxPositionEmbeddings2147483647_ThroughExport_IsACheckpointException_NotOverflow()
    {
        var ckpt = CheckpointCopies.ArmormTiny(Path.Combine(_dir, "ckpt"));
        CheckpointCopies.EditJson(ckpt, c => c["max_position_embeddings"] = 2_147_483_647);
        var e = Assert.Throws<CheckpointException>(() => ModelExporter.Export(ckpt, Path.Combine(_dir, "out")))!;
        Assert.That(e.Message, Does.Contain("'max_position_embeddings' is 2147483647, over the bound of 16,777,216"));
    }

    [Test]
    public void RealModelShapes_AreWithinTheBounds()
    {
        // Llama-3.1-405B, Llama-3-70B, and a 1 M-vocabulary / 10 M-position model.
        var shapes = new[]
        {
            new LlamaConfig { HiddenSize = 16384, IntermediateSize = 53248, NumHiddenLayers = 126, NumAttentionHeads = 128, NumKeyValueHeads = 8, VocabSize = 128256, MaxPositionEmbeddings = 131072 },
            new LlamaConfig { HiddenSize = 8192, IntermediateSize = 28672, NumHiddenLayers = 80, NumAttentionHeads = 64, NumKeyValueHeads = 8, VocabSize = 128256, MaxPositionEmbeddings = 8192 },
            new LlamaConfig { HiddenSize = 5120, IntermediateSize = 8192, NumHiddenLayers = 48, NumAttentionHeads = 40, NumKeyValueHeads = 8, VocabSize = 1_048_576, MaxPositionEmbeddings = 10_485_760 },
        };
        var head = new RewardHeadConfig { NumObjectives = 19, GatingHiddenDim = 1024, GatingNHidden = 3 };
        foreach (var c in shapes)
            Assert.That(ConfigBounds.Violation(c, head), Is.Null);
    }
}
