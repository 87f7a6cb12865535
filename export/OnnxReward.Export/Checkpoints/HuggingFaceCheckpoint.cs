using System.Buffers;
using System.Runtime.InteropServices;
using System.Text.Json;
using OnnxReward.Model;

namespace OnnxReward.Export.Checkpoints;

/// <summary>
/// A Hugging Face checkpoint folder: <c>config.json</c> plus a single <c>model.safetensors</c> or sharded
/// <c>*.safetensors</c> with <c>model.safetensors.index.json</c>. Every shard is opened and validated; the index
/// and the shards must agree tensor by tensor.
/// </summary>
public static class HuggingFaceCheckpoint
{
    public const string ConfigFile = "config.json";
    public const string IndexFile = "model.safetensors.index.json";
    public const string SingleFile = "model.safetensors";

    public static Checkpoint Open(string folder)
    {
        var configPath = Path.Combine(folder, ConfigFile);
        if (!File.Exists(configPath))
            throw new CheckpointException(
                $"{folder} has no {ConfigFile}: a Hugging Face checkpoint folder needs config.json beside its safetensors.",
                configPath);
        var (config, head, classifier) = ReadConfig(configPath);
        var source = OpenTensors(folder);
        try
        {
            var hasPosterior = source.Contains(CheckpointLayout.PosteriorFactor);
            if (head is not null && hasPosterior)
                head = head with { HasPosterior = true };
            CheckpointLayout.Validate(folder, config, head, source, classifier);
            return new Checkpoint
            {
                Config = config,
                Head = head,
                Classifier = classifier,
                Tensors = source,
                Format = "huggingface",
                SourceFiles = [configPath, .. source.Files.Select(f => f.Path), .. IndexIfAny(folder)],
                Location = Path.GetFullPath(folder),
            };
        }
        catch
        {
            source.Dispose();
            throw;
        }
    }

    private static IEnumerable<string> IndexIfAny(string folder)
    {
        var index = Path.Combine(folder, IndexFile);
        return File.Exists(index) ? [index] : [];
    }

    // ---- config.json ------------------------------------------------------------------------------------------------

    public static (LlamaConfig Config, RewardHeadConfig? Head, ClassifierHeadConfig? Classifier) ReadConfig(string path)
    {
        JsonDocument doc;
        try
        {
            var info = new FileInfo(path);
            if (info.Length > 4 << 20)
                throw new CheckpointException($"{path} is {info.Length} bytes; a config.json is a few KB. Is it the right file?", path);
            doc = JsonDocument.Parse(File.ReadAllBytes(path));
        }
        catch (JsonException e)
        {
            throw new CheckpointException($"{path} is not valid JSON ({e.Message}). Fix or re-download config.json.", path, inner: e);
        }
        using (doc)
        {
            try
            {
                return ReadConfig(path, doc.RootElement);
            }
            catch (InvalidOperationException e)        // a value of a JSON type no check above expected: still the config's fault
            {
                throw new CheckpointException($"{path} holds a value of an unexpected JSON type ({e.Message}). Fix config.json.", path, inner: e);
            }
        }
    }

    private static (LlamaConfig Config, RewardHeadConfig? Head, ClassifierHeadConfig? Classifier) ReadConfig(string path, JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object)
            throw new CheckpointException($"{path} holds JSON {root.ValueKind}, expected an object. Fix config.json.", path);

        int Int(string key, int? fallback = null, int least = 1)
        {
            if (!root.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null)
                return fallback ?? throw new CheckpointException(
                    $"{path} has no '{key}'; a Llama config needs it. Add it to config.json.", path);
            if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out var i) || i < least)
                throw new CheckpointException(
                    $"{path}: '{key}' is {v.GetRawText()}, expected {(least == 1 ? "a positive" : "a non-negative")} integer. Fix config.json.", path);
            return i;
        }
        double Double(string key, double fallback)
        {
            if (!root.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null)
                return fallback;
            if (v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out var d) || !double.IsFinite(d) || d <= 0)
                throw new CheckpointException($"{path}: '{key}' is {v.GetRawText()}, expected a positive number. Fix config.json.", path);
            return d;
        }
        int? OptionalId(string key)
        {
            if (!root.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null)
                return null;
            if (v.ValueKind == JsonValueKind.Array)      // eos_token_id may be a list: take the first
                v = v.GetArrayLength() > 0 ? v[0] : default;
            return v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out var i) && i >= 0 ? i
                : throw new CheckpointException($"{path}: '{key}' is {v.GetRawText()}, expected a token id. Fix config.json.", path);
        }

        var architecture = ModelArchitectures.Read(path, root);
        var ropeScaling = ReadRopeScaling(path, root);
        if (root.TryGetProperty("attention_bias", out var ab) && ab.ValueKind == JsonValueKind.True)
            throw new CheckpointException($"{path}: attention_bias true is not supported (Llama and Qwen3 have none).", path);
        if (root.TryGetProperty("hidden_act", out var act) && act.ValueKind != JsonValueKind.Null
            && (act.ValueKind != JsonValueKind.String || act.GetString() is not "silu") && act.GetRawText() is var a)
            throw new CheckpointException($"{path}: hidden_act {a} is not supported; Llama and Qwen3 use \"silu\".", path);
        if (root.TryGetProperty("use_sliding_window", out var sw) && sw.ValueKind == JsonValueKind.True)
            throw new CheckpointException(
                $"{path}: use_sliding_window true is not supported (the graph attends over the whole sequence); Qwen3 reward " +
                "models have it false.", path);

        var heads = Int("num_attention_heads");
        var config = new LlamaConfig
        {
            HiddenSize = Int("hidden_size"),
            IntermediateSize = Int("intermediate_size"),
            NumHiddenLayers = Int("num_hidden_layers"),
            NumAttentionHeads = heads,
            NumKeyValueHeads = Int("num_key_value_heads", heads),
            VocabSize = Int("vocab_size"),
            RmsNormEps = Double("rms_norm_eps", 1e-6),
            RopeTheta = Double("rope_theta", 10000.0),
            MaxPositionEmbeddings = Int("max_position_embeddings", 2048),
            TieWordEmbeddings = root.TryGetProperty("tie_word_embeddings", out var tie) && tie.ValueKind == JsonValueKind.True,
            PadTokenId = OptionalId("pad_token_id"),
            BosTokenId = OptionalId("bos_token_id"),
            EosTokenId = OptionalId("eos_token_id"),
            ExplicitHeadDim = root.TryGetProperty("head_dim", out var hd) && hd.ValueKind != JsonValueKind.Null ? Int("head_dim") : null,
            RopeScaling = ropeScaling,
            Family = architecture.Family,
        };
        if (ConfigBounds.Violation(config, null) is { } outOfBounds)       // before anything is sized from the config
            throw new CheckpointException($"{path}: {outOfBounds}. Fix config.json.", path);
        if (config.ExplicitHeadDim is null && config.HiddenSize % config.NumAttentionHeads != 0)
            throw new CheckpointException(
                $"{path}: hidden_size {config.HiddenSize} is not a multiple of num_attention_heads {config.NumAttentionHeads}. Fix config.json.", path);
        if (config.NumAttentionHeads % config.NumKeyValueHeads != 0)
            throw new CheckpointException(
                $"{path}: num_attention_heads {config.NumAttentionHeads} is not a multiple of num_key_value_heads {config.NumKeyValueHeads}. Fix config.json.", path);
        if (config.HeadDim % 2 != 0)
            throw new CheckpointException($"{path}: head_dim {config.HeadDim} is odd; RoPE needs an even head size.", path);

        RewardHeadConfig? head = null;
        ClassifierHeadConfig? classifier = architecture.Head == ModelArchitectures.HeadKind.SequenceClassification
            ? ReadClassifier(path, root) : null;
        if (architecture.Head == ModelArchitectures.HeadKind.ArmoRm && !root.TryGetProperty("num_objectives", out _))
            throw new CheckpointException(
                $"{path}: architectures names {architecture.Name}, but config.json has no 'num_objectives' (the ArmoRM head's " +
                "size). Use the config.json that came with the checkpoint.", path);
        if (architecture.Head != ModelArchitectures.HeadKind.ArmoRm && root.TryGetProperty("num_objectives", out _))
            throw new CheckpointException(
                $"{path}: config.json has 'num_objectives' (an ArmoRM head) but architectures names {architecture.Name}. " +
                "Make them agree (ArmoRM checkpoints are LlamaForRewardModelWithGating).", path);
        if (root.TryGetProperty("num_objectives", out _))
        {
            string[]? names = null;
            if (root.TryGetProperty("objective_names", out var on) && on.ValueKind == JsonValueKind.Array)
                names = on.EnumerateArray().Select(n => n.ValueKind == JsonValueKind.String ? n.GetString()!
                    : throw new CheckpointException($"{path}: objective_names holds {n.GetRawText()}, expected strings.", path)).ToArray();
            var k = Int("num_objectives");
            if (names is not null && names.Length != k)
                throw new CheckpointException(
                    $"{path}: objective_names has {names.Length} names but num_objectives is {k}. Make them agree.", path);
            // Scores are JSON objects keyed by objective name: a duplicate or empty name would make every score ambiguous.
            if (names?.FirstOrDefault(string.IsNullOrWhiteSpace) is not null)
                throw new CheckpointException($"{path}: objective_names holds an empty name. Give every objective a name.", path);
            if (names?.GroupBy(n => n, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1) is { } dup)
                throw new CheckpointException(
                    $"{path}: objective_names lists '{dup.Key}' {dup.Count()} times; every score names its objectives, so the names must differ. " +
                    "Fix config.json.", path);
            head = new RewardHeadConfig
            {
                NumObjectives = k,
                GatingTemperature = Double("gating_temperature", 10),
                GatingHiddenDim = Int("gating_hidden_dim", 1024),
                GatingNHidden = Int("gating_n_hidden", 3, least: 0),
                ObjectiveNames = names ?? (k == RewardHeadConfig.ArmoRmObjectiveNames.Count ? RewardHeadConfig.ArmoRmObjectiveNames : null),
            };
        }
        if (ConfigBounds.Violation(config, head) is { } problem)
            throw new CheckpointException($"{path}: {problem}. Fix config.json.", path);
        return (config, head, classifier);
    }

    /// <summary><c>rope_scaling</c>: null (plain RoPE) or Llama-3.1's <c>llama3</c> type; every other type is refused
    /// naming it and what is supported.</summary>
    private static Llama3RopeScaling? ReadRopeScaling(string path, JsonElement root)
    {
        if (!root.TryGetProperty("rope_scaling", out var rs) || rs.ValueKind == JsonValueKind.Null)
            return null;
        if (rs.ValueKind != JsonValueKind.Object)
            throw new CheckpointException($"{path}: rope_scaling is {rs.GetRawText()}, expected an object or null. Fix config.json.", path);
        // transformers reads "rope_type" and falls back to the legacy "type".
        var type = rs.TryGetProperty("rope_type", out var t) || rs.TryGetProperty("type", out t) ? t : default;
        var name = type.ValueKind == JsonValueKind.String ? type.GetString() : type.ValueKind == JsonValueKind.Undefined ? null : type.GetRawText();
        if (name is "default")
            return null;
        if (name is not "llama3")
            throw new CheckpointException(
                $"{path}: rope_scaling type {(name is null ? "(missing)" : $"'{name}'")} is not supported. Supported: plain RoPE " +
                "(rope_scaling null or type 'default': Llama-3, ArmoRM, Qwen3) and type 'llama3' (Llama-3.1 / 3.2 / 3.3); " +
                "linear, dynamic, yarn and longrope scaling are not implemented.", path);
        double Number(string key)
        {
            if (!rs.TryGetProperty(key, out var v) || v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out var d) || !double.IsFinite(d) || d <= 0)
                throw new CheckpointException(
                    $"{path}: rope_scaling type 'llama3' needs a positive number '{key}' (found {(rs.TryGetProperty(key, out var f) ? f.GetRawText() : "none")}). " +
                    "Fix config.json.", path);
            return d;
        }
        var factor = Number("factor");
        var low = Number("low_freq_factor");
        var high = Number("high_freq_factor");
        var original = Number("original_max_position_embeddings");
        if (high <= low)
            throw new CheckpointException(
                $"{path}: rope_scaling has high_freq_factor {high} ≤ low_freq_factor {low}; the llama3 interpolation divides by their " +
                "difference. Fix config.json.", path);
        if (original != Math.Floor(original) || original > ConfigBounds.MaxPositions)
            throw new CheckpointException(
                $"{path}: rope_scaling original_max_position_embeddings {original} is not a position count. Fix config.json.", path);
        return new Llama3RopeScaling(factor, low, high, (int)original);
    }

    /// <summary>The classifier head's labels: <c>id2label</c> (index → name), else <c>num_labels</c>, else one label.</summary>
    private static ClassifierHeadConfig ReadClassifier(string path, JsonElement root)
    {
        var names = new SortedDictionary<int, string>();
        if (root.TryGetProperty("id2label", out var map) && map.ValueKind == JsonValueKind.Object)
            foreach (var p in map.EnumerateObject())
            {
                if (!int.TryParse(p.Name, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var i)
                    || i < 0 || i >= ModelBounds.MaxObjectives || p.Value.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(p.Value.GetString()))
                    throw new CheckpointException(
                        $"{path}: id2label holds \"{p.Name}\": {p.Value.GetRawText()}, expected a label index and a name. Fix config.json.", path);
                names[i] = p.Value.GetString()!;
            }
        var count = names.Count;
        if (root.TryGetProperty("num_labels", out var nl) && nl.ValueKind == JsonValueKind.Number)
            count = nl.TryGetInt32(out var n) && n >= 1 && n <= ModelBounds.MaxObjectives ? n
                : throw new CheckpointException($"{path}: num_labels is {nl.GetRawText()}, expected 1 to {ModelBounds.MaxObjectives}. Fix config.json.", path);
        if (count == 0)
            count = 1;               // neither key: a hand-written config; one logit, and score.weight's shape must agree
        if (names.Count > 0 && (names.Count != count || names.Keys.Max() != count - 1))
            throw new CheckpointException(
                $"{path}: id2label names {names.Count} labels (indices {string.Join(", ", names.Keys)}) but the head has {count}. " +
                "Make id2label and num_labels agree.", path);
        var labels = Enumerable.Range(0, count).Select(i => names.TryGetValue(i, out var name) ? name : $"LABEL_{i}").ToList();
        return new ClassifierHeadConfig { NumLabels = count, LabelNames = labels };
    }

    // ---- tensors ----------------------------------------------------------------------------------------------------

    private static ShardedTensorSource OpenTensors(string folder)
    {
        var indexPath = Path.Combine(folder, IndexFile);
        var singlePath = Path.Combine(folder, SingleFile);
        if (File.Exists(indexPath))
            return OpenSharded(folder, indexPath);
        if (File.Exists(singlePath))
        {
            var file = SafetensorsFile.Open(singlePath);
            return new ShardedTensorSource([file], file.Names.ToDictionary(n => n, _ => file, StringComparer.Ordinal));
        }
        throw new CheckpointException(
            $"{folder} has neither {SingleFile} nor {IndexFile}: put the weights (safetensors) beside config.json. " +
            "PyTorch .bin/.pt pickles are not read (they can execute code); convert them to safetensors first.", folder);
    }

    private static ShardedTensorSource OpenSharded(string folder, string indexPath)
    {
        Dictionary<string, string> weightMap;
        try
        {
            if (new FileInfo(indexPath).Length > 64 << 20)
                throw new CheckpointException($"{indexPath} is larger than 64 MB; an index is a few hundred KB. Is it the right file?", indexPath);
            using var doc = JsonDocument.Parse(File.ReadAllBytes(indexPath));
            if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("weight_map", out var wm)
                || wm.ValueKind != JsonValueKind.Object)
                throw new CheckpointException($"{indexPath} has no 'weight_map' object. Fix or re-download the index.", indexPath);
            weightMap = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var p in wm.EnumerateObject())
                weightMap[p.Name] = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString()!
                    : throw new CheckpointException($"{indexPath}: weight_map['{p.Name}'] is {p.Value.GetRawText()}, expected a shard file name.", indexPath, p.Name);
        }
        catch (JsonException e)
        {
            throw new CheckpointException($"{indexPath} is not valid JSON ({e.Message}). Fix or re-download the index.", indexPath, inner: e);
        }

        var shards = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        try
        {
            foreach (var shardName in weightMap.Values.Distinct().Order(StringComparer.Ordinal))
            {
                if (shardName.Length == 0 || shardName != Path.GetFileName(shardName) || shardName is "." or "..")
                    throw new CheckpointException(
                        $"{indexPath} names shard '{shardName}', which is not a plain file name in the checkpoint folder. Fix the index.", indexPath);
                var shardPath = Path.Combine(folder, shardName);
                if (!File.Exists(shardPath))
                {
                    var tensors = weightMap.Where(kv => kv.Value == shardName).Select(kv => kv.Key).Take(3);
                    throw new CheckpointException(
                        $"{indexPath} points to shard {shardName}, which is missing from {folder} (it should hold {string.Join(", ", tensors)}, …). " +
                        "Download every shard the index lists.", shardPath);
                }
                shards[shardName] = SafetensorsFile.Open(shardPath);
            }

            var byName = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
            foreach (var (tensor, shardName) in weightMap)
            {
                var shard = shards[shardName];
                if (!shard.Contains(tensor))
                    throw new CheckpointException(
                        $"{indexPath} says tensor '{tensor}' is in {shardName}, but that shard has no such tensor. The index and shards " +
                        "come from different checkpoints: download them together.", shard.Path, tensor);
                byName[tensor] = shard;
            }
            foreach (var (shardName, shard) in shards)
                foreach (var tensor in shard.Names)
                    if (!weightMap.TryGetValue(tensor, out var listed) || listed != shardName)
                        throw new CheckpointException(
                            $"{shard.Path} holds tensor '{tensor}', which {IndexFile} " +
                            (listed is null ? "does not list" : $"places in {listed}") + ". The index and shards disagree: download them together.",
                            shard.Path, tensor);
            return new ShardedTensorSource(shards.Values.ToList(), byName);
        }
        catch
        {
            foreach (var s in shards.Values)
                s.Dispose();
            throw;
        }
    }
}

/// <summary>Tensors spread over one or more safetensors files.</summary>
internal sealed class ShardedTensorSource : ITensorSource
{
    private readonly Dictionary<string, SafetensorsFile> _byName;

    public ShardedTensorSource(IReadOnlyList<SafetensorsFile> files, Dictionary<string, SafetensorsFile> byName)
    {
        Files = files;
        _byName = byName;
        Names = byName.Keys.Order(StringComparer.Ordinal).ToList();
    }

    public IReadOnlyList<SafetensorsFile> Files { get; }
    public IReadOnlyList<string> Names { get; }

    public bool Contains(string name) => _byName.ContainsKey(name);

    public TensorInfo GetInfo(string name) => File(name).GetInfo(name);

    public void ReadRaw(string name, Span<byte> destination)
    {
        var info = GetInfo(name);
        var bytes = checked(info.ElementCount * info.ElementSize);
        if (destination.Length != bytes)
            throw new ArgumentException($"'{name}' is {bytes} bytes; the destination holds {destination.Length}.", nameof(destination));
        File(name).Read(name, 0, destination);
    }

    public void ReadFloat32(string name, Span<float> destination)
    {
        var info = GetInfo(name);
        if (destination.Length != info.ElementCount)
            throw new ArgumentException($"'{name}' has {info.ElementCount} elements; the destination holds {destination.Length}.", nameof(destination));
        ReadFloat32Range(name, 0, destination);
    }

    /// <inheritdoc/>
    public void ReadFloat32Range(string name, long firstElement, Span<float> destination)
    {
        var file = File(name);
        var info = file.GetInfo(name);
        ITensorSource.CheckRange(info, firstElement, destination.Length);
        if (info.DType == ElementType.Float)
        {
            file.Read(name, firstElement, MemoryMarshal.AsBytes(destination));
            return;
        }
        // F16/BF16: read in chunks into a pooled buffer and widen (exact).
        const int chunk = 1 << 20;
        var buffer = ArrayPool<byte>.Shared.Rent(chunk * info.ElementSize);
        try
        {
            for (var start = 0; start < destination.Length; start += chunk)
            {
                var n = Math.Min(chunk, destination.Length - start);
                var bytes = buffer.AsSpan(0, n * info.ElementSize);
                file.Read(name, firstElement + start, bytes);
                ElementConversion.ToFloat32(bytes, info.DType, destination.Slice(start, n));
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private SafetensorsFile File(string name) =>
        _byName.TryGetValue(name, out var f) ? f
            : throw new CheckpointException($"the checkpoint has no tensor '{name}'.", tensor: name);

    public void Dispose()
    {
        foreach (var f in Files)
            f.Dispose();
    }
}
