using System.Runtime.InteropServices;
using OnnxReward.Export.Checkpoints;

namespace OnnxReward.Export.Tests.Exporting;

/// <summary>An ITensorSource over arrays (raw little-endian bytes per tensor), for graph tests without files.</summary>
internal sealed class InMemoryTensorSource : ITensorSource
{
    private readonly SortedDictionary<string, (TensorInfo Info, byte[] Raw)> _tensors = new(StringComparer.Ordinal);

    public IReadOnlyList<string> Names => _tensors.Keys.ToList();
    public bool Contains(string name) => _tensors.ContainsKey(name);

    public TensorInfo GetInfo(string name) => _tensors.TryGetValue(name, out var t)
        ? t.Info
        : throw new CheckpointException($"tensor {name} is absent", tensor: name);

    public void ReadFloat32(string name, Span<float> destination)
    {
        var (info, raw) = _tensors[name];
        if (destination.Length != info.ElementCount) throw new ArgumentException("destination size");
        switch (info.DType)
        {
            case ElementType.Float: MemoryMarshal.Cast<byte, float>(raw).CopyTo(destination); break;
            case ElementType.BFloat16:
                var b = MemoryMarshal.Cast<byte, ushort>(raw);
                for (var i = 0; i < b.Length; i++) destination[i] = BitConverter.Int32BitsToSingle(b[i] << 16);
                break;
            default:
                var h = MemoryMarshal.Cast<byte, Half>(raw);
                for (var i = 0; i < h.Length; i++) destination[i] = (float)h[i];
                break;
        }
    }

    public void ReadRaw(string name, Span<byte> destination) => _tensors[name].Raw.CopyTo(destination);

    public void Add(string name, ElementType dtype, long[] shape, float[] values)
    {
        var info = new TensorInfo(name, dtype, shape);
        if (values.Length != info.ElementCount) throw new ArgumentException($"{name}: {values.Length} values for {info.ShapeText}");
        byte[] raw;
        if (dtype == ElementType.Float) raw = MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
        else if (dtype == ElementType.BFloat16)
            raw = MemoryMarshal.AsBytes(values.Select(v => (ushort)(BitConverter.SingleToUInt32Bits(v) >> 16)).ToArray().AsSpan()).ToArray();
        else raw = MemoryMarshal.AsBytes(values.Select(v => (Half)v).ToArray().AsSpan()).ToArray();
        _tensors[name] = (info, raw);
    }

    public float[] Get(string name) => this.ReadFloat32(name);

    public void Dispose() { }
}

/// <summary>Random ArmoRM-layout checkpoints (scales as in armorm-tiny's README) built in memory.</summary>
internal static class InMemoryCheckpoint
{
    public static Checkpoint Create(LlamaConfig config, RewardHeadConfig? head, int seed, int posteriorRank = 0,
        ElementType backbone = ElementType.BFloat16, string? location = null, ClassifierHeadConfig? classifier = null)
    {
        var rng = new Random(seed);
        float Normal(double std) => (float)(std * Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()));
        float[] Rand(long n, double std, double mean = 0) => Enumerable.Range(0, (int)n).Select(_ => (float)mean + Normal(std)).ToArray();
        var s = new InMemoryTensorSource();
        int d = config.HiddenSize, f = config.IntermediateSize, dh = config.HeadDim, h = config.NumAttentionHeads, hkv = config.NumKeyValueHeads;
        void Linear(string name, int outF, int inF, ElementType t) => s.Add(name, t, [outF, inF], Rand((long)outF * inF, 1 / Math.Sqrt(inF)));
        s.Add("model.embed_tokens.weight", backbone, [config.VocabSize, d], Rand((long)config.VocabSize * d, 1));
        for (var i = 0; i < config.NumHiddenLayers; i++)
        {
            var p = $"model.layers.{i}";
            Linear($"{p}.self_attn.q_proj.weight", h * dh, d, backbone);
            Linear($"{p}.self_attn.k_proj.weight", hkv * dh, d, backbone);
            Linear($"{p}.self_attn.v_proj.weight", hkv * dh, d, backbone);
            Linear($"{p}.self_attn.o_proj.weight", d, h * dh, backbone);
            Linear($"{p}.mlp.gate_proj.weight", f, d, backbone);
            Linear($"{p}.mlp.up_proj.weight", f, d, backbone);
            Linear($"{p}.mlp.down_proj.weight", d, f, backbone);
            s.Add($"{p}.input_layernorm.weight", backbone, [d], Rand(d, 0.1, 1));
            s.Add($"{p}.post_attention_layernorm.weight", backbone, [d], Rand(d, 0.1, 1));
            if (config.QkNorm)
            {
                s.Add($"{p}.self_attn.q_norm.weight", backbone, [dh], Rand(dh, 0.2, 1));
                s.Add($"{p}.self_attn.k_norm.weight", backbone, [dh], Rand(dh, 0.2, 1));
            }
        }
        if (classifier is not null)
            s.Add("score.weight", ElementType.Float, [classifier.NumLabels, d], Rand((long)classifier.NumLabels * d, 1 / Math.Sqrt(d)));
        s.Add("model.norm.weight", backbone, [d], Rand(d, 0.1, 1));
        if (head is not null)
        {
            var k = head.NumObjectives;
            s.Add("regression_layer.weight", ElementType.Float, [k, d], Rand((long)k * d, 0.5 / Math.Sqrt(d)));
            var inF = d;
            for (var j = 0; j <= head.GatingNHidden; j++)
            {
                var outF = j < head.GatingNHidden ? head.GatingHiddenDim : k;
                var std = j < head.GatingNHidden ? Math.Sqrt(2.0 / inF) : 10 / Math.Sqrt(inF);
                s.Add($"gating.layers.{j}.weight", ElementType.Float, [outF, inF], Rand((long)outF * inF, std));
                s.Add($"gating.layers.{j}.bias", ElementType.Float, [outF], Rand(outF, 0.1));
                inF = outF;
            }
            s.Add("gating.logit_scale", ElementType.Float, [1], [1.7f]);
            var t = new float[k * k];
            for (var i = 0; i < k; i++) t[i * k + i] = 1;
            for (var j = 0; j < k; j++) t[Math.Min(4, k - 1) * k + j] = j == Math.Min(4, k - 1) ? 0 : -0.01f * (j % 50);
            s.Add("reward_transform_matrix", ElementType.Float, [k, k], t);
            if (posteriorRank > 0)
                s.Add("posterior.regression_factor", ElementType.Float, [k, d, posteriorRank], Rand((long)k * d * posteriorRank, 0.05));
        }
        return new Checkpoint
        {
            Config = config,
            Head = head is null ? null : head with { HasPosterior = posteriorRank > 0 },
            Classifier = classifier,
            Tensors = s,
            Format = "huggingface",
            SourceFiles = [],
            Location = location ?? OnnxReward.Testing.SharedData.NewTempDirectory("onnxreward-ckpt"),
        };
    }
}
