using System.Text.Json;
using static OnnxReward.Cli.Tests.Serving.ServingFixture;

namespace OnnxReward.Cli.Tests.Serving;

/// <summary>
/// Issue 13: the library's async scorer, <see cref="RewardModel.Score(IReadOnlyList{Conversation}, CancellationToken)"/>
/// and the HTTP server are one pipeline (one encoder, one batcher, one backend), so the same conversations get the same
/// results through all three — within <see cref="ServingFixture.Tolerance"/>, which covers only ORT's GEMM blocking for
/// other batch shapes (the batches differ: one call, merged concurrent rounds, one request per HTTP call).
/// </summary>
public class OnePipelineTests
{
    private static List<Conversation> Conversations() => Enumerable.Range(0, 24).Select(i => Conversation.FromPromptResponse(
        $"Request {i}: name {1 + i % 4} fruits.", string.Join(", ", Enumerable.Repeat("apple, pear", 1 + i % 6)))).ToList();

    [Test]
    public async Task ScorerFromManyCallersLibraryAndServerAgree()
    {
        var model = TinyModel;
        var conversations = Conversations();
        var direct = model.Score(conversations);                                      // (b) one call

        // (a) 8 concurrent callers of one scorer, 3 conversations each, released together so their rounds merge.
        var rounds = 0;
        await using (var scorer = new RewardScorer(model, new RewardScorerOptions
        {
            MaxWait = TimeSpan.FromMilliseconds(100), RoundCompleted = _ => Interlocked.Increment(ref rounds),
        }))
        {
            using var start = new ManualResetEventSlim();
            var callers = Enumerable.Range(0, 8).Select(c => Task.Run(async () =>
            {
                start.Wait();
                return await scorer.ScoreAsync(conversations.Skip(3 * c).Take(3).ToList());
            })).ToList();
            start.Set();
            var viaScorer = (await Task.WhenAll(callers)).SelectMany(r => r).ToList();
            Assert.That(viaScorer, Has.Count.EqualTo(direct.Count));
            for (var i = 0; i < direct.Count; i++)
            {
                Assert.That(viaScorer[i].Score, Is.EqualTo(direct[i].Score).Within(Tolerance), $"scorer {i}: score");
                Assert.That(viaScorer[i].RewardValues, Is.EqualTo(direct[i].RewardValues).Within(Tolerance), $"scorer {i}: rewards");
                Assert.That(viaScorer[i].GatingValues, Is.EqualTo(direct[i].GatingValues).Within(Tolerance), $"scorer {i}: gating");
                Assert.That(viaScorer[i].TokenCount, Is.EqualTo(direct[i].TokenCount), $"scorer {i}: tokens");
            }
            Assert.That(rounds, Is.LessThan(8), "concurrent callers shared rounds");
            Assert.That((scorer.QueuedRows, scorer.AdmittedRows), Is.EqualTo((0, 0)), "nothing left admitted");
        }

        // (c) the HTTP server (which holds its own RewardScorer), one request per conversation.
        await using var s = await Start();
        for (var i = 0; i < conversations.Count; i++)
        {
            var body = Json(new { conversations = new[] { new { messages = conversations[i].Messages.Select(m => new { role = m.Role, content = m.Content }) } } });
            var (status, json) = await s.PostJson("/v1/score", body);
            Assert.That(status, Is.EqualTo(200), json.ToString());
            AssertSame(json.GetProperty("results")[0], direct[i], $"server {i}");
        }
    }

    [Test]
    public async Task ACancelledQueuedRequestLeavesTheQueueBeforeItRunsAndTheOthersAreScored()
    {
        var model = TinyModel;
        var conversations = Conversations();
        using var hold = new SemaphoreSlim(0);
        var gatedRounds = 0;
        var scoredRows = 0;
        await using var scorer = new RewardScorer(model, new RewardScorerOptions
        {
            // The first round waits at the gate, so later requests queue behind it deterministically.
            BeforeRound = async () =>
            {
                if (Interlocked.Increment(ref gatedRounds) == 1)
                    await hold.WaitAsync();
            },
            RoundCompleted = r => Interlocked.Add(ref scoredRows, r.Rows),
        });
        var first = scorer.ScoreAsync(conversations.Take(2).ToList());
        await WaitFor(() => scorer.QueuedRows == 0 && scorer.AdmittedRows == 2);      // taken by the held round
        using var cancel = new CancellationTokenSource();
        var queued = scorer.ScoreAsync(conversations.Skip(2).Take(5).ToList(), cancel.Token);
        var kept = scorer.ScoreAsync(conversations.Skip(7).Take(1).ToList());
        await WaitFor(() => scorer.QueuedRows == 6);
        cancel.Cancel();
        Assert.ThrowsAsync<TaskCanceledException>(async () => await queued);
        Assert.That(scorer.QueuedRows, Is.EqualTo(1), "the cancelled request's 5 rows left the queue at once");
        Assert.That(scorer.AdmittedRows, Is.EqualTo(3), "and no longer count against the admission bound");
        hold.Release();
        var a = await first;
        var c = await kept;
        Assert.That(a[0].Score, Is.EqualTo(model.Score(conversations[0]).Score).Within(Tolerance));
        Assert.That(c[0].Score, Is.EqualTo(model.Score(conversations[7]).Score).Within(Tolerance));
        Assert.That(scoredRows, Is.EqualTo(3), "the cancelled rows never ran");
        Assert.That(scorer.AdmittedRows, Is.EqualTo(0));
    }

    [Test]
    public async Task TheScorerRefusesWhenFullAndWhenDrained()
    {
        var model = TinyModel;
        using var hold = new SemaphoreSlim(0);
        var scorer = new RewardScorer(model, new RewardScorerOptions { QueueCapacity = 3, BeforeRound = () => hold.WaitAsync() });
        var first = scorer.ScoreAsync(Conversations().Take(3).ToList());
        var full = Assert.ThrowsAsync<ScorerBusyException>(() => scorer.ScoreAsync(Conversations().Take(1).ToList()))!;
        Assert.That(full.ShuttingDown, Is.False);
        Assert.That(full.Message, Does.Contain("queue is full").And.Contain("QueueCapacity"));
        var encodedForEmbedding = model.EncodeForEmbedding(Text.Conversations.ScoringInput.FromConversation(Conversations()[0]));
        var e = Assert.ThrowsAsync<RewardModelException>(() => scorer.ScoreAsync([encodedForEmbedding]))!;
        Assert.That(e.Message, Does.Contain("without a gating position"));
        hold.Release(10);
        Assert.That(await first, Has.Count.EqualTo(3));
        await scorer.DrainAsync();
        var closed = Assert.ThrowsAsync<ScorerBusyException>(() => scorer.ScoreAsync(Conversations().Take(1).ToList()))!;
        Assert.That(closed.ShuttingDown, Is.True);
    }

    private static async Task WaitFor(Func<bool> condition)
    {
        for (var i = 0; i < 600 && !condition(); i++)
            await Task.Delay(50);
        Assert.That(condition(), Is.True, "the scorer reached the expected state within 30 s");
    }
}
