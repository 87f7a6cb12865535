using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using Microsoft.Extensions.Options;
using OnnxReward.Hosting;
using OpenTelemetry.Metrics;

namespace OnnxReward.Cli.Serving;

/// <summary>
/// <c>onnxreward serve</c>: a thin ASP.NET Core host over OnnxReward.Hosting. It adds the hosted model
/// (<see cref="RewardModelServiceCollectionExtensions.AddRewardModel(IServiceCollection, Action{RewardModelHostingOptions})"/>:
/// options, load after start, drain on stop, health check), maps its endpoints, <c>/health</c>, the OpenAPI document
/// (<c>/openapi/v1.json</c>, and <c>/openapi.json</c>), and <c>/metrics</c> from OpenTelemetry's Prometheus exporter
/// (the library's <c>OnnxReward</c> meter, ASP.NET Core's <c>http.server.*</c> and Kestrel's), sets Kestrel's body
/// limit from the options, and logs through the standard console logger on stderr. Shutdown (SIGTERM) stops accepting
/// connections, lets Kestrel finish the accepted requests (HostOptions.ShutdownTimeout), then drains the scorer.
/// </summary>
internal sealed class ScoringServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly RewardModelProvider _provider;
    private int _stopped;

    private ScoringServer(WebApplication app)
    {
        _app = app;
        _provider = app.Services.GetRequiredService<RewardModelProvider>();
    }

    /// <summary>A server for <paramref name="settings"/> whose hosted model <paramref name="configure"/> describes.</summary>
    /// <exception cref="ArgumentException">An entry of --urls is not an address to listen on.</exception>
    public static ScoringServer Create(ServeSettings settings, Action<RewardModelHostingOptions> configure)
    {
        settings.Validate();
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true);
        builder.Logging.SetMinimumLevel(settings.MinimumLogLevel);
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);          // no line per request
        // A failed bind is reported as one line by `serve` itself; the host's own record of it is a stack trace.
        builder.Logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.None);
        builder.Services.Configure<ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);   // stdout stays empty
        builder.WebHost.UseUrls(settings.Urls);
        builder.Services.AddOptions<KestrelServerOptions>().Configure<IOptions<RewardModelHostingOptions>>((k, o) =>
        {
            k.Limits.MaxRequestBodySize = o.Value.MaxBodyBytes;
            k.AddServerHeader = false;
        });
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = settings.ShutdownTimeout);
        builder.Services.AddRewardModel(configure);
        builder.Services.AddOpenTelemetry().WithMetrics(m => m
            .AddRewardModelInstrumentation()
            .AddMeter("Microsoft.AspNetCore.Hosting", "Microsoft.AspNetCore.Server.Kestrel")
            .AddPrometheusExporter(o => o.ScrapeResponseCacheDurationMilliseconds = 0));   // every scrape is current

        var app = builder.Build();
        app.MapRewardModelEndpoints();
        app.MapRewardModelHealthChecks();
        app.MapOpenApi();
        app.MapOpenApi("/openapi.json");
        app.MapPrometheusScrapingEndpoint().RequireAuthorization(RewardModelHosting.ApiKeyPolicy);
        return new ScoringServer(app);
    }

    /// <summary>The application's services (the <see cref="RewardModelProvider"/>, loggers, options).</summary>
    public IServiceProvider Services => _app.Services;

    private RewardModelProvider Provider => _provider;

    /// <summary>The addresses Kestrel bound (port 0 resolved), once started.</summary>
    public IReadOnlyList<string> Urls =>
        _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.ToList() ?? [];

    /// <summary>Completes when the model is loaded (faults when loading failed).</summary>
    public Task Ready => Provider.Ready;

    /// <summary>Why the model failed to load (the service then stops), or null.</summary>
    public string? LoadError => Provider.LoadError?.Message;

    internal RewardScorer? Batcher => Provider.Scorer;

    public Task StartAsync(CancellationToken cancellationToken = default) => _app.StartAsync(cancellationToken);

    /// <summary>After <see cref="StartAsync"/>: waits for SIGINT/SIGTERM (or a failed model load), then shuts down gracefully.</summary>
    public async Task RunAsync()
    {
        await _app.WaitForShutdownAsync().ConfigureAwait(false);
        await DisposeOnceAsync().ConfigureAwait(false);
    }

    /// <summary>Graceful stop: no new connections, accepted requests finish, the queue drains.</summary>
    public async Task StopAsync()
    {
        if (Volatile.Read(ref _stopped) == 0)
            await _app.StopAsync().ConfigureAwait(false);
        await DisposeOnceAsync().ConfigureAwait(false);
    }

    private async Task DisposeOnceAsync()
    {
        if (Interlocked.Exchange(ref _stopped, 1) == 0)
            await _app.DisposeAsync().ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync() => await StopAsync().ConfigureAwait(false);
}
