using System.Net;
using System.Text;
using OnnxReward.Cli.Serving;
using OnnxReward.Hosting;
using OnnxReward.Text.Conversations;
using static OnnxReward.Cli.Tests.Serving.ServingFixture;

namespace OnnxReward.Cli.Tests.Serving;

/// <summary>Every protection of the service, one integration test each, over real HTTP on loopback.</summary>
[NonParallelizable]
public class ServingProtectionTests
{
    private static readonly string One = Json(new { conversations = new[] { new { prompt = "What is 2+2?", response = "4" } } });

    private static string Message(System.Text.Json.JsonElement body) => body.GetProperty("detail").GetString()!;

    [Test]
    public async Task BodiesOverTheLimitAre413WithOrWithoutContentLength()
    {
        await using var s = await Start(o => { o.MaxBodyBytes = 2048; });
        var big = Json(new { conversations = new[] { new { prompt = new string('a', 4000), response = "4" } } });
        var (status, body) = await s.PostJson("/v1/score", big);
        Assert.That(status, Is.EqualTo(413));
        Assert.That(Message(body), Does.Contain("over the limit of 2048 bytes (--max-body-bytes)"));

        // Chunked transfer (no Content-Length): the server stops reading past the limit.
        var chunked = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes(big)));
        chunked.Headers.ContentType = new("application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/score") { Content = chunked };
        request.Headers.TransferEncodingChunked = true;
        // The server answers 413 as soon as the limit is passed and stops reading; depending on timing the client either
        // reads that 413 or finds the connection closed while it is still writing (broken pipe). Both mean the body was
        // refused; what must never happen is a 2xx.
        try
        {
            using var response = await s.Client.SendAsync(request);
            Assert.That((int)response.StatusCode, Is.EqualTo(413), await response.Content.ReadAsStringAsync());
        }
        catch (HttpRequestException e) when (e.InnerException is IOException)
        {
            TestContext.Out.WriteLine($"server closed the oversized chunked upload before the client finished writing: {e.InnerException.Message}");
        }

        (status, _) = await s.PostJson("/v1/score", One);
        Assert.That(status, Is.EqualTo(200), "a body under the limit is served");
    }

    [Test]
    public async Task MoreConversationsThanTheLimitAre413()
    {
        await using var s = await Start(o => { o.MaxConversations = 3; o.QueueCapacity = 16; });
        var four = Json(new { conversations = Enumerable.Range(0, 4).Select(i => new { prompt = $"q{i}", response = "a" }) });
        var (status, body) = await s.PostJson("/v1/score", four);
        Assert.That(status, Is.EqualTo(413));
        Assert.That(Message(body), Does.Contain("has 4 items, over the limit of 3 per request (--max-conversations)"));
        (status, _) = await s.PostJson("/get_reward", Json(new { query = new[] { "a", "b", "c", "d" } }));
        Assert.That(status, Is.EqualTo(413));
        (status, _) = await s.PostJson("/v1/bon", Json(new { prompt = "p", candidates = new[] { "a", "b" }, reference_responses = new[] { "c", "d" } }));
        Assert.That(status, Is.EqualTo(413), "candidates + references count");
    }

    [Test]
    public async Task MalformedJsonAndInvalidConversationsAre400WithTheLibrarysMessage()
    {
        await using var s = await Start();
        var (status, body) = await s.PostJson("/v1/score", "{\"conversations\": [");
        Assert.That(status, Is.EqualTo(400));
        Assert.That(Message(body), Does.StartWith("the request body is not valid JSON"));

        (status, body) = await s.PostJson("/v1/score", "{\"items\": []}");
        Assert.That(status, Is.EqualTo(400));
        Assert.That(Message(body), Does.Contain("the body has no \"conversations\" array"));

        // The parser's own message, prefixed with where it is.
        var badInput = System.Text.Json.JsonDocument.Parse("{\"prompt\": \"x\"}").RootElement;
        var parserMessage = Assert.Throws<FormatException>(() => ScoringInput.FromJson(badInput))!.Message;
        (status, body) = await s.PostJson("/v1/score", Json(new { conversations = new object[] { new { prompt = "a", response = "b" }, new { prompt = "x" } } }));
        Assert.That(status, Is.EqualTo(400));
        Assert.That(Message(body), Is.EqualTo($"conversations[1]: {parserMessage}"));

        // A conversation the model rejects: exactly the library's RewardModelException message and index.
        var good = Conversation.FromPromptResponse("a", "b");
        var userOnly = Conversation.FromMessages([new ChatMessage("user", "no reply")]);
        var libraryMessage = Assert.Throws<RewardModelException>(() => TinyModel.Score([good, userOnly]))!.Message;
        (status, body) = await s.PostJson("/v1/score", Json(new { conversations = new object[]
        {
            new { prompt = "a", response = "b" }, new { messages = new[] { new { role = "user", content = "no reply" } } },
        } }));
        Assert.That(status, Is.EqualTo(400));
        Assert.That(Message(body), Is.EqualTo(libraryMessage));
        Assert.That(body.GetProperty("index").GetInt32(), Is.EqualTo(1));

        (status, body) = await s.PostJson("/v1/score", Json(new { conversations = new[] { new { input_ids = new[] { 1, 2, 999_999 } } } }));
        Assert.That(status, Is.EqualTo(400));
        Assert.That(Message(body), Does.Contain("outside the model's vocabulary"));
    }

    [Test]
    public async Task AFullQueueAnswers503WithRetryAfterWhileHealthStays200()
    {
        // The gate holds the batcher inside a round, so admitted rows stay admitted until it opens.
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var s = await Start(o => { o.QueueCapacity = 3; o.MaxConversations = 1; o.MaxWaitMs = 0; o.BeforeRound = () => gate.Task; });
        // A failed assertion must not leave the round held: shutdown drains the queue and would wait on the gate forever.
        await using var release = new GateRelease(gate);
        var accepted = new List<Task<HttpResponseMessage>>();
        HttpResponseMessage? rejected = null;
        for (var i = 0; i < 10 && rejected is null; i++)
        {
            var t = s.Post("/v1/score", One);
            var first = await Task.WhenAny(t, Task.Delay(300));
            if (first == t && (int)t.Result.StatusCode == 503)
                rejected = t.Result;
            else
                accepted.Add(t);
        }
        Assert.That(rejected, Is.Not.Null, "the 4th concurrent row must be refused");
        Assert.That(accepted, Has.Count.EqualTo(3), "exactly --queue-capacity rows admitted");
        Assert.That(rejected!.Headers.RetryAfter?.Delta, Is.EqualTo(TimeSpan.FromSeconds(1)));
        Assert.That(Message(System.Text.Json.JsonDocument.Parse(await rejected.Content.ReadAsStringAsync()).RootElement),
            Does.Contain("the scoring queue is full (3 rows pending, QueueCapacity / --queue-capacity)"));
        Assert.That(s.Server.Batcher!.AdmittedRows, Is.EqualTo(3), "no growth past the bound");

        using (var health = await s.Client.GetAsync("/health"))
            Assert.That(health.StatusCode, Is.EqualTo(HttpStatusCode.OK), "the service stays healthy under overload");

        gate.TrySetResult();
        foreach (var t in accepted)
        {
            using var r = await t;
            Assert.That(r.StatusCode, Is.EqualTo(HttpStatusCode.OK), "every admitted request is answered");
        }
        Assert.That(s.Server.Batcher.AdmittedRows, Is.Zero);
        var (status, _) = await s.PostJson("/v1/score", One);
        Assert.That(status, Is.EqualTo(200), "capacity returns once the queue drains");
    }

    [Test]
    public async Task TheApiKeyIsRequiredWhenConfigured()
    {
        await using var s = await Start(o => { o.ApiKey = "s3cret"; });
        using (var missing = await s.Post("/v1/score", One))
        {
            Assert.That((int)missing.StatusCode, Is.EqualTo(401));
            Assert.That(missing.Headers.WwwAuthenticate.ToString(), Is.EqualTo("Bearer"));
            Assert.That(missing.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/problem+json"));
            var problem = System.Text.Json.JsonDocument.Parse(await missing.Content.ReadAsStringAsync()).RootElement;
            Assert.That(problem.GetProperty("status").GetInt32(), Is.EqualTo(401));
            Assert.That(Message(problem), Does.Contain("Authorization: Bearer <key>"));
        }
        using (var wrong = await s.Post("/v1/score", One, bearer: "s3cret-not"))
            Assert.That((int)wrong.StatusCode, Is.EqualTo(401));
        using (var metrics = await s.Client.GetAsync("/metrics"))
            Assert.That((int)metrics.StatusCode, Is.EqualTo(401), "metrics are protected too");
        using (var right = await s.Post("/v1/score", One, bearer: "s3cret"))
            Assert.That((int)right.StatusCode, Is.EqualTo(200));
        using (var health = await s.Client.GetAsync("/health"))
            Assert.That((int)health.StatusCode, Is.EqualTo(200), "probes need no key");
    }

    [Test]
    public async Task HealthIs503UntilTheModelIsLoaded()
    {
        var release = new ManualResetEventSlim();
        await using var s = await Start(load: () =>
        {
            release.Wait(TimeSpan.FromSeconds(60));
            return TinyModel;
        }, waitReady: false);
        using (var health = await s.Client.GetAsync("/health"))
        {
            Assert.That((int)health.StatusCode, Is.EqualTo(503));
            Assert.That(await health.Content.ReadAsStringAsync(), Does.Contain("\"status\":\"loading\""));
        }
        var (status, body) = await s.PostJson("/v1/score", One);
        Assert.That(status, Is.EqualTo(503));
        Assert.That(Message(body), Does.Contain("the model is still loading"));

        release.Set();
        await s.Server.Ready.WaitAsync(TimeSpan.FromSeconds(60));
        using (var health = await s.Client.GetAsync("/health"))
            Assert.That((int)health.StatusCode, Is.EqualTo(200));
        (status, _) = await s.PostJson("/v1/score", One);
        Assert.That(status, Is.EqualTo(200));
    }

    [Test]
    public async Task AModelThatFailsToLoadKeepsHealthAt503WithTheReason()
    {
        // The service would stop on its own (serve exits 1); kept running here so its health answer can be read.
        var s = await Start(o => o.StopApplicationOnLoadFailure = false, load: () => throw new RewardModelException("manifest broken: fix it."), waitReady: false);
        Assert.ThrowsAsync<RewardModelException>(() => s.Server.Ready.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.That(s.Server.LoadError, Is.EqualTo("manifest broken: fix it."));
        using (var health = await s.Client.GetAsync("/health"))
        {
            Assert.That((int)health.StatusCode, Is.EqualTo(503));
            Assert.That(await health.Content.ReadAsStringAsync(), Does.Contain("\"status\":\"failed\"").And.Contain("manifest broken: fix it."));
        }
        await s.DisposeAsync();
    }

    [Test]
    public async Task ShutdownFinishesAcceptedRequestsAndDrainsTheQueue()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var s = await Start(o => { o.MaxWaitMs = 0; o.MaxBatchSize = 1; o.BeforeRound = () => gate.Task; });
        // Three requests: one inside the held round, two waiting in the queue.
        var inFlight = Enumerable.Range(0, 3).Select(_ => s.PostJson("/v1/score", One)).ToList();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (s.Server.Batcher!.AdmittedRows < 3 && DateTime.UtcNow < deadline)
            await Task.Delay(10);
        Assert.That(s.Server.Batcher.AdmittedRows, Is.EqualTo(3));

        var stopping = s.Server.StopAsync();
        await Task.Delay(200);
        Assert.That(stopping.IsCompleted, Is.False, "shutdown waits for the accepted requests");
        gate.SetResult();
        var answers = await Task.WhenAll(inFlight).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.That(answers.Select(a => a.Status), Is.All.EqualTo(200), "accepted before shutdown → answered");
        await stopping.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.That(s.Server.Batcher.AdmittedRows, Is.Zero, "queue drained");
        Assert.ThrowsAsync<HttpRequestException>(() => s.Client.GetAsync("/health"), "no new connections after shutdown");
        s.Client.Dispose();
    }

    /// <summary>Opens a round gate when disposed (declared after the server, so it is disposed before the server drains).</summary>
    private sealed class GateRelease(TaskCompletionSource gate) : IAsyncDisposable
    {
        public ValueTask DisposeAsync()
        {
            gate.TrySetResult();
            return ValueTask.CompletedTask;
        }
    }
}
