using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace OnnxReward.Model;

/// <summary>
/// <c>reward_model.json</c>: what a model directory holds and how to drive its graph. Written by the exporter, read by
/// <c>RewardModel.Load</c>. The graph contract (names are fixed; B = batch, T = seq, D = hidden, K = objectives):
/// <list type="bullet">
/// <item>inputs: <c>input_ids</c> int64 [B, T] right-padded with <see cref="PadTokenId"/>; <c>reward_positions</c> int64 [B]
/// (last non-pad token); <c>gating_positions</c> int64 [B] (start of the last <see cref="GatingTokenPattern"/>; reward
/// graphs only).</item>
/// <item>outputs of a reward graph: <c>score</c> float [B], <c>rewards</c> float [B, K], <c>gating</c> float [B, K],
/// <c>score_std</c> float [B] when <see cref="HasPosterior"/>, and <c>embedding</c> float [B, D] (final hidden state at
/// the reward position).</item>
/// <item>outputs of a backbone graph: <c>embedding</c> float [B, D].</item>
/// <item>a reward graph with <see cref="Head"/> <c>sequence_classification</c> has no <c>gating_positions</c> input and
/// outputs <c>logits</c> float [B, L] (L = <see cref="Labels"/>), <c>score</c> float [B] (= logits[:, 0]; L = 1) and
/// <c>embedding</c>; its reward position is the rightmost token that is not <see cref="PadTokenId"/>.</item>
/// </list>
/// </summary>
public sealed record RewardModelManifest
{
    public const string FileName = "reward_model.json";
    public const int CurrentFormatVersion = 1;

    [JsonPropertyName("format_version")] public int FormatVersion { get; init; } = CurrentFormatVersion;

    /// <summary><c>reward</c> (backbone + a head that scores) or <c>backbone</c> (embedding only).</summary>
    [JsonPropertyName("kind")] public required string Kind { get; init; }

    /// <summary>The head of a reward graph: <c>armorm</c> (regression + gating + transform; also what a manifest without
    /// this field means) or <c>sequence_classification</c> (<c>score.weight</c> at the pooled token); null for a backbone.</summary>
    [JsonPropertyName("head")] public string? Head { get; init; }

    /// <summary>The sequence-classification head's label names in logit order (config.json's id2label); empty otherwise.</summary>
    [JsonPropertyName("labels")] public IReadOnlyList<string> Labels { get; init; } = [];

    /// <summary>The backbone family the graph was built from: <c>llama</c> or <c>qwen3</c> (information; the graph is self-contained).</summary>
    [JsonPropertyName("family")] public string? Family { get; init; }

    /// <summary>The ONNX file, relative to the model directory.</summary>
    [JsonPropertyName("graph")] public string Graph { get; init; } = "model.onnx";

    /// <summary>Backbone precision: <c>fp32</c>, <c>fp16</c>, <c>int8</c> (DynamicQuantizeMatMul), <c>int8-block</c> or
    /// <c>int4</c> (MatMulNBits; see <see cref="Quantization"/>): a <see cref="ModelDType"/>'s name. The head is always fp32.</summary>
    [JsonPropertyName("dtype")] public required string DType { get; init; }

    /// <summary>The execution provider the graph was built for: <c>cpu</c> or <c>cuda</c>.</summary>
    [JsonPropertyName("variant")] public required string Variant { get; init; }

    [JsonPropertyName("hidden_size")] public required int HiddenSize { get; init; }
    [JsonPropertyName("vocab_size")] public required int VocabSize { get; init; }
    [JsonPropertyName("num_layers")] public int NumLayers { get; init; }

    // Shape and parameter counts for the memory estimate made before a session is created (Runtime/MemoryFit.cs);
    // absent in manifests written before they were recorded.
    [JsonPropertyName("num_attention_heads")] public int? NumAttentionHeads { get; init; }
    [JsonPropertyName("num_key_value_heads")] public int? NumKeyValueHeads { get; init; }
    [JsonPropertyName("intermediate_size")] public int? IntermediateSize { get; init; }

    /// <summary>Weights of the backbone's Linear layers (what the dtype quantizes).</summary>
    [JsonPropertyName("linear_parameters")] public long? LinearParameters { get; init; }

    /// <summary>Entries of the embedding table (vocab_size · hidden_size).</summary>
    [JsonPropertyName("embedding_parameters")] public long? EmbeddingParameters { get; init; }

    /// <summary>Everything else: norms and the head (kept in float32).</summary>
    [JsonPropertyName("other_parameters")] public long? OtherParameters { get; init; }

    /// <summary>Objective names in output order (empty for a backbone graph).</summary>
    [JsonPropertyName("objectives")] public IReadOnlyList<string> Objectives { get; init; } = [];

    [JsonPropertyName("pad_token_id")] public int? PadTokenId { get; init; }
    [JsonPropertyName("bos_token_id")] public int? BosTokenId { get; init; }

    /// <summary>Token ids whose last occurrence starts at the gating position ([128009, 128006, 78191, 128007, 271] for Llama-3).</summary>
    [JsonPropertyName("gating_token_pattern")] public IReadOnlyList<int> GatingTokenPattern { get; init; } = [];

    /// <summary>Longest sequence the model accepts (max_position_embeddings of the checkpoint).</summary>
    [JsonPropertyName("max_sequence_length")] public required int MaxSequenceLength { get; init; }

    [JsonPropertyName("has_posterior")] public bool HasPosterior { get; init; }

    /// <summary>How the backbone's Linear layers are quantized (null for fp32 / fp16).</summary>
    [JsonPropertyName("quantization")] public QuantizationInfo? Quantization { get; init; }

    /// <summary>Tokenizer files copied beside the graph (<c>tokenizer.json</c>, <c>tokenizer_config.json</c>, …); empty
    /// when the source had none (then only <c>input_ids</c> inputs can be scored).</summary>
    [JsonPropertyName("tokenizer_files")] public IReadOnlyList<string> TokenizerFiles { get; init; } = [];

    /// <summary>The graph and weights files as the exporter wrote them (name, bytes, SHA-256); empty in manifests
    /// written before they were recorded. <see cref="Load"/> checks every size and the graph's hash (the graph is small);
    /// the weights' hash only <see cref="VerifyHashes"/> checks (see there why).</summary>
    [JsonPropertyName("files")] public IReadOnlyList<SourceFile> Files { get; init; } = [];

    [JsonPropertyName("source")] public SourceInfo? Source { get; init; }
    [JsonPropertyName("exporter")] public ExporterInfo? Exporter { get; init; }

    public bool IsReward => Kind == "reward";

    public const string ArmoRmHead = "armorm";
    public const string SequenceClassificationHead = "sequence_classification";

    /// <summary>A reward graph with the ArmoRM head: objectives, gating (and the gating position input), maybe a posterior.</summary>
    [JsonIgnore] public bool IsArmoRm => IsReward && (Head ?? ArmoRmHead) == ArmoRmHead;

    /// <summary>A reward graph with the sequence-classification head: logits only, pooled at the last non-pad token.</summary>
    [JsonIgnore] public bool IsClassifier => IsReward && Head == SequenceClassificationHead;

    public sealed record SourceInfo
    {
        /// <summary>The checkpoint's folder or file name as exported (not a machine path; <see cref="Files"/> identify it).</summary>
        [JsonPropertyName("path")] public string? Path { get; init; }
        [JsonPropertyName("format")] public string? Format { get; init; }
        [JsonPropertyName("files")] public IReadOnlyList<SourceFile> Files { get; init; } = [];
    }

    /// <summary>The quantized variants' settings: the ORT operator of the backbone's Linear layers, the weight bits,
    /// symmetric or with zero points, the embedding table's storage type, and for MatMulNBits the block size and the
    /// accuracy level (4 = int8 compute on the CPU).</summary>
    public sealed record QuantizationInfo(
        [property: JsonPropertyName("method")] string Method,
        [property: JsonPropertyName("bits")] int Bits,
        [property: JsonPropertyName("symmetric")] bool Symmetric,
        [property: JsonPropertyName("embedding_dtype")] string EmbeddingDType,
        [property: JsonPropertyName("block_size")] int? BlockSize = null,
        [property: JsonPropertyName("accuracy_level")] int? AccuracyLevel = null);

    public sealed record SourceFile(
        [property: JsonPropertyName("name")] string Name,
        [property: JsonPropertyName("bytes")] long Bytes,
        [property: JsonPropertyName("sha256")] string Sha256);

    public sealed record ExporterInfo(
        [property: JsonPropertyName("name")] string Name,
        [property: JsonPropertyName("version")] string Version,
        [property: JsonPropertyName("created_utc")] string? CreatedUtc = null);

    internal static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <summary>Reads and validates <c>reward_model.json</c> of a model directory; every problem is a
    /// <see cref="RewardModelException"/> that names the file, the field and the fix.</summary>
    public static RewardModelManifest Load(string modelDirectory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(modelDirectory);
        if (!Directory.Exists(modelDirectory))
            throw new RewardModelException(
                $"model directory {modelDirectory} does not exist. Pass the folder written by `onnxreward export <checkpoint> --out <dir>`.");
        var path = Path.Combine(modelDirectory, FileName);
        if (!File.Exists(path))
            throw new RewardModelException(
                $"{path} is missing: {modelDirectory} is not an exported model directory. " +
                "Export a checkpoint first: `onnxreward export <checkpoint> --out <dir>`.");
        RewardModelManifest? m;
        try
        {
            var info = new FileInfo(path);
            if (info.Length > 16 << 20)
                throw new RewardModelException($"{path} is {info.Length} bytes; a manifest is a few KB. Re-export the model directory.");
            m = JsonSerializer.Deserialize<RewardModelManifest>(File.ReadAllText(path), JsonOptions);
        }
        catch (JsonException e)
        {
            throw new RewardModelException(
                $"{path} is not a valid manifest ({e.Message}). Re-export the model directory with `onnxreward export`.", inner: e);
        }
        if (m is null)
            throw new RewardModelException($"{path} holds JSON null instead of a manifest. Re-export the model directory.");
        m.Validate(modelDirectory, path);
        return m;
    }

    private void Validate(string modelDirectory, string path)
    {
        string Bad(string field, string problem) =>
            $"{path}: field '{field}' {problem}. Re-export the model directory with `onnxreward export`.";
        if (FormatVersion != CurrentFormatVersion)
            throw new RewardModelException(
                $"{path} has format_version {FormatVersion}; this OnnxReward reads version {CurrentFormatVersion}. " +
                "Re-export the model with this version's `onnxreward export`.");
        if (Kind is not ("reward" or "backbone"))
            throw new RewardModelException(Bad("kind", $"is '{Kind}', expected 'reward' or 'backbone'"));
        if (!ModelDTypes.TryParse(DType, out _))
            throw new RewardModelException(Bad("dtype", $"is '{DType}', expected one of {string.Join(", ", ModelDTypes.Names.Select(d => $"'{d}'"))}"));
        if (Variant is not ("cpu" or "cuda"))
            throw new RewardModelException(Bad("variant", $"is '{Variant}', expected 'cpu' or 'cuda'"));
        // Bounds first (issue 16 item 12: max_sequence_length 1e8 crashed inside ONNX Runtime mid-run).
        void Within(string field, long? value, long least, long most)
        {
            if (value is { } v && (v < least || v > most))
                throw new RewardModelException(Bad(field, $"is {v}, outside [{least}, {most:N0}]"));
        }
        Within("hidden_size", HiddenSize, 1, ModelBounds.MaxHiddenSize);
        Within("vocab_size", VocabSize, 1, ModelBounds.MaxVocabSize);
        Within("num_layers", NumLayers, 0, ModelBounds.MaxLayers);
        Within("num_attention_heads", NumAttentionHeads, 1, Math.Min(ModelBounds.MaxAttentionHeads, HiddenSize));
        Within("num_key_value_heads", NumKeyValueHeads, 1, NumAttentionHeads ?? ModelBounds.MaxAttentionHeads);
        Within("intermediate_size", IntermediateSize, 1, ModelBounds.MaxIntermediateSize);
        Within("max_sequence_length", MaxSequenceLength, ModelBounds.MinPositions, ModelBounds.MaxPositions);
        Within("objectives", Objectives.Count, 0, ModelBounds.MaxObjectives);
        Within("gating_token_pattern", GatingTokenPattern.Count, 0, ModelBounds.MaxGatingPatternLength);
        foreach (var (field, count) in new[] { ("linear_parameters", LinearParameters), ("embedding_parameters", EmbeddingParameters), ("other_parameters", OtherParameters) })
            Within(field, count, 0, long.MaxValue / 16);
        if (Objectives.FirstOrDefault(string.IsNullOrWhiteSpace) is not null)
            throw new RewardModelException(Bad("objectives", "holds an empty name"));
        if (Objectives.GroupBy(o => o, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1) is { } dup)
            throw new RewardModelException(Bad("objectives", $"names '{dup.Key}' {dup.Count()} times; scores are keyed by objective name"));
        if (GatingTokenPattern.Where(t => t < 0 || t >= VocabSize).Select(t => (int?)t).FirstOrDefault() is { } outside)
            throw new RewardModelException(Bad("gating_token_pattern", $"holds id {outside}, outside the vocabulary [0, {VocabSize})"));
        if (BosTokenId is { } bos && (bos < 0 || bos >= VocabSize))
            throw new RewardModelException(Bad("bos_token_id", $"is {bos}, outside the vocabulary [0, {VocabSize})"));
        if (Head is not (null or ArmoRmHead or SequenceClassificationHead))     // on a backbone, a head is not used
            throw new RewardModelException(Bad("head", $"is '{Head}', expected '{ArmoRmHead}' or '{SequenceClassificationHead}'"));
        if (IsClassifier && (Labels.Count != 1 || Objectives.Count != 0 || HasPosterior))
            throw new RewardModelException(Bad("labels", $"lists {Labels.Count} labels; a sequence-classification reward model has exactly one " +
                "logit (and no objectives or posterior)"));
        if (IsArmoRm && Labels.Count != 0)
            throw new RewardModelException(Bad("labels", "is set, but only a sequence-classification head has labels"));
        if (IsArmoRm && Objectives.Count == 0)
            throw new RewardModelException(Bad("objectives", "is empty, but a reward model needs its objective names"));
        if (IsArmoRm && GatingTokenPattern.Count == 0)
            throw new RewardModelException(Bad("gating_token_pattern", "is empty, but a reward model needs it to find the gating position"));
        if (PadTokenId is { } pad && (pad < 0 || pad >= VocabSize))
            throw new RewardModelException(Bad("pad_token_id", $"is {pad}, outside the vocabulary [0, {VocabSize})"));
        if (string.IsNullOrWhiteSpace(Graph) || Path.IsPathRooted(Graph) || Graph.Contains(".."))
            throw new RewardModelException(Bad("graph", $"is '{Graph}', expected a file name inside the model directory"));
        if (!File.Exists(Path.Combine(modelDirectory, Graph)))
            throw new RewardModelException(
                $"{Path.Combine(modelDirectory, Graph)} is missing although {FileName} names it. Copy the whole model directory, or re-export it.");
        foreach (var f in TokenizerFiles.Concat(Files.Select(f => f.Name)))
            if (string.IsNullOrWhiteSpace(f) || Path.IsPathRooted(f) || f.Contains(".."))
                throw new RewardModelException(Bad(TokenizerFiles.Contains(f) ? "tokenizer_files" : "files", $"lists '{f}', expected file names inside the model directory"));
        CheckFiles(modelDirectory, path);
    }

    /// <summary>
    /// Cheap checks of the graph and weights files against the manifest, before ONNX Runtime opens them: the recorded
    /// sizes and the graph's SHA-256 (a graph file is small: the weights are external), every external-data range of the
    /// graph inside its file, and the graph's vocabulary and rotary-table rows against vocab_size and
    /// max_sequence_length (a longer limit than the rotary table would read past it inside ORT mid-run).
    /// </summary>
    private void CheckFiles(string modelDirectory, string path)
    {
        const string reexport = "Copy the whole model directory again, or re-export it with `onnxreward export`.";
        foreach (var f in Files)
        {
            var file = Path.Combine(modelDirectory, f.Name);
            if (!File.Exists(file))
                throw new RewardModelException($"{file} is missing although {FileName} lists it. {reexport}");
            var length = new FileInfo(file).Length;
            if (length != f.Bytes)
                throw new RewardModelException(
                    $"{file} is {length:N0} bytes but {FileName} records {f.Bytes:N0}: the file is truncated or from another export. {reexport}");
        }
        var graphPath = Path.Combine(modelDirectory, Graph);
        var graphLength = new FileInfo(graphPath).Length;
        if (graphLength > 1L << 30) return;                  // not an exporter's graph-only file; ONNX Runtime judges it
        var bytes = File.ReadAllBytes(graphPath);
        if (Files.FirstOrDefault(f => f.Name == Graph) is { } recorded
            && !string.Equals(Convert.ToHexStringLower(SHA256.HashData(bytes)), recorded.Sha256, StringComparison.OrdinalIgnoreCase))
            throw new RewardModelException($"{graphPath} does not match the SHA-256 {FileName} records: it was changed after the export. {reexport}");
        var graph = OnnxGraphFile.Parse(bytes)
            ?? throw new RewardModelException($"{graphPath} is not an ONNX model (its bytes do not parse as a ModelProto with a graph). {reexport}");
        var sizes = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var t in graph.Initializers.Where(t => t.Location is not null))
        {
            var location = t.Location!;
            if (Path.IsPathRooted(location) || location.Contains("..") || location.Length == 0)
                throw new RewardModelException($"{graphPath}: initializer '{t.Name}' points at '{location}', outside the model directory. {reexport}");
            if (!sizes.TryGetValue(location, out var size))
            {
                var dataPath = Path.Combine(modelDirectory, location);
                sizes[location] = size = File.Exists(dataPath) ? new FileInfo(dataPath).Length
                    : throw new RewardModelException($"{dataPath} is missing although {Graph} keeps its weights there. {reexport}");
            }
            if (t.Offset < 0 || t.Length < 0 || t.Offset > size || t.Length > size - t.Offset)
                throw new RewardModelException(
                    $"{Path.Combine(modelDirectory, location)} is {size:N0} bytes, but {Graph}'s initializer '{t.Name}' needs bytes " +
                    $"{t.Offset:N0}..{t.Offset + t.Length:N0}: the weights file is truncated or from another export. {reexport}");
        }
        foreach (var t in graph.Initializers)
        {
            if (t.Name is "model.rotary_emb.cos_cache" or "model.rotary_emb.cos_full" && t.Dims.Length == 2 && t.Dims[0] < MaxSequenceLength)
                throw new RewardModelException(Bad(path, "max_sequence_length",
                    $"is {MaxSequenceLength}, but the graph's rotary table has {t.Dims[0]} positions"));
            if (t.Name == "model.embed_tokens.weight" && t.Dims.Length == 2 && (t.Dims[0] != VocabSize || t.Dims[1] != HiddenSize))
                throw new RewardModelException(Bad(path, "vocab_size / hidden_size",
                    $"are {VocabSize} / {HiddenSize}, but the graph's embedding table is [{t.Dims[0]}, {t.Dims[1]}]"));
        }
    }

    private static string Bad(string path, string field, string problem) =>
        $"{path}: field '{field}' {problem}. Re-export the model directory with `onnxreward export`.";

    /// <summary>
    /// Full SHA-256 verification of the graph and weights files against <see cref="Files"/>. Not part of
    /// <see cref="Load"/>: hashing runs at about 1-2 GB/s, so an 8B fp32 model (32 GB of weights) would add 15-30 s to
    /// every load, for a check that sizes, ranges and the graph hash already make cheap in the common cases (a
    /// truncated copy, a mixed-up file). Call it after copying a model between machines, or when a score looks wrong.
    /// </summary>
    /// <exception cref="RewardModelException">A file is missing, of another size, or hashes differently; or the
    /// manifest records no hashes (written before they were).</exception>
    public static void VerifyHashes(string modelDirectory, CancellationToken cancellationToken = default)
    {
        var m = Load(modelDirectory);
        if (m.Files.Count == 0)
            throw new RewardModelException(
                $"{Path.Combine(modelDirectory, FileName)} records no file hashes (it predates them): re-export the model to verify it.");
        foreach (var f in m.Files)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var stream = new FileStream(Path.Combine(modelDirectory, f.Name), FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
            var hash = Convert.ToHexStringLower(SHA256.HashData(stream));
            if (!string.Equals(hash, f.Sha256, StringComparison.OrdinalIgnoreCase))
                throw new RewardModelException(
                    $"{Path.Combine(modelDirectory, f.Name)} has SHA-256 {hash}, but {FileName} records {f.Sha256}: the file changed after the export. " +
                    "Copy the whole model directory again, or re-export it.");
        }
    }

    public void Save(string modelDirectory) =>
        File.WriteAllText(Path.Combine(modelDirectory, FileName), ToJson() + "\n");
}
