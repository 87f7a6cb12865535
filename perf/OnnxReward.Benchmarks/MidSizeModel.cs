using OnnxReward.Export;
using OnnxReward.Export.Checkpoints;
using OnnxReward.Export.Exporting;
using OnnxReward.Model;

namespace OnnxReward.Benchmarks;

/// <summary>
/// design.md's mid-size Llama-3-shaped reward model (d 512, 8 layers, GQA 8/2, FFN 1536, vocab 128,257, 19 objectives,
/// gating 3×256) with seeded random weights, written once to /tmp as a bf16 Hugging Face checkpoint and exported to an
/// fp32 model directory (never committed; regenerated when absent). The checkpoint folder gets armorm-tiny's Llama-3
/// tokenizer files, so the exported directory also scores text (front-end benchmarks).
/// </summary>
internal static class MidSizeModel
{
    public static readonly LlamaConfig Config = new()
    {
        HiddenSize = 512, IntermediateSize = 1536, NumHiddenLayers = 8, NumAttentionHeads = 8, NumKeyValueHeads = 2,
        VocabSize = 128257, RmsNormEps = 1e-5, RopeTheta = 500000, MaxPositionEmbeddings = 2048, PadTokenId = 128256,
    };

    public static readonly RewardHeadConfig Head = new() { NumObjectives = 19, GatingHiddenDim = 256, GatingNHidden = 3 };

    private static readonly string Root = Path.Combine(Path.GetTempPath(), "onnxreward-bench-midsize-v2");
    public static string CheckpointDirectory => Path.Combine(Root, "checkpoint");
    public static string ModelDirectory => Path.Combine(Root, "model");

    /// <summary>The CPU variants the benchmarks compare, each at its export defaults (ExportPrecision.Parse): fp32,
    /// int8 (DynamicQuantizeMatMul), int8-block (MatMulNBits 8 bits) and int4 (MatMulNBits 4 bits).</summary>
    public static readonly IReadOnlyList<ExportPrecision> Variants =
        [ExportPrecision.Fp32, ExportPrecision.Parse("int8"), ExportPrecision.Parse("int8-block"), ExportPrecision.Parse("int4")];

    /// <summary>The checkpoint exported as <paramref name="precision"/>: <c>model</c> for fp32, <c>model-{dtype}</c> otherwise.</summary>
    public static string DirectoryOf(ExportPrecision precision) =>
        precision == ExportPrecision.Fp32 ? ModelDirectory : Path.Combine(Root, "model-" + precision.Name);

    /// <summary>Weights of one layer's attention Linears (packed QKV + o_proj): D·(D + 2·Dkv) + D·D.</summary>
    public static long AttentionLinearParameters => LlamaFlops.AttentionLinearParameters(Config);

    /// <summary>Weights of one layer's MLP (gate, up, down): 3·D·F.</summary>
    public static long MlpParameters => LlamaFlops.MlpParameters(Config);

    /// <summary>Matmul parameters per token of a full forward (every backbone Linear; the embedding is a gather).</summary>
    public static long MatmulParameters => Config.NumHiddenLayers * (AttentionLinearParameters + MlpParameters);

    /// <summary>FLOPs the fused graph executes for B rows of T tokens (<see cref="LlamaFlops.Model"/>).</summary>
    public static double ModelFlops(int b, int t) => LlamaFlops.Model(Config, b, t);

    /// <summary>The part of <see cref="ModelFlops"/> done by Linear layers (everything but QKᵀ and AV).</summary>
    public static double LinearFlops(int b, int t) => ModelFlops(b, t) - LlamaFlops.Attention(Config, b, t);

    public static void Ensure()
    {
        if (File.Exists(Path.Combine(ModelDirectory, "reward_model.json")))
        {
            ExportVariants();
            return;
        }
        if (Directory.Exists(Root))
            Directory.Delete(Root, true);
        var rng = new Random(20261125);
        Directory.CreateDirectory(CheckpointDirectory);
        var tokenizer = Path.Combine(SharedPaths.Shared(), "reference", "armorm-tiny");
        foreach (var file in new[] { "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json" })
            if (File.Exists(Path.Combine(tokenizer, file)))
                File.Copy(Path.Combine(tokenizer, file), Path.Combine(CheckpointDirectory, file));
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
                w.Add(name, name.StartsWith("model.", StringComparison.Ordinal) ? ElementType.BFloat16 : ElementType.Float, shape, values);
            }
            w.Complete(Config, Head);
        }
        ModelExporter.Export(CheckpointDirectory, ModelDirectory, new ExportOptions { Precision = ExportPrecision.Fp32, GatingTokenPattern = ModelExporter.Llama3GatingTokenPattern });
        ExportVariants();
    }

    /// <summary>Exports each quantized variant whose directory is missing (a manifest of another precision is redone).</summary>
    private static void ExportVariants()
    {
        foreach (var precision in Variants.Where(p => p != ExportPrecision.Fp32))
        {
            var manifest = Path.Combine(DirectoryOf(precision), "reward_model.json");
            if (File.Exists(manifest) && RewardModelManifest.Load(DirectoryOf(precision)) is var m
                && m.DType == precision.Name && m.Quantization?.BlockSize == precision.BlockSize && m.Quantization?.AccuracyLevel == precision.AccuracyLevel)
                continue;
            ModelExporter.Export(CheckpointDirectory, DirectoryOf(precision),
                new ExportOptions { Precision = precision, GatingTokenPattern = ModelExporter.Llama3GatingTokenPattern, Overwrite = true });
        }
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
