namespace OnnxReward.Cli.Serving;

/// <summary>
/// Settings of <c>onnxreward serve</c>. Validated once at start-up (<see cref="Validate"/>); every limit names the
/// option that raises it in the error it produces.
/// </summary>
internal sealed record ServeSettings
{
    /// <summary>Where Kestrel listens; loopback unless told otherwise (port 0 = any free port).</summary>
    public string Urls { get; init; } = "http://127.0.0.1:8000";

    /// <summary>Longest the batcher waits for more rows after the first one arrives (--max-wait-ms). Default 0: rounds
    /// form from what queued while the previous round ran (continuous batching, as TEI and Triton's default do). On the
    /// 2-core CPU a 5 ms wait cost a lone request 4.8 ms (p50 6.5 vs 1.7 ms) and 0.33-0.93x the throughput of no
    /// batching, because closed-loop clients cannot send more while they wait for the round (perf/README, Serving).</summary>
    public double MaxWaitMs { get; init; }

    /// <summary>Most rows the batcher gathers across requests into one scoring round (--max-batch-size).</summary>
    public int MaxBatchSize { get; init; } = 64;

    /// <summary>Most tokens (sum of row lengths) gathered into one round; a single larger request still runs whole.</summary>
    public int MaxBatchTokens { get; init; } = 8192;

    /// <summary>Most rows admitted and not yet answered; beyond it requests get 503 + Retry-After (--queue-capacity).</summary>
    public int QueueCapacity { get; init; } = 1024;

    /// <summary>Largest accepted request body in bytes (--max-body-bytes); larger bodies get 413.</summary>
    public long MaxBodyBytes { get; init; } = 8 << 20;

    /// <summary>Most conversations (or candidates + references, or queries) in one request (--max-conversations); 413 above.</summary>
    public int MaxConversations { get; init; } = 256;

    /// <summary>Bearer token every request except /health and /openapi.json must carry; null = no authentication.</summary>
    public string? ApiKey { get; init; }

    /// <summary>How long shutdown waits for accepted requests to finish (--shutdown-timeout-s).</summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Seconds a 503 asks the client to wait (Retry-After).</summary>
    public int RetryAfterSeconds { get; init; } = 1;

    /// <summary>Model name reported by the vLLM-style endpoints ("model" field); default: the model directory's name.</summary>
    public string? ModelName { get; init; }

    /// <summary>Test hook: awaited by the batcher before each scoring round (lets tests hold the queue full).</summary>
    internal Func<Task>? BeforeRound { get; init; }

    public void Validate()
    {
        if (!(MaxWaitMs >= 0) || MaxWaitMs > 10_000)
            throw new ArgumentException($"--max-wait-ms is {MaxWaitMs}; give 0 to 10000 (0, the default, never holds a request back).");
        if (MaxBatchSize < 1)
            throw new ArgumentException($"--max-batch-size is {MaxBatchSize}; it must be at least 1 (1 turns cross-request batching off).");
        if (MaxBatchTokens < 1)
            throw new ArgumentException($"--max-batch-tokens is {MaxBatchTokens}; it must be at least 1.");
        if (MaxConversations < 1)
            throw new ArgumentException($"--max-conversations is {MaxConversations}; it must be at least 1.");
        if (QueueCapacity < MaxConversations)
            throw new ArgumentException(
                $"--queue-capacity ({QueueCapacity}) is below --max-conversations ({MaxConversations}): a largest allowed request could " +
                "never be admitted. Raise --queue-capacity or lower --max-conversations.");
        if (MaxBodyBytes < 1024)
            throw new ArgumentException($"--max-body-bytes is {MaxBodyBytes}; give at least 1024.");
        if (ShutdownTimeout < TimeSpan.Zero)
            throw new ArgumentException("--shutdown-timeout-s must be 0 or more.");
        if (ApiKey is { Length: 0 })
            throw new ArgumentException("the API key is empty: give a non-empty --api-key / ONNXREWARD_API_KEY, or neither for no authentication.");
    }
}
