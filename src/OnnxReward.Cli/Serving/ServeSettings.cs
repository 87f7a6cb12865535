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

    /// <summary>Deadline of one request, body reading included (--request-timeout-s). Past it the request's work stops
    /// (tokenization, template rendering, ONNX Runtime runs, its place in the queue) and it is answered 408 (the body did
    /// not arrive) or 503 (the work did not finish). 60 s is ample for 256 conversations of the default model on 2 CPU
    /// cores and bounds what one request can cost; raise it for large models on the CPU.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(60);

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
        ListenAddresses.Parse(Urls);
        if (!(RequestTimeout > TimeSpan.Zero) || RequestTimeout > TimeSpan.FromDays(1))
            throw new ArgumentException($"--request-timeout-s is {RequestTimeout.TotalSeconds}; give more than 0 and at most 86400 seconds.");
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

/// <summary>
/// Strict parsing of <c>--urls</c> before Kestrel sees it. Kestrel treats any host it cannot parse as an IP address,
/// a port typo included (<c>http://127.0.0.1:abc</c>), as "every interface on port 80", so a typo would expose the service
/// on every network the machine is on. Here every entry must be <c>http://HOST[:PORT][/]</c> with HOST an IP address,
/// <c>localhost</c>, or <c>*</c> / <c>+</c> / <c>0.0.0.0</c> / <c>[::]</c> (every interface, asked for explicitly), and
/// PORT a number from 0 to 65535; anything else is a one-line error naming the entry and the fix.
/// </summary>
internal static class ListenAddresses
{
    public static IReadOnlyList<string> Parse(string urls)
    {
        var entries = (urls ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (entries.Length == 0)
            throw new ArgumentException("--urls is empty: give where to listen, e.g. http://127.0.0.1:8000.");
        foreach (var url in entries)
            Check(url);
        return entries;
    }

    private static void Check(string url)
    {
        string Bad(string why) => $"--urls '{url}' {why}";
        var scheme = url.IndexOf("://", StringComparison.Ordinal);
        if (scheme < 0)
            throw new ArgumentException(Bad("has no scheme: write http://HOST:PORT, e.g. http://127.0.0.1:8000."));
        var name = url[..scheme].ToLowerInvariant();
        if (name == "https")
            throw new ArgumentException(Bad(
                "asks for https, but serve takes no certificate: listen on http (loopback) and terminate TLS in a reverse proxy in front of it."));
        if (name != "http")
            throw new ArgumentException(Bad($"has the scheme '{url[..scheme]}': serve listens on http://HOST:PORT only."));
        var rest = url[(scheme + 3)..];
        var slash = rest.IndexOf('/');
        if (slash >= 0)
        {
            if (slash < rest.Length - 1)
                throw new ArgumentException(Bad(
                    $"has a path ('{rest[slash..]}'): Kestrel listens on an address and port only; the endpoints are at the root (/v1/score, …)."));
            rest = rest[..slash];
        }
        string host, port;
        if (rest.StartsWith('['))
        {
            var close = rest.IndexOf(']');
            if (close < 0)
                throw new ArgumentException(Bad("has an IPv6 address without its closing ']': write e.g. http://[::1]:8000."));
            host = rest[1..close];
            var after = rest[(close + 1)..];
            if (after.Length > 0 && after[0] != ':')
                throw new ArgumentException(Bad($"has '{after}' after the IPv6 address: write http://[ADDRESS]:PORT."));
            port = after.Length > 0 ? after[1..] : "80";
        }
        else
        {
            var colon = rest.IndexOf(':');
            host = colon < 0 ? rest : rest[..colon];
            port = colon < 0 ? "80" : rest[(colon + 1)..];
        }
        if (port.Length == 0 || port.Length > 5 || !port.All(char.IsAsciiDigit) || int.Parse(port, System.Globalization.CultureInfo.InvariantCulture) > 65535)
            throw new ArgumentException(Bad($"has the port '{port}', which is not a number from 0 to 65535 (0 = any free port)."));
        if (host.Length == 0)
            throw new ArgumentException(Bad("has no host: give an IP address, e.g. http://127.0.0.1:8000."));
        if (host is "*" or "+" || host.Equals("localhost", StringComparison.OrdinalIgnoreCase))
            return;
        var ipv4 = host.All(c => char.IsAsciiDigit(c) || c == '.');
        if (System.Net.IPAddress.TryParse(host, out var ip)
            && (ipv4 ? host.Count(c => c == '.') == 3 : ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 && rest.StartsWith('[')))
            return;
        throw new ArgumentException(Bad(ipv4 || host.Contains(':')
            ? $"has the host '{host}', which is not an IP address (IPv4 is four numbers, IPv6 goes in brackets: http://[::1]:8000)."
            : $"has the host name '{host}': Kestrel would listen on every interface for it. Give an IP address of this machine " +
              "(127.0.0.1; 0.0.0.0 for every interface on purpose) or localhost."));
    }
}
