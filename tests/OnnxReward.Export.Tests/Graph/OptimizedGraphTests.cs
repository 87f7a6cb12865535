using Microsoft.ML.OnnxRuntime;
using OnnxReward.Export.Checkpoints;
using OnnxReward.Export.Exporting;
using OnnxReward.Export.Onnx;
using OnnxReward.Export.Tests.Exporting;
using OnnxReward.Testing;

namespace OnnxReward.Export.Tests.Graph;

/// <summary>What ONNX Runtime's CPU optimizer makes of the exported graph (SessionOptions.OptimizedModelFilePath):
/// the fused kernels we emit survive, nothing is split back into primitive ops (see Graph/DESIGN.md).</summary>
public class OptimizedGraphTests
{
    internal static readonly LlamaConfig SmallConfig = new()
    {
        HiddenSize = 64, IntermediateSize = 96, NumHiddenLayers = 3, NumAttentionHeads = 4, NumKeyValueHeads = 2,
        VocabSize = 500, RopeTheta = 500000, MaxPositionEmbeddings = 128, PadTokenId = 499,
    };

    internal static readonly RewardHeadConfig SmallHead = new() { NumObjectives = 4, GatingHiddenDim = 16, GatingNHidden = 3 };

    internal static Dictionary<string, int> OpCounts(ModelProto model) =>
        model.Graph.Node.GroupBy(n => n.OpType).ToDictionary(g => g.Key, g => g.Count());

    [Test]
    public void CpuOptimizer_KeepsFusedAttentionAndNorms()
    {
        using var ckpt = InMemoryCheckpoint.Create(SmallConfig, SmallHead, seed: 3);
        var dir = SharedData.NewTempDirectory();
        ModelExporter.Export(ckpt, "in-memory", dir, new ExportOptions { GatingTokenPattern = [1] }, null, CancellationToken.None);
        var exported = OpCounts(ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(dir, "model.onnx"))));
        var optimizedPath = Path.Combine(dir, "optimized.onnx");
        using (new OrtRunner(dir, optimizedPath)) { }
        var optimized = OpCounts(ModelProto.Parser.ParseFrom(File.ReadAllBytes(optimizedPath)));
        TestContext.Out.WriteLine("exported:  " + string.Join(", ", exported.OrderBy(p => p.Key).Select(p => $"{p.Key} {p.Value}")));
        TestContext.Out.WriteLine("optimized: " + string.Join(", ", optimized.OrderBy(p => p.Key).Select(p => $"{p.Key} {p.Value}")));

        var layers = SmallConfig.NumHiddenLayers;
        Assert.That(optimized.GetValueOrDefault("GroupQueryAttention"), Is.EqualTo(layers), "one GQA per layer");
        Assert.That(optimized.GetValueOrDefault("SkipSimplifiedLayerNormalization"), Is.EqualTo(2 * layers - 2),
            "post-attention and next input norms of every layer but the last are skip-norms");
        Assert.That(optimized.GetValueOrDefault("QuickGelu"), Is.EqualTo(layers), "silu(g) = g·sigmoid(g) fused into QuickGelu(alpha 1)");
        Assert.That(optimized.GetValueOrDefault("MatMul"), Is.EqualTo(4 * layers + 2),
            "qkv, o, gate_up and down per layer (packed), regression and transform in the head");
        Assert.That(optimized.GetValueOrDefault("ReduceMean") + optimized.GetValueOrDefault("Pow"), Is.Zero, "no RMSNorm was decomposed");
    }
}
