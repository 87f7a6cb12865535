using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using OnnxReward;

// Load test of `onnxreward serve` from a second process, on 127.0.0.1 only, bounded: a fixed number of requests per
// concurrency level, then it stops. Every answer is checked against the library scoring the same conversation alone.
//
//   dotnet run -c Release --project perf/LoadTest -- --model <dir> [--server <onnxreward app host>] [--requests 256]
//       [--levels 1,4,16,64] [--overload 256] [--queue-capacity 8] [--serve-args "--max-wait-ms 5"]
//
// Runs: two servers side by side, one with its defaults (dynamic batching) plus --serve-args, one with
// --max-batch-size 1 (one conversation per scoring round: the one-at-a-time baseline), each level in A-B-B-A order;
// then an overload run (more concurrent requests than the queue holds) that must produce 503s while GET /health
// stays 200. Exit code 1 on any wrong or lost answer, or an overload run without 503s or with an unhealthy /health.

var options = Args.Parse(args);
var model = options.Get("--model") ?? throw new ArgumentException("--model <dir> is required (an exported model directory).");
var server = options.Get("--server") ?? Path.Combine(Repo.Root(), "src", "OnnxReward.Cli", "bin", "Release", "net10.0", "linux-x64", "onnxreward");
var requests = int.Parse(options.Get("--requests") ?? "256", CultureInfo.InvariantCulture);
var levels = (options.Get("--levels") ?? "1,4,16,64").Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
var overload = int.Parse(options.Get("--overload") ?? "256", CultureInfo.InvariantCulture);
var overloadQueue = int.Parse(options.Get("--queue-capacity") ?? "8", CultureInfo.InvariantCulture);
var serveArgs = (options.Get("--serve-args") ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries);   // extra flags of the batched run
if (!File.Exists(server))
    throw new FileNotFoundException($"{server} is missing: build src/OnnxReward.Cli in Release, or pass --server.");
if (requests < 1 || requests > 100_000 || levels.Any(l => l < 1 || l > 1024) || overload < 1 || overload > 10_000)
    throw new ArgumentException("--requests 1..100000, --levels 1..1024 each, --overload 1..10000.");

// 1. Inputs and the library's answers (each conversation scored alone).
var inputs = Workload.Conversations(64);
RewardScore[] expected;
using (var library = RewardModel.Load(model, new RewardModelOptions { ExecutionProvider = ExecutionProviderKind.Cpu }))
    expected = inputs.Select(c => library.Score(c)).ToArray();
var bodies = inputs.Select(Workload.Body).ToArray();
Console.WriteLine($"model {model}: {inputs.Count} distinct conversations, {expected.Min(e => e.TokenCount)}-{expected.Max(e => e.TokenCount)} tokens " +
                  $"(mean {expected.Average(e => e.TokenCount):F0}); {requests} requests per level, one conversation per request.");
Console.WriteLine($"machine: {Environment.ProcessorCount} logical CPUs; server and this client share them.");
Console.WriteLine();

// 2. Throughput and latency per level, batching on and off. Both servers run side by side (the idle one costs
// nothing) and every level is measured in A-B-B-A order, half the requests per slot: a first A/A trial of this test
// (the same flags on both sides, one server after the other) differed by up to 1.7x from run order alone.
var configs = new[]
{
    (Name: $"dynamic batching {(serveArgs.Length == 0 ? "(defaults)" : string.Join(' ', serveArgs))}", Extra: serveArgs),
    (Name: "one at a time (--max-batch-size 1)", Extra: new[] { "--max-batch-size", "1" }),
};
var servers = new ServerProcess[configs.Length];
var failures = 0;
for (var c = 0; c < configs.Length; c++)
    servers[c] = await ServerProcess.Start(server, model, configs[c].Extra);
try
{
    var measured = new double[servers.Length];                                        // client-side seconds, warm-up included
    for (var c = 0; c < servers.Length; c++)
        measured[c] += (await Client.Run(servers[c].Http, bodies, expected, 128, 4)).Seconds;   // warm-up (JIT, pools), not reported
    var rows = new List<(int Level, LevelResult Batched, LevelResult Single)>();
    foreach (var level in levels)
    {
        var half = Math.Max(1, requests / 2);
        var a1 = await Client.Run(servers[0].Http, bodies, expected, half, level);
        var b1 = await Client.Run(servers[1].Http, bodies, expected, half, level);
        var b2 = await Client.Run(servers[1].Http, bodies, expected, half, level);
        var a2 = await Client.Run(servers[0].Http, bodies, expected, half, level);
        var (a, b) = (LevelResult.Combine(a1, a2), LevelResult.Combine(b1, b2));
        measured[0] += a.Seconds;
        measured[1] += b.Seconds;
        Console.WriteLine($"{configs[0].Name,-36} c={level,3}: {a}");
        Console.WriteLine($"{configs[1].Name,-36} c={level,3}: {b}");
        rows.Add((level, a, b));
    }
    for (var c = 0; c < configs.Length; c++)
    {
        var metrics = await servers[c].Http.GetStringAsync("/metrics");
        Console.WriteLine($"{configs[c].Name}: rounds {Metrics.Value(metrics, "onnxreward_scorer_round_rows_count")}, rows {Metrics.Value(metrics, "onnxreward_scorer_round_rows_sum")}, " +
                          $"mean rows/round {Metrics.Value(metrics, "onnxreward_scorer_round_rows_sum") / Metrics.Value(metrics, "onnxreward_scorer_round_rows_count"):F2}; " +
                          $"model busy {Metrics.Value(metrics, "onnxreward_scorer_round_duration_seconds_sum"):F1} s of {measured[c]:F1} s under load " +
                          $"({Metrics.Value(metrics, "onnxreward_scorer_round_duration_seconds_sum") / measured[c]:P0}); " +
                          $"graceful stop: exit code {await servers[c].StopAsync()}");
    }

    Console.WriteLine();
    Console.WriteLine("| concurrency | batched req/s | p50 ms | p99 ms | one-at-a-time req/s | p50 ms | p99 ms | gain | wrong/lost | max abs diff |");
    Console.WriteLine("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    foreach (var (level, b, o) in rows)
        Console.WriteLine($"| {level} | {b.Throughput:F0} | {b.P50:F1} | {b.P99:F1} | {o.Throughput:F0} | {o.P50:F1} | {o.P99:F1} | " +
                          $"{b.Throughput / o.Throughput:F2}x | {b.Wrong + b.Lost + o.Wrong + o.Lost} | {Math.Max(b.MaxDiff, o.MaxDiff):G2} |");
    failures = rows.Sum(r => r.Batched.Wrong + r.Batched.Lost + r.Single.Wrong + r.Single.Lost);
}
finally
{
    foreach (var s in servers)
        await s.DisposeAsync();
}

// 3. Overload: more requests in flight than the queue holds.
Console.WriteLine();
await using (var s = await ServerProcess.Start(server, model, ["--queue-capacity", overloadQueue.ToString(CultureInfo.InvariantCulture), "--max-conversations", "1"]))
{
    var o = await Client.Overload(s.Http, bodies, expected, overload);
    Console.WriteLine($"overload: {overload} concurrent requests, --queue-capacity {overloadQueue}: {o}");
    Console.WriteLine($"  graceful stop: exit code {await s.StopAsync()}");
    if (o.Rejected == 0 || o.HealthNot200 > 0 || o.Wrong > 0 || o.Other > 0)
        return 1;
}
return failures > 0 ? 1 : 0;

/// <summary>The conversations: varied prompts and responses, 64 distinct, deterministic.</summary>
internal static class Workload
{
    private static readonly string[] Topics = ["the moon", "bread", "rivers", "prime numbers", "jazz", "glaciers", "chess", "bees"];

    public static List<Conversation> Conversations(int n) => Enumerable.Range(0, n).Select(i =>
    {
        var topic = Topics[i % Topics.Length];
        var prompt = $"Question {i}: tell me something about {topic}." + string.Concat(Enumerable.Repeat(" Please be specific.", i % 4));
        var response = $"Here is a fact about {topic}: " + string.Join(" ", Enumerable.Range(0, 4 + (i * 7) % 40).Select(k => $"detail{k} of {topic}"));
        return Conversation.FromPromptResponse(prompt, response);
    }).ToList();

    public static byte[] Body(Conversation c) => JsonSerializer.SerializeToUtf8Bytes(new
    {
        conversations = new[] { new { messages = c.Messages.Select(m => new { role = m.Role, content = m.Content }) } },
    });
}

internal sealed record LevelResult(int Requests, double Seconds, double[] Latencies, int Wrong, int Lost, double MaxDiff)
{
    public double Throughput => Requests / Seconds;
    public double P50 => Percentile(0.50);
    public double P99 => Percentile(0.99);

    private double Percentile(double p) => Latencies[Math.Max(0, (int)Math.Ceiling(p * Latencies.Length) - 1)];

    /// <summary>Two slots of the same configuration as one: requests and seconds add, latencies pool.</summary>
    public static LevelResult Combine(LevelResult a, LevelResult b) =>
        new(a.Requests + b.Requests, a.Seconds + b.Seconds, a.Latencies.Concat(b.Latencies).Order().ToArray(),
            a.Wrong + b.Wrong, a.Lost + b.Lost, Math.Max(a.MaxDiff, b.MaxDiff));

    public override string ToString() =>
        $"{Throughput,7:F0} req/s, p50 {P50,6:F1} ms, p99 {P99,6:F1} ms, wrong {Wrong}, lost {Lost}, max |Δ| {MaxDiff:G2}";
}

internal sealed record OverloadResult(int Ok, int Rejected, int RetryAfterMissing, int Other, int Wrong, int HealthChecks, int HealthNot200)
{
    public override string ToString() =>
        $"{Ok} answered 200 (wrong {Wrong}), {Rejected} refused 503 (Retry-After missing on {RetryAfterMissing}), {Other} other; " +
        $"GET /health during the flood: {HealthChecks - HealthNot200}/{HealthChecks} answered 200";
}

internal static class Client
{
    /// <summary>Score-equality bound: batch-shape float32 reordering gives ~1e-7; a wrong answer is off by far more.</summary>
    private const double Tolerance = 1e-5;

    public static async Task<LevelResult> Run(HttpClient http, byte[][] bodies, RewardScore[] expected, int requests, int concurrency)
    {
        var latencies = new double[requests];
        int next = -1, wrong = 0, lost = 0;
        double maxDiff = 0;
        var gate = new object();
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
        {
            for (int i; (i = Interlocked.Increment(ref next)) < requests;)
            {
                var k = i % bodies.Length;
                var started = Stopwatch.GetTimestamp();
                var (ok, diff) = await Send(http, bodies[k], expected[k]);
                latencies[i] = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                lock (gate)
                {
                    if (ok is null) lost++;
                    else if (ok == false) wrong++;
                    maxDiff = Math.Max(maxDiff, diff);
                }
            }
        }));
        var seconds = clock.Elapsed.TotalSeconds;
        Array.Sort(latencies);
        return new LevelResult(requests, seconds, latencies, wrong, lost, maxDiff);
    }

    public static async Task<OverloadResult> Overload(HttpClient http, byte[][] bodies, RewardScore[] expected, int n)
    {
        int ok = 0, rejected = 0, noRetryAfter = 0, other = 0, wrong = 0, health = 0, healthBad = 0;
        using var flooding = new CancellationTokenSource();
        var poller = Task.Run(async () =>
        {
            while (!flooding.IsCancellationRequested)
            {
                using var r = await http.GetAsync("/health");
                Interlocked.Increment(ref health);
                if (r.StatusCode != HttpStatusCode.OK)
                    Interlocked.Increment(ref healthBad);
                await Task.Delay(20);
            }
        });
        await Task.WhenAll(Enumerable.Range(0, n).Select(async i =>
        {
            var k = i % bodies.Length;
            using var response = await http.PostAsync("/v1/score", new ByteArrayContent(bodies[k]) { Headers = { ContentType = new("application/json") } });
            if (response.StatusCode == HttpStatusCode.ServiceUnavailable)
            {
                Interlocked.Increment(ref rejected);
                if (response.Headers.RetryAfter is null)
                    Interlocked.Increment(ref noRetryAfter);
            }
            else if (response.StatusCode == HttpStatusCode.OK)
            {
                Interlocked.Increment(ref ok);
                if (!Matches(await response.Content.ReadAsStringAsync(), expected[k], out _))
                    Interlocked.Increment(ref wrong);
            }
            else
                Interlocked.Increment(ref other);
        }));
        await Task.Delay(100);
        flooding.Cancel();
        await poller;
        return new OverloadResult(ok, rejected, noRetryAfter, other, wrong, health, healthBad);
    }

    /// <summary>null = lost (no 200 answer), false = wrong numbers.</summary>
    private static async Task<(bool? Ok, double Diff)> Send(HttpClient http, byte[] body, RewardScore expected)
    {
        try
        {
            using var response = await http.PostAsync("/v1/score", new ByteArrayContent(body) { Headers = { ContentType = new("application/json") } });
            if (response.StatusCode != HttpStatusCode.OK)
                return (null, 0);
            var ok = Matches(await response.Content.ReadAsStringAsync(), expected, out var diff);
            return (ok, diff);
        }
        catch (HttpRequestException)
        {
            return (null, 0);
        }
    }

    private static bool Matches(string json, RewardScore expected, out double maxDiff)
    {
        var results = JsonDocument.Parse(json).RootElement.GetProperty("results");
        maxDiff = double.PositiveInfinity;
        if (results.GetArrayLength() != 1)
            return false;
        var r = results[0];
        if (r.GetProperty("tokens").GetInt32() != expected.TokenCount)
            return false;
        maxDiff = Math.Abs(r.GetProperty("score").GetSingle() - expected.Score);
        var k = 0;
        foreach (var o in r.GetProperty("objectives").EnumerateObject())
        {
            if (o.Name != expected.ObjectiveNames[k])
                return false;
            maxDiff = Math.Max(maxDiff, Math.Abs(o.Value.GetSingle() - expected.RewardValues[k++]));
        }
        return k == expected.ObjectiveNames.Count && maxDiff <= Tolerance;
    }
}

/// <summary>`onnxreward serve` as a child process on a free 127.0.0.1 port; stopped with SIGTERM (graceful).</summary>
internal sealed class ServerProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stderr = new();
    public HttpClient Http { get; }

    private ServerProcess(Process process, int port)
    {
        _process = process;
        Http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 4096 })
        {
            BaseAddress = new Uri($"http://127.0.0.1:{port}"),   // loopback only, by construction
            Timeout = TimeSpan.FromSeconds(120),
        };
    }

    public static async Task<ServerProcess> Start(string exe, string model, string[] extra)
    {
        var port = FreePort();
        var psi = new ProcessStartInfo(exe) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { "serve", "--model", model, "--ep", "cpu", "--urls", $"http://127.0.0.1:{port}" }.Concat(extra))
            psi.ArgumentList.Add(a);
        psi.Environment.Remove("ONNXREWARD_API_KEY");
        var process = Process.Start(psi)!;
        var s = new ServerProcess(process, port);
        process.ErrorDataReceived += (_, e) => { lock (s._stderr) s._stderr.AppendLine(e.Data); };
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        var deadline = DateTime.UtcNow.AddSeconds(120);
        while (DateTime.UtcNow < deadline)
        {
            if (process.HasExited)
                throw new InvalidOperationException($"the server exited with {process.ExitCode}: {s._stderr}");
            try
            {
                using var r = await s.Http.GetAsync("/health");
                if (r.StatusCode == HttpStatusCode.OK)
                    return s;
            }
            catch (HttpRequestException)
            {
                // not bound yet
            }
            await Task.Delay(50);
        }
        await s.DisposeAsync();
        throw new TimeoutException($"the server did not become healthy in 120 s: {s._stderr}");
    }

    private static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        var port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    /// <summary>SIGTERM, then the exit code (0 = drained and stopped cleanly).</summary>
    public async Task<int> StopAsync()
    {
        if (!_process.HasExited)
        {
            using (var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(CultureInfo.InvariantCulture)]))
                await kill.WaitForExitAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await _process.WaitForExitAsync(timeout.Token);
        }
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        if (!_process.HasExited)
        {
            try { await StopAsync(); }
            catch (OperationCanceledException) { _process.Kill(entireProcessTree: true); }
        }
        _process.Dispose();
    }
}

internal static class Metrics
{
    /// <summary>The sum of a sample's values over its label sets (OpenTelemetry's exporter labels each with otel_scope_name).</summary>
    public static double Value(string text, string name) =>
        text.Split('\n').Where(l => l.StartsWith(name + " ", StringComparison.Ordinal) || l.StartsWith(name + "{", StringComparison.Ordinal))
            .Sum(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture));
}

internal static class Repo
{
    public static string Root()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "OnnxReward.sln")))
                return d.FullName;
        return Environment.CurrentDirectory;
    }
}

internal sealed class Args
{
    private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);

    public static Args Parse(string[] args)
    {
        var a = new Args();
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal))
                throw new ArgumentException($"unexpected argument '{args[i]}': options are --name value pairs.");
            a._values[args[i]] = args[i + 1];
        }
        if (args.Length % 2 == 1)
            throw new ArgumentException($"option {args[^1]} has no value.");
        return a;
    }

    public string? Get(string name) => _values.GetValueOrDefault(name);
}
