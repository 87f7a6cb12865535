using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using OnnxReward.Batching;
using OnnxReward.Diagnostics;
using OnnxReward.Tests.Scoring;
using OnnxReward.Text.Conversations;

namespace OnnxReward.Tests.Diagnostics;

/// <summary>The library's Meter and ActivitySource report what was scored: the values, not only the names.</summary>
[NonParallelizable]
public class RewardModelTelemetryTests
{
    /// <summary>Every measurement of the "OnnxReward" meter while it is alive, by instrument name.</summary>
    private sealed class Recorder : IDisposable
    {
        private readonly MeterListener _listener = new();
        public readonly ConcurrentDictionary<string, ConcurrentQueue<double>> Values = new();
        public readonly ConcurrentDictionary<string, string?> Units = new();

        public Recorder()
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == RewardModelTelemetry.MeterName)
                {
                    Units[instrument.Name] = instrument.Unit;
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<long>((i, v, _, _) => Add(i, v));
            _listener.SetMeasurementEventCallback<int>((i, v, _, _) => Add(i, v));
            _listener.SetMeasurementEventCallback<double>((i, v, _, _) => Add(i, v));
            _listener.Start();
        }

        private void Add(Instrument i, double v) => Values.GetOrAdd(i.Name, _ => new()).Enqueue(v);

        public double Sum(string name) => Values.TryGetValue(name, out var q) ? q.Sum() : 0;
        public int Count(string name) => Values.TryGetValue(name, out var q) ? q.Count : 0;
        public IReadOnlyList<double> All(string name) => Values.TryGetValue(name, out var q) ? q.ToList() : [];

        public void Dispose() => _listener.Dispose();
    }

    private static List<Conversation> Conversations() => Enumerable.Range(0, 7).Select(i => Conversation.FromPromptResponse(
        $"Question {i}?", string.Concat(Enumerable.Repeat("word ", 1 + 9 * i)))).ToList();

    [Test]
    public void ScoringRecordsRowsTokensPaddingAndOneDurationPerBatch()
    {
        // A small token budget and no padding bound force several batches with padding in them.
        using var model = RewardModel.Load(ExportedModels.ArmormTiny, new RewardModelOptions
        {
            ExecutionProvider = ExecutionProviderKind.Cpu, MaxBatchTokens = 256, MaxPaddingWaste = 1.0,
        });
        var conversations = Conversations();
        var encoded = conversations.Select((c, i) => model.Encode(ScoringInput.FromConversation(c), i)).ToList();
        var lengths = encoded.Select(e => e.TokenCount).ToArray();
        var plans = TokenBudgetBatcher.Plan(lengths, 256, model.Options.MaxBatchSize, 1.0);
        var padding = plans.Sum(p => p.PaddedTokens - p.Items.Sum(i => (long)lengths[i]));
        Assume.That(plans, Has.Count.GreaterThan(1), "the budget splits the rows");
        Assume.That(padding, Is.GreaterThan(0), "rows of different lengths share a batch");

        var activities = new ConcurrentQueue<Activity>();
        using var activityListener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == RewardModelTelemetry.ActivitySourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activities.Enqueue,
        };
        ActivitySource.AddActivityListener(activityListener);
        using var recorder = new Recorder();
        var scores = model.Score(encoded);

        Assert.That(recorder.Sum(RewardModelTelemetry.Instruments.Rows), Is.EqualTo(conversations.Count));
        Assert.That(recorder.Sum(RewardModelTelemetry.Instruments.Tokens), Is.EqualTo(scores.Sum(s => s.TokenCount)));
        Assert.That(recorder.Sum(RewardModelTelemetry.Instruments.PaddingTokens), Is.EqualTo(padding), "rows x padded length - tokens, per plan");
        Assert.That(recorder.Count(RewardModelTelemetry.Instruments.BatchDuration), Is.EqualTo(plans.Count), "one duration per ONNX run");
        Assert.That(recorder.All(RewardModelTelemetry.Instruments.BatchDuration), Has.All.InRange(1e-9, 60.0), "seconds");
        Assert.That(recorder.Units[RewardModelTelemetry.Instruments.BatchDuration], Is.EqualTo("s"));

        var batches = activities.Where(a => a.OperationName == "onnxreward.batch").ToList();
        Assert.That(batches, Has.Count.EqualTo(plans.Count));
        Assert.That(batches.Sum(a => (int)a.GetTagItem("onnxreward.rows")!), Is.EqualTo(conversations.Count));
        Assert.That(batches.Sum(a => (long)a.GetTagItem("onnxreward.tokens")!), Is.EqualTo(lengths.Sum()));
        Assert.That(batches.Select(a => (int)a.GetTagItem("onnxreward.padded_length")!), Is.EquivalentTo(plans.Select(p => p.PaddedLength)));
    }

    [Test]
    public async Task TheScorerReportsRoundsAndItsQueueDepthGoesBackToZero()
    {
        using var model = RewardModel.Load(ExportedModels.ArmormTiny, new RewardModelOptions { ExecutionProvider = ExecutionProviderKind.Cpu });
        var conversations = Conversations();
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var atGate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var recorder = new Recorder();
        await using (var scorer = new RewardScorer(model, new RewardScorerOptions
        {
            MaxBatchSize = 64,
            BeforeRound = () =>
            {
                atGate.TrySetResult();                   // the first round is gathered: later requests queue behind it
                return gate.Task;
            },
        }))
        {
            try
            {
                var first = scorer.ScoreAsync(conversations.Take(2).ToList());       // its round waits at the gate
                await atGate.Task.WaitAsync(TimeSpan.FromSeconds(10));
                var deadline = DateTime.UtcNow.AddSeconds(10);
                var second = scorer.ScoreAsync(conversations.Skip(2).ToList());      // queued behind it
                while (scorer.QueuedRows < 5 && DateTime.UtcNow < deadline)
                    await Task.Delay(5);
                Assert.That(recorder.Sum(RewardModelTelemetry.Instruments.QueuedRows), Is.EqualTo(5), "5 rows wait while the first round is held");
                Assert.That(recorder.Sum(RewardModelTelemetry.Instruments.AdmittedRows), Is.EqualTo(7), "7 rows admitted");
                gate.SetResult();
                await Task.WhenAll(first, second);
            }
            finally
            {
                gate.TrySetResult();                 // a failed assertion must not leave the drain waiting on the gate
            }
        }
        Assert.That(recorder.Sum(RewardModelTelemetry.Instruments.QueuedRows), Is.Zero, "the queue is empty again");
        Assert.That(recorder.Sum(RewardModelTelemetry.Instruments.AdmittedRows), Is.Zero, "every admitted row was answered");
        Assert.That(recorder.All(RewardModelTelemetry.Instruments.RoundRows), Is.EqualTo(new double[] { 2, 5 }), "rows per round");
        Assert.That(recorder.Count(RewardModelTelemetry.Instruments.RoundDuration), Is.EqualTo(2));
        Assert.That(recorder.Sum(RewardModelTelemetry.Instruments.Rows), Is.EqualTo(7));
    }
}
