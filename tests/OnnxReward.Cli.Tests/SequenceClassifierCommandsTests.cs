using System.Text.Json;
using OnnxReward.Cli.Serving;
using OnnxReward.Cli.Tests.Serving;
using OnnxReward.Testing;

namespace OnnxReward.Cli.Tests;

/// <summary>
/// `export`, `score`, `eval`, `bon` and `serve` on the two sequence-classification references (skywork-llama31-tiny,
/// skywork-qwen3-tiny): scores against the goldens, no objectives or gating in the output, and the rules that need
/// what such a model lacks (μ − kσ: a posterior; LSC-AND: objectives) refused with a message saying so.
/// </summary>
[TestFixture("skywork-llama31-tiny")]
[TestFixture("skywork-qwen3-tiny")]
[NonParallelizable]
public class SequenceClassifierCommandsTests(string reference)
{
    // Llama-3.1 declares 131,072 positions; the memory check sizes attention for the longest allowed row, so the
    // commands get --max-length (the goldens' longest conversation is 4,857 tokens).
    private const string MaxLength = "8192";
    private string _model = "";
    private List<JsonElement> _goldens = [];

    private static List<JsonElement> Lines(string stdout) =>
        stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToList();

    [OneTimeSetUp]
    public void Export()
    {
        var source = SharedData.PathOf("reference", reference);
        _goldens = File.ReadLines(Path.Combine(source, "golden.jsonl")).Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToList();
        _model = Path.Combine(SharedData.NewTempDirectory("cli-" + reference), "model");
        var (code, stdout, stderr) = CliRunner.Run(null, "export", source, "--out", _model);
        Assert.That(code, Is.Zero, stderr);
        Assert.That(stdout, Does.Contain("sequence classification"));
    }

    /// <summary>Plain user/assistant conversations ending with the reply (what `score` takes as messages).</summary>
    private IEnumerable<JsonElement> Scorable() => _goldens.Where(g =>
        g.GetProperty("messages").EnumerateArray().All(m => m.EnumerateObject().All(p => p.Name is "role" or "content"))
        && g.GetProperty("messages").EnumerateArray().Last().GetProperty("role").GetString() == "assistant");

    [Test]
    public void ScoreMatchesTheGoldensWithLogitsAndNoObjectives()
    {
        var cases = Scorable().ToList();
        Assert.That(cases, Has.Count.GreaterThan(30));
        var stdin = string.Join('\n', cases.Select(g => JsonSerializer.Serialize(new { messages = g.GetProperty("messages") })));
        var (code, stdout, stderr) = CliRunner.Run(stdin, "score", "--model", _model, "--ep", "cpu", "--max-length", MaxLength);
        Assert.That(code, Is.Zero, stderr);
        var lines = Lines(stdout);
        Assert.That(lines, Has.Count.EqualTo(cases.Count));
        for (var i = 0; i < cases.Count; i++)
        {
            var golden = cases[i].GetProperty("score")[0].GetSingle();
            // The reference README's tolerance: |ours − golden| ≤ 1e-4 + 1e-4·|golden|.
            Assert.That(lines[i].GetProperty("score").GetSingle(), Is.EqualTo(golden).Within(1e-4 + 1e-4 * Math.Abs(golden)),
                cases[i].GetProperty("id").GetString());
            Assert.That(lines[i].GetProperty("logits")[0].GetSingle(), Is.EqualTo(lines[i].GetProperty("score").GetSingle()));
            Assert.That(lines[i].GetProperty("tokens").GetInt32(), Is.EqualTo(cases[i].GetProperty("input_ids").GetArrayLength()));
            Assert.That(lines[i].TryGetProperty("objectives", out _) || lines[i].TryGetProperty("gating", out _) || lines[i].TryGetProperty("score_std", out _),
                Is.False, "a sequence classifier has no objectives, gating or posterior");
        }
    }

    [Test]
    public void TokenizeGivesTheGoldenIdsAndPooledPositionFromTheCheckpointAndTheModelDirectory()
    {
        var cases = Scorable().ToList();
        var stdin = string.Join('\n', cases.Select(g => JsonSerializer.Serialize(new { messages = g.GetProperty("messages") })));
        foreach (var folder in new[] { SharedData.PathOf("reference", reference), _model })
        {
            var (code, stdout, stderr) = CliRunner.Run(stdin, "tokenize", "--tokenizer", folder);
            Assert.That(code, Is.Zero, stderr);
            var lines = Lines(stdout);
            Assert.That(lines, Has.Count.EqualTo(cases.Count));
            for (var i = 0; i < cases.Count; i++)
            {
                var id = cases[i].GetProperty("id").GetString();
                Assert.That(lines[i].GetProperty("input_ids").EnumerateArray().Select(x => x.GetInt32()),
                    Is.EqualTo(cases[i].GetProperty("input_ids").EnumerateArray().Select(x => x.GetInt32())), id);
                Assert.That(lines[i].GetProperty("reward_position").GetInt32(), Is.EqualTo(cases[i].GetProperty("reward_position").GetInt32()), id);
                Assert.That(lines[i].TryGetProperty("gating_position", out _), Is.False, "a classifier does not gate");
            }
        }
    }

    [Test]
    public void EvalAgreesWithTheLibrarysOrderingOfEachPair()
    {
        var dir = SharedData.NewTempDirectory("cli-eval-" + reference);
        var file = Path.Combine(dir, "pairs.jsonl");
        (string Prompt, string Chosen, string Rejected)[] pairs =
        [
            ("How do I boil an egg?", "Simmer it for 9 minutes, then cool it in cold water.", "Eggs come from chickens."),
            ("What is the capital of France?", "Paris.", "Lyon, I think."),
            ("Say hi", "Hi there!", "Go away."),
            ("Name a prime number", "7", "8"),
        ];
        File.WriteAllLines(file, pairs.Select(p => JsonSerializer.Serialize(new { prompt = p.Prompt, chosen = p.Chosen, rejected = p.Rejected, source = "s" })));
        var (code, stdout, stderr) = CliRunner.Run(null, "eval", file, "--model", _model, "--ep", "cpu", "--max-length", MaxLength, "--json");
        Assert.That(code, Is.Zero, stderr);
        var report = JsonDocument.Parse(stdout).RootElement;
        using var model = RewardModel.Load(_model, new RewardModelOptions { ExecutionProvider = ExecutionProviderKind.Cpu, MaxSequenceLength = 8192 });
        var right = pairs.Count(p => model.Score(Conversation.FromPromptResponse(p.Prompt, p.Chosen)).Score
                                     > model.Score(Conversation.FromPromptResponse(p.Prompt, p.Rejected)).Score);
        Assert.That(report.GetProperty("n").GetInt32(), Is.EqualTo(pairs.Length));
        Assert.That(report.GetProperty("overall").GetDouble(), Is.EqualTo((double)right / pairs.Length).Within(1e-12));
    }

    [Test]
    public void BonPicksTheHighestScoreAndRefusesRulesTheModelCannotSupport()
    {
        const string line = """{"prompt": "How do I boil an egg?", "candidates": ["Eggs come from chickens.", "Put the egg in boiling water for about 9 minutes.", "Boil it."], "reference_responses": ["Boil it for a while."]}""";
        var (code, stdout, stderr) = CliRunner.Run(line, "bon", "--model", _model, "--ep", "cpu", "--max-length", MaxLength);
        Assert.That(code, Is.Zero, stderr);
        var result = Lines(stdout).Single();
        var scores = result.GetProperty("scores").EnumerateArray().Select(s => s.GetDouble()).ToList();
        Assert.That(result.GetProperty("chosen").GetInt32(), Is.EqualTo(scores.IndexOf(scores.Max())));
        Assert.That(result.TryGetProperty("transformed", out _), Is.True, "the LSC transform of the score uses the reference responses");

        (code, _, stderr) = CliRunner.Run(line, "bon", "--model", _model, "--ep", "cpu", "--max-length", MaxLength, "--rule", "mean-minus-k-std");
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.Contain("has no posterior"));
        (code, _, stderr) = CliRunner.Run(line, "bon", "--model", _model, "--ep", "cpu", "--max-length", MaxLength, "--rule", "lsc-and");
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.Contain("has no objectives").And.Contain("--rule score"));
    }

    [Test]
    public async Task ServeAnswersScoreGetRewardClassifyAndHealthForAClassifier()
    {
        using var model = RewardModel.Load(_model, new RewardModelOptions { ExecutionProvider = ExecutionProviderKind.Cpu, MaxSequenceLength = 8192 });
        await using var s = await ServingFixture.Start(load: () => model);
        var golden = Scorable().First();
        var expected = golden.GetProperty("score")[0].GetSingle();
        var tolerance = 1e-4 + 1e-4 * Math.Abs(expected);          // the reference README's

        var (status, json) = await s.PostJson("/v1/score", ServingFixture.Json(new { conversations = new[] { new { messages = golden.GetProperty("messages") } } }));
        Assert.That(status, Is.EqualTo(200), json.ToString());
        var result = json.GetProperty("results")[0];
        Assert.That(result.GetProperty("score").GetSingle(), Is.EqualTo(expected).Within(tolerance));
        Assert.That(result.TryGetProperty("objectives", out _), Is.False);

        // /get_reward prepares a query as OpenRLHF's server does: trailing pad/EOS stripped, one EOS (the model's
        // eos_token) appended, BOS added only when missing (Llama-3.1: the rendered text has it; Qwen3 has none). So the
        // rendered golden, with a trainer's padding around it, scores as the rendered text + EOS scored directly.
        var rendered = golden.GetProperty("rendered").GetString()!;
        var eos = model.Encoder.Template!.EosToken!;
        var pad = model.Encoder.Template.PadToken ?? eos;
        // Skywork-Llama-3.1's eos_token is <|eot_id|>, which its rendering already ends with; Qwen3's is <|im_end|>, followed by "\n".
        var openRlhf = model.ScoreTemplated([rendered.EndsWith(eos, StringComparison.Ordinal) ? rendered : rendered + eos])[0].Score;
        (status, json) = await s.PostJson("/get_reward", ServingFixture.Json(new { query = new[] { pad + pad + rendered + eos + pad + pad } }));
        Assert.That(status, Is.EqualTo(200), json.ToString());
        Assert.That(json.GetProperty("rewards")[0].GetSingle(), Is.EqualTo(openRlhf).Within(1e-5),
            "padded templated text: pads stripped, one EOS, BOS not doubled (Llama-3.1), nothing added (Qwen3); 1e-5 as the serving fixture's bound");

        (status, json) = await s.PostJson("/v1/classify", ServingFixture.Json(new { messages = golden.GetProperty("messages") }));
        Assert.That(status, Is.EqualTo(200), json.ToString());
        Assert.That(json.GetProperty("data")[0].GetProperty("probs")[0].GetSingle(), Is.EqualTo(expected).Within(tolerance));
        Assert.That(json.GetProperty("data")[0].GetProperty("label").GetString(), Is.EqualTo("LABEL_0"));

        (status, json) = await s.PostJson("/v1/bon", ServingFixture.Json(new { prompt = "Hi", candidates = new[] { "Hello!", "Go away." }, rule = "lsc-and", reference_responses = new[] { "Hey." } }));
        Assert.That(status, Is.EqualTo(400).Or.EqualTo(422), json.ToString());
        Assert.That(json.ToString(), Does.Contain("has no objectives"));

        using var health = await s.Client.GetAsync("/health");
        var h = JsonDocument.Parse(await health.Content.ReadAsStringAsync()).RootElement;
        Assert.That(h.GetProperty("head").GetString(), Is.EqualTo("sequence_classification"));
        Assert.That(h.GetProperty("objectives").GetArrayLength(), Is.Zero);
    }
}
