using System.Text.Json;
using OnnxReward.Testing;
using OnnxReward.Text;
using OnnxReward.Text.Conversations;

namespace OnnxReward.Tests.Text;

/// <summary>
/// The front end without a model: conversation → armorm-tiny's own chat template → ids → positions, against the
/// independent goldens of ../shared/reference/armorm-tiny (README: rendered text, ids and positions must match exactly).
/// </summary>
public class ConversationEncoderTests
{
    /// <summary>The Python reference\'s position rule (HF: the reward position is before the first pad), which the goldens use.</summary>
    private static readonly InputEncoderOptions HfRule = new() { PadTokens = PadTokenRule.PoolBeforeFirstPad };

    private static readonly Lazy<InputEncoder> Encoder = new(() => InputEncoder.Load(SharedData.ArmormTiny, HfRule));

    private static int[] Ints(JsonElement e) => e.EnumerateArray().Select(x => x.GetInt32()).ToArray();

    [Test]
    public void EveryGoldenRendersEncodesAndLocatesExactly()
    {
        var encoder = Encoder.Value;
        var n = 0;
        foreach (var line in File.ReadLines(Path.Combine(SharedData.ArmormTiny, "golden.jsonl")))
        {
            using var d = JsonDocument.Parse(line);
            var g = d.RootElement;
            var id = g.GetProperty("id").GetString();
            var conversation = Conversation.FromMessages(ScoringInput.ParseMessages(g.GetProperty("messages")));
            Assert.That(encoder.Render(conversation, n), Is.EqualTo(g.GetProperty("rendered").GetString()), id);
            var encoded = encoder.Encode(conversation, n);
            Assert.That(encoded.ToArray(), Is.EqualTo(Ints(g.GetProperty("input_ids"))), id);
            Assert.That(encoded.RewardPosition, Is.EqualTo(g.GetProperty("reward_position").GetInt32()), id);
            Assert.That(encoded.GatingPosition, Is.EqualTo(g.GetProperty("gating_position").GetInt32()), id);
            // The already-templated path gives the same ids and positions.
            var templated = encoder.EncodeTemplated(g.GetProperty("rendered").GetString()!, n);
            Assert.That(templated.ToArray(), Is.EqualTo(encoded.ToArray()), id);
            Assert.That((templated.RewardPosition, templated.GatingPosition), Is.EqualTo((encoded.RewardPosition, encoded.GatingPosition)), id);
            n++;
        }
        Assert.That(n, Is.EqualTo(47));
    }

    [Test]
    public void EncoderExposesRawEncodeDecodeAndTheGatingPatternFromTheTokenizer()
    {
        var encoder = Encoder.Value;
        // armorm.md §1.3: the pattern is the tokenizer's encoding of the assistant header (ids from the task statement).
        Assert.That(encoder.GatingPattern, Is.EqualTo(new[] { 128009, 128006, 78191, 128007, 271 }));
        // Raw encode: specials and ArmoRM's added [PAD] are one id each, no BOS is prepended (ids from tokenizer.json).
        var ids = encoder.TokenizeText("<|begin_of_text|>Hi<|eot_id|>[PAD]");
        Assert.That(ids, Is.EqualTo(new[] { 128000, 13347, 128009, 128256 }));
        Assert.That(encoder.Decode(ids), Is.EqualTo("<|begin_of_text|>Hi<|eot_id|>[PAD]"));
        Assert.That(encoder.PadTokenId, Is.EqualTo(128256));
    }

    [Test]
    public void GoldenErrorCaseHasNoAssistantHeader()
    {
        var encoder = Encoder.Value;
        using var d = JsonDocument.Parse(File.ReadLines(Path.Combine(SharedData.ArmormTiny, "golden_errors.jsonl")).Single());
        var g = d.RootElement;
        var conversation = Conversation.FromMessages(ScoringInput.ParseMessages(g.GetProperty("messages")));
        // The template itself does no role checks: it renders the prompt-only conversation, and the ids are the golden's.
        var rendered = encoder.Template!.Render(conversation.Messages);
        Assert.That(encoder.Tokenizer.Encode(rendered), Is.EqualTo(Ints(g.GetProperty("input_ids"))));
        var e = Assert.Throws<RewardModelException>(() => encoder.EncodeTemplated(rendered, 0))!;
        Assert.That(e.Message, Does.Contain(g.GetProperty("expected_error").GetString()).And.Contain("whose last turn is the assistant's"));
        // Validation for scoring catches it earlier, naming the fix.
        e = Assert.Throws<RewardModelException>(() => encoder.Encode(conversation, 5))!;
        Assert.That(e.Message, Does.Contain("conversation 5: the last turn is the user's, not the assistant's"));
    }

    [Test]
    public void GatingPositionIsTheLastAssistantHeaderAndRewardPositionFollowsHfWithPad()
    {
        var encoder = Encoder.Value;
        Assert.That(encoder.GatingPattern, Is.EqualTo(new[] { 128009, 128006, 78191, 128007, 271 }), "armorm.md §1.3");
        Assert.That(encoder.PadTokenId, Is.EqualTo(128256), "tokenizer_config.json pad_token [PAD]");
        var text = "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nA<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
                   + "B<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nC<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nD<|eot_id|>";
        var e = encoder.EncodeTemplated(text, 0);
        // Specials split the text, so the ids before the last header are exactly the encoding of the text before it.
        var prefix = text[..text.LastIndexOf("<|eot_id|><|start_header_id|>assistant", StringComparison.Ordinal)];
        Assert.That(e.GatingPosition, Is.EqualTo(encoder.Tokenizer.Encode(prefix).Length), "start of the LAST <|eot_id|><|start_header_id|>assistant…");
        Assert.That(e.ToArray()[e.GatingPosition..(e.GatingPosition + 5)], Is.EqualTo(encoder.GatingPattern));
        Assert.That(e.GatingPosition, Is.GreaterThan(10), "not the first header");
        Assert.That(e.RewardPosition, Is.EqualTo(e.ToArray().Length - 1), "no pad: the last token");
        // HF: (argmax(ids == pad) − 1) mod T: a literal [PAD] is the pad token and the reward is read just before it.
        var padded = encoder.EncodeTemplated(text + "[PAD][PAD]", 0);
        Assert.That(padded.ToArray()[^2..], Is.EqualTo(new[] { 128256, 128256 }));
        Assert.That(padded.RewardPosition, Is.EqualTo(e.ToArray().Length - 1));
        Assert.That(encoder.RewardPosition([128256, 5, 6]), Is.EqualTo(2), "pad at 0: (0 − 1) mod 3");
        Assert.That(encoder.RewardPosition([1, 2, 3]), Is.EqualTo(2), "no pad: the last token");
        // Scoring's rule: the pad token in the ids is an error that names it, never a silently moved reward position.
        var strict = encoder.With(encoder.Options with { PadTokens = PadTokenRule.Reject });
        Assert.That(Assert.Throws<RewardModelException>(() => strict.EncodeTemplated(text + "[PAD]", 4))!.Code, Is.EqualTo(RewardErrorCode.PadTokenInInput));
        Assert.Throws<RewardModelException>(() => encoder.EncodeTemplated("", 0), "empty text has nothing to score");
    }

    [Test]
    public void HhRlhfTranscriptsBecomeAlternatingTurns()
    {
        var c = Conversation.FromPromptResponse("\n\nHuman: hi there \n\nAssistant: hello\n\nHuman: 2+2?\n\nAssistant:", "4");
        Assert.That(c.Messages, Is.EqualTo(new ChatMessage[] { new("user", "hi there"), new("assistant", "hello"), new("user", "2+2?"), new("assistant", "4") }));
        // A transcript prompt ending with the Human turn (no trailing "Assistant:") gives the same turns.
        var noTrailer = Conversation.FromPromptResponse("\n\nHuman: hi there \n\nAssistant: hello\n\nHuman: 2+2?", "4");
        Assert.That(noTrailer.Messages, Is.EqualTo(c.Messages));
        // A plain prompt is one user turn, kept verbatim (the template trims).
        Assert.That(Conversation.FromPromptResponse(" Human rights? ", "Yes").Messages,
            Is.EqualTo(new ChatMessage[] { new("user", " Human rights? "), new("assistant", "Yes") }));
        // A whole transcript (hh-rlhf chosen/rejected fields) keeps its final assistant turn.
        Assert.That(Conversation.FromTranscript("\n\nHuman: a\n\nAssistant: b").Messages,
            Is.EqualTo(new ChatMessage[] { new("user", "a"), new("assistant", "b") }));
        Assert.That(Assert.Throws<ArgumentException>(() => Conversation.FromTranscript("User: a"))!.Message, Does.Contain("starts with \"\\n\\nHuman:\""));
        // Only "\n\nHuman:" and "\n\nAssistant:" open turns: other paragraphs stay inside the turn's text.
        Assert.That(Conversation.FromTranscript("\n\nHuman: a\n\nRobot: b").Messages,
            Is.EqualTo(new ChatMessage[] { new("user", "a\n\nRobot: b") }));
    }

    [Test]
    public void EveryHhRlhfPromptGivesUserLastBeforeTheResponse()
    {
        // All 2312 shared hh-rlhf prompts end with "\n\nHuman: …\n\nAssistant:": the conversation starts with the user,
        // the user speaks last before the response, and scoring validation accepts every one. The dataset itself has 4
        // prompts with two "Assistant:" turns in a row (lines 668, 764, 1320, …): those stay two assistant turns.
        int n = 0, repeated = 0;
        foreach (var line in File.ReadLines(SharedData.PathOf("data", "preferences", "hh_rlhf_harmless_test.jsonl")))
        {
            using var d = JsonDocument.Parse(line);
            var c = Conversation.FromPromptResponse(d.RootElement.GetProperty("prompt").GetString()!, "R");
            Assert.That(c.Messages[0].Role, Is.EqualTo("user"), $"line {n + 1}");
            Assert.That(c.Messages[^2].Role, Is.EqualTo("user"), $"line {n + 1}");
            Assert.That(c.Messages[^1], Is.EqualTo(new ChatMessage("assistant", "R")), $"line {n + 1}");
            Assert.That(c.Messages.Select(m => m.Role), Is.All.AnyOf("user", "assistant"));
            if (c.Messages.Zip(c.Messages.Skip(1)).Any(p => p.First.Role == p.Second.Role))
                repeated++;
            Assert.DoesNotThrow(() => c.Validate(n));
            n++;
        }
        Assert.That(n, Is.EqualTo(2312));
        Assert.That(repeated, Is.EqualTo(4), "counted independently with a regex over the raw prompts");
    }

    [TestCase("""{"messages":[]}""", "conversation 7 is empty")]
    [TestCase("""{"messages":[{"role":"user","content":"hi"},{"role":"robot","content":"x"}]}""", "turn 1 has role 'robot': use 'system', 'user' or 'assistant'")]
    [TestCase("""{"messages":[{"role":"user","content":"hi"}]}""", "the last turn is the user's, not the assistant's")]
    [TestCase("""{"messages":[{"role":"system","content":"s"},{"role":"assistant","content":"hi"}]}""", "has no user turn before the assistant's response")]
    public void InvalidConversationsAreRefusedBeforeTheTemplate(string json, string expected)
    {
        var input = ScoringInput.FromJson(JsonDocument.Parse(json).RootElement);
        var e = Assert.Throws<RewardModelException>(() => Encoder.Value.Encode(input.Conversation!, 7))!;
        Assert.That(e.Message, Does.Contain(expected));
        Assert.That(e.InputIndex, Is.EqualTo(7));
    }

    [TestCase("""{"messages":[{"role":"user"}]}""", "has null or missing \"content\"")]
    [TestCase("""{"messages":[{"role":"user","content":5}]}""", "\"messages\"[0].content is a number, expected a string")]
    [TestCase("""{"messages":[{"content":"x"}]}""", "\"messages\"[0] has no string \"role\"")]
    [TestCase("""{"messages":{"role":"user"}}""", "\"messages\" is an object, expected an array")]
    [TestCase("""{"text":null}""", "\"text\" is null, expected a string")]
    [TestCase("""{"prompt":"p","response":7}""", "\"response\" is a number, expected a string")]
    [TestCase("""{"input_ids":[1,"2"]}""", "\"input_ids\"[1] is \"2\"")]
    [TestCase("""{"input_ids":[1,2.5]}""", "\"input_ids\"[1] is 2.5")]
    public void MalformedFieldsAreNamed(string json, string expected)
    {
        var e = Assert.Throws<FormatException>(() => ScoringInput.FromJson(JsonDocument.Parse(json).RootElement))!;
        Assert.That(e.Message, Does.Contain(expected));
    }

    [Test]
    public void TheFourInputFormsParse()
    {
        static ScoringInput P(string json) => ScoringInput.FromJson(JsonDocument.Parse(json).RootElement);
        Assert.That(P("""{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":""}]}""").Conversation!.Messages,
            Has.Count.EqualTo(2), "empty content is allowed");
        Assert.That(P("""{"prompt":"\n\nHuman: q\n\nAssistant:","response":"r"}""").Conversation!.Messages.Select(m => m.Role),
            Is.EqualTo(new[] { "user", "assistant" }));
        Assert.That(P("""{"text":"<|begin_of_text|>x"}""").Text, Is.EqualTo("<|begin_of_text|>x"));
        Assert.That(P("""{"input_ids":[128000,87]}""").InputIds, Is.EqualTo(new[] { 128000, 87 }));
    }

    [Test]
    public void OpenRlhfQueriesLoseTheirPaddingAndEndInOneEos()
    {
        // OpenRLHF serve_rm's strip_sequence: the leading and the trailing run of pad / EOS texts go, one EOS is appended.
        // armorm-tiny: eos_token <|end_of_text|>, pad_token [PAD], bos_token <|begin_of_text|> (its tokenizer_config.json).
        var encoder = Encoder.Value;
        const string body = "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello<|eot_id|>";
        const string expected = body + "<|end_of_text|>";
        Assert.That(encoder.PrepareOpenRlhfQuery(body), Is.EqualTo(expected));
        Assert.That(encoder.PrepareOpenRlhfQuery("[PAD][PAD]" + body + "<|end_of_text|>[PAD][PAD][PAD]"), Is.EqualTo(expected));
        Assert.That(encoder.PrepareOpenRlhfQuery("<|end_of_text|>[PAD]" + body + "[PAD]<|end_of_text|><|end_of_text|>"), Is.EqualTo(expected));
        // Only the runs at the ends go: a pad or EOS inside the text stays (and the encoder then refuses an inner pad).
        Assert.That(encoder.PrepareOpenRlhfQuery("[PAD]a[PAD]b<|end_of_text|>c[PAD]"), Is.EqualTo("<|begin_of_text|>a[PAD]b<|end_of_text|>c<|end_of_text|>"));
        // BOS is added when missing, never doubled; a query of padding only becomes BOS + EOS.
        Assert.That(encoder.PrepareOpenRlhfQuery(body["<|begin_of_text|>".Length..] + "[PAD]"), Is.EqualTo(expected));
        Assert.That(encoder.PrepareOpenRlhfQuery("[PAD][PAD]<|end_of_text|>"), Is.EqualTo("<|begin_of_text|><|end_of_text|>"));
        // The prepared query encodes with its reward at the appended EOS (the last token) and its gating position found.
        var encoded = encoder.EncodeTemplated(encoder.PrepareOpenRlhfQuery("[PAD]" + body + "[PAD][PAD]"));
        Assert.That(encoded.ToArray()[^1], Is.EqualTo(128001));
        Assert.That(encoded.RewardPosition, Is.EqualTo(encoded.TokenCount - 1));
        Assert.That(encoded.HasGatingPosition, Is.True);
    }

    [Test]
    public void BosFollowsTheModelsOwnToken()
    {
        Assert.That(Encoder.Value.WithBos("x"), Is.EqualTo("<|begin_of_text|>x"));
        Assert.That(Encoder.Value.WithBos("<|begin_of_text|>x"), Is.EqualTo("<|begin_of_text|>x"));
        var qwen = InputEncoder.Load(SharedData.SkyworkQwen3Tiny);       // no bos_token: the text stays as it is
        Assert.That(qwen.WithBos("x"), Is.EqualTo("x"));
        Assert.That(qwen.PrepareOpenRlhfQuery("<|endoftext|><|endoftext|>x<|im_end|><|endoftext|>"), Is.EqualTo("x<|im_end|>"));
    }
}
