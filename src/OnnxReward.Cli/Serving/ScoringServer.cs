using System.Buffers;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace OnnxReward.Cli.Serving;

/// <summary>An HTTP answer other than 200: status, the message (the library's own where it has one), the failing item.</summary>
internal sealed class HttpError(int status, string message, int? index = null) : Exception(message)
{
    public int Status { get; } = status;
    public int? Index { get; } = index;
}

/// <summary>
/// <c>onnxreward serve</c>: an ASP.NET Core minimal-API host around one <see cref="RewardModel"/> and its
/// <see cref="RewardScorer"/>. Data flow of a scoring request:
/// <code>
/// middleware (API key → 401, metrics) → body ≤ MaxBodyBytes (413), UTF-8 (400), in time (408) → JSON (400)
///   → ≤ MaxConversations (413) → encode each input on the request thread (400 with the library's message)
///   → batcher.Submit (503 when full) → one JSON answer, results in input order
/// </code>
/// Every request runs under one token that fires when the client goes away (HttpContext.RequestAborted) or its
/// deadline (--request-timeout-s) passes: tokenization, template rendering and ONNX Runtime runs check it, a queued
/// request leaves the batcher, and the answer is 408 (the body did not arrive in time) or 503 (the work did not finish
/// in time) with the reason; a request whose client is gone gets no answer (status 499 in the metrics).
/// The model loads after the server binds: <c>GET /health</c> answers 503 until it is ready, then 200. Shutdown stops
/// accepting connections, lets Kestrel finish the accepted requests (HostOptions.ShutdownTimeout), then drains the queue.
/// </summary>
internal sealed partial class ScoringServer : IAsyncDisposable
{
    private readonly ServeSettings _settings;
    private readonly Func<RewardModel> _load;
    private readonly bool _ownsModel;
    private readonly WebApplication _app;
    private readonly ServingMetrics _metrics = new();
    private readonly TaskCompletionSource _loaded = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile RewardModel? _model;
    private volatile RewardScorer? _batcher;
    private int _stopped;

    /// <summary>Why the model failed to load (the service then stops), or null.</summary>
    public string? LoadError { get; private set; }

    private ScoringServer(ServeSettings settings, Func<RewardModel> load, bool ownsModel)
    {
        settings.Validate();
        _settings = settings;
        _load = load;
        _ownsModel = ownsModel;

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls(settings.Urls);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = settings.MaxBodyBytes;
            k.AddServerHeader = false;
        });
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = settings.ShutdownTimeout);
        _app = builder.Build();
        _app.Use(Gate);
        MapEndpoints(_app);
        _app.Lifetime.ApplicationStarted.Register(() => _ = Task.Run(LoadModel));
    }

    /// <summary>A server that loads its model with <paramref name="load"/> once bound (and disposes it when
    /// <paramref name="ownsModel"/>).</summary>
    public static ScoringServer Create(ServeSettings settings, Func<RewardModel> load, bool ownsModel = true) => new(settings, load, ownsModel);

    /// <summary>The addresses Kestrel bound (port 0 resolved), once started.</summary>
    public IReadOnlyList<string> Urls =>
        _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.ToList() ?? [];

    /// <summary>Completes when the model is loaded (faults when loading failed).</summary>
    public Task Ready => _loaded.Task;

    internal RewardScorer? Batcher => _batcher;

    public Task StartAsync(CancellationToken cancellationToken = default) => _app.StartAsync(cancellationToken);

    /// <summary>After <see cref="StartAsync"/>: waits for SIGINT/SIGTERM (or a failed model load), then shuts down gracefully.</summary>
    public async Task RunAsync()
    {
        await _app.WaitForShutdownAsync().ConfigureAwait(false);
        await DrainAndDisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Graceful stop: no new connections, accepted requests finish, the queue drains.</summary>
    public async Task StopAsync()
    {
        await _app.StopAsync().ConfigureAwait(false);
        await DrainAndDisposeAsync().ConfigureAwait(false);
    }

    private async Task DrainAndDisposeAsync()
    {
        if (Interlocked.Exchange(ref _stopped, 1) != 0)
            return;
        if (_batcher is { } b)
            await b.DrainAsync().ConfigureAwait(false);
        if (_ownsModel)
            _model?.Dispose();
        await _app.DisposeAsync().ConfigureAwait(false);
        _metrics.Dispose();
    }

    public async ValueTask DisposeAsync() => await StopAsync().ConfigureAwait(false);

    private void LoadModel()
    {
        try
        {
            var model = _load();
            if (!model.Manifest.IsReward)
                throw new RewardModelException($"{model.Directory} is a backbone-only model (no reward head): the service scores, so give a reward model.");
            var scorer = new RewardScorer(model, new RewardScorerOptions
            {
                MaxWait = TimeSpan.FromMilliseconds(_settings.MaxWaitMs),
                MaxBatchSize = _settings.MaxBatchSize,
                MaxBatchTokens = _settings.MaxBatchTokens,
                QueueCapacity = _settings.QueueCapacity,
                BeforeRound = _settings.BeforeRound,
                RoundCompleted = r => _metrics.RecordRound(r.Rows, r.Tokens, r.Requests, r.Seconds),
            });
            _metrics.ObserveQueue(() => scorer.QueuedRows, () => scorer.AdmittedRows);
            _batcher = scorer;
            _model = model;
            _loaded.TrySetResult();
        }
        catch (Exception e)
        {
            LoadError = e.Message;
            Console.Error.WriteLine($"error: the model failed to load: {e.Message}");
            _loaded.TrySetException(e);
            _app.Lifetime.StopApplication();
        }
    }

    // ---- middleware: API key, metrics ----------------------------------------------------------------------------

    private static readonly string[] Endpoints = ["/v1/score", "/v1/bon", "/get_reward", "/v1/classify", "/health", "/metrics", "/openapi.json"];

    private async Task Gate(HttpContext ctx, RequestDelegate next)
    {
        var started = Stopwatch.GetTimestamp();
        var path = ctx.Request.Path.Value ?? "";
        var endpoint = Endpoints.Contains(path) ? path : "other";
        try
        {
            if (_settings.ApiKey is { } key && path is not ("/health" or "/openapi.json") && !Authorized(ctx.Request, key))
            {
                ctx.Response.Headers.WWWAuthenticate = "Bearer";
                await WriteError(ctx, new HttpError(StatusCodes.Status401Unauthorized,
                    "missing or wrong API key: send the header 'Authorization: Bearer <key>' with the key the server was started with " +
                    "(--api-key or ONNXREWARD_API_KEY).")).ConfigureAwait(false);
                return;
            }
            await next(ctx).ConfigureAwait(false);
        }
        finally
        {
            if (endpoint != "/metrics")
                _metrics.RecordRequest(endpoint, ctx.Response.StatusCode, Stopwatch.GetElapsedTime(started).TotalSeconds);
        }
    }

    private static bool Authorized(HttpRequest request, string key)
    {
        var header = request.Headers.Authorization.ToString();
        const string prefix = "Bearer ";
        if (!header.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
            return false;
        // Compare digests so neither the content nor the length of the key leaks through timing.
        var given = SHA256.HashData(Encoding.UTF8.GetBytes(header[prefix.Length..].Trim()));
        var expected = SHA256.HashData(Encoding.UTF8.GetBytes(key));
        return CryptographicOperations.FixedTimeEquals(given, expected);
    }

    // ---- request and response plumbing ----------------------------------------------------------------------------

    /// <summary>Runs a JSON endpoint: readiness, body limits, JSON parsing, error mapping.</summary>
    private async Task Run(HttpContext ctx, Func<JsonElement, RewardModel, RewardScorer, CancellationToken, Task<Action<Utf8JsonWriter>>> handle)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted);
        deadline.CancelAfter(_settings.RequestTimeout);
        var bodyRead = false;
        try
        {
            if (_model is not { } model || _batcher is not { } batcher)
                throw new HttpError(StatusCodes.Status503ServiceUnavailable,
                    LoadError is null ? "the model is still loading; retry when GET /health answers 200." : $"the model failed to load: {LoadError}");
            using var doc = await ReadJson(ctx, deadline.Token).ConfigureAwait(false);
            bodyRead = true;
            var write = await handle(doc.RootElement, model, batcher, deadline.Token).ConfigureAwait(false);
            await WriteJson(ctx, StatusCodes.Status200OK, write).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested)
        {
            ctx.Response.StatusCode = StatusCodeClientClosedRequest;      // nobody to answer; the work has stopped
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            var limit = _settings.RequestTimeout.TotalSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
            await WriteError(ctx, bodyRead
                ? new HttpError(StatusCodes.Status503ServiceUnavailable,
                    $"the request did not finish within its deadline of {limit} s (--request-timeout-s) and was stopped: send shorter " +
                    "or fewer conversations per request, or start the server with a larger --request-timeout-s.")
                : new HttpError(StatusCodes.Status408RequestTimeout,
                    $"the request body did not arrive within {limit} s (--request-timeout-s): send the whole body at once.")).ConfigureAwait(false);
        }
        catch (HttpError e)
        {
            await WriteError(ctx, e).ConfigureAwait(false);
        }
        catch (ScorerBusyException e)
        {
            await WriteError(ctx, new HttpError(StatusCodes.Status503ServiceUnavailable, e.Message)).ConfigureAwait(false);
        }
        catch (RewardModelException e)
        {
            await WriteError(ctx, new HttpError(StatusCodes.Status400BadRequest, e.Message, e.InputIndex)).ConfigureAwait(false);
        }
        catch (Exception e) when (e is FormatException or ArgumentException or Text.Chat.TemplateException or Text.Tokenization.TokenizerException)
        {
            await WriteError(ctx, new HttpError(StatusCodes.Status400BadRequest, e.Message)).ConfigureAwait(false);
        }
        catch (BadHttpRequestException e) when (!ctx.RequestAborted.IsCancellationRequested)
        {
            await WriteError(ctx, new HttpError(e.StatusCode, e.StatusCode == StatusCodes.Status408RequestTimeout
                ? "the request body arrived too slowly (below Kestrel's minimum data rate of 240 bytes/s after a 5 s grace): send the whole body at once."
                : $"the request could not be read: {e.Message}")).ConfigureAwait(false);
        }
        catch (Exception e) when (!ctx.RequestAborted.IsCancellationRequested)
        {
            await WriteError(ctx, new HttpError(StatusCodes.Status500InternalServerError, $"internal error while scoring: {e.Message}")).ConfigureAwait(false);
        }
    }

    /// <summary>Metrics status of a request whose client went away before the answer (nginx's convention).</summary>
    private const int StatusCodeClientClosedRequest = 499;

    private async Task<JsonDocument> ReadJson(HttpContext ctx, CancellationToken cancellationToken)
    {
        var max = _settings.MaxBodyBytes;
        string TooLarge(string size) =>
            $"the request body is {size}, over the limit of {max} bytes (--max-body-bytes): send fewer conversations per request.";
        if (ctx.Request.ContentLength is { } length && length > max)
            throw new HttpError(StatusCodes.Status413PayloadTooLarge, TooLarge($"{length} bytes"));
        if (ctx.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
            limit.MaxRequestBodySize = max;

        // Chunked bodies have no Content-Length: read at most max + 1 bytes, never more.
        var buffer = new ArrayBufferWriter<byte>(4096);
        try
        {
            while (true)
            {
                var memory = buffer.GetMemory(8192);
                var read = await ctx.Request.Body.ReadAsync(memory, cancellationToken).ConfigureAwait(false);
                if (read == 0)
                    break;
                buffer.Advance(read);
                if (buffer.WrittenCount > max)
                    throw new HttpError(StatusCodes.Status413PayloadTooLarge, TooLarge("larger"));
            }
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            throw new HttpError(StatusCodes.Status413PayloadTooLarge, TooLarge("larger"));
        }
        if (buffer.WrittenCount == 0)
            throw new HttpError(StatusCodes.Status400BadRequest, "the request body is empty: send a JSON object (see GET /openapi.json).");
        try
        {
            return Wire.StrictJson.Parse(buffer.WrittenMemory);
        }
        catch (FormatException e)
        {
            throw new HttpError(StatusCodes.Status400BadRequest, e.Message.StartsWith("invalid JSON", StringComparison.Ordinal)
                ? $"the request body is not valid JSON: {e.Message}" : $"the request body has {e.Message}");
        }
    }

    /// <summary>A body writer for an object whose properties <paramref name="properties"/> writes.</summary>
    private static Action<Utf8JsonWriter> Obj(Action<Utf8JsonWriter> properties) => w =>
    {
        w.WriteStartObject();
        properties(w);
        w.WriteEndObject();
    };

    /// <summary>Answers with one JSON value that <paramref name="write"/> writes whole.</summary>
    private static async Task WriteJson(HttpContext ctx, int status, Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            write(w);
        }
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/json; charset=utf-8";
        ctx.Response.ContentLength = buffer.WrittenCount;
        await ctx.Response.Body.WriteAsync(buffer.WrittenMemory).ConfigureAwait(false);
    }

    private Task WriteError(HttpContext ctx, HttpError e)
    {
        if (ctx.Response.HasStarted)
            return Task.CompletedTask;
        if (e.Status == StatusCodes.Status413PayloadTooLarge)
            ctx.Response.Headers.Connection = "close";    // the unread rest of the body makes the connection unusable
        if (e.Status == StatusCodes.Status503ServiceUnavailable)
            ctx.Response.Headers.RetryAfter = _settings.RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return WriteJson(ctx, e.Status, w => Wire.RewardJson.WriteHttpError(w, e.Message, e.Status, e.Index));
    }
}
