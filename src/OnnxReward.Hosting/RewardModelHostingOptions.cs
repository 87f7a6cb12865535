using System.Globalization;
using Microsoft.Extensions.Options;

namespace OnnxReward.Hosting;

/// <summary>
/// Options of <see cref="RewardModelServiceCollectionExtensions.AddRewardModel(Microsoft.Extensions.DependencyInjection.IServiceCollection, Action{RewardModelHostingOptions})"/>:
/// the model to load, how it is batched, and the limits of the HTTP endpoints. Bindable from configuration (section
/// <see cref="SectionName"/>, e.g. <c>OnnxReward:MaxBatchTokens</c> in appsettings.json or the environment variable
/// <c>OnnxReward__MaxBatchTokens</c>); validated at start-up by <see cref="RewardModelHostingOptionsValidator"/>, whose
/// messages name each option and the <c>onnxreward serve</c> flag that sets it.
/// </summary>
public sealed class RewardModelHostingOptions
{
    /// <summary>The configuration section AddRewardModel(IConfiguration) is usually given.</summary>
    public const string SectionName = "OnnxReward";

    // ---- the model ---------------------------------------------------------------------------------------------

    /// <summary>Exported model directory (<c>onnxreward export</c>); required unless <see cref="ModelFactory"/> is set (--model).</summary>
    public string? ModelDirectory { get; set; }

    /// <summary>Execution provider (--ep). Default <see cref="ExecutionProviderKind.Auto"/>.</summary>
    public ExecutionProviderKind ExecutionProvider { get; set; } = ExecutionProviderKind.Auto;

    /// <summary>CUDA device ordinal.</summary>
    public int DeviceId { get; set; }

    /// <summary>Token budget of one batch, rows × padded length (--max-batch-tokens); also the most tokens the scorer
    /// gathers into one round. Default 8192.</summary>
    public int MaxBatchTokens { get; set; } = 8192;

    /// <summary>Largest fraction of a batch's padded tokens that may be padding (--max-padding-waste). Default 0.10.</summary>
    public double MaxPaddingWaste { get; set; } = 0.10;

    /// <summary>What happens to conversations over <see cref="MaxLength"/> (--truncation). Default <see cref="TruncationPolicy.Error"/>.</summary>
    public TruncationPolicy Truncation { get; set; } = TruncationPolicy.Error;

    /// <summary>Longest accepted conversation in tokens (--max-length); null = the model's own limit.</summary>
    public int? MaxLength { get; set; }

    /// <summary>What special-token strings inside message content become (--content-special-tokens).</summary>
    public ContentSpecialTokens ContentSpecialTokens { get; set; } = ContentSpecialTokens.Special;

    /// <summary>Name the vLLM-style endpoints and <c>GET /info</c> report (--served-model-name); default: the model
    /// directory's name.</summary>
    public string? ServedModelName { get; set; }

    /// <summary>Loads the model instead of <see cref="RewardModel.Load"/> on <see cref="ModelDirectory"/> (an
    /// application that builds its model itself, or a test sharing one). Not bindable from configuration.</summary>
    public Func<RewardModel>? ModelFactory { get; set; }

    /// <summary>Whether the host disposes the model when it stops. Default true; false for a model
    /// <see cref="ModelFactory"/> shares with others.</summary>
    public bool DisposeModel { get; set; } = true;

    /// <summary>Stop the application when the model fails to load (the process then exits and an orchestrator
    /// restarts it). Default true; when false the host keeps running with <c>/health</c> at 503 and the reason.</summary>
    public bool StopApplicationOnLoadFailure { get; set; } = true;

    // ---- the cross-request batcher (RewardScorer) ---------------------------------------------------------------

    /// <summary>Longest the first request of a round waits for others to join it, in ms (--max-wait-ms). Default 0:
    /// rounds form from what queued while the previous round ran (continuous batching, as TEI and Triton's default
    /// do). On the 2-core CPU a 5 ms wait cost a lone request 4.8 ms and 0.33-0.93x the throughput of no batching,
    /// because closed-loop clients cannot send more while they wait for the round (perf/README, Serving).</summary>
    public double MaxWaitMs { get; set; }

    /// <summary>Most rows gathered across requests into one round, and most rows per batch (--max-batch-size). Default 64.</summary>
    public int MaxBatchSize { get; set; } = 64;

    /// <summary>Most rows admitted and not yet answered; beyond it requests get 503 + Retry-After (--queue-capacity).
    /// Default 2048: two requests of <see cref="MaxConversations"/> rows.</summary>
    public int QueueCapacity { get; set; } = 2048;

    /// <summary>Awaited by the scorer before each round (instrumentation; tests hold a round with it). Not bindable.</summary>
    public Func<Task>? BeforeRound { get; set; }

    // ---- the HTTP endpoints ---------------------------------------------------------------------------------------

    /// <summary>Largest accepted request body in bytes (--max-body-bytes); larger bodies get 413, chunked ones included.
    /// Default 32 MiB: an OpenRLHF micro-batch (512 decoded queries, each padded to the batch's longest sequence, e.g.
    /// 2,048 tokens of text plus "[PAD]" runs) is about 5–10 MB of JSON, and must fit in one request.</summary>
    public long MaxBodyBytes { get; set; } = 32L << 20;

    /// <summary>Most conversations (or candidates + references, or queries) in one request (--max-conversations); 413
    /// above. Default 1024, so an OpenRLHF micro-batch of 512 queries is one request.</summary>
    public int MaxConversations { get; set; } = 1024;

    /// <summary>Deadline of one request, body reading included (--request-timeout-s). Past it the request's work stops
    /// (tokenization, template rendering, ONNX Runtime runs, its place in the queue) and it is answered 408 (the body did
    /// not arrive) or 503 (the work did not finish). 60 s is ample for 256 conversations of the default model on 2 CPU
    /// cores and bounds what one request can cost; raise it for large models on the CPU.</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Bearer token every scoring request (and whatever else requires <see cref="RewardModelHosting.ApiKeyPolicy"/>)
    /// must carry (--api-key); null = no authentication.</summary>
    public string? ApiKey { get; set; }

    /// <summary>Seconds a 503 asks the client to wait (Retry-After). Default 1.</summary>
    public int RetryAfterSeconds { get; set; } = 1;

    /// <summary>The library's options for <see cref="RewardModel.Load"/> from these.</summary>
    public RewardModelOptions ToModelOptions(Microsoft.Extensions.Logging.ILoggerFactory? loggerFactory = null) => new()
    {
        ExecutionProvider = ExecutionProvider,
        DeviceId = DeviceId,
        MaxBatchTokens = MaxBatchTokens,
        MaxBatchSize = MaxBatchSize,
        MaxPaddingWaste = MaxPaddingWaste,
        MaxSequenceLength = MaxLength,
        Truncation = Truncation,
        ContentSpecialTokens = ContentSpecialTokens,
        LoggerFactory = loggerFactory,
    };

    /// <summary>The scorer's options from these.</summary>
    public RewardScorerOptions ToScorerOptions() => new()
    {
        MaxWait = TimeSpan.FromMilliseconds(MaxWaitMs),
        MaxBatchSize = MaxBatchSize,
        MaxBatchTokens = MaxBatchTokens,
        QueueCapacity = QueueCapacity,
        BeforeRound = BeforeRound,
    };
}

/// <summary>
/// Validates <see cref="RewardModelHostingOptions"/> (registered with <c>ValidateOnStart</c>, so a bad value stops the
/// host before it listens). Every message names the option, the <c>onnxreward serve</c> flag, the value and the fix.
/// </summary>
public sealed class RewardModelHostingOptionsValidator : IValidateOptions<RewardModelHostingOptions>
{
    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, RewardModelHostingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var errors = Errors(options).ToList();
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    /// <summary>Every problem of <paramref name="o"/>, one message each (empty when valid).</summary>
    public static IEnumerable<string> Errors(RewardModelHostingOptions o)
    {
        ArgumentNullException.ThrowIfNull(o);
        static string S(double v) => v.ToString(CultureInfo.InvariantCulture);
        if (o.ModelFactory is null && string.IsNullOrWhiteSpace(o.ModelDirectory))
            yield return "ModelDirectory (--model) is not set: give the exported model directory (onnxreward export).";
        if (!Enum.IsDefined(o.ExecutionProvider))
            yield return $"ExecutionProvider (--ep) is {o.ExecutionProvider}; use Auto, Cuda or Cpu.";
        if (o.DeviceId < 0)
            yield return $"DeviceId is {o.DeviceId}; it must be 0 or more (a CUDA device ordinal).";
        if (!(o.RequestTimeout > TimeSpan.Zero) || o.RequestTimeout > TimeSpan.FromDays(1))
            yield return $"--request-timeout-s is {S(o.RequestTimeout.TotalSeconds)}; give more than 0 and at most 86400 seconds (RequestTimeout).";
        if (!(o.MaxWaitMs >= 0) || o.MaxWaitMs > 10_000)
            yield return $"--max-wait-ms is {S(o.MaxWaitMs)}; give 0 to 10000 (0, the default, never holds a request back) (MaxWaitMs).";
        if (o.MaxBatchSize < 1)
            yield return $"--max-batch-size is {o.MaxBatchSize}; it must be at least 1 (1 turns cross-request batching off) (MaxBatchSize).";
        if (o.MaxBatchTokens < 1)
            yield return $"--max-batch-tokens is {o.MaxBatchTokens}; it must be at least 1 (MaxBatchTokens).";
        if (!(o.MaxPaddingWaste is >= 0 and <= 1))
            yield return $"--max-padding-waste is {S(o.MaxPaddingWaste)}; give a fraction from 0 to 1 (MaxPaddingWaste).";
        if (o.MaxLength is < 2)
            yield return $"--max-length is {o.MaxLength}; give at least 2 tokens, or nothing for the model's own limit (MaxLength).";
        if (o.MaxConversations < 1)
            yield return $"--max-conversations is {o.MaxConversations}; it must be at least 1 (MaxConversations).";
        if (o.QueueCapacity < o.MaxConversations)
            yield return $"--queue-capacity ({o.QueueCapacity}) is below --max-conversations ({o.MaxConversations}): a largest allowed request could " +
                         "never be admitted. Raise --queue-capacity or lower --max-conversations (QueueCapacity, MaxConversations).";
        if (o.MaxBodyBytes < 1024)
            yield return $"--max-body-bytes is {o.MaxBodyBytes}; give at least 1024 (MaxBodyBytes).";
        if (o.ApiKey is { Length: 0 })
            yield return "the API key is empty: give a non-empty --api-key / ONNXREWARD_API_KEY, or neither for no authentication (ApiKey).";
        if (o.RetryAfterSeconds < 0)
            yield return $"RetryAfterSeconds is {o.RetryAfterSeconds}; it must be 0 or more.";
        if (o.ServedModelName is { } n && string.IsNullOrWhiteSpace(n))
            yield return "--served-model-name is blank: give a name, or leave it out for the model directory's name (ServedModelName).";
    }
}
