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
    /// <summary>The backbone precision and the execution provider the graph is for (<see cref="ExportPrecision.Parse"/>):
    /// fp32 for the CPU by default. The head is float32 in every variant.</summary>
    public ExportPrecision Precision { get; init; } = ExportPrecision.Fp32;

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

    private static void ValidateOptions(ExportOptions options)
    {
        if (options.Precision is null)
            throw new ArgumentException("ExportOptions.Precision is null: set it with ExportPrecision.Parse (or leave the default, fp32).", nameof(options));
    }

    /// <summary>Exports an opened checkpoint (tests pass in-memory ones); <paramref name="checkpointPath"/> is recorded in the manifest.</summary>
    internal static ExportSummary Export(Checkpoint checkpoint, string checkpointPath, string outputDirectory, ExportOptions options,
        IProgress<ExportProgress>? progress, CancellationToken cancellationToken)
    {
        ValidateOptions(options);
        var precision = options.Precision;
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

        var graph = LlamaRewardGraph.Build(checkpoint.Config, checkpoint.Head, checkpoint.Tensors, precision.Backbone,
            int8Linears: precision.Int8Linears, blocks: precision.Blocks, float16Embedding: precision.Float16Embedding,
            classifier: checkpoint.Classifier);
        var initializers = graph.StreamedInitializers;
        var bytesTotal = initializers.Sum(i => i.ElementCount * i.Type.Size());
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
            ["onnxreward.dtype"] = precision.Name,
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
            DType = precision.Name,
            Variant = precision.Variant,
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
            Quantization = precision.Quantization,
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
        var validation = options.Verify ? ExportChecks.VerifyWritten(directory, cancellationToken) : "not validated (ExportOptions.Verify is off, `export --no-validate`)";
        cancellationToken.ThrowIfCancellationRequested();
        staging.Commit(options.Overwrite);
        progress?.Report(new ExportProgress("done", initializers.Count, initializers.Count, bytesTotal, bytesTotal, null));
        return new ExportSummary(staging.Target, manifest, initializers.Count, parameters,
            dataBytes, graphBytes.Length, graph.NodeCount, clock.Elapsed, validation);
    }

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
