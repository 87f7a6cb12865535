using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace OnnxReward;

/// <summary>Which ONNX Runtime execution provider scores the batches.</summary>
public enum ExecutionProviderKind
{
    /// <summary>CUDA when its provider loads on this machine, else the CPU (the reason is logged).</summary>
    Auto,

    /// <summary>CUDA only: loading fails with the reason when CUDA 13 or the driver is missing.</summary>
    Cuda,

    /// <summary>The CPU execution provider.</summary>
    Cpu,
}

/// <summary>What to do with a conversation longer than <see cref="RewardModelOptions.MaxSequenceLength"/>.</summary>
public enum TruncationPolicy
{
    /// <summary>Reject it: the error says how long it was and what the limit is (the default; nothing is silent).</summary>
    Error,

    /// <summary>Drop the oldest turns (keeping any system message, the final user turn and the response, so the gating
    /// position survives) until it fits; if even that is too long, fail as <see cref="Error"/> does.</summary>
    DropOldestTurns,
}

/// <summary>What special-token strings (e.g. <c>&lt;|eot_id|&gt;</c>, <c>[PAD]</c>) inside message <em>content</em> become.</summary>
public enum ContentSpecialTokens
{
    /// <summary>Their special ids, as Hugging Face's <c>apply_chat_template</c> + tokenizer do (the default: scores
    /// match the Python reference). A response can then close its turn and open new ones, and "[PAD]" in it moves the
    /// reward position.</summary>
    Special,

    /// <summary>The plain text they are: a response cannot forge turns or move the gating/reward positions, and
    /// "[PAD]" is ordinary text. The template's own special tokens stay special. Pick this when scoring untrusted text
    /// (reward hacking through injected turn markers); scores differ from the Python reference only for content that
    /// holds such strings.</summary>
    Text,
}

/// <summary>
/// Options for <see cref="RewardModel.Load"/>. Validated and frozen when the model is loaded (later changes to this
/// instance do not affect a loaded model).
/// </summary>
public sealed record RewardModelOptions
{
    /// <summary>Execution provider; <see cref="ExecutionProviderKind.Auto"/> by default.</summary>
    public ExecutionProviderKind ExecutionProvider { get; init; } = ExecutionProviderKind.Auto;

    /// <summary>CUDA device ordinal.</summary>
    public int DeviceId { get; init; }

    /// <summary>Token budget of one batch: rows × padded length never exceeds it (except a single row longer than the
    /// budget, which runs alone). Default 8192.</summary>
    public int MaxBatchTokens { get; init; } = 8192;

    /// <summary>Most rows in one batch. Default 64.</summary>
    public int MaxBatchSize { get; init; } = 64;

    /// <summary>Largest fraction of a batch's padded tokens that may be padding (rows are sorted by length and a batch
    /// closes before the row that would push it over). Default 0.10; 1 = bounded by the token budget alone.</summary>
    public double MaxPaddingWaste { get; init; } = 0.10;

    /// <summary>Longest accepted conversation in tokens; null = the model's own limit (manifest max_sequence_length).</summary>
    public int? MaxSequenceLength { get; init; }

    /// <summary>What happens to conversations over <see cref="MaxSequenceLength"/>. Default <see cref="TruncationPolicy.Error"/>.</summary>
    public TruncationPolicy Truncation { get; init; } = TruncationPolicy.Error;

    /// <summary>What special-token strings inside message content become; <see cref="ContentSpecialTokens.Special"/>
    /// (Hugging Face's behaviour) by default. Pre-rendered text (<c>{"text": …}</c>, <see cref="RewardModel.ScoreTemplated"/>)
    /// always has its special tokens recognised: it is templated on purpose.</summary>
    public ContentSpecialTokens ContentSpecialTokens { get; init; } = ContentSpecialTokens.Special;

    /// <summary>ONNX Runtime intra-op threads; 0 = ONNX Runtime's default (one per physical core).</summary>
    public int IntraOpThreads { get; init; }

    /// <summary>Before creating the ONNX Runtime session on the CPU, estimate the memory the model needs (weights as ORT
    /// holds them, activations for <see cref="MaxBatchTokens"/> and <see cref="MaxSequenceLength"/>) and fail at once with
    /// both numbers and the dtype that would fit when it exceeds what is available. Default true.</summary>
    public bool CheckMemoryFit { get; init; } = true;

    /// <summary>Memory the model may use, in bytes, for <see cref="CheckMemoryFit"/>; null = the environment variable
    /// ONNXREWARD_MEMORY_LIMIT (e.g. <c>6GB</c>) if set, else what the machine has available (the smaller of the
    /// cgroup's limit less its usage and /proc/meminfo's MemAvailable).</summary>
    public long? MemoryLimitBytes { get; init; }

    /// <summary>Where the library logs its diagnostics (the execution provider chosen and why, the memory estimate, a
    /// scorer round that failed): categories <c>OnnxReward.*</c>. Null = silent. In a host, pass the DI container's
    /// <see cref="ILoggerFactory"/>.</summary>
    public ILoggerFactory? LoggerFactory { get; init; }

    internal ILogger CreateLogger(string category) => (LoggerFactory ?? NullLoggerFactory.Instance).CreateLogger(category);

    internal void Validate()
    {
        if (DeviceId < 0)
            throw new ArgumentOutOfRangeException(nameof(DeviceId), DeviceId, "DeviceId must be 0 or more (a CUDA device ordinal).");
        if (MaxBatchTokens < 1)
            throw new ArgumentOutOfRangeException(nameof(MaxBatchTokens), MaxBatchTokens, "MaxBatchTokens must be at least 1; 8192 is a good start on CPU.");
        if (MaxBatchSize < 1)
            throw new ArgumentOutOfRangeException(nameof(MaxBatchSize), MaxBatchSize, "MaxBatchSize must be at least 1.");
        if (!(MaxPaddingWaste is >= 0 and <= 1))
            throw new ArgumentOutOfRangeException(nameof(MaxPaddingWaste), MaxPaddingWaste, "MaxPaddingWaste is a fraction between 0 and 1 (0.10 by default).");
        if (MaxSequenceLength is < 2)
            throw new ArgumentOutOfRangeException(nameof(MaxSequenceLength), MaxSequenceLength, "MaxSequenceLength must be at least 2 tokens, or null for the model's own limit.");
        if (IntraOpThreads < 0)
            throw new ArgumentOutOfRangeException(nameof(IntraOpThreads), IntraOpThreads, "IntraOpThreads must be 0 (ONNX Runtime's default) or more.");
        if (!Enum.IsDefined(ExecutionProvider))
            throw new ArgumentOutOfRangeException(nameof(ExecutionProvider), ExecutionProvider, "Use Auto, Cuda or Cpu.");
        if (MemoryLimitBytes is < 1)
            throw new ArgumentOutOfRangeException(nameof(MemoryLimitBytes), MemoryLimitBytes, "MemoryLimitBytes must be positive, or null to use what the machine has available.");
        if (!Enum.IsDefined(Truncation))
            throw new ArgumentOutOfRangeException(nameof(Truncation), Truncation, "Use Error or DropOldestTurns.");
        if (!Enum.IsDefined(ContentSpecialTokens))
            throw new ArgumentOutOfRangeException(nameof(ContentSpecialTokens), ContentSpecialTokens, "Use Special or Text.");
    }
}
