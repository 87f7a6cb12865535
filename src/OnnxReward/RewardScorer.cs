using System.Diagnostics;
using System.Threading.Channels;
using OnnxReward.Diagnostics;
using OnnxReward.Text.Conversations;

namespace OnnxReward;

/// <summary>The scorer cannot take the request now: its queue is full, or it is shutting down. A server answers 503
/// with Retry-After; a batch job waits and retries.</summary>
public sealed class ScorerBusyException(string message, bool shuttingDown) : Exception(message)
{
    /// <summary>True when the scorer is draining for shutdown (retry against another instance), false when its queue is full.</summary>
    public bool ShuttingDown { get; } = shuttingDown;
}

/// <summary>Options of <see cref="RewardScorer"/>. Validated by its constructor.</summary>
public sealed record RewardScorerOptions
{
    /// <summary>How long the round's first request waits for others to join it. 0 (the default) never holds a request
    /// back: requests that arrive while a round runs still share the next one (closed-loop callers gain nothing from a
    /// wait on a CPU; open-loop traffic on a GPU may).</summary>
    public TimeSpan MaxWait { get; init; } = TimeSpan.Zero;

    /// <summary>Most rows gathered into one round; 1 turns cross-request batching off. Default 64.</summary>
    public int MaxBatchSize { get; init; } = 64;

    /// <summary>Most tokens gathered into one round (the model's own token budget then splits it into batches). Default 8192.</summary>
    public int MaxBatchTokens { get; init; } = 8192;

    /// <summary>Most rows admitted (queued or running) and not yet answered; beyond it requests fail at once with
    /// <see cref="ScorerBusyException"/> instead of growing a queue. Default 1024.</summary>
    public int QueueCapacity { get; init; } = 1024;

    /// <summary>Awaited before each round runs (after it is gathered): a hook for instrumentation and for tests that
    /// need a round to wait at a known point.</summary>
    public Func<Task>? BeforeRound { get; init; }

    /// <summary>Called after each round with what it ran (rows, tokens, requests, seconds): the hook metrics hang on.</summary>
    public Action<ScorerRound>? RoundCompleted { get; init; }

    internal void Validate()
    {
        if (MaxWait < TimeSpan.Zero || MaxWait > TimeSpan.FromSeconds(10))
            throw new ArgumentOutOfRangeException(nameof(MaxWait), MaxWait, "MaxWait must be 0 to 10 s (0 never holds a request back).");
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxBatchSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxBatchTokens, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(QueueCapacity, 1);
    }
}

/// <summary>What one round of <see cref="RewardScorer"/> ran.</summary>
public readonly record struct ScorerRound(int Rows, int Tokens, int Requests, double Seconds);

/// <summary>
/// The cross-request batcher: a thread-safe, async scorer that any number of callers (HTTP handlers, RLHF workers)
/// share, holding one as a singleton beside its <see cref="RewardModel"/>. Requests are merged into rounds (the shape of
/// TEI's <c>core/src/queue.rs</c>):
/// <code>
/// callers ──ScoreAsync(encoded)──▶ bounded channel of requests ──▶ one loop: take the first, then whatever else arrives
///                                                                within MaxWait (≤ MaxBatchSize rows, ≤ MaxBatchTokens)
///                                                            ──▶ RewardModel.Score(all rows) ──▶ each request's task
/// </code>
/// Admission is bounded twice: the channel holds at most <see cref="RewardScorerOptions.QueueCapacity"/> requests, and the
/// rows admitted but not yet answered never exceed it either; beyond that a call throws <see cref="ScorerBusyException"/>
/// at once instead of growing. The model's token-budget planner splits a round into batches with its padding bound, and
/// a row's score does not depend on its batch neighbours (causal attention, right padding), so results equal
/// <see cref="RewardModel.Score(IReadOnlyList{EncodedInput}, CancellationToken)"/>'s for the same inputs.
/// <para>Cancellation (the client went away, or the request's deadline passed): a request still queued is dropped at
/// once (its task ends cancelled, its rows no longer count against the queue, the loop skips it); a round whose every
/// request is cancelled is stopped mid-run (RunOptions.Terminate); a round shared with live requests runs on for them.</para>
/// </summary>
public sealed class RewardScorer : IAsyncDisposable
{
    // N = rows of one request, B = rows of one round (Σ N over the requests it gathered).
    private sealed class Pending(EncodedInput[] rows, int tokens, CancellationToken cancellation)
    {
        public const int Queued = 0, Taken = 1, Running = 2, Cancelled = 3;
        public readonly EncodedInput[] Rows = rows;
        public readonly int Tokens = tokens;
        public readonly CancellationToken Cancellation = cancellation;
        public readonly TaskCompletionSource<IReadOnlyList<RewardScore>> Completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public int State;                    // Queued (in the channel) → Taken (read by the loop) → Running, or → Cancelled
    }

    private readonly RewardModel _model;
    private readonly RewardScorerOptions _settings;
    private readonly Channel<Pending> _queue;
    private readonly Microsoft.Extensions.Logging.ILogger _logger;
    private readonly Task _loop;
    private Pending? _carry;                 // a request that did not fit the previous round; first in the next
    private int _admittedRows;               // rows admitted (queued, running or run by RunExclusiveAsync) and not yet answered
    private int _queuedRows;                 // rows waiting in the channel (the queue-depth gauge)
    private volatile bool _closed;

    /// <summary>Starts the scorer's loop over <paramref name="model"/> (which the caller keeps owning and disposes after
    /// <see cref="DrainAsync"/>).</summary>
    public RewardScorer(RewardModel model, RewardScorerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        options ??= new RewardScorerOptions();
        options.Validate();
        _model = model;
        _settings = options;
        _logger = model.Options.CreateLogger("OnnxReward.RewardScorer");
        _queue = Channel.CreateBounded<Pending>(new BoundedChannelOptions(options.QueueCapacity)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,   // TryWrite fails when full: the caller answers 503
        });
        _loop = Task.Factory.StartNew(RunAsync, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();
    }

    /// <summary>The model the rounds run on.</summary>
    public RewardModel Model => _model;

    /// <summary>Rows admitted (queued or running) and not yet answered.</summary>
    public int AdmittedRows => Volatile.Read(ref _admittedRows);

    /// <summary>Rows waiting in the queue for a round (the queue-depth gauge).</summary>
    public int QueuedRows => Volatile.Read(ref _queuedRows);

    /// <summary>Encodes <paramref name="conversations"/> on the calling thread (so a bad one fails this call only), then
    /// queues them as one request.</summary>
    /// <exception cref="RewardModelException">A conversation cannot be encoded; nothing was queued.</exception>
    /// <exception cref="ScorerBusyException">The queue is full or the scorer is shutting down.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public Task<IReadOnlyList<RewardScore>> ScoreAsync(IReadOnlyList<Conversation> conversations, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(conversations);
        return ScoreAsync(conversations.Select(c => new ScoringInput(c, null, null)).ToArray(), cancellationToken);
    }

    /// <summary>Encodes inputs of any form on the calling thread (so a bad one fails this call only, naming its index),
    /// then queues them as one request.</summary>
    /// <exception cref="RewardModelException">An input cannot be encoded; nothing was queued.</exception>
    /// <exception cref="ScorerBusyException">The queue is full or the scorer is shutting down.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public Task<IReadOnlyList<RewardScore>> ScoreAsync(IReadOnlyList<ScoringInput> inputs, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        var encoded = new EncodedInput[inputs.Count];
        for (var i = 0; i < encoded.Length; i++)
            encoded[i] = _model.Encode(inputs[i], i, cancellationToken);
        return ScoreAsync(encoded, cancellationToken);
    }

    /// <summary>Queues one request's encoded inputs; the task completes with their scores in order.</summary>
    /// <exception cref="RewardModelException">An input cannot be scored (null, or encoded for embedding).</exception>
    /// <exception cref="ScorerBusyException">The queue is full or the scorer is shutting down.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled first.</exception>
    public async Task<IReadOnlyList<RewardScore>> ScoreAsync(IReadOnlyList<EncodedInput> inputs, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        if (inputs.Count == 0)
            return [];
        cancellationToken.ThrowIfCancellationRequested();
        _model.CheckScorable(inputs);
        var rows = inputs.ToArray();                 // the caller's list may change after this call returns
        var tokens = 0;
        foreach (var r in rows)
            tokens += r.TokenCount;
        Reserve(rows.Length);
        var pending = new Pending(rows, tokens, cancellationToken);
        AddQueued(rows.Length);
        if (!_queue.Writer.TryWrite(pending))
        {
            AddQueued(-rows.Length);
            Release(rows.Length);
            throw new ScorerBusyException(_closed ? ShuttingDown : QueueFull(), _closed);
        }
        try
        {
            await using var dropped = cancellationToken.Register(() => Cancel(pending)).ConfigureAwait(false);
            return await pending.Completion.Task.ConfigureAwait(false);
        }
        finally
        {
            Release(rows.Length);
        }
    }

    /// <summary>A cancelled request leaves the queue now; one already running is left to its round (which stops when
    /// all of its requests are cancelled).</summary>
    private void Cancel(Pending p)
    {
        while (true)
        {
            var state = Volatile.Read(ref p.State);
            if (state is Pending.Running or Pending.Cancelled)
                return;
            if (Interlocked.CompareExchange(ref p.State, Pending.Cancelled, state) != state)
                continue;
            if (state == Pending.Queued)
                AddQueued(-p.Rows.Length);
            p.Completion.TrySetCanceled(p.Cancellation);
            return;
        }
    }

    /// <summary>Takes a request read from the channel: false when it was cancelled while queued (skip it).</summary>
    private bool Take(Pending p)
    {
        if (Interlocked.CompareExchange(ref p.State, Pending.Taken, Pending.Queued) != Pending.Queued)
            return false;
        AddQueued(-p.Rows.Length);
        return true;
    }

    /// <summary>
    /// Runs work that scores <paramref name="rows"/> rows by itself (best-of-n: its candidates are already one batch)
    /// under the same admission bound as <see cref="ScoreAsync(IReadOnlyList{EncodedInput}, CancellationToken)"/>, on the thread pool.
    /// </summary>
    /// <exception cref="ScorerBusyException">The queue is full or the scorer is shutting down.</exception>
    public async Task<T> RunExclusiveAsync<T>(int rows, Func<CancellationToken, T> work, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        Reserve(rows);
        try
        {
            return await Task.Run(() => work(cancellationToken), cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Release(rows);
        }
    }

    private void Reserve(int rows)
    {
        if (_closed)
            throw new ScorerBusyException(ShuttingDown, shuttingDown: true);
        if (Interlocked.Add(ref _admittedRows, rows) > _settings.QueueCapacity)
        {
            Interlocked.Add(ref _admittedRows, -rows);
            throw new ScorerBusyException(QueueFull(), shuttingDown: false);
        }
        RewardModelTelemetry.AdmittedRows.Add(rows);
    }

    private void Release(int rows)
    {
        Interlocked.Add(ref _admittedRows, -rows);
        RewardModelTelemetry.AdmittedRows.Add(-rows);
    }

    private void AddQueued(int rows)
    {
        Interlocked.Add(ref _queuedRows, rows);
        RewardModelTelemetry.QueuedRows.Add(rows);
    }

    private const string ShuttingDown = "the service is shutting down and takes no new requests; retry against another instance.";

    private string QueueFull() =>
        $"the scoring queue is full ({_settings.QueueCapacity} rows pending, QueueCapacity / --queue-capacity); retry after the " +
        "Retry-After delay or send fewer concurrent requests.";

    /// <summary>Stops admitting, scores everything already queued, then returns (graceful shutdown drains the queue).</summary>
    public async Task DrainAsync()
    {
        _closed = true;
        _queue.Writer.TryComplete();
        await _loop.ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync() => await DrainAsync().ConfigureAwait(false);

    private async Task RunAsync()
    {
        var reader = _queue.Reader;
        var round = new List<Pending>();
        var maxWait = _settings.MaxWait;
        while (true)
        {
            // 1. The first request of the round (blocks while idle; ends when the channel is completed and empty).
            var first = _carry;
            _carry = null;
            if (first is null)
            {
                if (!await reader.WaitToReadAsync().ConfigureAwait(false))
                    break;
                if (!reader.TryRead(out first) || !Take(first))
                    continue;
            }
            round.Clear();
            round.Add(first);
            int rows = first.Rows.Length, tokens = first.Tokens;

            // 2. Gather what else arrives within MaxWait, up to the row and token budgets.
            var deadline = Stopwatch.GetTimestamp() + (long)(maxWait.TotalSeconds * Stopwatch.Frequency);
            while (rows < _settings.MaxBatchSize && tokens < _settings.MaxBatchTokens)
            {
                if (reader.TryRead(out var next))
                {
                    if (!Take(next))
                        continue;
                    if (rows + next.Rows.Length > _settings.MaxBatchSize || tokens + next.Tokens > _settings.MaxBatchTokens)
                    {
                        _carry = next;
                        break;
                    }
                    round.Add(next);
                    rows += next.Rows.Length;
                    tokens += next.Tokens;
                    continue;
                }
                var remaining = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), deadline);
                if (remaining <= TimeSpan.Zero || !await WaitToRead(reader, remaining).ConfigureAwait(false))
                    break;
            }

            // 3. Score the round as one row list and hand each request its slice.
            await ScoreRound(round, rows, tokens).ConfigureAwait(false);
        }
    }

    private static async Task<bool> WaitToRead(ChannelReader<Pending> reader, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            return await reader.WaitToReadAsync(cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private async Task ScoreRound(List<Pending> round, int rows, int tokens)
    {
        var registrations = new List<CancellationTokenRegistration>(round.Count);
        using var stop = new CancellationTokenSource();
        Activity? activity = null;
        try
        {
            if (_settings.BeforeRound is { } gate)
                await gate().ConfigureAwait(false);
            // Requests cancelled while they waited for this round are dropped before anything runs.
            round.RemoveAll(p => Interlocked.CompareExchange(ref p.State, Pending.Running, Pending.Taken) != Pending.Taken);
            if (round.Count == 0)
                return;
            rows = tokens = 0;
            foreach (var p in round)
            {
                rows += p.Rows.Length;
                tokens += p.Tokens;
            }
            // The run stops (RunOptions.Terminate) once every request in the round is cancelled.
            var live = round.Count;
            foreach (var p in round)
                registrations.Add(p.Cancellation.Register(() =>
                {
                    if (Interlocked.Decrement(ref live) == 0)
                        stop.Cancel();
                }));
            var all = new EncodedInput[rows];                                   // (B)
            var offset = 0;
            foreach (var p in round)
            {
                p.Rows.CopyTo(all, offset);
                offset += p.Rows.Length;
            }
            activity = RewardModelTelemetry.Source.StartActivity("onnxreward.scorer.round");
            activity?.SetTag("onnxreward.rows", rows);
            activity?.SetTag("onnxreward.tokens", tokens);
            activity?.SetTag("onnxreward.requests", round.Count);
            var started = Stopwatch.GetTimestamp();
            var scores = _model.Score(all, stop.Token);                   // (B) results in row order
            var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
            RewardModelTelemetry.RoundDuration.Record(seconds);
            RewardModelTelemetry.RoundRows.Record(rows);
            _settings.RoundCompleted?.Invoke(new ScorerRound(rows, tokens, round.Count, seconds));
            offset = 0;
            foreach (var p in round)
            {
                var slice = new RewardScore[p.Rows.Length];                   // (N)
                for (var i = 0; i < slice.Length; i++)
                    slice[i] = scores[offset + i];
                offset += slice.Length;
                p.Completion.TrySetResult(slice);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            activity?.SetStatus(ActivityStatusCode.Error, "cancelled: every request of the round went away");
            foreach (var p in round)
                p.Completion.TrySetCanceled(p.Cancellation);
        }
        catch (Exception e)
        {
            activity?.SetStatus(ActivityStatusCode.Error, e.Message);
            if (e is not RewardModelException)
                Log.RoundFailed(_logger, e, rows, round.Count);
            foreach (var p in round)
                p.Completion.TrySetException(e);
        }
        finally
        {
            activity?.Dispose();
            foreach (var r in registrations)
                r.Dispose();
        }
    }
}
