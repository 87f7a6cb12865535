using System.Text.Json;
using OnnxReward.Cli.Serving;
using OnnxReward.Hosting;
using OnnxReward.Selection;
using static OnnxReward.Cli.Tests.Serving.ServingFixture;

namespace OnnxReward.Cli.Tests.Serving;

/// <summary>The scoring routes against the library: same inputs, same numbers; compatibility routes in the shapes their
/// projects document.</summary>
[NonParallelizable]
public class ServingEndpointTests
{
    private static readonly Conversation[] Conversations =
    [
        Conversation.FromPromptResponse("What is 2+2?", "4"),
        Conversation.FromPromptResponse("Name a color.", "Blue, like the sky on a clear day."),
        Conversation.FromMessages([new("system", "Be brief."), new("user", "Capital of France?"), new("assistant", "Paris.")]),
        Conversation.FromPromptResponse("\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Tell me a joke\n\nAssistant:", "Why did the chicken cross the road?"),
    ];

    private static object Messages(Conversation c) => new { messages = c.Messages.Select(m => new { role = m.Role, content = m.Content }) };

    [Test]
    public async Task ScoreReturnsTheLibrarysResultsInOrderForEveryInputForm()
    {
        await using var s = await Start();
        var model = TinyModel;
        var ids = model.Tokenize(Conversations[1]).InputIds;
        var text = model.Encoder.Render(Conversations[2]);
        var body = Json(new
        {
            conversations = new object[]
            {
                new { prompt = "What is 2+2?", response = "4" },
                new { input_ids = ids },
                new { text },
                new { prompt = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Tell me a joke\n\nAssistant:", response = "Why did the chicken cross the road?" },
                Messages(Conversations[0]),
            },
        });
        var (status, json) = await s.PostJson("/v1/score", body);
        Assert.That(status, Is.EqualTo(200), json.ToString());
        var results = json.GetProperty("results").EnumerateArray().ToList();
        var expected = new[] { Conversations[0], Conversations[1], Conversations[2], Conversations[3], Conversations[0] }
            .Select(c => model.Score(c)).ToList();                   // each alone: batch of one
        Assert.That(results, Has.Count.EqualTo(5));
        for (var i = 0; i < 5; i++)
            AssertSame(results[i], expected[i], $"result {i}");
    }

    [Test]
    public async Task ConcurrentSingleRequestsAreBatchedTogetherAndStillEqualTheLibrary()
    {
        // A long max wait makes the merge certain: 24 requests in flight at once must share scoring rounds.
        await using var s = await Start(o => { o.MaxWaitMs = 200; o.MaxBatchSize = 64; });
        var inputs = Enumerable.Range(0, 24).Select(i => Conversation.FromPromptResponse($"Question {i}: what is {i} + {i}?",
            string.Concat(Enumerable.Repeat($"{2 * i} ", 1 + i % 5)))).ToList();
        var tasks = inputs.Select(c => s.PostJson("/v1/score", Json(new { conversations = new[] { Messages(c) } }))).ToList();
        var answers = await Task.WhenAll(tasks);
        for (var i = 0; i < inputs.Count; i++)
        {
            Assert.That(answers[i].Status, Is.EqualTo(200));
            AssertSame(answers[i].Body.GetProperty("results")[0], TinyModel.Score(inputs[i]), $"request {i}");
        }
        var metrics = await s.Client.GetStringAsync("/metrics");
        var rounds = Metric(metrics, "onnxreward_scorer_round_rows_count");
        Assert.That(Metric(metrics, "onnxreward_scorer_round_rows_sum"), Is.EqualTo(24), "every row scored once");
        Assert.That(rounds, Is.LessThan(24), $"cross-request batching merged requests ({rounds} rounds for 24 rows)");
    }

    [Test]
    public async Task BestOfNMatchesTheSelector()
    {
        await using var s = await Start();
        var request = new BestOfNRequest("Name a fruit.", ["Apple.", "A banana is a fruit.", "Seven."], null, ["Pear.", "Grape."]);
        var (status, json) = await s.PostJson("/v1/bon", Json(new
        {
            prompt = request.Prompt, candidates = request.Candidates, reference_responses = request.ReferenceResponses, rule = "lsc-and",
        }));
        Assert.That(status, Is.EqualTo(200), json.ToString());
        var expected = BestOfNSelector.Select(TinyModel, request, new BestOfNOptions { Rule = SelectionRule.LscAnd });
        Assert.That(json.GetProperty("chosen").GetInt32(), Is.EqualTo(expected.Chosen));
        Assert.That(json.GetProperty("rule").GetString(), Is.EqualTo("lsc-and"));
        Assert.That(json.GetProperty("scores").EnumerateArray().Select(x => x.GetDouble()), Is.EqualTo(expected.Scores));
        Assert.That(json.GetProperty("transformed").EnumerateArray().Select(x => x.GetDouble()), Is.EqualTo(expected.Transformed));
        Assert.That(json.GetProperty("reference_reward").GetDouble(), Is.EqualTo(expected.ReferenceReward));

        (status, json) = await s.PostJson("/v1/bon", Json(new { prompt = "x", candidates = Array.Empty<string>() }));
        Assert.That(status, Is.EqualTo(400));
        Assert.That(json.GetProperty("detail").GetString(), Does.Contain("the request has no candidates"));
        (status, json) = await s.PostJson("/v1/bon", Json(new { prompt = "x", candidates = new[] { "a" }, rule = "mean-minus-k-std" }));
        Assert.That(status, Is.EqualTo(400), "armorm-tiny has no posterior");
        Assert.That(json.GetProperty("detail").GetString(), Does.Contain("has no posterior"));
    }

    [Test]
    public async Task GetRewardSpeaksOpenRlhfsRemoteRewardModelShape()
    {
        // OpenRLHF openrlhf/cli/serve_rm.py: POST /get_reward {"query": [...]} → {"rewards": [...]} ("scores" beside it in
        // later versions); its client (openrlhf/utils/remote_rm_utils.py, request_api_wrapper) reads "rewards" and the
        // trainer also sends "prompts"/"labels".
        await using var s = await Start();
        var texts = Conversations.Select(c => TinyModel.Encoder.Render(c)).ToList();
        Assert.That(texts, Has.All.StartWith("<|begin_of_text|>"), "the Llama-3 template emits BOS itself");
        var (status, json) = await s.PostJson("/get_reward", Json(new { query = texts, prompts = texts.Select(_ => "p"), labels = texts.Select(_ => "") }));
        Assert.That(status, Is.EqualTo(200), json.ToString());
        // OpenRLHF's server scores each query with one EOS appended (serve_rm.py: strip pad/EOS runs, + eos_token).
        var expected = TinyModel.ScoreTemplated(texts.Select(t => t + "<|end_of_text|>").ToArray()).Select(x => x.Score).ToArray();
        Assert.That(json.GetProperty("rewards").EnumerateArray().Select(x => x.GetSingle()), Is.EqualTo(expected).Within(Tolerance));
        Assert.That(json.GetProperty("scores").EnumerateArray().Select(x => x.GetSingle()), Is.EqualTo(expected).Within(Tolerance));

        // BOS is added when missing and never doubled: the text without its BOS scores exactly as the text with it.
        var withoutBos = texts[0]["<|begin_of_text|>".Length..];
        (status, json) = await s.PostJson("/get_reward", Json(new { query = new[] { withoutBos } }));
        Assert.That(status, Is.EqualTo(200));
        Assert.That(json.GetProperty("rewards")[0].GetSingle(), Is.EqualTo(expected[0]).Within(Tolerance));
        Assert.That(TinyModel.Encoder.Tokenizer.Encode(TinyModel.Encoder.PrepareOpenRlhfQuery(texts[0])).Count(id => id == 128000), Is.EqualTo(1));

        (status, json) = await s.PostJson("/get_reward", Json(new { prompts = new[] { "x" } }));
        Assert.That(status, Is.EqualTo(400));
        Assert.That(json.GetProperty("detail").GetString(), Does.Contain("\"query\""));
    }

    [Test]
    public async Task ClassifySpeaksTheVllmAndSglangShape()
    {
        // vLLM vllm/entrypoints/pooling/classify/protocol.py and SGLang docs/supported_models/classify_models.md:
        // {"model", "input": str | [str]} or {"model", "messages": [...]} →
        // {"id", "object": "list", "created", "model", "data": [{"index", "label", "probs", "num_classes"}], "usage": {...}}.
        await using var s = await Start();
        var texts = Conversations.Take(2).Select(c => TinyModel.Encoder.Render(c)).ToArray();
        var (status, json) = await s.PostJson("/v1/classify", Json(new { model = "armorm-tiny", input = texts }));
        Assert.That(status, Is.EqualTo(200), json.ToString());
        Assert.That(json.GetProperty("object").GetString(), Is.EqualTo("list"));
        Assert.That(json.GetProperty("id").GetString(), Does.StartWith("classify-"));
        Assert.That(json.GetProperty("created").GetInt64(), Is.GreaterThan(1_700_000_000));
        Assert.That(json.GetProperty("model").GetString(), Is.EqualTo("armorm-tiny"));
        var data = json.GetProperty("data").EnumerateArray().ToList();
        Assert.That(data, Has.Count.EqualTo(2));
        var expected = Conversations.Take(2).Select(c => TinyModel.Score(c)).ToList();
        for (var i = 0; i < 2; i++)
        {
            Assert.That(data[i].GetProperty("index").GetInt32(), Is.EqualTo(i));
            Assert.That(data[i].GetProperty("num_classes").GetInt32(), Is.EqualTo(1));
            Assert.That(data[i].GetProperty("label").GetString(), Is.EqualTo("LABEL_0"));
            Assert.That(data[i].GetProperty("probs").EnumerateArray().Select(p => p.GetSingle()), Is.EqualTo(new[] { expected[i].Score }).Within(Tolerance), "raw score");
        }
        var usage = json.GetProperty("usage");
        Assert.That(usage.GetProperty("prompt_tokens").GetInt32(), Is.EqualTo(expected.Sum(e => e.TokenCount)));
        Assert.That(usage.GetProperty("total_tokens").GetInt32(), Is.EqualTo(expected.Sum(e => e.TokenCount)));
        Assert.That(usage.GetProperty("completion_tokens").GetInt32(), Is.Zero);

        (status, json) = await s.PostJson("/v1/classify", Json(new { model = "m", messages = Conversations[2].Messages.Select(m => new { role = m.Role, content = m.Content }) }));
        Assert.That(status, Is.EqualTo(200), json.ToString());
        Assert.That(json.GetProperty("data")[0].GetProperty("probs")[0].GetSingle(), Is.EqualTo(TinyModel.Score(Conversations[2]).Score).Within(Tolerance));

        (status, json) = await s.PostJson("/classify", Json(new { input = texts[0] }));   // vLLM's un-versioned path, single string
        Assert.That(status, Is.EqualTo(200));
        Assert.That(json.GetProperty("data")[0].GetProperty("probs")[0].GetSingle(), Is.EqualTo(expected[0].Score).Within(Tolerance));
        Assert.That(json.GetProperty("model").GetString(), Is.EqualTo("armorm-tiny"), "defaults to the model directory's name");
    }

    /// <summary>The sum of the samples named <paramref name="name"/> in Prometheus text, over all their label sets
    /// (the exporter labels every sample with otel_scope_name).</summary>
    internal static double Metric(string text, string name, string? having = null) =>
        text.Split('\n').Where(l => (l.StartsWith(name + " ", StringComparison.Ordinal) || l.StartsWith(name + "{", StringComparison.Ordinal))
                                     && (having is null || l.Contains(having, StringComparison.Ordinal)))
            .Sum(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture));
}
