using System.Text.Json;
using System.Text.Json.Nodes;

namespace OnnxReward.Export.Checkpoints;

/// <summary>
/// Writes a Hugging Face checkpoint folder that <see cref="Checkpoint.Open"/> (and transformers/safetensors) read:
/// <c>config.json</c>, and either <c>model.safetensors</c> or <c>model-0000i-of-0000N.safetensors</c> shards plus
/// <c>model.safetensors.index.json</c>. Tensors are streamed one at a time to a temporary data file per shard; a
/// shard's header is written when the shard closes, so memory stays bounded by one tensor.
/// <code>
/// using var w = new HuggingFaceCheckpointWriter(dir, maxShardBytes: 2L &lt;&lt; 30);
/// w.Add("model.norm.weight", ElementType.BFloat16, [64], values);
/// w.Complete(config, head);
/// </code>
/// </summary>
public sealed class HuggingFaceCheckpointWriter : IDisposable
{
    private readonly string _folder;
    private readonly long _maxShardBytes;
    private readonly List<Shard> _shards = [];
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);
    private Shard? _current;
    private bool _completed;

    private sealed class Shard
    {
        public required string TempDataPath { get; init; }
        public required FileStream Data { get; init; }
        public List<(string Name, ElementType DType, long[] Shape, long Begin, long End)> Tensors { get; } = [];
    }

    public HuggingFaceCheckpointWriter(string folder, long maxShardBytes = 5L << 30)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(folder);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxShardBytes, 1);
        Directory.CreateDirectory(folder);
        _folder = folder;
        _maxShardBytes = maxShardBytes;
    }

    /// <summary>Adds a tensor given as float32 values, stored as <paramref name="dtype"/> (F32, F16 or BF16;
    /// round-to-nearest-even, <see cref="ElementConversion"/>).</summary>
    public void Add(string name, ElementType dtype, long[] shape, ReadOnlySpan<float> values)
    {
        var count = Check(name, dtype, shape);
        if (values.Length != count)
            throw new ArgumentException($"tensor '{name}' has shape [{string.Join(", ", shape)}] = {count} elements but {values.Length} values were given.", nameof(values));
        var size = dtype.Size();
        var shard = ShardFor(name, checked(count * size));
        var begin = shard.Data.Position;
        const int chunk = 1 << 16;
        var buffer = new byte[chunk * 4];
        for (var start = 0; start < values.Length; start += chunk)
        {
            var part = values.Slice(start, Math.Min(chunk, values.Length - start));
            var bytes = buffer.AsSpan(0, part.Length * size);
            ElementConversion.FromFloat32(part, dtype, bytes);
            shard.Data.Write(bytes);
        }
        shard.Tensors.Add((name, dtype, shape, begin, shard.Data.Position));
    }

    /// <summary>Adds a tensor from its raw little-endian bytes, exactly as given.</summary>
    public void AddRaw(string name, ElementType dtype, long[] shape, ReadOnlySpan<byte> data)
    {
        var count = Check(name, dtype, shape);
        var bytes = checked(count * dtype.Size());
        if (data.Length != bytes)
            throw new ArgumentException($"tensor '{name}' ({dtype.SafetensorsName()} [{string.Join(", ", shape)}]) needs {bytes} bytes but {data.Length} were given.", nameof(data));
        var shard = ShardFor(name, bytes);
        var begin = shard.Data.Position;
        shard.Data.Write(data);
        shard.Tensors.Add((name, dtype, shape, begin, shard.Data.Position));
    }

    /// <summary>Writes config.json (<paramref name="torchDtype"/> as its torch_dtype), the shard files and (for more
    /// than one shard) the index; returns the folder.</summary>
    public string Complete(LlamaConfig config, RewardHeadConfig? head, ElementType torchDtype = ElementType.Float)
    {
        ObjectDisposedException.ThrowIf(_completed, this);
        _completed = true;
        var n = _shards.Count;
        var weightMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
        long totalSize = 0;
        for (var i = 0; i < n; i++)
        {
            var shard = _shards[i];
            var fileName = n == 1 ? HuggingFaceCheckpoint.SingleFile : $"model-{i + 1:D5}-of-{n:D5}.safetensors";
            WriteShard(shard, Path.Combine(_folder, fileName));
            foreach (var t in shard.Tensors)
            {
                weightMap[t.Name] = fileName;
                totalSize += t.End - t.Begin;
            }
        }
        if (n > 1)
        {
            var index = new JsonObject
            {
                ["metadata"] = new JsonObject { ["total_size"] = totalSize },
                ["weight_map"] = new JsonObject(weightMap.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
            };
            File.WriteAllText(Path.Combine(_folder, HuggingFaceCheckpoint.IndexFile), index.ToJsonString(Indented) + "\n");
        }
        File.WriteAllText(Path.Combine(_folder, HuggingFaceCheckpoint.ConfigFile), ConfigJson(config, head, torchDtype) + "\n");
        return _folder;
    }

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>config.json with transformers' LlamaConfig keys, plus ArmoRM's head keys when there is a head.</summary>
    public static string ConfigJson(LlamaConfig c, RewardHeadConfig? head, ElementType torchDtype = ElementType.Float)
    {
        var o = new JsonObject
        {
            ["architectures"] = new JsonArray(head is null ? "LlamaModel" : "LlamaForRewardModelWithGating"),
            ["model_type"] = "llama",
            ["attention_bias"] = false,
            ["hidden_act"] = "silu",
            ["hidden_size"] = c.HiddenSize,
            ["intermediate_size"] = c.IntermediateSize,
            ["num_hidden_layers"] = c.NumHiddenLayers,
            ["num_attention_heads"] = c.NumAttentionHeads,
            ["num_key_value_heads"] = c.NumKeyValueHeads,
            ["vocab_size"] = c.VocabSize,
            ["rms_norm_eps"] = c.RmsNormEps,
            ["rope_theta"] = c.RopeTheta,
            ["rope_scaling"] = null,
            ["max_position_embeddings"] = c.MaxPositionEmbeddings,
            ["tie_word_embeddings"] = c.TieWordEmbeddings,
            ["torch_dtype"] = torchDtype.TorchName(),
        };
        if (c.PadTokenId is { } pad) o["pad_token_id"] = pad;
        if (c.BosTokenId is { } bos) o["bos_token_id"] = bos;
        if (c.EosTokenId is { } eos) o["eos_token_id"] = eos;
        if (head is not null)
        {
            o["num_objectives"] = head.NumObjectives;
            o["gating_temperature"] = head.GatingTemperature;
            o["gating_hidden_dim"] = head.GatingHiddenDim;
            o["gating_n_hidden"] = head.GatingNHidden;
            if (head.ObjectiveNames is { } names)
                o["objective_names"] = new JsonArray(names.Select(x => (JsonNode?)x).ToArray());
        }
        return o.ToJsonString(Indented);
    }

    private long Check(string name, ElementType dtype, long[] shape)
    {
        ObjectDisposedException.ThrowIf(_completed, this);
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (!dtype.IsCheckpointFloat())
            throw new ArgumentException($"tensor '{name}' is {dtype}; a checkpoint stores F32, F16 or BF16 (what Checkpoint.Open reads).", nameof(dtype));
        if (name == "__metadata__" || !_names.Add(name))
            throw new ArgumentException($"tensor '{name}' was already added (or is a reserved name).", nameof(name));
        if (shape.Any(d => d < 0))
            throw new ArgumentException($"tensor '{name}' has a negative dimension in [{string.Join(", ", shape)}].", nameof(shape));
        return shape.Aggregate(1L, (a, d) => checked(a * d));
    }

    private Shard ShardFor(string name, long bytes)
    {
        if (_current is null || (_current.Data.Position > 0 && _current.Data.Position + bytes > _maxShardBytes))
        {
            var temp = Path.Combine(_folder, $".shard-{_shards.Count}.{Guid.NewGuid():N}.tmp");
            _current = new Shard { TempDataPath = temp, Data = new FileStream(temp, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 20) };
            _shards.Add(_current);
        }
        return _current;
    }

    private static void WriteShard(Shard shard, string path)
    {
        var header = new JsonObject { ["__metadata__"] = new JsonObject { ["format"] = "pt" } };
        foreach (var t in shard.Tensors)
            header[t.Name] = new JsonObject
            {
                ["dtype"] = t.DType.SafetensorsName(),
                ["shape"] = new JsonArray(t.Shape.Select(d => (JsonNode?)d).ToArray()),
                ["data_offsets"] = new JsonArray(t.Begin, t.End),
            };
        var json = System.Text.Encoding.UTF8.GetBytes(header.ToJsonString());
        var padded = (json.Length + 7) / 8 * 8;                      // pad with spaces to a multiple of 8 (safetensors)
        using (var output = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            Span<byte> len = stackalloc byte[8];
            BitConverter.TryWriteBytes(len, (ulong)padded);
            output.Write(len);
            output.Write(json);
            for (var i = json.Length; i < padded; i++)
                output.WriteByte((byte)' ');
            shard.Data.Flush();
            shard.Data.Position = 0;
            shard.Data.CopyTo(output);
        }
        shard.Data.Dispose();
        File.Delete(shard.TempDataPath);
    }

    public void Dispose()
    {
        foreach (var s in _shards)
        {
            s.Data.Dispose();
            if (File.Exists(s.TempDataPath))
                File.Delete(s.TempDataPath);
        }
    }
}
