using System.Diagnostics;
using System.Threading.Channels;

namespace OnnxReward.Cli.Serving;

/// <summary>The service cannot take the request now (queue full, or shutting down): answer 503 with Retry-After.</summary>
internal sealed class ServiceBusyException(string message) : Exception(message);

/// <summary>
/// Dynamic batching across concurrent HTTP requests (the shape of TEI's <c>core/src/queue.rs</c>):
/// <code>
/// handlers ──Submit(rows)──▶ bounded channel of requests ──▶ one loop: take the first, then whatever else arrives
///                                                                within MaxWait (≤ MaxBatchSize rows, ≤ MaxBatchTokens)
///                                                            ──▶ RewardModel.ScoreRows(all rows) ──▶ each request's TCS
/// </code>
/// Admission is bounded twice: the channel holds at most <see cref="ServeSettings.QueueCapacity"/> requests, and the
/// rows admitted but not yet answered never exceed <see cref="ServeSettings.QueueCapacity"/> either; beyond that
/// <see cref="Submit"/> throws <see cref="ServiceBusyException"/> at once instead of growing. A row's score does not
/// depend on its batch neighbours (causal attention, right padding), so results equal the library's for the same input.
/// <para>Cancellation (the client went away, or the request's deadline passed): a request still queued is dropped at
/// once (its task ends cancelled, its rows no longer count against the queue, the loop skips it); a round whose every
/// request is cancelled is stopped mid-run (RunOptions.Terminate); a round shared with live requests runs on for them.</para>
/// </summary>
internal sealed class DynamicBatcher : IAsyncDisposable
{
    // N = rows of one request, B = rows of one round (Σ N over the requests it gathered).
    private sealed class Pending(ScoringRow[] rows, int tokens, CancellationToken cancellation)
    {
        public const int Queued = 0, Taken = 1, Running = 2, Cancelled = 3;
        public readonly ScoringRow[] Rows = rows;
        public readonly int Tokens = tokens;
        public readonly CancellationToken Cancellation = cancellation;
        public readonly TaskCompletionSource<IReadOnlyList<RewardScore>> Completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public int State;                    // Queued (in the channel) → Taken (read by the loop) → Running, or → Cancelled
    }

    private readonly RewardModel _model;
    private readonly ServeSettings _settings;
    private readonly ServingMetrics _metrics;
    private readonly Channel<Pending> _queue;
    private readonly Task _loop;
    private Pending? _carry;                 // a request that did not fit the previous round; first in the next
    private int _admittedRows;               // rows admitted (queued, running or run by Admit) and not yet answered
    private int _queuedRows;                 // rows waiting in the channel (the queue-depth gauge)
    private volatile bool _closed;

    public DynamicBatcher(RewardModel model, ServeSettings settings, ServingMetrics metrics)
    {
        _model = model;
        _settings = settings;
        _metrics = metrics;
        _queue = Channel.CreateBounded<Pending>(new BoundedChannelOptions(settings.QueueCapacity)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,   // TryWrite fails when full: the caller answers 503
        });
        metrics.ObserveQueue(() => Volatile.Read(ref _queuedRows), () => Volatile.Read(ref _admittedRows));
        _loop = Task.Factory.StartNew(RunAsync, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();
    }

    /// <summary>Rows admitted and not yet answered.</summary>
    public int AdmittedRows => Volatile.Read(ref _admittedRows);

    /// <summary>Queues one request's rows; the task completes with their scores in order.</summary>
    /// <exception cref="ServiceBusyException">The queue is full or the service is shutting down.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled first.</exception>
    public async Task<IReadOnlyList<RewardScore>> Submit(ScoringRow[] rows, CancellationToken cancellationToken = default)
    {
        if (rows.Length == 0)
            return [];
        cancellationToken.ThrowIfCancellationRequested();
        Reserve(rows.Length);
        var tokens = 0;
        foreach (var r in rows)
            tokens += r.Ids.Length;
        var pending = new Pending(rows, tokens, cancellationToken);
        Interlocked.Add(ref _queuedRows, rows.Length);
        if (!_queue.Writer.TryWrite(pending))
        {
            Interlocked.Add(ref _queuedRows, -rows.Length);
            Release(rows.Length);
            throw new ServiceBusyException(_closed ? ShuttingDown : QueueFull());
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
                Interlocked.Add(ref _queuedRows, -p.Rows.Length);
            p.Completion.TrySetCanceled(p.Cancellation);
            return;
        }
    }

    /// <summary>Takes a request read from the channel: false when it was cancelled while queued (skip it).</summary>
    private bool Take(Pending p)
    {
        if (Interlocked.CompareExchange(ref p.State, Pending.Taken, Pending.Queued) != Pending.Queued)
            return false;
        Interlocked.Add(ref _queuedRows, -p.Rows.Length);
        return true;
    }

    /// <summary>
    /// Runs work that scores <paramref name="rows"/> rows by itself (best-of-n: its candidates are already one batch)
    /// under the same admission bound as <see cref="Submit"/>, on the thread pool.
    /// </summary>
    public async Task<T> Admit<T>(int rows, Func<CancellationToken, T> work, CancellationToken cancellationToken = default)
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
            throw new ServiceBusyException(ShuttingDown);
        if (Interlocked.Add(ref _admittedRows, rows) > _settings.QueueCapacity)
        {
            Interlocked.Add(ref _admittedRows, -rows);
            throw new ServiceBusyException(QueueFull());
        }
    }

    private void Release(int rows) => Interlocked.Add(ref _admittedRows, -rows);

    private const string ShuttingDown = "the service is shutting down and takes no new requests; retry against another instance.";

    private string QueueFull() =>
        $"the scoring queue is full ({_settings.QueueCapacity} rows pending, --queue-capacity); retry after the Retry-After delay " +
        "or send fewer concurrent requests.";

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
        var maxWait = TimeSpan.FromMilliseconds(_settings.MaxWaitMs);
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
            var all = new ScoringRow[rows];                                   // (B)
            var offset = 0;
            foreach (var p in round)
            {
                p.Rows.CopyTo(all, offset);
                offset += p.Rows.Length;
            }
            var started = Stopwatch.GetTimestamp();
            var scores = _model.ScoreRows(all, stop.Token);                   // (B) results in row order
            _metrics.RecordRound(rows, tokens, round.Count, Stopwatch.GetElapsedTime(started).TotalSeconds);
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
            foreach (var p in round)
                p.Completion.TrySetCanceled(p.Cancellation);
        }
        catch (Exception e)
        {
            foreach (var p in round)
                p.Completion.TrySetException(e);
        }
        finally
        {
            foreach (var r in registrations)
                r.Dispose();
        }
    }
}
