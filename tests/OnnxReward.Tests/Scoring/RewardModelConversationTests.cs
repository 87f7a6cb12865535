using System.Text.Json;
using OnnxReward.Testing;
using OnnxReward.Text.Conversations;

namespace OnnxReward.Tests.Scoring;

/// <summary>Conversation-level scoring: template + tokenizer + positions + graph, end to end on armorm-tiny.</summary>
public class RewardModelConversationTests
{
    private static readonly Lazy<RewardModel> Model = new(() =>
        RewardModel.Load(ExportedModels.ArmormTiny, new RewardModelOptions { ExecutionProvider = ExecutionProviderKind.Cpu }));

    private static Conversation FromGolden(JsonElement messages) =>
        Conversation.FromMessages(ScoringInput.ParseMessages(messages));

    [Test]
    public void MessagesToIdsPositionsAndScoresMatchEveryGolden()
    {
        var goldens = ExportedModels.ArmormTinyGoldens();
        var conversations = goldens.Select(g => FromGolden(g.Messages)).ToList();
        foreach (var (g, c) in goldens.Zip(conversations))
        {
            var (ids, reward, gating) = Model.Value.Tokenize(c);
            Assert.That(ids, Is.EqualTo(g.InputIds), g.Id);          // exact: the README requires ids and positions to match exactly
            Assert.That(reward, Is.EqualTo(g.RewardPosition), g.Id);
            Assert.That(gating, Is.EqualTo(g.GatingPosition), g.Id);
        }
        var scores = Model.Value.Score(conversations);
        for (var i = 0; i < goldens.Count; i++)
        {
            ExportedModels.AssertClose([scores[i].Score], [goldens[i].Score], goldens[i].Id + " score");
            ExportedModels.AssertClose(scores[i].RewardValues, goldens[i].Rewards, goldens[i].Id + " rewards");
            ExportedModels.AssertClose(scores[i].GatingValues, goldens[i].Gating, goldens[i].Id + " gating");
        }
    }

    [Test]
    public void EncodeEachGivesEveryInputItsOwnResultAndTheEncodedOnesScoreAsTheGoldens()
    {
        var goldens = ExportedModels.ArmormTinyGoldens();
        var model = Model.Value;
        var inputs = new[]
        {
            ScoringInput.FromConversation(FromGolden(goldens[0].Messages)),
            null!,                                                                  // a null item is that item's error
            ScoringInput.FromTokenIds([model.Manifest.VocabSize + 7]),              // outside the vocabulary
            ScoringInput.FromTemplatedText(""),                                     // nothing to score
            ScoringInput.FromTokenIds(goldens[1].InputIds),
        };
        var results = model.EncodeEach(inputs, firstIndex: 10);
        Assert.That(results.Select(r => r.IsSuccess), Is.EqualTo(new[] { true, false, false, false, true }));
        Assert.That(results.Where(r => !r.IsSuccess).Select(r => r.Error!.InputIndex), Is.EqualTo(new int?[] { 11, 12, 13 }),
            "indices count from firstIndex");
        Assert.That(results[2].Error!.Message, Does.Contain("outside the model's vocabulary"));
        Assert.That(results[0].Input!.ToArray(), Is.EqualTo(goldens[0].InputIds), "exact ids (README)");
        Assert.That((results[4].Input!.RewardPosition, results[4].Input!.GatingPosition),
            Is.EqualTo((goldens[1].RewardPosition, goldens[1].GatingPosition)));
        var scores = model.Score([results[0].Input!, results[4].Input!]);
        ExportedModels.AssertClose([scores[0].Score, scores[1].Score], [goldens[0].Score, goldens[1].Score], "encoded inputs score as the goldens");
    }

    [Test]
    public void HhRlhfTranscriptsBecomeTheGoldensTurns()
    {
        // Golden ids "a-NN-hh-rowR-chosen|rejected" name the row of hh_rlhf_harmless_test.jsonl the conversation came from.
        var rows = File.ReadLines(SharedData.PathOf("data", "preferences", "hh_rlhf_harmless_test.jsonl")).ToList();
        var checkedCount = 0;
        foreach (var g in ExportedModels.ArmormTinyGoldens().Where(g => g.Id.Contains("-hh-row")))
        {
            var parts = g.Id.Split('-');
            var row = JsonDocument.Parse(rows[int.Parse(parts[3]["row".Length..])]).RootElement;
            var response = row.GetProperty(parts[4]).GetString()!;
            var ours = Conversation.FromPromptResponse(row.GetProperty("prompt").GetString()!, response);
            var golden = FromGolden(g.Messages);
            Assert.That(ours.Messages.Select(m => m.Role), Is.EqualTo(golden.Messages.Select(m => m.Role)), g.Id);
            // Contents agree up to the surrounding whitespace the template trims anyway; rendered text must be identical.
            Assert.That(Model.Value.Tokenize(ours).InputIds, Is.EqualTo(g.InputIds), g.Id);
            checkedCount++;
        }
        Assert.That(checkedCount, Is.EqualTo(10));
    }

    [TestCase("[]", "conversation 0 is empty")]
    [TestCase("""[{"role":"user","content":"hi"}]""", "the last turn is the user's, not the assistant's")]
    [TestCase("""[{"role":"assistant","content":"hi"}]""", "has no user turn before the assistant's response")]
    [TestCase("""[{"role":"user","content":"hi"},{"role":"robot","content":"x"}]""", "turn 1 has role 'robot': use 'system', 'user' or 'assistant'")]
    public void InvalidConversationsGiveClearErrors(string messages, string expected)
    {
        var c = FromGolden(JsonDocument.Parse(messages).RootElement);
        var e = Assert.Throws<RewardModelException>(() => Model.Value.Score([c]))!;
        Assert.That(e.Message, Does.Contain(expected));
        Assert.That(e.InputIndex, Is.EqualTo(0));
    }

    [TestCase("""{"messages":[{"role":"user","content":null}]}""", "has null or missing \"content\"")]
    [TestCase("""{"messages":[{"role":"user","content":[{"type":"text"}]}]}""", "expected a string (multi-part content is not supported)")]
    [TestCase("""{"prompt":"x"}""", "\"prompt\" needs a \"response\"")]
    [TestCase("""{"text":"x","messages":[]}""", "give exactly one form of input")]
    [TestCase("""{"input_ids":[1,-2]}""", "\"input_ids\"[1] is -2")]
    [TestCase("""[1,2]""", "expected a JSON object")]
    [TestCase("""{"foo":1}""", "has none of \"messages\"")]
    public void MalformedInputLinesGiveClearErrors(string json, string expected)
    {
        var e = Assert.Throws<FormatException>(() => ScoringInput.FromJson(JsonDocument.Parse(json).RootElement))!;
        Assert.That(e.Message, Does.Contain(expected));
    }

    [Test]
    public void OverLongConversationsFollowTheTruncationPolicy()
    {
        var turns = new List<ChatMessage>();
        for (var i = 0; i < 12; i++)
        {
            turns.Add(new("user", $"Question {i}: " + string.Join(' ', Enumerable.Repeat("word", 20))));
            turns.Add(new("assistant", $"Answer {i}: " + string.Join(' ', Enumerable.Repeat("reply", 20))));
        }
        var c = Conversation.FromMessages([new ChatMessage("system", "Be brief."), .. turns]);
        var full = Model.Value.Tokenize(c).InputIds.Length;
        Assert.That(full, Is.GreaterThan(300));

        using var strict = RewardModel.Load(ExportedModels.ArmormTiny, new RewardModelOptions { ExecutionProvider = ExecutionProviderKind.Cpu, MaxSequenceLength = 120 });
        var e = Assert.Throws<RewardModelException>(() => strict.Score(c))!;
        Assert.That(e.Message, Does.Contain($"input 0 is {full} tokens long, over the limit of 120"));

        using var dropping = RewardModel.Load(ExportedModels.ArmormTiny, new RewardModelOptions
        {
            ExecutionProvider = ExecutionProviderKind.Cpu, MaxSequenceLength = 120, Truncation = TruncationPolicy.DropOldestTurns,
        });
        var (ids, _, gating) = dropping.Tokenize(c);
        Assert.That(ids.Length, Is.LessThanOrEqualTo(120));
        var text = dropping.Encoder.Tokenizer.Decode(ids);
        Assert.That(text, Does.Contain("Be brief."), "system turn kept");
        Assert.That(text, Does.Contain("Question 11:").And.Contain("Answer 11:"), "last user turn and response kept");
        Assert.That(text, Does.Not.Contain("Question 0:"), "oldest turns dropped");
        // The truncated conversation scores exactly like the same turns given without truncation.
        var kept = Conversation.FromMessages(c.Messages.Where(m => m.Role == "system" || text.Contains(m.Content[..12])).ToList());
        Assert.That(dropping.Score(c).Score, Is.EqualTo(Model.Value.Score(kept).Score).Within(1e-6));
        Assert.That(gating, Is.LessThan(ids.Length));

        using var tiny = RewardModel.Load(ExportedModels.ArmormTiny, new RewardModelOptions
        {
            ExecutionProvider = ExecutionProviderKind.Cpu, MaxSequenceLength = 30, Truncation = TruncationPolicy.DropOldestTurns,
        });
        e = Assert.Throws<RewardModelException>(() => tiny.Score(c))!;
        Assert.That(e.Message, Does.Contain("still").And.Contain("with only its system turns, last user turn and response left"));
    }

    [Test]
    public async Task AsyncAndStreamingGiveTheSameResultsInOrder()
    {
        var conversations = ExportedModels.ArmormTinyGoldens().Select(g => FromGolden(g.Messages)).ToList();
        var sync = Model.Value.Score(conversations);
        var async = await Model.Value.ScoreAsync(conversations);
        var streamed = new List<RewardScore>();
        await foreach (var s in Model.Value.ScoreStreamAsync(conversations.ToAsyncEnumerable(), chunkSize: 10))
            streamed.Add(s);
        Assert.That(async.Select(s => s.Score), Is.EqualTo(sync.Select(s => s.Score)).Within(1e-5));
        Assert.That(streamed.Select(s => s.Score), Is.EqualTo(sync.Select(s => s.Score)).Within(1e-5));
    }
}

/// <summary>Concurrent text scoring: template rendering and tokenization (with Microsoft.ML.Tokenizers' shared cache)
/// under eight threads give the single-threaded ids and scores.</summary>
public class RewardModelConcurrentTextTests
{
    [Test]
    public void EightThreadsScoringConversationsGiveTheSingleThreadedResults()
    {
        using var model = RewardModel.Load(ExportedModels.ArmormTiny, new RewardModelOptions { ExecutionProvider = ExecutionProviderKind.Cpu });
        var goldens = ExportedModels.ArmormTinyGoldens();
        // 400 distinct conversations: the goldens, each with a numbered variation so the tokenizer cache keeps churning.
        var conversations = Enumerable.Range(0, 400).Select(i =>
        {
            var g = Conversation.FromMessages(ScoringInput.ParseMessages(goldens[i % goldens.Count].Messages));
            var m = g.Messages.ToList();
            m[^1] = m[^1] with { Content = m[^1].Content + $" (variant {i}: word{i * 7919 % 100003})" };
            return Conversation.FromMessages(m);
        }).ToList();
        var expected = model.Score(conversations);
        var results = new RewardScore[8][];
        Parallel.For(0, 8, new ParallelOptions { MaxDegreeOfParallelism = 8 }, t =>
        {
            var order = Enumerable.Range(0, conversations.Count).OrderBy(i => (i * (t + 3)) % conversations.Count).ToList();
            var mine = new RewardScore[conversations.Count];
            foreach (var chunk in order.Chunk(23))
            {
                var s = model.Score(chunk.Select(i => conversations[i]).ToList());
                for (var j = 0; j < chunk.Length; j++)
                    mine[chunk[j]] = s[j];
            }
            results[t] = mine;
        });
        for (var t = 0; t < 8; t++)
            for (var i = 0; i < conversations.Count; i++)
            {
                Assert.That(results[t][i].TokenCount, Is.EqualTo(expected[i].TokenCount), $"thread {t} conversation {i}: same tokens");
                Assert.That(results[t][i].Score, Is.EqualTo(expected[i].Score).Within(1e-5), $"thread {t} conversation {i}");
            }
    }
}
