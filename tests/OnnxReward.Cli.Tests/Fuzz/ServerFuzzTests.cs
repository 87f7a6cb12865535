using System.Diagnostics;
using System.Text;
using System.Text.Json;
using OnnxReward.Cli.Serving;
using OnnxReward.Hosting;
using OnnxReward.Cli.Tests.Serving;
using OnnxReward.Text.Conversations;

namespace OnnxReward.Cli.Tests.Fuzz;

/// <summary>
/// Seeded fuzzing of the HTTP service over real Kestrel: hostile bodies on every scoring endpoint, interleaved with valid
/// requests. Each ends in 200 or a 4xx whose JSON names the problem in one line (never 500, never a hang) within a
/// bound proportional to its size; every valid request is answered with the library's score; the server lives on.
/// </summary>
[NonParallelizable]
public class ServerFuzzTests
{
    private const int Seed = 1616;
    private const int Requests = 120;

    /// <summary>Bound of one request: 2 s (HTTP, JSON, one tiny-model round on a loaded 2-core machine) plus 2 s per MB
    /// of body (tokenizing whitespace-free text runs at ~1 MB/s; most bodies are refused before that).</summary>
    private static double BoundSeconds(int bytes) => 2 + 2.0 * bytes / 1_000_000;

    private static readonly string[] Endpoints = ["/v1/score", "/v1/bon", "/get_reward", "/v1/classify"];

    /// <summary>A request body for <paramref name="endpoint"/> around one corpus case (raw, or in the endpoint's shape).</summary>
    private static byte[] Body(string endpoint, FuzzCorpus.Case c, bool raw)
    {
        if (raw || endpoint == "/v1/bon")
            return c.Bytes;
        var (before, after) = endpoint switch
        {
            "/v1/score" => ("{\"conversations\": [", "]}"),
            "/get_reward" => ("{\"query\": [", "]}"),
            _ => ("{\"input\": [", "]}"),
        };
        return [.. Encoding.UTF8.GetBytes(before), .. c.Bytes, .. Encoding.UTF8.GetBytes(after)];
    }

    [Test]
    public async Task HostileBodiesEndIn200OrAOneLine4xxAndValidRequestsAreAllServed()
    {
        await using var s = await ServingFixture.Start(o => { o.RequestTimeout = TimeSpan.FromSeconds(10); });
        var corpus = new FuzzCorpus(Seed);
        var random = new Random(Seed);
        var statuses = new Dictionary<int, int>();
        var valid = 0;
        for (var i = 0; i < Requests; i++)
        {
            var endpoint = Endpoints[random.Next(Endpoints.Length)];
            var isValid = i % 3 == 0;
            var shape = endpoint == "/v1/bon" ? "bon" : "conversation";
            var c = isValid ? corpus.Valid(shape) : corpus.Hostile(shape);
            if (isValid && endpoint is "/get_reward" or "/v1/classify")
                endpoint = "/v1/score";                      // the valid cases are conversation objects
            var body = Body(endpoint, c, raw: !isValid && random.Next(4) == 0);
            var content = new ByteArrayContent(body);
            content.Headers.ContentType = new("application/json");
            var clock = Stopwatch.StartNew();
            using var response = await s.Client.PostAsync(endpoint, content);
            var text = await response.Content.ReadAsStringAsync();
            var elapsed = clock.Elapsed.TotalSeconds;
            var status = (int)response.StatusCode;
            statuses[status] = statuses.GetValueOrDefault(status) + 1;
            var what = $"request {i}: {endpoint} {c.Kind} ({body.Length} bytes) → {status} in {elapsed:F2} s: {text[..Math.Min(300, text.Length)]}";
            Assert.That(elapsed, Is.LessThan(BoundSeconds(body.Length)), what);
            var json = JsonDocument.Parse(text).RootElement;
            if (isValid)
            {
                Assert.That(status, Is.EqualTo(200), what);
                valid++;
                if (endpoint == "/v1/score")
                {
                    using var doc = JsonDocument.Parse(c.Bytes);
                    var expected = ServingFixture.TinyModel.Score([ScoringInput.FromJson(doc.RootElement)])[0];
                    ServingFixture.AssertSame(json.GetProperty("results")[0], expected, what);
                }
                continue;
            }
            Assert.That(status, Is.EqualTo(200).Or.InRange(400, 499), what);
            if (status != 200)
            {
                var message = json.GetProperty("detail").GetString();
                Assert.That(message, Is.Not.Empty.And.Not.Contain("\n").And.Not.Contain("internal error"), what);
            }
        }
        TestContext.Out.WriteLine("statuses: " + string.Join(", ", statuses.OrderBy(k => k.Key).Select(k => $"{k.Key}×{k.Value}")));
        Assert.That(valid, Is.EqualTo(Requests / 3));
        Assert.That(s.Server.Batcher!.AdmittedRows, Is.Zero, "nothing left admitted");
        using var health = await s.Client.GetAsync("/health");
        Assert.That((int)health.StatusCode, Is.EqualTo(200), "the server lives on");
    }

    [Test]
    public async Task HostileTemplatesAre400WithinTheTemplateBudget()
    {
        var dir = HostileModels.WithTemplate("armorm-tiny-grow", "",
            "{% set ns = namespace(s='') %}{% for i in range(100000) %}{% set ns.s = ns.s ~ messages[0].content ~ 'xxxxxxxxxx' %}{% endfor %}{{ ns.s }}");
        using var model = RewardModel.Load(dir, new RewardModelOptions { ExecutionProvider = ExecutionProviderKind.Cpu });
        await using var s = await ServingFixture.Start(load: () => model);
        var body = ServingFixture.Json(new { conversations = new[] { new { prompt = new string('x', 10_000), response = "y" } } });
        for (var i = 0; i < 3; i++)
        {
            var clock = Stopwatch.StartNew();
            var (status, json) = await s.PostJson("/v1/score", body);
            // Bound: one render up to the template's built-characters budget (~2 s here) + HTTP; 6 s on a loaded machine.
            Assert.That(clock.Elapsed.TotalSeconds, Is.LessThan(6));
            Assert.That(status, Is.EqualTo(400));
            Assert.That(json.GetProperty("detail").GetString(), Does.Contain("the template built more than"));
        }
        var (ok, _) = await s.PostJson("/get_reward", ServingFixture.Json(new { query = new[] { "<|begin_of_text|>pre-rendered" } }));
        Assert.That(ok, Is.Not.EqualTo(500), "pre-rendered text needs no template");
    }
}
