using OnnxReward.Export.Checkpoints;
using OnnxReward.Export.Exporting;
using OnnxReward.Export.Tests.Checkpoints;
using OnnxReward.Testing;

namespace OnnxReward.Export.Tests.Exporting;

/// <summary>An F16 embedding table stays F16 in the fp32 graph (Gather, then Cast): exact, and half the bytes.</summary>
public class Fp16EmbeddingTableTests
{
    [Test]
    public void F16TableGivesExactlyTheF32TablesScoresWithHalfTheBytes()
    {
        var dir = SharedData.NewTempDirectory("emb16");
        try
        {
            var options = new ExportOptions { Precision = ExportPrecision.Fp32, GatingTokenPattern = [3, 4] };
            var f32 = ModelExporter.Export(TinyCheckpoints.WriteReward(Path.Combine(dir, "c32"), embedDType: ElementType.Float), Path.Combine(dir, "m32"), options);
            var f16 = ModelExporter.Export(TinyCheckpoints.WriteReward(Path.Combine(dir, "c16"), embedDType: ElementType.Float16), Path.Combine(dir, "m16"), options);
            var v = TinyCheckpoints.Config.VocabSize;
            var d = TinyCheckpoints.Config.HiddenSize;
            Assert.That(f32.DataBytes - f16.DataBytes, Is.GreaterThanOrEqualTo((long)v * d * 2 - 4096), "the table is stored in 2 bytes per value");

            int[][] ids = [[1, 2, 3, 4, 5, 6], [7, 3, 4, 9], [0, 1, 2, 3, 4, 8, 8, 8, 1]];
            using var a = RewardModel.Load(f32.OutputDirectory, new RewardModelOptions { ExecutionProvider = ExecutionProviderKind.Cpu });
            using var b = RewardModel.Load(f16.OutputDirectory, new RewardModelOptions { ExecutionProvider = ExecutionProviderKind.Cpu });
            var sa = a.ScoreTokens(ids);
            var sb = b.ScoreTokens(ids);
            for (var i = 0; i < ids.Length; i++)
            {
                // Same values (TinyCheckpoints values are exactly representable in fp16) through the same kernels: equal.
                Assert.That(sb[i].Score, Is.EqualTo(sa[i].Score));
                Assert.That(sb[i].RewardValues, Is.EqualTo(sa[i].RewardValues));
            }
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
