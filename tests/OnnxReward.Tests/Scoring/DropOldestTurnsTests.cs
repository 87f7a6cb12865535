using OnnxReward.Testing;
using OnnxReward.Text;
using OnnxReward.Text.Chat;

namespace OnnxReward.Tests.Scoring;

/// <summary>Issue 16 item 7: drop-oldest-turns re-rendered and re-tokenized the whole conversation once per dropped turn
/// (1,000 / 2,000 / 4,000 turn pairs: 10 / 34 / 109 s). The library now binary-searches the number dropped; these tests
/// keep the old one-turn-at-a-time loop as the oracle and bound the work by counting renders, not by timing.</summary>
public class DropOldestTurnsTests
{
    private static RewardModel Load(int maxLength) => RewardModel.Load(ExportedModels.ArmormTiny, new RewardModelOptions
    {
        ExecutionProvider = ExecutionProviderKind.Cpu, MaxSequenceLength = maxLength, Truncation = TruncationPolicy.DropOldestTurns,
    });

    /// <summary>The ids of <paramref name="messages"/> with no length limit (the oracle measures lengths itself).</summary>
    private static int[] Ids(RewardModel model, IReadOnlyList<ChatMessage> messages) =>
        model.Encoder.With(model.Encoder.Options with { MaxSequenceLength = null, Truncation = TruncationPolicy.Error })
            .Encode(Conversation.FromMessages(messages), 0, findGating: false).ToArray();

    /// <summary>The pre-fix algorithm, written out: drop the oldest droppable turn (not system, before the last user turn),
    /// re-render, re-encode, until it fits or nothing droppable is left. Returns the ids and turns dropped, or null.</summary>
    private static (int[] Ids, int Dropped)? OneAtATime(RewardModel model, Conversation c)
    {
        var messages = c.Messages.ToList();
        var lastUser = messages.FindLastIndex(m => m.Role == "user");
        var ids = Ids(model, messages);
        var dropped = 0;
        while (ids.Length > model.MaxSequenceLength)
        {
            var oldest = messages.FindIndex(m => m.Role != "system");
            if (oldest < 0 || oldest >= lastUser - dropped)
                return null;
            messages.RemoveAt(oldest);
            dropped++;
            ids = Ids(model, messages);
        }
        return (ids, dropped);
    }

    private static Conversation RandomConversation(Random rng, int pairs)
    {
        var words = new[] { "alpha", "beta", "gamma", "delta", "the", "a", "reward", "model", "turn", "why", "how", "42", "é", "😀" };
        string Text(string prefix) => prefix + " " + string.Join(' ', Enumerable.Range(0, rng.Next(1, 40)).Select(_ => words[rng.Next(words.Length)]));
        var messages = new List<ChatMessage>();
        if (rng.Next(2) == 0)
            messages.Add(new("system", Text("System:")));
        for (var i = 0; i < pairs; i++)
        {
            messages.Add(new("user", Text($"Q{i}:")));
            messages.Add(new("assistant", Text($"A{i}:")));
        }
        return Conversation.FromMessages(messages);
    }

    [Test]
    public void BinarySearchGivesTheOneAtATimeResultOnVariedConversations()
    {
        var rng = new Random(7007);
        int cases = 0, truncated = 0, refused = 0;
        foreach (var maxLength in new[] { 48, 100, 200, 400 })
        {
            using var model = Load(maxLength);
            for (var k = 0; k < 30; k++)
            {
                var c = RandomConversation(rng, rng.Next(1, 25));
                var oracle = OneAtATime(model, c);
                cases++;
                if (oracle is null)
                {
                    refused++;
                    var e = Assert.Throws<RewardModelException>(() => model.Tokenize(c))!;
                    Assert.That(e.Message, Does.Contain("with only its system turns, last user turn and response left"));
                    continue;
                }
                var (ids, dropped) = oracle.Value;
                if (dropped > 0)
                    truncated++;
                Assert.That(model.Tokenize(c).InputIds, Is.EqualTo(ids), $"max {maxLength}, case {k}: {dropped} turns dropped by the oracle");
            }
        }
        TestContext.Out.WriteLine($"{cases} conversations: {truncated} truncated, {refused} refused, {cases - truncated - refused} fit as they are");
        Assert.That(truncated, Is.GreaterThan(cases / 4), "the cases exercise truncation");
        Assert.That(refused, Is.GreaterThan(0), "and the refusal");
    }

    [Test]
    [CancelAfter(300_000)]  // a hang guard only (the old loop needed ~109 s and 8,000 renders here); the bound is the render count
    public void FourThousandTurnPairsNeedLogarithmicallyManyRenders()
    {
        const int pairs = 4_000;
        var messages = new List<ChatMessage> { new("system", "Be brief.") };
        for (var i = 0; i < pairs; i++)
        {
            messages.Add(new("user", $"Question {i}: what is {i} plus one?"));
            messages.Add(new("assistant", $"Answer {i}: {i + 1}."));
        }
        var c = Conversation.FromMessages(messages);
        using var model = Load(512);
        InputEncoder.RendersOnThisThread = 0;
        var (ids, _, gating) = model.Tokenize(c);
        var renders = InputEncoder.RendersOnThisThread;
        var droppable = 2 * pairs - 1;                       // every turn before the last user turn but the system turn
        var bound = 2 + (int)Math.Ceiling(Math.Log2(droppable));   // full render, all-dropped render, then the binary search
        TestContext.Out.WriteLine($"{ids.Length} tokens kept, {renders} renders (bound {bound}; the old loop: one per dropped turn, ~{droppable}); " +
            $"last render: {JinjaEvaluator.LastWork.Steps:N0} template steps");
        Assert.That(renders, Is.LessThanOrEqualTo(bound));
        Assert.That(ids.Length, Is.LessThanOrEqualTo(512));
        var text = model.Encoder.Tokenizer.Decode(ids);
        Assert.That(text, Does.Contain("Be brief.").And.Contain($"Question {pairs - 1}:").And.Contain($"Answer {pairs - 1}:"));
        Assert.That(text, Does.Not.Contain("Question 0:"));
        Assert.That(gating, Is.LessThan(ids.Length));
        // The fewest turns: keeping one more (the newest dropped) would not fit.
        var keptFrom = messages.FindIndex(m => text.Contains(m.Content) && m.Role != "system");
        var oneMore = new List<ChatMessage> { messages[0] };
        oneMore.AddRange(messages.Skip(keptFrom - 1));
        Assert.That(Ids(model, oneMore).Length, Is.GreaterThan(512));
    }
}
