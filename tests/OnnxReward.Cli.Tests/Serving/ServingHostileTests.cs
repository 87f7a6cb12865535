using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using OnnxReward.Cli.Serving;
using OnnxReward.Hosting;
using static OnnxReward.Cli.Tests.Serving.ServingFixture;

namespace OnnxReward.Cli.Tests.Serving;

/// <summary>
/// Issue 16 regressions of the HTTP service: per-request deadline and client-abort cancellation (item 1), lone
/// surrogates (item 3), strict --urls (item 5), NaN output (item 11), invalid UTF-8 and slow bodies (item 13).
/// </summary>
[NonParallelizable]
public class ServingHostileTests
{
    private static string Message(JsonElement body) => body.GetProperty("detail").GetString()!;

    /// <summary>armorm-tiny whose chat template spins ~1.4 s of CPU per conversation (within its budget, so without
    /// cancellation every conversation of a request is rendered to the end).</summary>
    private static readonly Lazy<RewardModel> SpinModel = new(() => RewardModel.Load(
        HostileModels.WithTemplate("armorm-tiny-spin", HostileModels.Spin(3000)), new RewardModelOptions { ExecutionProvider = ExecutionProviderKind.Cpu }));

    private static readonly Lazy<RewardModel> NanModel = new(() =>
        RewardModel.Load(HostileModels.NanModel, new RewardModelOptions { ExecutionProvider = ExecutionProviderKind.Cpu }));

    /// <summary>20 conversations of the spin model: ~28 s of CPU if nothing stops them.</summary>
    private static readonly string Slow = Json(new { conversations = Enumerable.Range(0, 20).Select(i => new { prompt = $"q{i}", response = "a" }) });

    /// <summary>CPU seconds this process burns over <paramref name="window"/>: after a stopped request the server must
    /// be idle. A request still rendering would burn ≥ 1 core-second per second of the window.</summary>
    /// <summary>Waits, 1.5 s window by window, until this process goes idle (under 0.75 CPU-s per window: a live render
    /// burns ~1.5), for at most 12 s; returns the CPU of the last window. Stopping is what is asserted, not how fast a
    /// loaded machine gets there: uncancelled, the spin model's request would keep a core busy for ~28 s, so idling
    /// within 12 s can only mean it was stopped. (A single fixed window failed under load: the stop lands at the next
    /// cancellation check, later when other processes hold the cores.)</summary>
    private static async Task<double> CpuUntilIdle()
    {
        var cpu = double.MaxValue;
        for (var i = 0; i < 8 && cpu >= 0.75; i++)
            cpu = await CpuOver(TimeSpan.FromSeconds(1.5));
        return cpu;
    }

    private static async Task<double> CpuOver(TimeSpan window)
    {
        var process = Process.GetCurrentProcess();
        var before = process.TotalProcessorTime;
        await Task.Delay(window);
        process.Refresh();
        return (process.TotalProcessorTime - before).TotalSeconds;
    }

    [Test]
    public async Task ARequestPastItsDeadlineIsStoppedAndAnswered503()
    {
        await using var s = await Start(o => { o.RequestTimeout = TimeSpan.FromSeconds(1); }, () => SpinModel.Value);
        var clock = Stopwatch.StartNew();
        var (status, body) = await s.PostJson("/v1/score", Slow);
        var elapsed = clock.Elapsed.TotalSeconds;
        Assert.That(status, Is.EqualTo(503));
        Assert.That(Message(body), Does.Contain("did not finish within its deadline of 1 s (--request-timeout-s)"));
        // Bound: the 1 s deadline plus one template cancellation stride and the HTTP round trip; 3 s leaves room for a
        // loaded 2-core machine and is far below the ~28 s the request costs uncancelled.
        Assert.That(elapsed, Is.LessThan(3), "stopped at the deadline");
        var cpu = await CpuUntilIdle();
        // The measurement covers the whole test process (GC, tiered JIT and other fixtures), hence half a core's worth.
        Assert.That(cpu, Is.LessThan(0.75), "nothing keeps rendering after the answer (a live render burns ~1.5 CPU-s per window)");
        Assert.That(s.Server.Batcher!.AdmittedRows, Is.Zero);
    }

    [Test]
    public async Task AClientThatGoesAwayStopsItsRequest()
    {
        await using var s = await Start(o => { o.RequestTimeout = TimeSpan.FromSeconds(60); }, () => SpinModel.Value);
        using var abort = new CancellationTokenSource(TimeSpan.FromMilliseconds(500));
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/score") { Content = new StringContent(Slow, Encoding.UTF8, "application/json") };
        Assert.That(async () => await s.Client.SendAsync(request, abort.Token), Throws.InstanceOf<OperationCanceledException>());
        // The server notices the closed connection (RequestAborted) at its next cancellation check: give it 1 s, then
        // the process must be idle although 27 s of rendering were left.
        await Task.Delay(1000);
        var cpu = await CpuUntilIdle();
        Assert.That(cpu, Is.LessThan(0.75), "the abandoned request no longer renders (a live render burns ~1.5 CPU-s per window; bound as above)");
        using var health = await s.Client.GetAsync("/health");
        Assert.That((int)health.StatusCode, Is.EqualTo(200), "the server lives on");
    }

    [TestCase("a")]
    [TestCase("ACGT")]
    public async Task AWhitespaceFree300KBRequestEndsQuicklyAndFreesTheCpu(string unit)
    {
        await using var s = await Start(o => { o.RequestTimeout = TimeSpan.FromSeconds(0.5); });
        var text = string.Concat(Enumerable.Repeat(unit, 300_000 / unit.Length));
        var clock = Stopwatch.StartNew();
        var (status, body) = await s.PostJson("/v1/score", Json(new { conversations = new[] { new { prompt = "x", response = text } } }));
        var elapsed = clock.Elapsed.TotalSeconds;
        // Tokenized in linear time it is over the 8,192-token limit (400) within the deadline; had tokenizing been slow
        // the deadline would answer 503. Either way it ends within the 0.5 s deadline + 1.5 s (HTTP, a 300 KB body, JSON).
        Assert.That(status, Is.EqualTo(400).Or.EqualTo(503), body.ToString());
        Assert.That(elapsed, Is.LessThan(2.0));
        Assert.That(await CpuUntilIdle(), Is.LessThan(0.75), "no work left running (issue: 133 s of CPU per request)");
    }

    [Test]
    public async Task ACancelledRequestLeavesTheQueueBeforeItRuns()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var s = await Start(o => { o.MaxBatchSize = 1; o.BeforeRound = () => gate.Task; });
        var one = Json(new { conversations = new[] { new { prompt = "What is 2+2?", response = "4" } } });
        var held = s.PostJson("/v1/score", one);                 // its round waits at the gate
        await WaitFor(() => s.Server.Batcher!.AdmittedRows == 1);
        using var abort = new CancellationTokenSource();
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/score") { Content = new StringContent(one, Encoding.UTF8, "application/json") };
        var cancelled = s.Client.SendAsync(request, abort.Token);
        await WaitFor(() => s.Server.Batcher!.AdmittedRows == 2);
        var after = s.PostJson("/v1/score", one);
        await WaitFor(() => s.Server.Batcher!.AdmittedRows == 3);
        abort.Cancel();
        Assert.That(async () => await cancelled, Throws.InstanceOf<OperationCanceledException>());
        await WaitFor(() => s.Server.Batcher!.AdmittedRows == 2);    // released while the round is still held
        gate.SetResult();
        Assert.That((await held).Status, Is.EqualTo(200));
        Assert.That((await after).Status, Is.EqualTo(200));
        var metrics = await s.Client.GetStringAsync("/metrics");
        Assert.That(ServingEndpointTests.Metric(metrics, "onnxreward_rows_total"), Is.EqualTo(2), "the cancelled request's row never ran");
    }

    private static async Task WaitFor(Func<bool> condition)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > TimeSpan.FromSeconds(10))
                Assert.Fail("condition not reached within 10 s");
            await Task.Delay(10);
        }
    }

    [Test]
    public async Task LoneSurrogatesAndInvalidUtf8Are400()
    {
        await using var s = await Start();
        var (status, body) = await s.PostJson("/v1/score", """{"conversations": [{"prompt": "hi", "response": "x\ud800"}]}""");
        Assert.That(status, Is.EqualTo(400));
        Assert.That(Message(body), Does.StartWith("the request body has a lone surrogate in the JSON string at byte"));
        (status, body) = await s.PostJson("/get_reward", """{"query": ["\udc00"]}""");
        Assert.That(status, Is.EqualTo(400), "every endpoint, not only /v1/score");

        var bytes = Encoding.UTF8.GetBytes("""{"conversations": [{"prompt": "hi", "response": "x""").Concat(new byte[] { 0xC3, 0x28 })
            .Concat(Encoding.UTF8.GetBytes("\"}]}")).ToArray();
        var content = new ByteArrayContent(bytes);
        content.Headers.ContentType = new("application/json");
        using var response = await s.Client.PostAsync("/v1/score", content);
        Assert.That((int)response.StatusCode, Is.EqualTo(400));
        var text = await response.Content.ReadAsStringAsync();
        Assert.That(Message(JsonDocument.Parse(text).RootElement), Does.StartWith($"the request body has invalid UTF-8 at byte {Array.IndexOf(bytes, (byte)0xC3)}"));
    }

    [Test]
    public async Task ASlowBodyIs408AtTheDeadline()
    {
        await using var s = await Start(o => { o.RequestTimeout = TimeSpan.FromSeconds(1); });
        var uri = new Uri(s.Server.Urls.Single());
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(uri.Host, uri.Port);
        var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            $"POST /v1/score HTTP/1.1\r\nHost: {uri.Authority}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"));
        var clock = Stopwatch.StartNew();
        var reading = new StreamReader(stream, Encoding.ASCII).ReadLineAsync();
        // A slowloris client: one byte every 200 ms, which would keep a request open for 200 s.
        while (!reading.IsCompleted && clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            try
            {
                await stream.WriteAsync(" "u8.ToArray());
            }
            catch (IOException)
            {
                break;                                   // the server answered and closed
            }
            await Task.WhenAny(reading, Task.Delay(200));
        }
        var statusLine = await reading.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.That(statusLine, Does.StartWith("HTTP/1.1 408"));
        // Bound: the 1 s deadline + one 200 ms write + the answer; 3 s on a loaded machine.
        Assert.That(clock.Elapsed.TotalSeconds, Is.LessThan(3));
    }

    [Test]
    public async Task NanModelOutputIs422NamingTheItem()
    {
        await using var s = await Start(load: () => NanModel.Value);
        var (status, body) = await s.PostJson("/v1/score", Json(new { conversations = new[]
        {
            new { prompt = "hi", response = "ok" }, new { prompt = "hi", response = HostileModels.NanText },
        } }));
        Assert.That(status, Is.EqualTo(422), body.ToString());
        Assert.That(Message(body), Does.StartWith("\"conversations\"[1]: the model produced NaN for this input"));
        Assert.That(body.GetProperty("index").GetInt32(), Is.EqualTo(1));
        (status, _) = await s.PostJson("/v1/score", Json(new { conversations = new[] { new { prompt = "hi", response = "ok" } } }));
        Assert.That(status, Is.EqualTo(200), "finite inputs are still served");
    }

    [TestCase("http://127.0.0.1:abc", "has the port 'abc'")]
    [TestCase("http://*:notaport", "has the port 'notaport'")]
    [TestCase("127.0.0.1:8000", "has no scheme")]
    [TestCase("http://127.0.0.1:8000/api", "has a path ('/api')")]
    [TestCase("https://127.0.0.1:8443", "serve takes no certificate")]
    [TestCase("http://example.com:8000", "has the host name 'example.com'")]
    [TestCase("http://127.1:8000", "is not an IP address")]
    [TestCase("http://127.0.0.1:65536", "has the port '65536'")]
    [TestCase("http://127.0.0.1:8000;http://[::1:9000", "without its closing ']'")]
    [TestCase("", "--urls is empty")]
    public void UnparsableUrlsAreRefusedBeforeKestrelStarts(string urls, string reason)
    {
        var e = Assert.Throws<ArgumentException>(() => ScoringServer.Create(new ServeSettings { Urls = urls }, _ => { }));
        Assert.That(e!.Message, Does.Contain(reason));
    }

    [TestCase("http://127.0.0.1:0")]
    [TestCase("http://localhost:8000")]
    [TestCase("http://[::1]:0/")]
    [TestCase("http://0.0.0.0:8000;http://*:8001")]
    public void ValidUrlsPass(string urls) => Assert.That(ListenAddresses.Parse(urls), Is.Not.Empty);

    [Test]
    public void ServeWithAPortTypoExitsWithOneLineInsteadOfListeningEverywhere()
    {
        // It used to listen on http://[::]:80 with no API key. Bound: start-up and refusal take ~1 s; 30 s is for a
        // loaded machine, and a server that listens never exits at all.
        var (code, stdout, stderr) = CliRunner.Run(TimeSpan.FromSeconds(30), null, "serve", "--model", CliRunner.ArmormTiny, "--urls", "http://127.0.0.1:abc");
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr.Trim(), Is.EqualTo("error: --urls 'http://127.0.0.1:abc' has the port 'abc', which is not a number from 0 to 65535 (0 = any free port)."));
        Assert.That(stdout, Is.Empty);
        (code, _, stderr) = CliRunner.Run(TimeSpan.FromSeconds(30), null, "serve", "--model", CliRunner.ArmormTiny, "--urls", "http://192.0.2.1:18001", "--api-key", "k");
        Assert.That(code, Is.EqualTo(1));
        // The console logger may say "Application is shutting down..." first; the error is the last line, with no stack trace.
        Assert.That(stderr.Trim().Split('\n')[^1], Does.StartWith("error: cannot listen on http://192.0.2.1:18001: "), "an unassignable address");
        Assert.That(stderr, Does.Not.Contain("   at "));
    }
}
