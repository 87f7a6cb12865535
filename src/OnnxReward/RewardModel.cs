using OnnxReward.Model;
using OnnxReward.Runtime;
using OnnxReward.Text;
using OnnxReward.Text.Conversations;

namespace OnnxReward;

/// <summary>
/// An exported ArmoRM-style reward model: its manifest, its <see cref="InputEncoder"/> (chat template, tokenizer,
/// truncation, positions) and a backend that runs batches (ONNX Runtime, or any <see cref="IRewardBackend"/>).
/// Thread-safe: any number of threads may score at once, and a conversation's score does not depend on what it is
/// batched with (causal attention, right padding).
/// <code>
/// using var model = RewardModel.Load("models/default");
/// var s = model.Score(Conversation.FromPromptResponse("What is 2+2?", "4"));
/// Console.WriteLine($"{s.Score} helpfulness={s.Objectives["helpfulness"]}");
/// </code>
/// The data flow is one way: <see cref="ScoringInput"/> ─<see cref="Encode(ScoringInput, int, CancellationToken)"/>─▶
/// <see cref="EncodedInput"/> ─<see cref="Score(IReadOnlyList{EncodedInput}, CancellationToken)"/> (token-budget batches
/// → backend)─▶ <see cref="RewardScore"/>; every other overload is a shortcut through those two. For many concurrent
/// callers (a server), hold one <see cref="RewardScorer"/>, which merges their requests into shared rounds.
/// </summary>
public sealed partial class RewardModel : IDisposable
{
    private readonly IRewardBackend _backend;
    private int _disposed;

    private RewardModel(string directory, RewardModelManifest manifest, RewardModelOptions options, IRewardBackend backend)
    {
        Directory = Path.GetFullPath(directory);
        Manifest = manifest;
        Options = options;
        _backend = backend;
        MaxSequenceLength = Math.Min(options.MaxSequenceLength ?? manifest.MaxSequenceLength, manifest.MaxSequenceLength);
        Encoder = InputEncoder.Load(directory, new InputEncoderOptions
        {
            MaxSequenceLength = MaxSequenceLength,
            ModelMaxSequenceLength = manifest.MaxSequenceLength,
            Truncation = options.Truncation,
            ContentSpecialTokens = options.ContentSpecialTokens,
            PadTokens = manifest.IsClassifier ? PadTokenRule.PoolRightmostNonPad : PadTokenRule.Reject,
            PadTokenId = manifest.PadTokenId,
            VocabSize = manifest.VocabSize,
            GatingTokenPattern = manifest.GatingTokenPattern.Count > 0 ? manifest.GatingTokenPattern : null,
        });
    }

    /// <summary>The model directory.</summary>
    public string Directory { get; }

    /// <summary>The model's manifest (objective names, pad id, dtype, source).</summary>
    public RewardModelManifest Manifest { get; }

    /// <summary>The options the model was loaded with (validated, immutable).</summary>
    public RewardModelOptions Options { get; }

    /// <summary>Turns inputs into ids and positions with this model's template, tokenizer, limits and truncation policy.</summary>
    public InputEncoder Encoder { get; }

    /// <summary>Objective names in output order.</summary>
    public IReadOnlyList<string> ObjectiveNames => Manifest.Objectives;

    /// <summary>True when scores come with a standard deviation (the model carries a posterior).</summary>
    public bool HasPosterior => _backend.HasScoreStd;

    /// <summary>What runs the batches: <c>CUDA</c> or <c>CPU</c> for ONNX Runtime, else the backend's name.</summary>
    public string ExecutionProvider => _backend.Name;

    /// <summary>Longest accepted input in tokens (the smaller of the option and the model's limit).</summary>
    public int MaxSequenceLength { get; }

    /// <summary>
    /// Loads an exported model directory (<c>model.onnx</c>, <c>reward_model.json</c>, tokenizer files) into ONNX Runtime.
    /// </summary>
    /// <exception cref="RewardModelException">The directory, its manifest or graph is missing or inconsistent, the graph
    /// does not fit in this machine's memory, or the requested execution provider cannot be used; the message says
    /// which and what to do.</exception>
    public static RewardModel Load(string modelDirectory, RewardModelOptions? options = null)
    {
        options = Freeze(options);
        var manifest = RewardModelManifest.Load(modelDirectory);
        if (options.ExecutionProvider == ExecutionProviderKind.Cpu || (options.ExecutionProvider == ExecutionProviderKind.Auto && manifest.Variant == "cpu"))
            MemoryFit.Check(modelDirectory, manifest, options);      // fail now, not when the kernel kills session creation
        var session = OrtRewardSession.Create(Path.Combine(modelDirectory, manifest.Graph), manifest, options);
        return Create(modelDirectory, manifest, options, session);
    }

    /// <summary>
    /// A model whose batches run on <paramref name="backend"/> (the model owns it and disposes it): the manifest and
    /// tokenizer come from <paramref name="modelDirectory"/>, batching and encoding are the same as <see cref="Load"/>'s.
    /// Used to compare backends (the TorchSharp reference against ONNX Runtime) through one pipeline.
    /// </summary>
    /// <exception cref="RewardModelException">The directory or its manifest is missing or inconsistent.</exception>
    public static RewardModel Create(string modelDirectory, IRewardBackend backend, RewardModelOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(backend);
        options = Freeze(options);
        return Create(modelDirectory, RewardModelManifest.Load(modelDirectory), options, backend);
    }

    private static RewardModelOptions Freeze(RewardModelOptions? options)
    {
        options ??= new RewardModelOptions();
        options.Validate();
        return options with { };                       // frozen copy: later changes by the caller have no effect
    }

    private static RewardModel Create(string modelDirectory, RewardModelManifest manifest, RewardModelOptions options, IRewardBackend backend)
    {
        try
        {
            return new RewardModel(modelDirectory, manifest, options, backend);
        }
        catch
        {
            backend.Dispose();
            throw;
        }
    }

    /// <summary>Encodes one input for scoring (an ArmoRM model finds the gating position; a sequence classifier pools
    /// the rightmost non-pad token; a backbone-only model encodes for embedding). <c>index</c> is the input's
    /// number; it only labels errors (<see cref="RewardModelException.InputIndex"/>).</summary>
    /// <exception cref="RewardModelException">The input cannot be encoded; the message says why and what to do.</exception>
    public EncodedInput Encode(ScoringInput input, int index = 0, CancellationToken cancellationToken = default) =>
        Encoder.Encode(input, index, findGating: Manifest.IsArmoRm, cancellationToken);

    /// <summary>Encodes one conversation for scoring.</summary>
    /// <exception cref="RewardModelException">The conversation cannot be encoded.</exception>
    public EncodedInput Encode(Conversation conversation, int index = 0, CancellationToken cancellationToken = default) =>
        Encoder.Encode(conversation, index, findGating: Manifest.IsArmoRm, cancellationToken);

    /// <summary>Encodes one input for <see cref="Embed(IReadOnlyList{EncodedInput}, CancellationToken)"/>: no gating
    /// position is looked for, so a conversation need not end with the assistant's turn.</summary>
    /// <exception cref="RewardModelException">The input cannot be encoded.</exception>
    public EncodedInput EncodeForEmbedding(ScoringInput input, int index = 0, CancellationToken cancellationToken = default) =>
        EncodeFor(input, index, forEmbedding: true, cancellationToken);

    /// <summary>Encodes each input on its own, so one bad input cannot sink the others: each result holds the encoded
    /// input or that input's error. Indices label errors from <paramref name="firstIndex"/> on.</summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public EncodeResult[] EncodeEach(IReadOnlyList<ScoringInput> inputs, int firstIndex = 0, bool forEmbedding = false,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        var results = new EncodeResult[inputs.Count];
        for (var i = 0; i < results.Length; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            try
            {
                results[i] = new EncodeResult(EncodeFor(inputs[i], firstIndex + i, forEmbedding, cancellationToken), null);
            }
            catch (RewardModelException e)
            {
                results[i] = new EncodeResult(null, e);
            }
        }
        return results;
    }

    /// <summary>Tokenizes a conversation as scoring would (template, truncation policy, positions).</summary>
    /// <exception cref="RewardModelException">The conversation cannot be encoded.</exception>
    public (int[] InputIds, int RewardPosition, int GatingPosition) Tokenize(Conversation conversation)
    {
        var e = Encode(conversation);
        return (e.ToArray(), e.RewardPosition, e.GatingPosition);
    }

    private EncodedInput EncodeFor(ScoringInput input, int index, bool forEmbedding, CancellationToken ct) =>
        Encoder.Encode(input ?? throw new RewardModelException($"input {index} is null.", index), index,
            findGating: !forEmbedding && Manifest.IsArmoRm, ct);

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        _backend.Dispose();
    }
}
