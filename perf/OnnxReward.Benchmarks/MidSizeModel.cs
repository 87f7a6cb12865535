using OnnxReward.Export.Checkpoints;
using OnnxReward.Export.Exporting;

namespace OnnxReward.Benchmarks;

/// <summary>
/// design.md's mid-size Llama-3-shaped reward model (d 512, 8 layers, GQA 8/2, FFN 1536, vocab 128,257, 19 objectives,
/// gating 3×256) with seeded random weights, written once to /tmp as a bf16 Hugging Face checkpoint and exported to an
/// fp32 model directory (never committed; regenerated when absent).
/// </summary>
internal static class MidSizeModel
{
    public static readonly LlamaConfig Config = new()
    {
        HiddenSize = 512, IntermediateSize = 1536, NumHiddenLayers = 8, NumAttentionHeads = 8, NumKeyValueHeads = 2,
        VocabSize = 128257, RmsNormEps = 1e-5, RopeTheta = 500000, MaxPositionEmbeddings = 2048, PadTokenId = 128256,
    };

    public static readonly RewardHeadConfig Head = new() { NumObjectives = 19, GatingHiddenDim = 256, GatingNHidden = 3 };

    private static readonly string Root = Path.Combine(Path.GetTempPath(), "onnxreward-bench-midsize-v1");
    public static string CheckpointDirectory => Path.Combine(Root, "checkpoint");
    public static string ModelDirectory => Path.Combine(Root, "model");

    /// <summary>Matmul parameters per token (every Linear of the backbone and head; the embedding is a gather).</summary>
    public static long MatmulParameters
    {
        get
        {
            long d = Config.HiddenSize, f = Config.IntermediateSize, kv = Config.NumKeyValueHeads * Config.HeadDim;
            return Config.NumHiddenLayers * (d * d + 2 * d * kv + d * d + 3 * d * f);
        }
    }

    public static void Ensure()
    {
        if (File.Exists(Path.Combine(ModelDirectory, "reward_model.json")))
            return;
        if (Directory.Exists(Root))
            Directory.Delete(Root, true);
        var rng = new Random(20261125);
        using (var w = new HuggingFaceCheckpointWriter(CheckpointDirectory))
        {
            foreach (var (name, shape, _) in CheckpointLayout.Expected(Config, Head))
            {
                var n = shape.Aggregate(1L, (a, b) => a * b);
                var values = new float[n];
                var fanIn = shape.Length > 1 ? shape[^1] : 1;
                var scale = name.Contains("norm") ? 0f : name.Contains("embed") ? 1f : (float)(1 / Math.Sqrt(fanIn));
                for (var i = 0; i < n; i++)
                    values[i] = name.Contains("norm") || name == "gating.logit_scale" ? 1f : (float)(rng.NextDouble() * 2 - 1) * scale;
                if (name == "reward_transform_matrix")
                    for (var i = 0; i < n; i++)
                        values[i] = i / Head.NumObjectives == i % Head.NumObjectives ? 1f : 0f;
                w.Add(name, name.StartsWith("model.", StringComparison.Ordinal) ? TensorDType.BF16 : TensorDType.F32, shape, values);
            }
            w.Complete(Config, Head);
        }
        ModelExporter.Export(CheckpointDirectory, ModelDirectory, new ExportOptions { DType = "fp32", GatingTokenPattern = ModelExporter.Llama3GatingTokenPattern });
    }

    /// <summary>B chat-shaped rows of exactly T tokens (header, prompt, gating pattern, response, eot), ids below 128000.</summary>
    public static int[][] Rows(int b, int t, int seed = 1)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, b).Select(_ =>
        {
            var row = new int[t];
            for (var j = 0; j < t; j++)
                row[j] = rng.Next(1000, 100000);
            int[] head = [128000, 128006, 882, 128007, 271];
            head.CopyTo(row, 0);
            var g = t / 2;
            int[] pattern = [128009, 128006, 78191, 128007, 271];
            pattern.CopyTo(row, g);
            row[^1] = 128009;
            return row;
        }).ToArray();
    }
}
