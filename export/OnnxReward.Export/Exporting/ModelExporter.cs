using System.Diagnostics;
using System.Reflection;
using System.Security.Cryptography;
using Google.Protobuf;
using OnnxReward.Export.Checkpoints;
using OnnxReward.Export.Graph;
using OnnxReward.Export.Onnx;
using OnnxReward.Model;

namespace OnnxReward.Export.Exporting;

/// <summary>What to export: backbone precision and target execution provider.</summary>
public sealed record ExportOptions
{
    /// <summary><c>fp32</c> (default; CPU EP), <c>fp16</c> (CUDA EP), <c>int8</c> (CPU EP: the backbone's Linear layers
    /// as ORT DynamicQuantizeMatMul with per-channel int8 weights and per-tensor int8 activations; fastest on the CPU,
    /// approximate), <c>int8-block</c> or <c>int4</c> (the Linear layers as ORT MatMulNBits with 8- or 4-bit weights
    /// quantized per block of <see cref="BlockSize"/> input features; weight-only, CPU or CUDA). The quantized variants
    /// store the embedding table as float16. The head is float32 in every variant.</summary>
    public string DType { get; init; } = "fp32";

    /// <summary><c>cpu</c> or <c>cuda</c>; null picks <c>cuda</c> for fp16 and <c>cpu</c> for the others. int4 and
    /// int8-block for CUDA run with float16 activations and scales (the same quantized weights).</summary>
    public string? Variant { get; init; }

    /// <summary>Block size of int4 / int8-block: 16, 32 (default), 64 or 128 input features per scale.</summary>
    public int BlockSize { get; init; } = 32;

    /// <summary>MatMulNBits' accuracy_level for int4 / int8-block: null = the default
    /// (4 on the CPU: int8 compute, the fastest MLAS kernel; see perf/README.md), or 0, 1, 2, 3, 4.</summary>
    public int? AccuracyLevel { get; init; }

    /// <summary>Replace the model of an existing non-empty output directory (its other files are kept). The previous
    /// model is replaced only once the new one is written and validated; a failed export leaves it as it was.</summary>
    public bool Overwrite { get; init; }

    /// <summary>Load the written model with <c>RewardModel.Load</c> and score one short sequence before it replaces
    /// --out (default; a tiny model takes well under a second, an 8B one its session creation). A CUDA variant, or a
    /// model this machine cannot hold in memory, is checked without a session.</summary>
    public bool Verify { get; init; } = true;

    /// <summary>The gating token pattern to record in the manifest; null: the Llama-3 pattern
    /// [128009, 128006, 78191, 128007, 271] when the vocabulary is Llama-3's (vocab_size ≥ 128256).</summary>
    public IReadOnlyList<int>? GatingTokenPattern { get; init; }
}

/// <summary>Progress of an export: the stage, and while weights stream, the tensor and the bytes written.</summary>
public sealed record ExportProgress(string Stage, int TensorsDone, int TensorsTotal, long BytesDone, long BytesTotal, string? Tensor);

/// <summary>What an export wrote.</summary>
public sealed record ExportSummary(
    string OutputDirectory,
    RewardModelManifest Manifest,
    int Tensors,
    long Parameters,
    long DataBytes,
    long GraphBytes,
    int Nodes,
    TimeSpan Elapsed,
    string? Validation = null);

/// <summary>The export could not be done as asked (options, output directory, unsupported architecture). Problems
/// with the checkpoint itself are <see cref="CheckpointException"/>s.</summary>
public sealed class ExportException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Checkpoint (Hugging Face folder or llama2.c .bin) → model directory: <c>model.onnx</c> (graph only) +
/// <c>model.onnx.data</c> (all weights, streamed tensor by tensor) + <c>reward_model.json</c> + tokenizer files.
/// </summary>
public static class ModelExporter
{
    public const string GraphFile = "model.onnx";
    public const string DataFile = "model.onnx.data";

    /// <summary>Llama-3's <c>&lt;|eot_id|&gt;&lt;|start_header_id|&gt;assistant&lt;|end_header_id|&gt;\n\n</c> (armorm.md §1.3).</summary>
    public static readonly IReadOnlyList<int> Llama3GatingTokenPattern = [128009, 128006, 78191, 128007, 271];

    private static readonly string[] TokenizerFileNames = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"];

    /// <summary>Exports <paramref name="checkpointPath"/> into <paramref name="outputDirectory"/>.</summary>
    /// <exception cref="CheckpointException">the checkpoint is missing, malformed or contradicts its config.</exception>
    /// <exception cref="ExportException">bad options, a non-empty output directory without Overwrite, or an architecture the graph does not support.</exception>
    public static ExportSummary Export(string checkpointPath, string outputDirectory, ExportOptions? options = null,
        IProgress<ExportProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(checkpointPath);
        ArgumentException.ThrowIfNullOrWhiteSpace(outputDirectory);
        options ??= new ExportOptions();
        ValidateOptions(options);
        ExportChecks.CheckOutputDirectory(outputDirectory, options.Overwrite);      // refuse a non-empty --out before any work
        progress?.Report(new ExportProgress("opening checkpoint", 0, 0, 0, 0, null));
        using var checkpoint = Checkpoint.Open(checkpointPath);
        return Export(checkpoint, checkpointPath, outputDirectory, options, progress, cancellationToken);
    }

    /// <summary>The dtypes <see cref="ExportOptions.DType"/> accepts.</summary>
    public static IReadOnlyList<string> DTypes { get; } = ["fp32", "fp16", "int8", "int8-block", "int4"];

    /// <summary>Block sizes int4 / int8-block accept (MatMulNBits: a power of two ≥ 16; 128 is the largest MLAS runs fast).</summary>
    public static IReadOnlyList<int> BlockSizes { get; } = [16, 32, 64, 128];

    private static void ValidateOptions(ExportOptions options)
    {
        if (!DTypes.Contains(options.DType))
            throw new ExportException($"dtype '{options.DType}' is not supported: use fp32 (CPU), fp16 (CUDA), int8 (CPU), int8-block or int4 (CPU or CUDA).");
        if (options.Variant is not (null or "cpu" or "cuda"))
            throw new ExportException($"variant '{options.Variant}' is not supported: use cpu or cuda.");
        if (options.DType == "int8" && options.Variant == "cuda")
            throw new ExportException("dtype int8 is a CPU variant (ONNX Runtime's DynamicQuantizeMatMul has no CUDA kernel); use int4, int8-block or fp16 for CUDA.");
        if (!BlockSizes.Contains(options.BlockSize))
            throw new ExportException($"block size {options.BlockSize} is not supported: use {string.Join(", ", BlockSizes)} (32 is the default).");
        if (options.AccuracyLevel is not (null or (>= 0 and <= 4)))
            throw new ExportException($"accuracy level {options.AccuracyLevel} is not one of MatMulNBits' levels: 0 (unset), 1 (fp32), 2 (fp16), 3 (bf16), 4 (int8).");
        if ((options.AccuracyLevel is not null || options.BlockSize != 32) && options.DType is not ("int4" or "int8-block"))
            throw new ExportException($"--block-size and --accuracy-level apply to dtype int4 and int8-block only, not {options.DType}.");
    }

    /// <summary>The MatMulNBits settings of a block-quantized dtype, or null for the others. int4 stores a zero point per
    /// block (asymmetric blocks: lower weight error, and the faster MLAS kernel on this CPU); int8-block is symmetric
    /// (with 255 levels a zero point buys nothing measurable). Accuracy level 4 (int8 compute) by default on the CPU.</summary>
    internal static BlockQuantization? BlockQuantizedDefaults(ExportOptions options, string variant) => options.DType switch
    {
        "int4" => new BlockQuantization(4, options.BlockSize, ZeroPoints: true, options.AccuracyLevel ?? DefaultAccuracyLevel(variant)),
        "int8-block" => new BlockQuantization(8, options.BlockSize, ZeroPoints: false, options.AccuracyLevel ?? DefaultAccuracyLevel(variant)),
        _ => null,
    };

    // CUDA ignores the level for fp16 activations; the CPU runs level 4 with MLAS's int8 kernels (perf/README.md).
    private static int DefaultAccuracyLevel(string variant) => variant == "cuda" ? 0 : 4;

    /// <summary>Exports an opened checkpoint (tests pass in-memory ones); <paramref name="checkpointPath"/> is recorded in the manifest.</summary>
    internal static ExportSummary Export(Checkpoint checkpoint, string checkpointPath, string outputDirectory, ExportOptions options,
        IProgress<ExportProgress>? progress, CancellationToken cancellationToken)
    {
        ValidateOptions(options);
        var variant = options.Variant ?? (options.DType == "fp16" ? "cuda" : "cpu");
        var backbone = options.DType switch
        {
            "fp32" or "int8" => ElementType.Float,
            "fp16" => ElementType.Float16,
            "int4" or "int8-block" => variant == "cuda" ? ElementType.Float16 : ElementType.Float,
            _ => throw new ExportException($"dtype '{options.DType}' is not supported: use {string.Join(", ", DTypes)}."),
        };
        var blocks = BlockQuantizedDefaults(options, variant);
        ExportChecks.CheckOutputDirectory(outputDirectory, options.Overwrite);
        ExportChecks.CheckOutputAgainstSource(outputDirectory, checkpoint.Format == "huggingface" ? checkpoint.Location : checkpointPath);

        var clock = Stopwatch.StartNew();
        CheckSupported(checkpoint.Config, checkpointPath);
        if (checkpoint.Classifier is { NumLabels: not 1 } multi)
            throw new ExportException(
                $"{checkpointPath}: the sequence-classification head has {multi.NumLabels} labels ({string.Join(", ", multi.LabelNames)}); " +
                "OnnxReward exports reward models, whose classifier has one logit (num_labels 1, as Skywork-Reward, FsfairX and GRM have). " +
                "A multi-label classifier is not a reward model.");
        var pattern = GatingPattern(checkpoint, options);
        ExportChecks.CheckBeforeWriting(checkpoint, pattern);         // nothing is written for a config, tokenizer or template that cannot load

        var quantized = options.DType is "int8" or "int4" or "int8-block";
        var graph = LlamaRewardGraph.Build(checkpoint.Config, checkpoint.Head, checkpoint.Tensors, backbone,
            int8Linears: options.DType == "int8", blocks: blocks, float16Embedding: quantized, classifier: checkpoint.Classifier);
        var initializers = graph.StreamedInitializers;
        var bytesTotal = initializers.Sum(i => i.ElementCount * ElementConversion.SizeOf(i.Type));
        var parameters = checkpoint.Tensors.Names.Sum(n => checkpoint.Tensors.GetInfo(n).ElementCount);
        var linearParameters = checkpoint.Tensors.Names.Where(IsBackboneLinear).Sum(n => checkpoint.Tensors.GetInfo(n).ElementCount);
        var embeddingParameters = checkpoint.Tensors.GetInfo("model.embed_tokens.weight").ElementCount;

        // Everything is written into a hidden sibling of --out, validated there, then swapped in (OutputStaging).
        using var staging = OutputStaging.Begin(outputDirectory);
        var directory = staging.Temp;
        var graphPath = Path.Combine(directory, GraphFile);
        var dataPath = Path.Combine(directory, DataFile);
        var protos = new List<TensorProto>(initializers.Count);
        string dataSha256;
        long dataBytes;
        using (var writer = new ExternalDataWriter(dataPath) { Scratch = new ScratchBuffers() })
        {
            for (var i = 0; i < initializers.Count; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                progress?.Report(new ExportProgress("writing weights", i, initializers.Count, writer.Length, bytesTotal, initializers[i].Name));
                protos.Add(writer.Write(initializers[i]));
            }
            progress?.Report(new ExportProgress("writing weights", initializers.Count, initializers.Count, writer.Length, bytesTotal, null));
            (dataBytes, dataSha256) = writer.Complete();
        }

        var kind = checkpoint.Head is null && checkpoint.Classifier is null ? "backbone" : "reward";
        var headKind = checkpoint.Head is not null ? RewardModelManifest.ArmoRmHead
            : checkpoint.Classifier is not null ? RewardModelManifest.SequenceClassificationHead : null;
        var model = graph.ToModel(protos, ExporterVersion, new Dictionary<string, string>
        {
            ["onnxreward.kind"] = kind,
            ["onnxreward.head"] = headKind ?? "none",
            ["onnxreward.dtype"] = options.DType,
            ["onnxreward.source_format"] = checkpoint.Format,
        });
        var graphBytes = model.ToByteArray();
        File.WriteAllBytes(graphPath, graphBytes);

        progress?.Report(new ExportProgress("hashing source files", initializers.Count, initializers.Count, bytesTotal, bytesTotal, null));
        var tokenizerFiles = CopyTokenizerFiles(checkpoint.Location, directory);
        var manifest = new RewardModelManifest
        {
            Kind = kind,
            Head = headKind,
            Labels = checkpoint.Classifier?.LabelNames ?? [],
            Family = checkpoint.Config.Family.ToString().ToLowerInvariant(),
            DType = options.DType,
            Variant = variant,
            HiddenSize = checkpoint.Config.HiddenSize,
            VocabSize = checkpoint.Config.VocabSize,
            NumLayers = checkpoint.Config.NumHiddenLayers,
            NumAttentionHeads = checkpoint.Config.NumAttentionHeads,
            NumKeyValueHeads = checkpoint.Config.NumKeyValueHeads,
            IntermediateSize = checkpoint.Config.IntermediateSize,
            LinearParameters = linearParameters,
            EmbeddingParameters = embeddingParameters,
            OtherParameters = parameters - linearParameters - embeddingParameters,
            Objectives = ObjectiveNames(checkpoint.Head),
            PadTokenId = checkpoint.Config.PadTokenId,
            BosTokenId = checkpoint.Config.BosTokenId,
            GatingTokenPattern = pattern,
            MaxSequenceLength = checkpoint.Config.MaxPositionEmbeddings,
            HasPosterior = checkpoint.Head?.HasPosterior ?? false,
            Quantization = QuantizationInfo(options.DType, blocks),
            TokenizerFiles = tokenizerFiles,
            Files =
            [
                new RewardModelManifest.SourceFile(GraphFile, graphBytes.Length, Convert.ToHexStringLower(SHA256.HashData(graphBytes))),
                new RewardModelManifest.SourceFile(DataFile, dataBytes, dataSha256),
            ],
            Source = new RewardModelManifest.SourceInfo
            {
                // The name only: a model directory moves between machines, and the files' hashes identify the source.
                Path = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(checkpointPath))),
                Format = checkpoint.Format,
                Files = checkpoint.SourceFiles.Select(f => HashFile(f, checkpoint.Location, cancellationToken)).ToList(),
            },
            Exporter = new RewardModelManifest.ExporterInfo("OnnxReward.Export", ExporterVersion,
                DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ")),
        };
        manifest.Save(directory);

        progress?.Report(new ExportProgress("validating", initializers.Count, initializers.Count, bytesTotal, bytesTotal, null));
        var validation = options.Verify ? ExportChecks.VerifyWritten(directory, cancellationToken) : "not validated (ExportOptions.Verify is off)";
        cancellationToken.ThrowIfCancellationRequested();
        staging.Commit(options.Overwrite);
        progress?.Report(new ExportProgress("done", initializers.Count, initializers.Count, bytesTotal, bytesTotal, null));
        return new ExportSummary(staging.Target, manifest, initializers.Count, parameters,
            dataBytes, graphBytes.Length, graph.NodeCount, clock.Elapsed, validation);
    }

    private static RewardModelManifest.QuantizationInfo? QuantizationInfo(string dtype, BlockQuantization? blocks) =>
        dtype switch
        {
            "int8" => new RewardModelManifest.QuantizationInfo("DynamicQuantizeMatMul", 8, Symmetric: true, EmbeddingDType: "fp16"),
            "int4" or "int8-block" => new RewardModelManifest.QuantizationInfo("MatMulNBits", blocks!.Bits, Symmetric: !blocks.ZeroPoints,
                EmbeddingDType: "fp16", BlockSize: blocks.BlockSize, AccuracyLevel: blocks.AccuracyLevel),
            _ => null,
        };

    private static bool IsBackboneLinear(string name) =>
        name.StartsWith("model.layers.", StringComparison.Ordinal) && name.EndsWith("_proj.weight", StringComparison.Ordinal);

    /// <summary>Version of this exporter (the assembly's informational version).</summary>
    public static string ExporterVersion { get; } =
        typeof(ModelExporter).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0]
        ?? typeof(ModelExporter).Assembly.GetName().Version?.ToString() ?? "0";

    internal static IReadOnlyList<string> ObjectiveNames(RewardHeadConfig? head)
    {
        if (head is null) return [];
        if (head.ObjectiveNames is { } names && names.Count == head.NumObjectives) return names;
        if (head.NumObjectives == RewardHeadConfig.ArmoRmObjectiveNames.Count) return RewardHeadConfig.ArmoRmObjectiveNames;
        return Enumerable.Range(0, head.NumObjectives).Select(i => $"objective_{i}").ToList();
    }

    private static IReadOnlyList<int> GatingPattern(Checkpoint checkpoint, ExportOptions options)
    {
        if (options.GatingTokenPattern is { Count: > 0 } given)
        {
            if (given.Any(t => t < 0 || t >= checkpoint.Config.VocabSize))
                throw new ExportException($"gating token pattern [{string.Join(", ", given)}] has ids outside the vocabulary [0, {checkpoint.Config.VocabSize}).");
            return given;
        }
        if (checkpoint.Classifier is not null) return [];      // a classifier pools one token and never gates
        if (checkpoint.Config.VocabSize >= 128256) return Llama3GatingTokenPattern;
        if (checkpoint.Head is null) return [];
        throw new ExportException(
            $"{checkpoint.Location}: vocab_size {checkpoint.Config.VocabSize} is not Llama-3's, so the gating token pattern " +
            "(the ids of <|eot_id|><|start_header_id|>assistant<|end_header_id|>\\n\\n) is unknown. Pass it in ExportOptions.GatingTokenPattern.");
    }

    private static void CheckSupported(LlamaConfig c, string path)
    {
        // Each problem carries its own remedy (issue 16 item 14: max_position_embeddings 1 used to get a head_dim remark).
        string? problem = null;
        if (ConfigBounds.Violation(c, null) is { } outOfBounds)
            problem = outOfBounds + "; fix the config";
        else if (c.ExplicitHeadDim is null && c.HiddenSize % c.NumAttentionHeads != 0)
            problem = $"hidden_size {c.HiddenSize} is not a multiple of num_attention_heads {c.NumAttentionHeads}; fix the config";
        else if (c.NumAttentionHeads % c.NumKeyValueHeads != 0)
            problem = $"num_attention_heads {c.NumAttentionHeads} is not a multiple of num_key_value_heads {c.NumKeyValueHeads}; fix the config";
        else if (c.HeadDim % 8 != 0)
            problem = $"head_dim {c.HeadDim} is not a multiple of 8, which ONNX Runtime's GroupQueryAttention requires; " +
                      "this exporter supports Llama layouts with head_dim a multiple of 8";
        if (problem is not null)
            throw new ExportException($"{path}: {problem}.");
    }

    /// <summary>Copies the tokenizer files with ordinary permissions (rw-r--r--): a read-only source (mode 0444) must
    /// not make the model folder's files read-only, which broke a later <c>--force</c> half-way (issue 16 item 10).</summary>
    private static List<string> CopyTokenizerFiles(string location, string outputDirectory)
    {
        var copied = new List<string>();
        if (!Directory.Exists(location)) return copied;
        var candidates = TokenizerFileNames.Select(n => Path.Combine(location, n)).Where(File.Exists)
            .Concat(Directory.EnumerateFiles(location, "*.tiktoken").Order(StringComparer.Ordinal));
        foreach (var source in candidates)
        {
            var name = Path.GetFileName(source);
            var destination = Path.Combine(outputDirectory, name);
            using (var from = new FileStream(source, FileMode.Open, FileAccess.Read, FileShare.Read))
            using (var to = new FileStream(destination, FileMode.CreateNew, FileAccess.Write))
                from.CopyTo(to);                               // a new file: the umask's mode, not the source's
            if (!OperatingSystem.IsWindows())
                File.SetUnixFileMode(destination, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
            copied.Add(name);
        }
        return copied;
    }

    private static RewardModelManifest.SourceFile HashFile(string path, string location, CancellationToken token)
    {
        token.ThrowIfCancellationRequested();
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        var hash = Convert.ToHexStringLower(SHA256.HashData(stream));
        var name = Path.GetRelativePath(Directory.Exists(location) ? location : Path.GetDirectoryName(path)!, path);
        return new RewardModelManifest.SourceFile(name, stream.Length, hash);
    }
}
