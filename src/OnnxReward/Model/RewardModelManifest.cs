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
/// </list>
/// </summary>
public sealed record RewardModelManifest
{
    public const string FileName = "reward_model.json";
    public const int CurrentFormatVersion = 1;

    [JsonPropertyName("format_version")] public int FormatVersion { get; init; } = CurrentFormatVersion;

    /// <summary><c>reward</c> (backbone + ArmoRM head) or <c>backbone</c> (embedding only).</summary>
    [JsonPropertyName("kind")] public required string Kind { get; init; }

    /// <summary>The ONNX file, relative to the model directory.</summary>
    [JsonPropertyName("graph")] public string Graph { get; init; } = "model.onnx";

    /// <summary>Backbone precision: <c>fp32</c>, <c>fp16</c>, <c>int8</c> (DynamicQuantizeMatMul), <c>int8-block</c> or
    /// <c>int4</c> (MatMulNBits; see <see cref="Quantization"/>). The head is always fp32.</summary>
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

    [JsonPropertyName("source")] public SourceInfo? Source { get; init; }
    [JsonPropertyName("exporter")] public ExporterInfo? Exporter { get; init; }

    public bool IsReward => Kind == "reward";

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

    /// <summary>The dtypes a manifest may name.</summary>
    public static IReadOnlyList<string> DTypes { get; } = ["fp32", "fp16", "int8", "int8-block", "int4"];

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
        if (!DTypes.Contains(DType))
            throw new RewardModelException(Bad("dtype", $"is '{DType}', expected one of {string.Join(", ", DTypes.Select(d => $"'{d}'"))}"));
        if (Variant is not ("cpu" or "cuda"))
            throw new RewardModelException(Bad("variant", $"is '{Variant}', expected 'cpu' or 'cuda'"));
        if (HiddenSize < 1) throw new RewardModelException(Bad("hidden_size", $"is {HiddenSize}, expected a positive size"));
        if (VocabSize < 1) throw new RewardModelException(Bad("vocab_size", $"is {VocabSize}, expected a positive size"));
        if (MaxSequenceLength < 2) throw new RewardModelException(Bad("max_sequence_length", $"is {MaxSequenceLength}, expected at least 2"));
        if (IsReward && Objectives.Count == 0)
            throw new RewardModelException(Bad("objectives", "is empty, but a reward model needs its objective names"));
        if (IsReward && GatingTokenPattern.Count == 0)
            throw new RewardModelException(Bad("gating_token_pattern", "is empty, but a reward model needs it to find the gating position"));
        if (PadTokenId is { } pad && (pad < 0 || pad >= VocabSize))
            throw new RewardModelException(Bad("pad_token_id", $"is {pad}, outside the vocabulary [0, {VocabSize})"));
        if (string.IsNullOrWhiteSpace(Graph) || Path.IsPathRooted(Graph) || Graph.Contains(".."))
            throw new RewardModelException(Bad("graph", $"is '{Graph}', expected a file name inside the model directory"));
        if (!File.Exists(Path.Combine(modelDirectory, Graph)))
            throw new RewardModelException(
                $"{Path.Combine(modelDirectory, Graph)} is missing although {FileName} names it. Copy the whole model directory, or re-export it.");
        foreach (var f in TokenizerFiles)
            if (Path.IsPathRooted(f) || f.Contains(".."))
                throw new RewardModelException(Bad("tokenizer_files", $"lists '{f}', expected file names inside the model directory"));
    }

    public void Save(string modelDirectory) =>
        File.WriteAllText(Path.Combine(modelDirectory, FileName), ToJson() + "\n");
}
