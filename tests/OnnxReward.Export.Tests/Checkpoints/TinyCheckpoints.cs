using System.Text;
using OnnxReward.Export.Checkpoints;

namespace OnnxReward.Export.Tests.Checkpoints;

/// <summary>Small valid checkpoints written by our writer, and hand-made safetensors files for corruption tests.</summary>
internal static class TinyCheckpoints
{
    public static readonly LlamaConfig Config = new()
    {
        HiddenSize = 16, IntermediateSize = 12, NumHiddenLayers = 2, NumAttentionHeads = 2, NumKeyValueHeads = 1,
        VocabSize = 11, RmsNormEps = 1e-5, RopeTheta = 10000, MaxPositionEmbeddings = 64, PadTokenId = 10,
    };

    public static readonly RewardHeadConfig Head = new() { NumObjectives = 3, GatingHiddenDim = 5, GatingNHidden = 2, GatingTemperature = 10 };

    /// <summary>Deterministic values for a tensor, every one exactly representable in BF16 and F16 (8 significant bits,
    /// exponents well inside F16's normal range), so any dtype round-trips them exactly.</summary>
    public static float[] Values(string name, long count)
    {
        var seed = 17;
        foreach (var ch in name)
            seed = seed * 31 + ch;                       // stable across runs (string.GetHashCode is randomised)
        var rng = new Random(seed);
        var v = new float[count];
        for (var i = 0; i < v.Length; i++)
            v[i] = (rng.Next(2) == 0 ? -1 : 1) * (128 + rng.Next(128)) * MathF.Pow(2, rng.Next(-14, 0));
        return v;
    }

    /// <summary>Writes a reward checkpoint (backbone BF16, head F32, like ArmoRM) and returns its folder.</summary>
    public static string WriteReward(string folder, long maxShardBytes = 1L << 30, bool head = true, ElementType? embedDType = null)
    {
        using var w = new HuggingFaceCheckpointWriter(folder, maxShardBytes);
        foreach (var (name, shape, _) in CheckpointLayout.Expected(Config, head ? Head : null))
        {
            var dtype = name == "model.embed_tokens.weight" && embedDType is { } e ? e
                : name.StartsWith("model.", StringComparison.Ordinal) ? ElementType.BFloat16 : ElementType.Float;
            w.Add(name, dtype, shape, Values(name, shape.Aggregate(1L, (a, d) => a * d)));
        }
        w.Complete(Config, head ? Head : null);
        return folder;
    }

    /// <summary>A raw safetensors file from a header JSON and a data section.</summary>
    public static void WriteSafetensors(string path, string headerJson, byte[] data, long? headerLengthOverride = null)
    {
        var json = Encoding.UTF8.GetBytes(headerJson);
        using var f = File.Create(path);
        f.Write(BitConverter.GetBytes((ulong)(headerLengthOverride ?? json.Length)));
        f.Write(json);
        f.Write(data);
    }
}
