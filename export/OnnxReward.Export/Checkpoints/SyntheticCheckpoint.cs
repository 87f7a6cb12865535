using System.Runtime.InteropServices;

namespace OnnxReward.Export.Checkpoints;

/// <summary>
/// Seeded synthetic checkpoints in the ArmoRM Hugging Face layout (armorm.md §1.1–1.2) at any shape: the tensor names of
/// <see cref="CheckpointLayout.Expected"/>, BF16 backbone and F32 head as the real checkpoint stores them, sharded with a
/// model.safetensors.index.json when larger than one shard. For tests and scale runs that need a model of a real
/// model's widths without its 15 GB download (the width-true test, perf/scale-8b.sh); never commit the output.
/// Values are uniform with armorm-tiny's standard deviations (embeddings 1, Linear weights 1/√fan_in, norms 1 ± 0.1,
/// the gating MLP as ArmoRM's initialisation, the reward transform the identity).
/// Memory: one tensor at a time (the largest is the embedding table).
/// </summary>
public static class SyntheticCheckpoint
{
    /// <summary>RLHFlow/ArmoRM-Llama3-8B-v0.1's backbone config (armorm.md §1.1); set NumHiddenLayers with <c>with</c>
    /// for a few-layer model at the same widths.</summary>
    public static readonly LlamaConfig ArmoRmLlama3_8B = new()
    {
        HiddenSize = 4096, IntermediateSize = 14336, NumHiddenLayers = 32, NumAttentionHeads = 32, NumKeyValueHeads = 8,
        VocabSize = 128257, RmsNormEps = 1e-5, RopeTheta = 500000, MaxPositionEmbeddings = 8192,
        PadTokenId = 128256, BosTokenId = 128000, EosTokenId = 128001,
    };

    /// <summary>ArmoRM's head: 19 objectives, gating MLP 3 × 1024, temperature 10.</summary>
    public static readonly RewardHeadConfig ArmoRmHead = new()
    {
        NumObjectives = 19, GatingHiddenDim = 1024, GatingNHidden = 3, GatingTemperature = 10,
    };

    /// <summary>Writes the checkpoint into <paramref name="folder"/> (created) and returns the tensor bytes written.
    /// <paramref name="tokenizerFolder"/>: tokenizer.json / tokenizer_config.json / special_tokens_map.json to copy
    /// (the Llama-3 tokenizer of armorm-tiny for a Llama-3 vocabulary), or null for none.
    /// <paramref name="maxShardBytes"/>: HF's save_pretrained default "5GB" = 5·10⁹ bytes.</summary>
    public static long Write(string folder, LlamaConfig config, RewardHeadConfig head, ulong seed,
        string? tokenizerFolder = null, long maxShardBytes = 5_000_000_000L, TextWriter? log = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(head);
        Directory.CreateDirectory(folder);
        if (tokenizerFolder is not null)
            foreach (var file in new[] { "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json" })
                if (File.Exists(Path.Combine(tokenizerFolder, file)))
                    File.Copy(Path.Combine(tokenizerFolder, file), Path.Combine(folder, file), overwrite: true);

        long total = 0;
        var state = seed * 0x9E3779B97F4A7C15UL + 1;
        byte[] raw = [];
        using (var w = new HuggingFaceCheckpointWriter(folder, maxShardBytes))
        {
            foreach (var (name, shape, _) in CheckpointLayout.Expected(config, head))
            {
                var dtype = name.StartsWith("model.", StringComparison.Ordinal) ? ElementType.BFloat16 : ElementType.Float;
                var count = shape.Aggregate(1L, (a, b) => a * b);
                var n = checked((int)(count * dtype.Size()));
                if (raw.Length < n) { raw = []; raw = GC.AllocateUninitializedArray<byte>(n); }
                var (std, mean) = Distribution(name, shape, head);
                Fill(raw.AsSpan(0, n), dtype, std, mean, ref state);
                if (name == "reward_transform_matrix")                      // ArmoRM's structure: the identity
                {
                    var t = MemoryMarshal.Cast<byte, float>(raw.AsSpan(0, n));
                    for (var i = 0; i < t.Length; i++) t[i] = i / head.NumObjectives == i % head.NumObjectives ? 1f : 0f;
                }
                w.AddRaw(name, dtype, shape, raw.AsSpan(0, n));
                total += n;
                if (name.EndsWith("down_proj.weight", StringComparison.Ordinal) || !name.StartsWith("model.layers.", StringComparison.Ordinal))
                    log?.WriteLine($"  {name} {dtype.SafetensorsName()} [{string.Join(", ", shape)}] ({total / 1e9:F2} GB so far)");
            }
            raw = [];
            w.Complete(config, head, torchDtype: ElementType.Float);
        }
        return total;
    }

    private static (double Std, double Mean) Distribution(string name, long[] shape, RewardHeadConfig head)
    {
        if (name.EndsWith("norm.weight", StringComparison.Ordinal)) return (0.1, 1);
        if (name == "model.embed_tokens.weight") return (1, 0);
        if (name == "gating.logit_scale") return (0, 1.7);
        if (name == "regression_layer.weight") return (0.5 / Math.Sqrt(shape[1]), 0);
        if (name.StartsWith("gating.layers.", StringComparison.Ordinal))
        {
            if (name.EndsWith(".bias", StringComparison.Ordinal)) return (0.1, 0);
            var last = name.StartsWith($"gating.layers.{head.GatingNHidden}.", StringComparison.Ordinal);
            return (last ? 10 / Math.Sqrt(shape[1]) : Math.Sqrt(2.0 / shape[1]), 0);
        }
        return (1 / Math.Sqrt(shape[1]), 0);                              // backbone Linear weights [out, in]
    }

    /// <summary>Uniform values with the given mean and standard deviation (xorshift64), encoded as BF16 or F32.</summary>
    private static void Fill(Span<byte> destination, ElementType dtype, double std, double mean, ref ulong state)
    {
        var half = (float)(Math.Sqrt(3) * std);
        var m = (float)mean;
        const float unit = 2.0f / (1UL << 24);
        if (dtype == ElementType.Float)
        {
            var f = MemoryMarshal.Cast<byte, float>(destination);
            for (var i = 0; i < f.Length; i++)
            {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                f[i] = m + half * ((state >> 40) * unit - 1);
            }
            return;
        }
        var b = MemoryMarshal.Cast<byte, ushort>(destination);
        for (var i = 0; i < b.Length; i++)
        {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            b[i] = ElementConversion.ToBFloat16(BitConverter.SingleToUInt32Bits(m + half * ((state >> 40) * unit - 1)));
        }
    }
}
