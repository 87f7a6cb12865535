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
    /// <summary><c>fp32</c> (default; CPU EP), <c>fp16</c> (CUDA EP) or <c>int8</c> (CPU EP: the backbone's Linear layers
    /// as ORT DynamicQuantizeMatMul with per-channel int8 weights; faster on the CPU, approximate). The head is float32.</summary>
    public string DType { get; init; } = "fp32";

    /// <summary><c>cpu</c> or <c>cuda</c>; null picks <c>cpu</c> for fp32 and int8 and <c>cuda</c> for fp16.</summary>
    public string? Variant { get; init; }

    /// <summary>Replace the files of an existing non-empty output directory.</summary>
    public bool Overwrite { get; init; }

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
    TimeSpan Elapsed);

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
        PrepareOutputDirectory(outputDirectory, options.Overwrite);      // refuse a non-empty --out before any work
        progress?.Report(new ExportProgress("opening checkpoint", 0, 0, 0, 0, null));
        using var checkpoint = Checkpoint.Open(checkpointPath);
        return Export(checkpoint, checkpointPath, outputDirectory, options, progress, cancellationToken);
    }

    private static void ValidateOptions(ExportOptions options)
    {
        if (options.DType is not ("fp32" or "fp16" or "int8"))
            throw new ExportException($"dtype '{options.DType}' is not supported: use fp32 (CPU), fp16 (CUDA) or int8 (CPU).");
        if (options.Variant is not (null or "cpu" or "cuda"))
            throw new ExportException($"variant '{options.Variant}' is not supported: use cpu or cuda.");
        if (options.DType == "int8" && options.Variant == "cuda")
            throw new ExportException("dtype int8 is a CPU variant (ONNX Runtime's DynamicQuantizeMatMul has no CUDA kernel); use fp16 for CUDA.");
    }

    /// <summary>Exports an opened checkpoint (tests pass in-memory ones); <paramref name="checkpointPath"/> is recorded in the manifest.</summary>
    internal static ExportSummary Export(Checkpoint checkpoint, string checkpointPath, string outputDirectory, ExportOptions options,
        IProgress<ExportProgress>? progress, CancellationToken cancellationToken)
    {
        ValidateOptions(options);
        var backbone = options.DType switch
        {
            "fp32" or "int8" => ElementType.Float,
            "fp16" => ElementType.Float16,
            _ => throw new ExportException($"dtype '{options.DType}' is not supported: use fp32 (CPU), fp16 (CUDA) or int8 (CPU)."),
        };
        var variant = options.Variant ?? (backbone == ElementType.Float ? "cpu" : "cuda");
        if (variant is not ("cpu" or "cuda"))
            throw new ExportException($"variant '{variant}' is not supported: use cpu or cuda.");
        PrepareOutputDirectory(outputDirectory, options.Overwrite);

        var clock = Stopwatch.StartNew();
        CheckSupported(checkpoint.Config, checkpointPath);
        var pattern = GatingPattern(checkpoint, options);

        var graph = LlamaRewardGraph.Build(checkpoint.Config, checkpoint.Head, checkpoint.Tensors, backbone, int8Linears: options.DType == "int8");
        var initializers = graph.StreamedInitializers;
        var bytesTotal = initializers.Sum(i => i.ElementCount * ElementConversion.SizeOf(i.Type));
        var parameters = checkpoint.Tensors.Names.Sum(n => checkpoint.Tensors.GetInfo(n).ElementCount);

        var graphPath = Path.Combine(outputDirectory, GraphFile);
        var dataPath = Path.Combine(outputDirectory, DataFile);
        var written = new List<string>();
        try
        {
            var protos = new List<TensorProto>(initializers.Count);
            written.Add(dataPath);
            using (var writer = new ExternalDataWriter(dataPath) { Scratch = new ScratchBuffers() })
            {
                for (var i = 0; i < initializers.Count; i++)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    progress?.Report(new ExportProgress("writing weights", i, initializers.Count, writer.Length, bytesTotal, initializers[i].Name));
                    protos.Add(writer.Write(initializers[i]));
                }
                progress?.Report(new ExportProgress("writing weights", initializers.Count, initializers.Count, writer.Length, bytesTotal, null));
            }

            var kind = checkpoint.Head is null ? "backbone" : "reward";
            var model = graph.ToModel(protos, ExporterVersion, new Dictionary<string, string>
            {
                ["onnxreward.kind"] = kind,
                ["onnxreward.dtype"] = options.DType,
                ["onnxreward.source_format"] = checkpoint.Format,
            });
            var graphBytes = model.CalculateSize();
            written.Add(graphPath);
            using (var stream = new FileStream(graphPath, FileMode.CreateNew))
                model.WriteTo(stream);

            progress?.Report(new ExportProgress("hashing source files", initializers.Count, initializers.Count, bytesTotal, bytesTotal, null));
            var tokenizerFiles = CopyTokenizerFiles(checkpoint.Location, outputDirectory, written);
            var manifest = new RewardModelManifest
            {
                Kind = kind,
                DType = options.DType,
                Variant = variant,
                HiddenSize = checkpoint.Config.HiddenSize,
                VocabSize = checkpoint.Config.VocabSize,
                NumLayers = checkpoint.Config.NumHiddenLayers,
                Objectives = ObjectiveNames(checkpoint.Head),
                PadTokenId = checkpoint.Config.PadTokenId,
                BosTokenId = checkpoint.Config.BosTokenId,
                GatingTokenPattern = pattern,
                MaxSequenceLength = checkpoint.Config.MaxPositionEmbeddings,
                HasPosterior = checkpoint.Head?.HasPosterior ?? false,
                TokenizerFiles = tokenizerFiles,
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
            written.Add(Path.Combine(outputDirectory, RewardModelManifest.FileName));
            manifest.Save(outputDirectory);
            progress?.Report(new ExportProgress("done", initializers.Count, initializers.Count, bytesTotal, bytesTotal, null));
            return new ExportSummary(Path.GetFullPath(outputDirectory), manifest, initializers.Count, parameters,
                new FileInfo(dataPath).Length, graphBytes, graph.NodeCount, clock.Elapsed);
        }
        catch
        {
            foreach (var f in written)
                try { File.Delete(f); } catch (IOException) { /* best effort: the original error matters more */ }
            throw;
        }
    }

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
        if (checkpoint.Config.VocabSize >= 128256) return Llama3GatingTokenPattern;
        if (checkpoint.Head is null) return [];
        throw new ExportException(
            $"{checkpoint.Location}: vocab_size {checkpoint.Config.VocabSize} is not Llama-3's, so the gating token pattern " +
            "(the ids of <|eot_id|><|start_header_id|>assistant<|end_header_id|>\\n\\n) is unknown. Pass it in ExportOptions.GatingTokenPattern.");
    }

    private static void CheckSupported(LlamaConfig c, string path)
    {
        string? problem = null;
        if (c.HiddenSize <= 0 || c.NumAttentionHeads <= 0 || c.HiddenSize % c.NumAttentionHeads != 0)
            problem = $"hidden_size {c.HiddenSize} is not a multiple of num_attention_heads {c.NumAttentionHeads}";
        else if (c.NumKeyValueHeads <= 0 || c.NumAttentionHeads % c.NumKeyValueHeads != 0)
            problem = $"num_attention_heads {c.NumAttentionHeads} is not a multiple of num_key_value_heads {c.NumKeyValueHeads}";
        else if (c.HeadDim % 8 != 0)
            problem = $"head_dim {c.HeadDim} is not a multiple of 8, which ONNX Runtime's GroupQueryAttention requires";
        else if (c.NumHiddenLayers < 1)
            problem = $"num_hidden_layers is {c.NumHiddenLayers}";
        else if (c.MaxPositionEmbeddings < 2)
            problem = $"max_position_embeddings is {c.MaxPositionEmbeddings}";
        if (problem is not null)
            throw new ExportException($"{path}: {problem}; this exporter supports Llama layouts with head_dim a multiple of 8.");
    }

    private static void PrepareOutputDirectory(string dir, bool overwrite)
    {
        if (File.Exists(dir))
            throw new ExportException($"--out {dir} is a file; pass a directory (it is created if missing).");
        if (Directory.Exists(dir) && Directory.EnumerateFileSystemEntries(dir).Any())
        {
            if (!overwrite)
                throw new ExportException($"output directory {dir} is not empty; choose an empty or new directory, or pass --force to overwrite its model files.");
            foreach (var f in new[] { GraphFile, DataFile, RewardModelManifest.FileName })
                File.Delete(Path.Combine(dir, f));
        }
        Directory.CreateDirectory(dir);
    }

    private static List<string> CopyTokenizerFiles(string location, string outputDirectory, List<string> written)
    {
        var copied = new List<string>();
        if (!Directory.Exists(location)) return copied;
        var candidates = TokenizerFileNames.Select(n => Path.Combine(location, n)).Where(File.Exists)
            .Concat(Directory.EnumerateFiles(location, "*.tiktoken").Order(StringComparer.Ordinal));
        foreach (var source in candidates)
        {
            var name = Path.GetFileName(source);
            var destination = Path.Combine(outputDirectory, name);
            written.Add(destination);
            File.Copy(source, destination, overwrite: true);
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
