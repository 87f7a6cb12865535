using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;

namespace OnnxReward.Cli.Serving;

/// <summary>
/// The service's instruments (System.Diagnostics.Metrics, meter <c>OnnxReward.Serving</c>, so any OpenTelemetry or
/// dotnet-counters listener sees them) and a <see cref="MeterListener"/> that aggregates them into the Prometheus text
/// exposition format (version 0.0.4) for <c>GET /metrics</c>. OpenTelemetry's Prometheus exporter is not on this
/// environment's NuGet mirror, so the few lines of the format are written here.
/// <list type="bullet">
/// <item><c>onnxreward_requests_total{endpoint,status}</c>: HTTP requests answered.</item>
/// <item><c>onnxreward_request_duration_seconds{endpoint}</c>: latency histogram (receipt to response).</item>
/// <item><c>onnxreward_rows_total</c>, <c>onnxreward_tokens_total</c>: conversations and tokens scored.</item>
/// <item><c>onnxreward_batch_rows</c>, <c>onnxreward_batch_requests</c>: rows and requests per scoring round.</item>
/// <item><c>onnxreward_batch_duration_seconds</c>: model time per round.</item>
/// <item><c>onnxreward_queue_rows</c>, <c>onnxreward_admitted_rows</c>: rows waiting / admitted and unanswered.</item>
/// </list>
/// </summary>
internal sealed class ServingMetrics : IDisposable
{
    public const string MeterName = "OnnxReward.Serving";

    private static readonly double[] LatencyBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
    private static readonly double[] CountBuckets = [1, 2, 4, 8, 16, 32, 64, 128, 256];

    private readonly Meter _meter = new(MeterName);
    private readonly MeterListener _listener = new();
    private readonly Counter<long> _requests;
    private readonly Histogram<double> _requestDuration;
    private readonly Counter<long> _rows;
    private readonly Counter<long> _tokens;
    private readonly Histogram<int> _batchRows;
    private readonly Histogram<int> _batchRequests;
    private readonly Histogram<double> _batchDuration;
    private readonly object _lock = new();
    private readonly Dictionary<string, Series> _series = new(StringComparer.Ordinal);   // "name{labels}" → state
    private readonly Dictionary<string, (string Type, string Help)> _families = new(StringComparer.Ordinal);
    private Func<int>? _queueRows, _admittedRows;

    private sealed class Series(string name, string labels, double[]? bounds)
    {
        public readonly string Name = name, Labels = labels;
        public readonly double[]? Bounds = bounds;
        public readonly long[] Buckets = new long[(bounds?.Length ?? 0) + 1];   // cumulative at write time
        public double Sum;
        public long Count;
    }

    public ServingMetrics()
    {
        _requests = Family(_meter.CreateCounter<long>("onnxreward_requests_total", description: "HTTP requests answered, by endpoint and status."), "counter");
        _requestDuration = Family(_meter.CreateHistogram<double>("onnxreward_request_duration_seconds", "s", "Request latency from receipt to response."), "histogram");
        _rows = Family(_meter.CreateCounter<long>("onnxreward_rows_total", description: "Conversations scored by the batcher."), "counter");
        _tokens = Family(_meter.CreateCounter<long>("onnxreward_tokens_total", description: "Tokens scored by the batcher."), "counter");
        _batchRows = Family(_meter.CreateHistogram<int>("onnxreward_batch_rows", description: "Rows per scoring round (cross-request batch size)."), "histogram");
        _batchRequests = Family(_meter.CreateHistogram<int>("onnxreward_batch_requests", description: "Requests merged into one scoring round."), "histogram");
        _batchDuration = Family(_meter.CreateHistogram<double>("onnxreward_batch_duration_seconds", "s", "Model time per scoring round."), "histogram");
        Family(_meter.CreateObservableGauge("onnxreward_queue_rows", () => _queueRows?.Invoke() ?? 0, description: "Rows waiting in the queue."), "gauge");
        Family(_meter.CreateObservableGauge("onnxreward_admitted_rows", () => _admittedRows?.Invoke() ?? 0,
            description: "Rows admitted and not yet answered (bounded by --queue-capacity)."), "gauge");

        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (ReferenceEquals(instrument.Meter, _meter))         // this server's meter only (tests run several)
                listener.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<long>((i, v, tags, _) => Record(i, v, tags));
        _listener.SetMeasurementEventCallback<int>((i, v, tags, _) => Record(i, v, tags));
        _listener.SetMeasurementEventCallback<double>((i, v, tags, _) => Record(i, v, tags));
        _listener.Start();
    }

    private T Family<T>(T instrument, string type) where T : Instrument
    {
        _families[instrument.Name] = (type, instrument.Description ?? "");
        return instrument;
    }

    public void ObserveQueue(Func<int> queueRows, Func<int> admittedRows) => (_queueRows, _admittedRows) = (queueRows, admittedRows);

    public void RecordRequest(string endpoint, int status, double seconds)
    {
        _requests.Add(1, new KeyValuePair<string, object?>("endpoint", endpoint), new KeyValuePair<string, object?>("status", status));
        _requestDuration.Record(seconds, new KeyValuePair<string, object?>("endpoint", endpoint));
    }

    public void RecordRound(int rows, int tokens, int requests, double seconds)
    {
        _rows.Add(rows);
        _tokens.Add(tokens);
        _batchRows.Record(rows);
        _batchRequests.Record(requests);
        _batchDuration.Record(seconds);
    }

    private void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var labels = new StringBuilder();
        foreach (var tag in tags)
        {
            labels.Append(labels.Length == 0 ? "" : ",").Append(tag.Key).Append("=\"")
                .Append(Escape(Convert.ToString(tag.Value, CultureInfo.InvariantCulture) ?? "")).Append('"');
        }
        var key = instrument.Name + "{" + labels + "}";
        var type = _families[instrument.Name].Type;
        lock (_lock)
        {
            if (!_series.TryGetValue(key, out var s))
                _series[key] = s = new Series(instrument.Name, labels.ToString(),
                    type != "histogram" ? null : instrument.Name.EndsWith("_seconds", StringComparison.Ordinal) ? LatencyBuckets : CountBuckets);
            switch (type)
            {
                case "counter": s.Sum += value; break;
                case "gauge": s.Sum = value; break;
                default:
                    var b = 0;
                    while (b < s.Bounds!.Length && value > s.Bounds[b]) b++;
                    s.Buckets[b]++;
                    s.Sum += value;
                    s.Count++;
                    break;
            }
        }
    }

    private static string Escape(string v) => v.Replace("\\", "\\\\").Replace("\"", "\\\"").Replace("\n", "\\n");

    /// <summary>The current values in the Prometheus text format.</summary>
    public string ToPrometheusText()
    {
        _listener.RecordObservableInstruments();
        var sb = new StringBuilder();
        lock (_lock)
        {
            foreach (var (name, (type, help)) in _families)
            {
                sb.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n');
                sb.Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');
                var any = false;
                foreach (var s in _series.Values.Where(s => s.Name == name).OrderBy(s => s.Labels, StringComparer.Ordinal))
                {
                    any = true;
                    if (type != "histogram")
                    {
                        sb.Append(name).Append(Braces(s.Labels)).Append(' ').Append(Number(s.Sum)).Append('\n');
                        continue;
                    }
                    long cumulative = 0;
                    for (var b = 0; b <= s.Bounds!.Length; b++)
                    {
                        cumulative += s.Buckets[b];
                        var le = b < s.Bounds.Length ? Number(s.Bounds[b]) : "+Inf";
                        sb.Append(name).Append("_bucket").Append(Braces(Join(s.Labels, $"le=\"{le}\""))).Append(' ').Append(cumulative).Append('\n');
                    }
                    sb.Append(name).Append("_sum").Append(Braces(s.Labels)).Append(' ').Append(Number(s.Sum)).Append('\n');
                    sb.Append(name).Append("_count").Append(Braces(s.Labels)).Append(' ').Append(s.Count).Append('\n');
                }
                if (!any && type == "counter" && !name.Contains("requests"))
                    sb.Append(name).Append(" 0\n");
            }
        }
        return sb.ToString();
    }

    private static string Join(string a, string b) => a.Length == 0 ? b : a + "," + b;
    private static string Braces(string labels) => labels.Length == 0 ? "" : "{" + labels + "}";
    private static string Number(double v) => v.ToString("R", CultureInfo.InvariantCulture);

    public void Dispose()
    {
        _listener.Dispose();
        _meter.Dispose();
    }
}
