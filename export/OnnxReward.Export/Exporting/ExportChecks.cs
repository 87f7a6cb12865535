using Microsoft.ML.OnnxRuntime;
using OnnxReward.Export.Checkpoints;
using OnnxReward.Model;
using OnnxReward.Runtime;
using OnnxReward.Text;
using OnnxReward.Text.Chat;
using OnnxReward.Text.Tokenization;

namespace OnnxReward.Export.Exporting;

/// <summary>
/// What an export checks so that it never touches its source and never writes a folder that does not load (issue 16
/// items 2 and 9): where --out may be, the config's token ids and the tokenizer and chat template before anything is
/// written, and the written folder itself — loaded with <see cref="RewardModel.Load"/> and scored on one short
/// sequence — before it replaces --out.
/// </summary>
internal static class ExportChecks
{
    /// <summary>A conversation every chat template renders (one user turn, one assistant turn).</summary>
    private static readonly Conversation Sample = Conversation.FromPromptResponse("Hello, who are you?", "I am a helpful assistant.");

    /// <summary>Refuses an --out that is the source, lies inside a checkpoint folder, or contains the source: an export
    /// replaces --out as a whole, so any of these would change (or, before issue 16, delete) the checkpoint.</summary>
    public static void CheckOutputAgainstSource(string outputDirectory, string checkpointPath)
    {
        var isFolder = Directory.Exists(checkpointPath);
        var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(checkpointPath));
        var sourceFolder = RealPath(isFolder ? full : Path.GetDirectoryName(full)!);
        var output = RealPath(outputDirectory);
        if (string.Equals(output, sourceFolder, StringComparison.Ordinal))
            throw new ExportException(
                $"--out {outputDirectory} is the checkpoint's own folder ({sourceFolder}); an export never writes into its source. Choose another --out.");
        if (IsUnder(sourceFolder, output))
            throw new ExportException(
                $"--out {outputDirectory} contains the checkpoint {checkpointPath}; exporting there would replace the checkpoint. Choose a folder outside it.");
        if (isFolder && IsUnder(output, sourceFolder))
            throw new ExportException(
                $"--out {outputDirectory} is inside the checkpoint folder {checkpointPath}; an export never writes into its source. Choose a folder outside it.");
    }

    /// <summary>Refuses a file or (without overwrite) a non-empty folder as --out; changes nothing.</summary>
    public static void CheckOutputDirectory(string dir, bool overwrite)
    {
        if (File.Exists(dir))
            throw new ExportException($"--out {dir} is a file; pass a directory (it is created if missing).");
        if (!overwrite && Directory.Exists(dir) && Directory.EnumerateFileSystemEntries(dir).Any())
            throw new ExportException(
                $"output directory {dir} is not empty; choose an empty or new directory, or pass --force to replace its model files.");
    }

    /// <summary>Before anything is written: the config's token ids lie in the vocabulary, the gating pattern fits the
    /// context, and the checkpoint's tokenizer loads and its chat template parses and renders a conversation whose ids
    /// the vocabulary holds (item 9: each of these used to export with exit code 0 and fail at every load).</summary>
    public static void CheckBeforeWriting(Checkpoint checkpoint, IReadOnlyList<int> pattern)
    {
        var c = checkpoint.Config;
        var config = checkpoint.Format == "huggingface" ? Path.Combine(checkpoint.Location, HuggingFaceCheckpoint.ConfigFile) : checkpoint.Location;
        foreach (var (key, id) in new[] { ("pad_token_id", c.PadTokenId), ("bos_token_id", c.BosTokenId), ("eos_token_id", c.EosTokenId) })
            if (id is { } v && v >= c.VocabSize)
                throw new CheckpointException(
                    $"{config}: '{key}' is {v}, outside the vocabulary [0, {c.VocabSize}) (vocab_size {c.VocabSize}). Fix config.json.", config);
        if (checkpoint.Head is not null && pattern.Count + 1 > c.MaxPositionEmbeddings)
            throw new CheckpointException(
                $"{config}: max_position_embeddings {c.MaxPositionEmbeddings} cannot hold the {pattern.Count}-token assistant header " +
                "and a reply, so nothing could be scored. Fix config.json.", config);

        var location = checkpoint.Location;
        var tokenizerJson = Path.Combine(location, Llama3Tokenizer.TokenizerJson);
        if (!File.Exists(tokenizerJson)) return;       // token ids only: the manifest says so and text inputs get a clear error
        try
        {
            var encoder = InputEncoder.Load(location, new InputEncoderOptions { GatingTokenPattern = pattern.Count > 0 ? pattern : null });
            var ids = encoder.Template is not null ? encoder.Encode(Sample, findGating: false).ToArray() : encoder.TokenizeText("Hello, who are you?");
            var outside = ids.FirstOrDefault(i => i >= c.VocabSize, -1);
            if (outside >= 0)
                throw new CheckpointException(
                    $"{tokenizerJson} encodes a short conversation to token id {outside}, outside the model's vocabulary [0, {c.VocabSize}): " +
                    "the tokenizer is not this model's. Use the tokenizer files that came with the weights.", tokenizerJson);
            if (checkpoint.Head is not null && encoder.Template is not null && !Contains(ids, pattern))
            {
                var file = Path.Combine(location, ChatTemplate.ConfigFile);
                throw new CheckpointException(
                    $"{file}: the chat template renders a user/assistant conversation without the assistant header " +
                    $"[{string.Join(", ", pattern)}] that marks the gating position, so no conversation could be scored. " +
                    "Use the model's own chat template, or pass the header's token ids as the gating pattern.", file);
            }
        }
        catch (TokenizerException e)
        {
            throw new CheckpointException($"the checkpoint's tokenizer does not load: {e.Message}", tokenizerJson, inner: e);
        }
        catch (TemplateException e)
        {
            var file = Path.Combine(location, ChatTemplate.ConfigFile);
            throw new CheckpointException($"the checkpoint's chat template is unusable: {e.Message}", file, inner: e);
        }
        catch (RewardModelException e)
        {
            var file = Path.Combine(location, ChatTemplate.ConfigFile);
            throw new CheckpointException(
                $"{file}: the chat template cannot render a user/assistant conversation ({e.Message}). Fix chat_template or use the model's own tokenizer_config.json.",
                file, inner: e);
        }
    }

    /// <summary>
    /// Loads the written folder with <see cref="RewardModel.Load"/> on the CPU and scores (or embeds) one short
    /// sequence: the sample conversation when the folder has a tokenizer and template, else the gating pattern plus one
    /// token. A CUDA variant is not run here (the CPU cannot); its manifest, files and tokenizer are still checked. A
    /// model that does not fit this machine's memory is checked without a session (exports stream and need little
    /// memory; the machine that serves the model is another). Returns what was checked, for the summary.
    /// </summary>
    public static string VerifyWritten(string dir, CancellationToken cancellationToken)
    {
        try
        {
            var manifest = RewardModelManifest.Load(dir);
            var hasTokenizer = File.Exists(Path.Combine(dir, Llama3Tokenizer.TokenizerJson));
            if (manifest.Variant == "cuda")
            {
                if (hasTokenizer) SampleIds(InputEncoder.Load(dir, new InputEncoderOptions { GatingTokenPattern = Pattern(manifest) }), manifest, cancellationToken);
                return "manifest, files and tokenizer checked (a CUDA variant is not run on the CPU)";
            }
            var options = new RewardModelOptions
            {
                ExecutionProvider = ExecutionProviderKind.Cpu, MaxBatchSize = 1, IntraOpThreads = 1,
                MaxSequenceLength = Math.Min(manifest.MaxSequenceLength, 256), MaxBatchTokens = 256,
            };
            try
            {
                MemoryFit.Check(dir, manifest, options);
            }
            catch (RewardModelException)
            {
                return "manifest and files checked; not loaded (the model needs more memory than this machine has)";
            }
            using var model = RewardModel.Load(dir, options with { CheckMemoryFit = false });
            var ids = hasTokenizer ? SampleIds(model.Encoder, manifest, cancellationToken) : null;
            ids ??= Synthetic(manifest);
            if (manifest.IsReward)
            {
                var s = model.ScoreTokens([ids], cancellationToken)[0];
                if (!float.IsFinite(s.Score) || s.RewardValues.Any(v => !float.IsFinite(v)))
                    throw new ExportException(
                        $"the exported model scores {s.Score} on a {ids.Length}-token test sequence: the checkpoint's weights hold NaN or ∞ " +
                        "(a corrupt download?). Nothing was written to --out; re-download the checkpoint.");
            }
            else if (model.EmbedTokens([ids], cancellationToken)[0].Any(v => !float.IsFinite(v)))
                throw new ExportException(
                    "the exported backbone's embedding of a test sequence holds NaN or ∞: the checkpoint's weights are corrupt. " +
                    "Nothing was written to --out; re-download the checkpoint.");
            return $"loaded and {(manifest.IsReward ? "scored" : "embedded")} a {ids.Length}-token test sequence on the CPU";
        }
        catch (Exception e) when (e is RewardModelException or TokenizerException or TemplateException or OnnxRuntimeException)
        {
            throw new ExportException($"the exported model does not load or score, so --out was left as it was: {e.Message}", e);
        }
    }

    private static IReadOnlyList<int>? Pattern(RewardModelManifest m) => m.GatingTokenPattern.Count > 0 ? m.GatingTokenPattern : null;

    /// <summary>The sample conversation's ids when they fit the check's length and (for a reward model) hold the
    /// assistant header; null otherwise (then the synthetic sequence is scored).</summary>
    private static int[]? SampleIds(InputEncoder encoder, RewardModelManifest m, CancellationToken ct)
    {
        if (encoder.Template is null) return null;
        var ids = encoder.Encode(Sample, 0, findGating: false, ct).ToArray();
        if (ids.Length > Math.Min(m.MaxSequenceLength, 256) || ids.Length == 0) return null;
        if (m.IsArmoRm && !Contains(ids, m.GatingTokenPattern)) return null;
        return ids;
    }

    private static bool Contains(int[] ids, IReadOnlyList<int> pattern) =>
        pattern.Count > 0 && ids.AsSpan().IndexOf(pattern.ToArray()) >= 0;

    /// <summary>The gating pattern (reward) and one ordinary token that is not the pad id.</summary>
    private static int[] Synthetic(RewardModelManifest m)
    {
        var token = m.PadTokenId == 0 ? Math.Min(1, m.VocabSize - 1) : 0;
        return [.. m.IsArmoRm ? m.GatingTokenPattern : [], token];
    }

    private static bool IsUnder(string path, string folder) =>
        path.StartsWith(folder.EndsWith(Path.DirectorySeparatorChar) ? folder : folder + Path.DirectorySeparatorChar, StringComparison.Ordinal);

    /// <summary>The full path with every symbolic link of its existing part resolved (so a link cannot disguise the
    /// source as another folder); the part that does not exist yet is kept as written.</summary>
    internal static string RealPath(string path)
    {
        var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(path));
        for (var hops = 0; hops < 40; hops++)
        {
            var root = Path.GetPathRoot(full)!;
            var parts = full[root.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries);
            var current = root;
            var resolved = false;
            for (var i = 0; i < parts.Length; i++)
            {
                var next = Path.Combine(current, parts[i]);
                FileSystemInfo info = Directory.Exists(next) ? new DirectoryInfo(next) : new FileInfo(next);
                if (!info.Exists) break;
                if (info.LinkTarget is not null && info.ResolveLinkTarget(returnFinalTarget: true) is { } target)
                {
                    full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(Path.Combine([target.FullName, .. parts[(i + 1)..]])));
                    resolved = true;
                    break;
                }
                current = next;
            }
            if (!resolved) return full;
        }
        return full;
    }
}
