using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace OnnxReward.Hosting;

/// <summary>Where the hosted model is in its life.</summary>
public enum RewardModelState
{
    /// <summary>The host started and the model is loading (<c>/health</c> answers 503).</summary>
    Loading,

    /// <summary>The model and its scorer are ready.</summary>
    Ready,

    /// <summary>The model failed to load; <see cref="RewardModelProvider.LoadError"/> says why.</summary>
    Failed,

    /// <summary>The host stopped: the scorer drained and the model was released.</summary>
    Stopped,
}

/// <summary>
/// The hosted <see cref="RewardModel"/> and its <see cref="RewardScorer"/> (a singleton): what the endpoints use, and
/// what an application that scores in its own code injects. The model loads in the background once the host has
/// started (so the server answers <c>/health</c> with 503 meanwhile); <see cref="Ready"/> completes when it has.
/// <code>
/// app.Services.GetRequiredService&lt;RewardModelProvider&gt;() → await provider.Ready → provider.Scorer.ScoreAsync(inputs, ct)
/// </code>
/// </summary>
public sealed class RewardModelProvider
{
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile RewardModel? _model;
    private volatile RewardScorer? _scorer;
    private volatile Exception? _error;
    private volatile bool _stopped;

    /// <summary>The loaded model, or null while loading and after a failed load (after stop: the released model).</summary>
    public RewardModel? Model => _model;

    /// <summary>The cross-request scorer over <see cref="Model"/>, or null when there is no model (after stop: the
    /// drained scorer, which refuses new work).</summary>
    public RewardScorer? Scorer => _scorer;

    /// <summary>Completes when the model is loaded; faults with the load error when loading failed.</summary>
    public Task Ready => _ready.Task;

    /// <summary>Why the model failed to load, or null.</summary>
    public Exception? LoadError => _error;

    /// <summary>Where the model is in its life.</summary>
    public RewardModelState State =>
        _stopped ? RewardModelState.Stopped : _error is not null ? RewardModelState.Failed : _scorer is not null ? RewardModelState.Ready : RewardModelState.Loading;

    /// <summary>The model and scorer when both are ready.</summary>
    public bool TryGet(out RewardModel model, out RewardScorer scorer)
    {
        var s = _scorer;
        var m = _model;
        model = m!;
        scorer = s!;
        return s is not null && m is not null && !_stopped;
    }

    /// <summary>The name clients see (vLLM's "model", /info's model_id): the configured name or the model directory's.</summary>
    public string ModelName(RewardModelHostingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return options.ServedModelName ?? (_model is { } m ? Path.GetFileName(m.Directory.TrimEnd('/', '\\')) : Path.GetFileName(options.ModelDirectory?.TrimEnd('/', '\\')) ?? "");
    }

    internal void SetReady(RewardModel model, RewardScorer scorer)
    {
        _model = model;
        _scorer = scorer;
        _ready.TrySetResult();
    }

    internal void SetFailed(Exception error)
    {
        _error = error;
        _ready.TrySetException(error);
    }

    internal (RewardModel? Model, RewardScorer? Scorer) Stop()
    {
        _stopped = true;
        var result = (_model, _scorer);
        _ready.TrySetException(new ObjectDisposedException(nameof(RewardModelProvider), "the host stopped before the model was loaded."));
        return result;
    }
}

/// <summary>
/// Owns the model's lifetime: loads it on a background thread once the host has started, builds the
/// <see cref="RewardScorer"/>, and on stop drains the scorer (everything admitted is scored) and disposes the model.
/// Registered before the web server, it stops after the server has finished the requests it accepted.
/// </summary>
internal sealed partial class RewardModelHostedService(
    RewardModelProvider provider,
    IOptions<RewardModelHostingOptions> options,
    IHostApplicationLifetime lifetime,
    ILoggerFactory loggerFactory,
    ILogger<RewardModelHostedService> logger) : IHostedService
{
    private readonly TaskCompletionSource<bool> _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task? _loading;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        // After the host (and the server) started: a slow load must not hold up the health endpoint. When the host
        // never starts (the server cannot bind), StopAsync ends the wait and nothing is loaded.
        lifetime.ApplicationStarted.Register(() => _started.TrySetResult(true));
        _loading = Task.Run(async () =>
        {
            if (await _started.Task.ConfigureAwait(false))
                Load();
        }, CancellationToken.None);
        return Task.CompletedTask;
    }

    private void Load()
    {
        var o = options.Value;
        try
        {
            LogLoading(logger, o.ModelDirectory ?? "(model factory)");
            var model = o.ModelFactory is { } factory ? factory() : RewardModel.Load(o.ModelDirectory!, o.ToModelOptions(loggerFactory));
            try
            {
                if (!model.Manifest.IsReward)
                    throw new RewardModelException($"{model.Directory} is a backbone-only model (no reward head): the service scores, so give a reward model.");
                var scorer = new RewardScorer(model, o.ToScorerOptions());
                provider.SetReady(model, scorer);
            }
            catch
            {
                if (o.DisposeModel)
                    model.Dispose();
                throw;
            }
            LogReady(logger, provider.ModelName(o), provider.Model!.ExecutionProvider);
        }
        catch (Exception e)
        {
            LogLoadFailed(logger, e.Message);
            provider.SetFailed(e);
            if (o.StopApplicationOnLoadFailure)
                lifetime.StopApplication();
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _started.TrySetResult(false);                                                 // not started yet: never load
        if (_loading is { } loading)
            await loading.WaitAsync(cancellationToken).ConfigureAwait(false);     // a load in progress finishes first
        var (model, scorer) = provider.Stop();
        if (scorer is not null)
        {
            await scorer.DrainAsync().ConfigureAwait(false);
            LogDrained(logger);
        }
        if (options.Value.DisposeModel)
            model?.Dispose();
    }

    [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "loading the reward model from {Directory}")]
    private static partial void LogLoading(ILogger logger, string directory);

    [LoggerMessage(EventId = 101, Level = LogLevel.Information, Message = "model {Model} loaded on {ExecutionProvider}, ready")]
    private static partial void LogReady(ILogger logger, string model, string executionProvider);

    [LoggerMessage(EventId = 102, Level = LogLevel.Critical, Message = "the model failed to load: {Reason}")]
    private static partial void LogLoadFailed(ILogger logger, string reason);

    [LoggerMessage(EventId = 103, Level = LogLevel.Information, Message = "scorer drained: every admitted request was answered")]
    private static partial void LogDrained(ILogger logger);
}
