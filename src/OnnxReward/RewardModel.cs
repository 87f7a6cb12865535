using OnnxReward.Model;
using OnnxReward.Runtime;

namespace OnnxReward;

/// <summary>
/// An exported ArmoRM-style reward model loaded into ONNX Runtime. Thread-safe: any number of threads may score at
/// once, and a conversation's score does not depend on what it is batched with (causal attention, right padding).
/// <code>
/// using var model = RewardModel.Load("models/default");
/// var s = model.Score(Conversation.FromPromptResponse("What is 2+2?", "4"));
/// Console.WriteLine($"{s.Score} helpfulness={s.Objectives["helpfulness"]}");
/// </code>
/// </summary>
public sealed partial class RewardModel : IDisposable
{
    private readonly OrtRewardSession _session;
    private int _disposed;

    private RewardModel(string directory, RewardModelManifest manifest, RewardModelOptions options, OrtRewardSession session)
    {
        Directory = directory;
        Manifest = manifest;
        Options = options;
        _session = session;
        MaxSequenceLength = Math.Min(options.MaxSequenceLength ?? manifest.MaxSequenceLength, manifest.MaxSequenceLength);
    }

    /// <summary>The model directory.</summary>
    public string Directory { get; }

    /// <summary>The model's manifest (objective names, pad id, dtype, source).</summary>
    public RewardModelManifest Manifest { get; }

    /// <summary>The options the model was loaded with (validated, immutable).</summary>
    public RewardModelOptions Options { get; }

    /// <summary>Objective names in output order.</summary>
    public IReadOnlyList<string> ObjectiveNames => Manifest.Objectives;

    /// <summary>True when scores come with a standard deviation (the model carries a posterior).</summary>
    public bool HasPosterior => _session.HasScoreStd;

    /// <summary>The execution provider in use: <c>CUDA</c> or <c>CPU</c>.</summary>
    public string ExecutionProvider => _session.Provider;

    /// <summary>Longest accepted input in tokens (the smaller of the option and the model's limit).</summary>
    public int MaxSequenceLength { get; }

    /// <summary>
    /// Loads an exported model directory (<c>model.onnx</c>, <c>reward_model.json</c>, tokenizer files).
    /// </summary>
    /// <exception cref="RewardModelException">The directory, its manifest or graph is missing or inconsistent, or the
    /// requested execution provider cannot be used; the message says which and what to do.</exception>
    public static RewardModel Load(string modelDirectory, RewardModelOptions? options = null)
    {
        options ??= new RewardModelOptions();
        options.Validate();
        options = options with { };                       // frozen copy: later changes by the caller have no effect
        var manifest = RewardModelManifest.Load(modelDirectory);
        if (options.ExecutionProvider == ExecutionProviderKind.Cpu || (options.ExecutionProvider == ExecutionProviderKind.Auto && manifest.Variant == "cpu"))
            MemoryFit.Check(modelDirectory, manifest, options);      // fail now, not when the kernel kills session creation
        var session = OrtRewardSession.Create(Path.Combine(modelDirectory, manifest.Graph), manifest, options);
        try
        {
            var model = new RewardModel(Path.GetFullPath(modelDirectory), manifest, options, session);
            model.InitializeText();
            return model;
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    /// <summary>Scores already tokenized inputs (ids as the model's tokenizer produces them, special tokens included).</summary>
    public IReadOnlyList<RewardScore> ScoreTokens(IReadOnlyList<int[]> inputIds, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(inputIds);
        var rows = new ScoringRow[inputIds.Count];
        for (var i = 0; i < rows.Length; i++)
            rows[i] = RowFromIds(inputIds[i], i, needGating: true);
        return ScoreRows(rows, cancellationToken);
    }

    /// <summary>The final hidden state at the reward position for each input (works for backbone-only models too).</summary>
    public IReadOnlyList<float[]> EmbedTokens(IReadOnlyList<int[]> inputIds, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(inputIds);
        var rows = new ScoringRow[inputIds.Count];
        for (var i = 0; i < rows.Length; i++)
            rows[i] = RowFromIds(inputIds[i], i, needGating: false);
        return EmbedRows(rows, cancellationToken);
    }

    /// <summary>Validates raw ids and finds the two positions (armorm.md §1.3).</summary>
    internal ScoringRow RowFromIds(int[]? ids, int index, bool needGating)
    {
        if (ids is null || ids.Length == 0)
            throw new RewardModelException($"input {index} has no tokens: give at least one token id.", index);
        CheckLength(ids.Length, index);
        var vocab = Manifest.VocabSize;
        var pad = Manifest.PadTokenId;
        if (Manifest.IsClassifier)
            return ClassifierRow(ids, index);
        for (var j = 0; j < ids.Length; j++)
        {
            if ((uint)ids[j] >= (uint)vocab)
                throw new RewardModelException(
                    $"input {index} has token id {ids[j]} at position {j}, outside the model's vocabulary [0, {vocab}). " +
                    "Tokenize with the model's own tokenizer.", index);
            if (ids[j] == pad)
                throw new RewardModelException(
                    $"input {index} contains the pad token {pad} at position {j}; the pad token only ever pads and would move the " +
                    "reward position. Remove it from the input.", index);
        }
        var gating = needGating && Manifest.IsArmoRm ? FindGatingPosition(ids, index) : 0;
        return new ScoringRow(ids, ids.Length - 1, gating);
    }

    /// <summary>A sequence classifier pools the rightmost token that is not the pad id (transformers ≥ 4.48,
    /// GenericForSequenceClassification: <c>(arange(T) * (input_ids != pad_token_id)).argmax(-1)</c>), so a pad id inside
    /// the text (its string typed in a message) is an ordinary token that is not pooled; nothing gates.</summary>
    private ScoringRow ClassifierRow(int[] ids, int index)
    {
        var vocab = Manifest.VocabSize;
        for (var j = 0; j < ids.Length; j++)
            if ((uint)ids[j] >= (uint)vocab)
                throw new RewardModelException(
                    $"input {index} has token id {ids[j]} at position {j}, outside the model's vocabulary [0, {vocab}). " +
                    "Tokenize with the model's own tokenizer.", index);
        var position = ids.Length - 1;
        if (Manifest.PadTokenId is { } pad)
            while (position >= 0 && ids[position] == pad)
                position--;
        if (position < 0)
            throw new RewardModelException(
                $"input {index} holds only the pad token {Manifest.PadTokenId}: nothing to pool. Give the conversation's tokens.", index);
        return new ScoringRow(ids, position, 0);
    }

    internal void CheckLength(int length, int index)
    {
        if (length > MaxSequenceLength)
            throw new RewardModelException(
                $"input {index} is {length} tokens long, over the limit of {MaxSequenceLength}. Shorten it, raise " +
                $"MaxSequenceLength (the model allows up to {Manifest.MaxSequenceLength}), or score it with " +
                "Truncation = DropOldestTurns (`--truncation drop-oldest-turns`), which keeps the last user turn and the response.", index);
    }

    internal int FindGatingPosition(ReadOnlySpan<int> ids, int index) =>
        Text.Positions.GatingPosition(ids, Manifest.GatingTokenPattern, index);

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        _session.Dispose();
        DisposeText();
    }
}
