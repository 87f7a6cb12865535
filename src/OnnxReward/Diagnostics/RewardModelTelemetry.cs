using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace OnnxReward.Diagnostics;

/// <summary>
/// The library's metrics and traces: one <see cref="System.Diagnostics.Metrics.Meter"/> and one
/// <see cref="System.Diagnostics.ActivitySource"/>, both named <see cref="MeterName"/> ("OnnxReward"). Any listener
/// sees them: OpenTelemetry (<c>AddMeter("OnnxReward")</c>, <c>AddSource("OnnxReward")</c>), dotnet-counters,
/// dotnet-trace or a <see cref="MeterListener"/>. Instruments (OpenTelemetry names; a Prometheus exporter writes the
/// name in brackets):
/// <list type="bullet">
/// <item><c>onnxreward.rows</c> [onnxreward_rows_total]: rows (inputs) run through the model, scored or embedded.</item>
/// <item><c>onnxreward.tokens</c> [onnxreward_tokens_total]: real tokens of those rows.</item>
/// <item><c>onnxreward.padding_tokens</c> [onnxreward_padding_tokens_total]: padding the batches added (rows ×
///   padded length − tokens): the work wasted on right padding.</item>
/// <item><c>onnxreward.batch.duration</c> (s) [onnxreward_batch_duration_seconds]: one ONNX Runtime run (one batch).</item>
/// <item><c>onnxreward.scorer.round.duration</c> (s) and <c>onnxreward.scorer.round.rows</c>: one
///   <see cref="RewardScorer"/> round (the batches of the requests it merged) and its rows.</item>
/// <item><c>onnxreward.scorer.queued_rows</c> [onnxreward_scorer_queued_rows]: rows waiting in a scorer's queue.</item>
/// <item><c>onnxreward.scorer.admitted_rows</c> [onnxreward_scorer_admitted_rows]: rows admitted (queued or running)
///   and not yet answered, bounded by <see cref="RewardScorerOptions.QueueCapacity"/>.</item>
/// </list>
/// Activities: <c>onnxreward.batch</c> around each ONNX Runtime run (tags <c>onnxreward.rows</c>,
/// <c>onnxreward.tokens</c>, <c>onnxreward.padded_length</c>) and <c>onnxreward.scorer.round</c> around each scorer
/// round (rows, tokens, <c>onnxreward.requests</c>). Both cost nothing while nobody listens.
/// </summary>
public static class RewardModelTelemetry
{
    /// <summary>Name of the library's <see cref="System.Diagnostics.Metrics.Meter"/>.</summary>
    public const string MeterName = "OnnxReward";

    /// <summary>Name of the library's <see cref="System.Diagnostics.ActivitySource"/>.</summary>
    public const string ActivitySourceName = "OnnxReward";

    /// <summary>Instrument names, for listeners and dashboards.</summary>
    public static class Instruments
    {
        /// <summary>Counter of rows run through the model.</summary>
        public const string Rows = "onnxreward.rows";

        /// <summary>Counter of real tokens in those rows.</summary>
        public const string Tokens = "onnxreward.tokens";

        /// <summary>Counter of padding tokens the batches added.</summary>
        public const string PaddingTokens = "onnxreward.padding_tokens";

        /// <summary>Histogram of seconds per ONNX Runtime run (batch).</summary>
        public const string BatchDuration = "onnxreward.batch.duration";

        /// <summary>Histogram of seconds per scorer round.</summary>
        public const string RoundDuration = "onnxreward.scorer.round.duration";

        /// <summary>Histogram of rows per scorer round (how many rows cross-request batching merged).</summary>
        public const string RoundRows = "onnxreward.scorer.round.rows";

        /// <summary>Up-down counter of rows waiting in scorer queues.</summary>
        public const string QueuedRows = "onnxreward.scorer.queued_rows";

        /// <summary>Up-down counter of rows admitted and not yet answered.</summary>
        public const string AdmittedRows = "onnxreward.scorer.admitted_rows";
    }

    internal static readonly ActivitySource Source = new(ActivitySourceName, typeof(RewardModelTelemetry).Assembly.GetName().Version?.ToString());

    internal static readonly Meter Meter = new(MeterName, typeof(RewardModelTelemetry).Assembly.GetName().Version?.ToString());

    // Second-scale boundaries: a tiny model's batch takes ~1 ms on a CPU, an 8B model's seconds.
    private static readonly InstrumentAdvice<double> SecondsAdvice = new()
    {
        HistogramBucketBoundaries = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    };

    private static readonly InstrumentAdvice<int> RowsAdvice = new() { HistogramBucketBoundaries = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024] };

    internal static readonly Counter<long> Rows = Meter.CreateCounter<long>(Instruments.Rows, "{row}", "Rows (inputs) run through the model, scored or embedded.");
    internal static readonly Counter<long> Tokens = Meter.CreateCounter<long>(Instruments.Tokens, "{token}", "Real tokens of the rows run through the model.");
    internal static readonly Counter<long> PaddingTokens = Meter.CreateCounter<long>(Instruments.PaddingTokens, "{token}",
        "Padding tokens the batches added (rows x padded length - tokens): work wasted on right padding.");
    internal static readonly Histogram<double> BatchDuration = Meter.CreateHistogram(Instruments.BatchDuration, "s",
        "Seconds of one ONNX Runtime run (one token-budget batch).", advice: SecondsAdvice);
    internal static readonly Histogram<double> RoundDuration = Meter.CreateHistogram(Instruments.RoundDuration, "s",
        "Seconds of one RewardScorer round (every batch of the requests it merged).", advice: SecondsAdvice);
    internal static readonly Histogram<int> RoundRows = Meter.CreateHistogram(Instruments.RoundRows, "{row}",
        "Rows of one RewardScorer round (cross-request batch size).", advice: RowsAdvice);
    internal static readonly UpDownCounter<long> QueuedRows = Meter.CreateUpDownCounter<long>(Instruments.QueuedRows, "{row}",
        "Rows waiting in a RewardScorer queue for a round.");
    internal static readonly UpDownCounter<long> AdmittedRows = Meter.CreateUpDownCounter<long>(Instruments.AdmittedRows, "{row}",
        "Rows admitted by a RewardScorer (queued or running) and not yet answered; bounded by its QueueCapacity.");

    /// <summary>Records one ONNX Runtime run: <paramref name="rows"/> rows holding <paramref name="tokens"/> tokens,
    /// right-padded to <paramref name="paddedLength"/>.</summary>
    internal static void RecordBatch(int rows, long tokens, int paddedLength, double seconds)
    {
        Rows.Add(rows);
        Tokens.Add(tokens);
        PaddingTokens.Add((long)rows * paddedLength - tokens);
        BatchDuration.Record(seconds);
    }
}
