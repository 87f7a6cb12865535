using System.Net;
using System.Text;
using System.Text.Json;
using OnnxReward.Cli.Commands;
using OnnxReward.Hosting;
using static OnnxReward.Cli.Tests.Serving.ServingEndpointTests;
using static OnnxReward.Cli.Tests.Serving.ServingFixture;

namespace OnnxReward.Cli.Tests.Serving;

/// <summary>What the service tells about itself: /metrics (OpenTelemetry's Prometheus exporter), the OpenAPI document,
/// RFC 7807 problems, /info, and how serve's flags and environment variables become the hosted model's options.</summary>
[NonParallelizable]
public class ServingObservabilityTests
{
    private static readonly string One = Json(new { conversations = new[] { new { prompt = "What is 2+2?", response = "4" } } });

    [Test]
    public async Task MetricsHaveTheLibrarysAndAspNetCoresInstrumentsAndTheyMoveWithARequest()
    {
        await using var s = await Start();
        var before = await s.Client.GetStringAsync("/metrics");
        // Two rows one token apart: one batch with one padding token (well under the 10 % waste bound).
        var conversations = new[] { Conversation.FromPromptResponse("What is 2+2?", "4"), Conversation.FromPromptResponse("What is 2+2?", "4 4") };
        var (status, _) = await s.PostJson("/v1/score", Json(new { conversations = conversations.Select(c => new { prompt = c.Messages[0].Content, response = c.Messages[1].Content }) }));
        Assert.That(status, Is.EqualTo(200));
        var after = await s.Client.GetStringAsync("/metrics");

        foreach (var (family, type) in new[]
                 {
                     ("onnxreward_rows_total", "counter"), ("onnxreward_tokens_total", "counter"), ("onnxreward_padding_tokens_total", "counter"),
                     ("onnxreward_batch_duration_seconds", "histogram"), ("onnxreward_scorer_round_duration_seconds", "histogram"),
                     ("onnxreward_scorer_round_rows", "histogram"), ("onnxreward_scorer_queued_rows", "gauge"),
                     ("onnxreward_scorer_admitted_rows", "gauge"), ("http_server_request_duration_seconds", "histogram"),
                 })
            Assert.That(after, Does.Contain($"# TYPE {family} {type}"), family);

        double Delta(string name, string? having = null) => Metric(after, name, having) - Metric(before, name, having);
        var expected = conversations.Select(c => TinyModel.Score(c)).ToList();
        var tokens = expected.Sum(e => e.TokenCount);
        Assert.That(Delta("onnxreward_rows_total"), Is.EqualTo(2), "two rows scored");
        Assert.That(Delta("onnxreward_tokens_total"), Is.EqualTo(tokens), "their tokens");
        var o = TinyModel.Options;
        var plans = OnnxReward.Batching.TokenBudgetBatcher.Plan(expected.Select(e => e.TokenCount).ToArray(), o.MaxBatchTokens, o.MaxBatchSize, o.MaxPaddingWaste);
        Assume.That(plans, Has.Count.EqualTo(1), "the two rows share a batch");
        Assert.That(Delta("onnxreward_padding_tokens_total"), Is.EqualTo(2 * expected.Max(e => e.TokenCount) - tokens).And.GreaterThan(0),
            "rows x padded length - tokens");
        Assert.That(Delta("onnxreward_batch_duration_seconds_count"), Is.EqualTo(1), "one ONNX run");
        Assert.That(Delta("onnxreward_scorer_round_rows_sum"), Is.EqualTo(2));
        Assert.That(Metric(after, "onnxreward_scorer_admitted_rows"), Is.Zero, "nothing left admitted");
        Assert.That(Delta("http_server_request_duration_seconds_count", "http_route=\"/v1/score\""), Is.EqualTo(1), "ASP.NET Core counted the request");
        Assert.That(after, Does.Contain("http_response_status_code=\"200\",http_route=\"/v1/score\""));
    }

    [Test]
    public async Task TheOpenApiDocumentDescribesRequestAndResponseBodies()
    {
        await using var s = await Start();
        var doc = JsonDocument.Parse(await s.Client.GetStringAsync("/openapi/v1.json")).RootElement;
        Assert.That(doc.GetProperty("openapi").GetString(), Does.StartWith("3."));
        var schemas = doc.GetProperty("components").GetProperty("schemas");

        JsonElement Resolve(JsonElement schema) =>
            schema.TryGetProperty("$ref", out var r) ? schemas.GetProperty(r.GetString()!.Split('/')[^1]) : schema;

        var expectations = new Dictionary<string, (string[] Request, string[] Response)>
        {
            ["/v1/score"] = (["conversations"], ["results"]),
            ["/v1/bon"] = (["prompt", "candidates", "rule"], ["chosen", "rule", "scores"]),
            ["/get_reward"] = (["query"], ["rewards", "scores"]),
            ["/v1/classify"] = (["input", "messages", "model"], ["id", "object", "data", "usage"]),
        };
        foreach (var (path, (request, response)) in expectations)
        {
            var post = doc.GetProperty("paths").GetProperty(path).GetProperty("post");
            var body = Resolve(post.GetProperty("requestBody").GetProperty("content").GetProperty("application/json").GetProperty("schema"));
            Assert.That(body.GetProperty("properties").EnumerateObject().Select(p => p.Name), Is.SupersetOf(request), $"{path} request schema");
            var ok = Resolve(post.GetProperty("responses").GetProperty("200").GetProperty("content").GetProperty("application/json").GetProperty("schema"));
            Assert.That(ok.GetProperty("properties").EnumerateObject().Select(p => p.Name), Is.SupersetOf(response), $"{path} response schema");
            Assert.That(post.GetProperty("security")[0].TryGetProperty("bearer", out _), $"{path} is behind the API key");
            foreach (var status in new[] { "400", "413", "503" })
                Assert.That(post.GetProperty("responses").GetProperty(status).GetProperty("content").TryGetProperty("application/problem+json", out _),
                    $"{path} documents {status} as a problem");
        }
        var score = Resolve(schemas.GetProperty("ScoreResponseJson").GetProperty("properties").GetProperty("results").GetProperty("items"));
        Assert.That(score.GetProperty("properties").EnumerateObject().Select(p => p.Name), Is.SupersetOf(new[] { "score", "objectives", "gating", "tokens" }));
        Assert.That(doc.GetProperty("paths").TryGetProperty("/info", out _));

        Assert.That(doc.GetProperty("components").GetProperty("securitySchemes").GetProperty("bearer").GetProperty("scheme").GetString(), Is.EqualTo("bearer"));

        using var legacy = await s.Client.GetAsync("/openapi.json");
        Assert.That(legacy.StatusCode, Is.EqualTo(HttpStatusCode.OK), "the old address still serves the document");
    }

    [Test]
    public async Task ErrorsAreProblemDetailsWithTheMessageAsDetail()
    {
        await using var s = await Start(o => o.MaxConversations = 2);
        using var response = await s.Post("/v1/score", Json(new { conversations = new object[] { new { prompt = "a", response = "b" }, new { input_ids = new[] { 1, 999_999 } } } }));
        Assert.That((int)response.StatusCode, Is.EqualTo(400));
        Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/problem+json"));
        var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.That(problem.GetProperty("status").GetInt32(), Is.EqualTo(400));
        Assert.That(problem.GetProperty("title").GetString(), Is.EqualTo("Bad Request"));
        Assert.That(problem.GetProperty("type").GetString(), Does.StartWith("https://tools.ietf.org/html/rfc9110#"));
        Assert.That(problem.GetProperty("detail").GetString(), Does.Contain("outside the model's vocabulary"));
        Assert.That(problem.GetProperty("index").GetInt32(), Is.EqualTo(1), "the failing item");

        var (status, body) = await s.PostJson("/v1/score", Json(new { conversations = Enumerable.Range(0, 3).Select(_ => new { prompt = "a", response = "b" }) }));
        Assert.That((status, body.GetProperty("status").GetInt32()), Is.EqualTo((413, 413)));
        (status, body) = await s.PostJson("/v1/score", "[1, 2]");
        Assert.That(status, Is.EqualTo(400));
        Assert.That(body.GetProperty("detail").GetString(), Does.StartWith("the request body does not have the expected shape: expected {\"conversations\""));
        (status, body) = await s.PostJson("/v1/bon", """{"prompt": "p", "candidates": ["a", 7]}""");
        Assert.That(status, Is.EqualTo(400));
        Assert.That(body.GetProperty("detail").GetString(), Does.Contain("at $.candidates[1]"), "names where the body differs");

        // A body without Content-Type is read as JSON all the same (curl -d), as before.
        var raw = new ByteArrayContent(Encoding.UTF8.GetBytes(One));
        using var untyped = await s.Client.PostAsync("/v1/score", raw);
        Assert.That((int)untyped.StatusCode, Is.EqualTo(200));
    }

    [Test]
    public async Task InfoAndTheServedModelNameDescribeWhatIsServed()
    {
        await using var s = await Start(o => { o.ServedModelName = "my-rm"; o.MaxConversations = 512; o.QueueCapacity = 600; });
        var info = JsonDocument.Parse(await s.Client.GetStringAsync("/info")).RootElement;
        Assert.That(info.GetProperty("model_id").GetString(), Is.EqualTo("my-rm"));
        Assert.That(info.GetProperty("model_dtype").GetString(), Is.EqualTo(TinyModel.Manifest.DType));
        Assert.That(info.GetProperty("model_type").GetString(), Is.EqualTo("armorm"));
        Assert.That(info.GetProperty("architecture").GetString(), Does.EndWith("/armorm"));
        Assert.That(info.GetProperty("max_input_length").GetInt32(), Is.EqualTo(TinyModel.MaxSequenceLength));
        Assert.That(info.GetProperty("max_batch_tokens").GetInt32(), Is.EqualTo(8192));
        Assert.That(info.GetProperty("max_client_batch_size").GetInt32(), Is.EqualTo(512));
        Assert.That(info.GetProperty("max_concurrent_requests").GetInt32(), Is.EqualTo(600));
        Assert.That(info.GetProperty("objectives").GetArrayLength(), Is.EqualTo(TinyModel.ObjectiveNames.Count));
        Assert.That(info.GetProperty("version").GetString(), Does.Match(@"^\d+\.\d+\.\d+"));

        var (status, classify) = await s.PostJson("/v1/classify", Json(new { input = TinyModel.Encoder.Render(Conversation.FromPromptResponse("a", "b")) }));
        Assert.That(status, Is.EqualTo(200));
        Assert.That(classify.GetProperty("model").GetString(), Is.EqualTo("my-rm"), "vLLM's model field reports the served name");
        using var health = await s.Client.GetAsync("/health");
        Assert.That(JsonDocument.Parse(await health.Content.ReadAsStringAsync()).RootElement.GetProperty("model").GetString(), Is.EqualTo("my-rm"));
    }

    [Test]
    public async Task AnOpenRlhfMicroBatchOf512PaddedQueriesIsScoredAsOpenRlhfsOwnServerWould()
    {
        // OpenRLHF's trainer (openrlhf/utils/remote_rm_utils.py) POSTs a micro-batch of decoded sequences with the padding
        // of its batch: left [PAD]s before the prompt (left-padded generation), the response, then EOS and right [PAD]s up
        // to the longest sequence. Its reward server (openrlhf/cli/serve_rm.py) strips the leading and trailing pad/EOS
        // runs, appends one EOS and tokenizes with add_special_tokens (BOS). So each query must score exactly as the
        // library scores "<BOS> + conversation text + EOS", whatever its padding. The expected texts are built here by
        // hand, not with InputEncoder.PrepareOpenRlhfQuery, so the test checks the rule, not the code against itself.
        var defaults = new RewardModelHostingOptions();
        Assert.That(defaults.MaxConversations, Is.GreaterThanOrEqualTo(512));
        Assert.That(defaults.QueueCapacity, Is.GreaterThanOrEqualTo(defaults.MaxConversations), "a largest request can be admitted");
        const string bos = "<|begin_of_text|>", eos = "<|end_of_text|>", pad = "[PAD]";
        var rng = new Random(512);
        var bodies = Enumerable.Range(0, 512).Select(i => TinyModel.Encoder.Render(Conversation.FromPromptResponse(
            $"Question {i}: what is {i % 17} + {i % 5}?", string.Concat(Enumerable.Repeat($"{i % 17 + i % 5} ", 1 + i % 9))))).ToArray();
        Assert.That(bodies, Has.All.StartWith(bos).And.All.EndWith("<|eot_id|>"));
        var queries = bodies.Select((text, i) =>
        {
            var body = i % 4 == 3 ? text[bos.Length..] : text;                    // a few without BOS: it is added
            var left = string.Concat(Enumerable.Repeat(pad, rng.Next(0, 40)));
            var right = (i % 3 == 0 ? "" : eos) + string.Concat(Enumerable.Repeat(i % 2 == 0 ? pad : eos, rng.Next(0, 60)));
            return left + body + right;
        }).ToArray();
        Assert.That(queries.Count(q => q.StartsWith(pad, StringComparison.Ordinal)), Is.GreaterThan(400), "most queries are left-padded");

        await using var s = await Start();                                        // the default limits
        var (status, json) = await s.PostJson("/get_reward", Json(new { query = queries, prompts = queries.Select(_ => "p"), labels = queries.Select(_ => "") }));
        Assert.That(status, Is.EqualTo(200), json.ToString());
        var rewards = json.GetProperty("rewards").EnumerateArray().Select(x => x.GetSingle()).ToArray();
        var expected = TinyModel.ScoreTemplated(bodies.Select(t => t + eos).ToArray()).Select(x => x.Score).ToArray();
        // Tolerance: 1e-5 absolute, the fixture's cross-batch bound (the server batches the 512 rows by its own token
        // budget, the library call by its own; the fp32 graph's row results vary only in summation order).
        Assert.That(rewards, Is.EqualTo(expected).Within(Tolerance));
        var unpadded = TinyModel.ScoreTemplated(bodies).Select(x => x.Score).ToArray();
        Assert.That(rewards.Zip(unpadded).Count(p => Math.Abs(p.First - p.Second) > 1e-4), Is.GreaterThan(400),
            "the appended EOS is where the reward is read: without it (or with the pads kept) the scores differ");
    }

    private static readonly string[] Variables =
    [
        "ONNXREWARD_URLS", "ONNXREWARD_MAX_BATCH_TOKENS", "ONNXREWARD_MAX_CONVERSATIONS", "ONNXREWARD_QUEUE_CAPACITY", "ONNXREWARD_REQUEST_TIMEOUT_S",
        "ONNXREWARD_SERVED_MODEL_NAME", "ONNXREWARD_EP", "ONNXREWARD_TRUNCATION", "ONNXREWARD_MAX_WAIT_MS", "ONNXREWARD_MAX_BODY_BYTES",
        "ONNXREWARD_MAX_PADDING_WASTE", "ONNXREWARD_MAX_LENGTH", "ONNXREWARD_API_KEY", "ONNXREWARD_MODEL", "ONNXREWARD_MAX_BATCH_SIZE",
        "ONNXREWARD_SHUTDOWN_TIMEOUT_S", "ONNXREWARD_CONTENT_SPECIAL_TOKENS",
    ];

    [Test]
    public void EveryServeFlagHasAnEnvironmentVariableAndTheFlagWins()
    {
        Assert.That(ServeCommand.EnvironmentVariable("--max-batch-tokens"), Is.EqualTo("ONNXREWARD_MAX_BATCH_TOKENS"));
        var saved = Variables.ToDictionary(v => v, Environment.GetEnvironmentVariable);
        try
        {
            var set = new Dictionary<string, string>
            {
                ["ONNXREWARD_URLS"] = "http://127.0.0.1:9001", ["ONNXREWARD_MAX_BATCH_TOKENS"] = "4096", ["ONNXREWARD_MAX_CONVERSATIONS"] = "300",
                ["ONNXREWARD_QUEUE_CAPACITY"] = "900", ["ONNXREWARD_REQUEST_TIMEOUT_S"] = "12.5", ["ONNXREWARD_SERVED_MODEL_NAME"] = "env-rm",
                ["ONNXREWARD_EP"] = "cpu", ["ONNXREWARD_TRUNCATION"] = "drop-oldest-turns", ["ONNXREWARD_MAX_WAIT_MS"] = "3",
                ["ONNXREWARD_MAX_BODY_BYTES"] = "65536", ["ONNXREWARD_MAX_PADDING_WASTE"] = "0.2", ["ONNXREWARD_MAX_LENGTH"] = "1000",
                ["ONNXREWARD_API_KEY"] = "k", ["ONNXREWARD_MODEL"] = "some-model", ["ONNXREWARD_MAX_BATCH_SIZE"] = "16",
                ["ONNXREWARD_SHUTDOWN_TIMEOUT_S"] = "5", ["ONNXREWARD_CONTENT_SPECIAL_TOKENS"] = "text",
            };
            foreach (var (k, v) in set)
                Environment.SetEnvironmentVariable(k, v);
            var (settings, o, model) = ServeCommand.Parse();
            Assert.That(settings.Urls, Is.EqualTo("http://127.0.0.1:9001"));
            Assert.That(settings.ShutdownTimeout, Is.EqualTo(TimeSpan.FromSeconds(5)));
            Assert.That(model?.FullName, Is.EqualTo(Path.GetFullPath("some-model")), "a relative path resolves against the working directory");
            Assert.That((o.MaxBatchTokens, o.MaxConversations, o.QueueCapacity, o.MaxBatchSize, o.MaxBodyBytes, o.MaxLength),
                Is.EqualTo((4096, 300, 900, 16, 65536L, (int?)1000)));
            Assert.That((o.RequestTimeout, o.MaxWaitMs, o.MaxPaddingWaste), Is.EqualTo((TimeSpan.FromSeconds(12.5), 3.0, 0.2)));
            Assert.That((o.ServedModelName, o.ApiKey), Is.EqualTo(("env-rm", "k")));
            Assert.That((o.ExecutionProvider, o.Truncation, o.ContentSpecialTokens),
                Is.EqualTo((ExecutionProviderKind.Cpu, TruncationPolicy.DropOldestTurns, ContentSpecialTokens.Text)));

            // The flag wins over its variable.
            (_, o, _) = ServeCommand.Parse("--max-batch-tokens", "2048", "--served-model-name", "flag-rm", "--ep", "auto");
            Assert.That((o.MaxBatchTokens, o.ServedModelName, o.ExecutionProvider), Is.EqualTo((2048, "flag-rm", ExecutionProviderKind.Auto)));
            Assert.That(o.MaxConversations, Is.EqualTo(300), "the others still come from the environment");

            Environment.SetEnvironmentVariable("ONNXREWARD_MAX_BATCH_TOKENS", "lots");
            var e = Assert.Throws<IO.CliException>(() => ServeCommand.Parse());
            Assert.That(e!.Message, Does.Contain("ONNXREWARD_MAX_BATCH_TOKENS is 'lots'"));
        }
        finally
        {
            foreach (var (k, v) in saved)
                Environment.SetEnvironmentVariable(k, v);
        }
        var (_, defaults, _) = ServeCommand.Parse();
        Assert.That((defaults.MaxConversations, defaults.QueueCapacity, defaults.MaxBatchTokens), Is.EqualTo((1024, 2048, 8192)), "no variables: the defaults");
    }

    [Test]
    public void ServeRefusesBadOptionsBeforeListeningWithTheValidatorsMessage()
    {
        // Bound: start-up and refusal take ~1 s; 30 s is for a loaded machine (a server that listened would never exit).
        var (code, stdout, stderr) = CliRunner.Run(TimeSpan.FromSeconds(30), null, "serve", "--model", CliRunner.ArmormTiny, "--urls", "http://127.0.0.1:0",
            "--max-conversations", "5000");
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr.Trim(), Does.StartWith("error: --queue-capacity (2048) is below --max-conversations (5000)"));
        Assert.That(stdout, Is.Empty);
        (code, _, stderr) = CliRunner.Run(TimeSpan.FromSeconds(30), null, "serve", "--model", CliRunner.ArmormTiny, "--urls", "http://127.0.0.1:0",
            "--max-wait-ms", "20000");
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr.Trim(), Does.StartWith("error: --max-wait-ms is 20000; give 0 to 10000"));
    }

    [Test]
    public void ServeHelpNamesTheEnvironmentVariables()
    {
        var (code, stdout, _) = CliRunner.Run(TimeSpan.FromSeconds(30), null, "serve", "--help");
        Assert.That(code, Is.Zero);
        foreach (var v in new[] { "ONNXREWARD_URLS", "ONNXREWARD_MAX_BATCH_TOKENS", "ONNXREWARD_SERVED_MODEL_NAME", "ONNXREWARD_MODEL", "ONNXREWARD_API_KEY" })
            Assert.That(stdout, Does.Contain(v));
    }
}
