using System.Diagnostics;
using OnnxReward.Testing;
using OnnxReward.Text.Chat;

namespace OnnxReward.Tests.Text;

/// <summary>Issue 16 item 6: every operation of a render (statements, loops, loop filters, filters, string building,
/// namespace growth) is charged to one budget of steps and built characters, so a hostile template ends quickly with a
/// clear error instead of running for minutes.</summary>
public class TemplateBudgetTests
{
    private static readonly ChatMessage[] Conversation = [new("user", "hi"), new("assistant", "hello")];

    // Each of these ran over 120 s per conversation before the budget covered it (measured in the issue).
    [TestCase("{% set ns = namespace(s='') %}{% for i in range(100000) %}{% set ns.s = ns.s ~ 'xxxxxxxxxx' %}{% endfor %}{{ ns.s|length }}",
        "built more than", TestName = "namespace string growth in a long loop")]
    [TestCase("{% for i in range(100000) if (range(100000)|length) > 0 %}{% endfor %}",
        "built more than", TestName = "loop filter allocating per item")]
    [TestCase("{% for i in range(100000) if i != -1 and i != -2 and i != -3 and i != -4 and i != -5 %}{% for j in range(1000) if j != -1 and j != -2 %}{% endfor %}{% endfor %}",
        "steps", TestName = "loop filters evaluated per item")]
    [TestCase("{% for i in range(100000) %}{{ ('x' * 30000000)|length }}{% endfor %}",
        "built more than", TestName = "filter building a 30 MB string per item")]
    [TestCase("{% for i in range(100000) %}{{ (messages[0]['content'] * 1000000)|upper|length }}{% endfor %}",
        "built more than", TestName = "chained filters over a large string per item")]
    [TestCase("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "steps", TestName = "nested loops")]
    public void AHostileTemplateEndsQuicklyWithABudgetError(string source, string expected)
    {
        var template = ChatTemplate.Parse(source);
        var sw = Stopwatch.StartNew();
        var e = Assert.Throws<TemplateException>(() => template.Render(Conversation))!;
        sw.Stop();
        TestContext.Out.WriteLine($"{sw.Elapsed.TotalSeconds:F2} s: {e.Message}");
        Assert.That(e.Message, Does.Contain(expected).And.Contain("broken or hostile"));
        // The budget (4M steps, 268M built characters) is spent in a few seconds at most on this 2-core box; 20 s
        // leaves room for a loaded machine, and is far below the >120 s these took without it.
        Assert.That(sw.Elapsed.TotalSeconds, Is.LessThan(20));
    }

    // The real chat templates in ../shared that this engine renders (Llama-3 / ArmoRM, Skywork-Llama-3.1 with its date
    // and tools logic; Skywork-Qwen3's uses Python slicing the parser does not take). MaxSteps (4 M) is set from these:
    // 8,001 messages take 184 K / 248 K steps, so the budget is 16x the largest.
    [TestCase("reference/armorm-tiny")]
    [TestCase("reference/skywork-llama31-tiny")]
    [TestCase("tokenizers/llama3")]
    public void RealTemplatesOnALargeConversationUseAFractionOfTheBudget(string directory)
    {
        var template = ChatTemplate.FromDirectory(SharedData.PathOf(directory.Split('/')));
        var messages = new List<ChatMessage> { new("system", "Be brief.") };
        for (var i = 0; i < 4000; i++)
        {
            messages.Add(new("user", new string('q', 500)));
            messages.Add(new("assistant", new string('a', 500)));
        }
        var text = template.Render(messages);
        var (steps, built) = JinjaEvaluator.LastWork;
        TestContext.Out.WriteLine($"{directory}: 8001 messages, {text.Length:N0} chars: {steps:N0} steps ({steps / 8001.0:F0} per message), {built:N0} chars built");
        Assert.That(steps, Is.LessThan(JinjaEvaluator.MaxSteps / 10), "a real template stays an order of magnitude below the step budget");
        Assert.That(built, Is.LessThan(JinjaEvaluator.MaxBuiltChars / 10), "and below the built budget");
    }

    [Test]
    public void ACancelledRenderStops()
    {
        var template = ChatTemplate.Parse("{% for i in range(100000) %}{{ i }}{% endfor %}");
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.Throws<OperationCanceledException>(() => template.Render(Conversation, cancellationToken: cts.Token));
        Assert.That(template.Render(Conversation), Does.EndWith("99999"));
    }
}
