using Microsoft.ML.OnnxRuntime;
using OnnxReward.Export.Exporting;
using OnnxReward.Export.Tests.Exporting;
using OnnxReward.Testing;

namespace OnnxReward.Export.Tests.Graph;

public class Fp16VariantTests
{
    [Test]
    public void Fp16_OnCpu_Probe()
    {
        using var ckpt = InMemoryCheckpoint.Create(OptimizedGraphTests.SmallConfig, OptimizedGraphTests.SmallHead, seed: 3);
        var d32 = SharedData.NewTempDirectory();
        var d16 = SharedData.NewTempDirectory();
        ModelExporter.Export(ckpt, "x", d32, new ExportOptions { GatingTokenPattern = [1] }, null, CancellationToken.None);
        ModelExporter.Export(ckpt, "x", d16, new ExportOptions { GatingTokenPattern = [1], DType = "fp16" }, null, CancellationToken.None);
        long[][] rows = [[1, 2, 3, 4, 5, 6, 7, 8], [9, 10, 11]];
        using var a = new OrtRunner(d32);
        using var b = new OrtRunner(d16, Path.Combine(d16, "opt.onnx"));
        var o32 = a.Run(rows, [7, 2], [3, 1]);
        var o16 = b.Run(rows, [7, 2], [3, 1]);
        foreach (var k in o32.Keys)
            TestContext.Out.WriteLine($"{k}: max diff {o32[k].Zip(o16[k]).Max(p => Math.Abs(p.First - p.Second))}");
        var opt = OptimizedGraphTests.OpCounts(OnnxReward.Export.Onnx.ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(d16, "opt.onnx"))));
        TestContext.Out.WriteLine("optimized: " + string.Join(", ", opt.OrderBy(p => p.Key).Select(p => $"{p.Key} {p.Value}")));
    }
}
