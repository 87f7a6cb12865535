using System.Text.Json;
using OnnxReward.Testing;
using OnnxReward.Text.Chat;
using OnnxReward;

namespace OnnxReward.Tests.Text;

public class ChatTemplateTests
{
    private static List<ChatMessage> Messages(JsonElement messages) =>
        messages.EnumerateArray().Select(m => new ChatMessage(m.GetProperty("role").GetString()!, m.GetProperty("content").GetString()!)).ToList();

    [Test]
    public void ArmormTinyTemplateRendersEveryGoldenByteIdentically()
    {
        var template = ChatTemplate.FromDirectory(SharedData.ArmormTiny);
        var n = 0;
        foreach (var line in File.ReadLines(Path.Combine(SharedData.ArmormTiny, "golden.jsonl")))
        {
            using var g = JsonDocument.Parse(line);
            var rendered = template.Render(Messages(g.RootElement.GetProperty("messages")), addGenerationPrompt: false);
            Assert.That(rendered, Is.EqualTo(g.RootElement.GetProperty("rendered").GetString()), g.RootElement.GetProperty("id").GetString());
            n++;
        }
        Assert.That(n, Is.EqualTo(47));
    }

    /// <summary>Renderings by Python Jinja2 (TestData/make_template_goldens.py): the early Meta Llama-3 template over the
    /// 47 golden conversations with and without a generation prompt, synthetic templates for each construct, and
    /// templates modelled on other models' real ones (ChatML, Zephyr, Mistral, Gemma, Llama-2, Llama-3.1) over three
    /// message sets, including the conversations those templates refuse through raise_exception.</summary>
    [Test]
    public void RenderingsMatchPythonJinja2()
    {
        var llama3 = ChatTemplate.FromDirectory(SharedData.Llama3Tokenizer);
        int n = 0, errors = 0;
        foreach (var line in File.ReadLines(Path.Combine(AppContext.BaseDirectory, "TestData", "template_goldens.jsonl")))
        {
            using var g = JsonDocument.Parse(line);
            var r = g.RootElement;
            var source = r.GetProperty("template").GetString()!;
            var template = source == "llama3" ? llama3
                : ChatTemplate.Parse(source, r.GetProperty("bos_token").GetString(), r.TryGetProperty("eos_token", out var eos) ? eos.GetString() : null);
            var messages = Messages(r.GetProperty("messages"));
            var agp = r.GetProperty("add_generation_prompt").GetBoolean();
            var id = r.GetProperty("id").GetString()!;
            if (r.TryGetProperty("error", out var error))
            {
                // Python raised through raise_exception(): we must refuse the same conversation with the same message.
                var e = Assert.Throws<TemplateException>(() => template.Render(messages, agp), id)!;
                Assert.That(e.Message, Does.Contain("the chat template rejected the conversation: " + error.GetString()), id);
                errors++;
            }
            else
                Assert.That(template.Render(messages, agp), Is.EqualTo(r.GetProperty("rendered").GetString()), id);
            n++;
        }
        Assert.That(n, Is.EqualTo(140));
        Assert.That(errors, Is.EqualTo(4), "mistral-instruct and gemma refuse a system turn, with and without a generation prompt");
    }

    [Test]
    public void TheTwoLlama3RevisionsDifferOnlyInTheGuardedGenerationPrompt()
    {
        var early = ChatTemplate.FromDirectory(SharedData.Llama3Tokenizer);
        var corrected = ChatTemplate.FromDirectory(SharedData.ArmormTiny);
        List<ChatMessage> chat = [new("user", "Hi"), new("assistant", "Hello")];
        const string header = "<|start_header_id|>assistant<|end_header_id|>\n\n";
        Assert.That(early.Render(chat), Does.EndWith("Hello<|eot_id|>" + header), "the early revision always appends the header");
        Assert.That(corrected.Render(chat), Does.EndWith("Hello<|eot_id|>"));
        Assert.That(corrected.Render(chat, addGenerationPrompt: true), Is.EqualTo(early.Render(chat)));
    }

    [Test]
    public void PythonStripSemanticsForTrim()
    {
        // U+001C..U+001F and U+0085 are whitespace to Python's str.strip but not to .NET's string.Trim; U+FEFF is the
        // reverse (armorm-tiny README, case trim-unicode-whitespace).
        var t = ChatTemplate.Parse("[{{ messages[0]['content'] | trim }}]");
        Assert.That(t.Render([new("user", "\u001f\u0085 x \u3000\u2028")]), Is.EqualTo("[x]"));
        Assert.That(t.Render([new("user", "\ufeffx\ufeff")]), Is.EqualTo("[\ufeffx\ufeff]"));
    }

    /// <summary>Python slices with steps (Qwen3's template walks <c>messages[::-1]</c>); expected output rendered by
    /// Python Jinja2 3.1.6 (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks) from the same template.</summary>
    [Test]
    public void SlicesWithStepsFollowPython()
    {
        var t = ChatTemplate.Parse("{% set l = [0,1,2,3,4,5] %}{{ l[::-1] }}|{{ l[::2] }}|{{ l[1::2] }}|{{ l[4:1:-1] }}|{{ l[-2::-1] }}|" +
                                   "{{ l[:-7:-2] }}|{{ l[10:0:-3] }}|{{ l[1:4:] }}|{{ 'abcdef'[::-1] }}|{{ 'abcdef'[1:5:2] }}|" +
                                   "{% for m in messages[::-1] %}{{ loop.index0 }}{{ m.role }};{% endfor %}");
        Assert.That(t.Render([new("user", "a"), new("assistant", "b")]),
            Is.EqualTo("[5, 4, 3, 2, 1, 0]|[0, 2, 4]|[1, 3, 5]|[4, 3, 2]|[4, 3, 2, 1, 0]|[5, 3, 1]|[5, 2]|[1, 2, 3]|fedcba|bd|0assistant;1user;"));
        var zero = Assert.Throws<TemplateException>(() => ChatTemplate.Parse("{{ messages[::0] }}").Render([new("user", "a")]))!;
        Assert.That(zero.Message, Does.Contain("slice step cannot be zero"));
    }

    [TestCase("{% macro m() %}x{% endmacro %}", "'{% macro %}' is not supported")]
    [TestCase("{{ messages | selectattr('role') }}", "filter 'selectattr' is not supported")]
    [TestCase("{% for m in messages %}", "'{% for %}' has no '{% endfor %}'")]
    [TestCase("{{ messages[0] is callable }}", "test 'is callable' is not supported")]
    [TestCase("{{ 'a' ", "unclosed '{{'")]
    [TestCase("{% if true %}\n{{ foo( }}{% endif %}", "(template line 2, column")]
    [TestCase("{{ raise_exception('only user and assistant roles') }}", "the chat template rejected the conversation: only user and assistant roles")]
    public void UnsupportedOrBrokenTemplatesFailNamingTheConstruct(string template, string expected)
    {
        var e = Assert.Throws<TemplateException>(() => ChatTemplate.Parse(template).Render([new("user", "x")]))!;
        Assert.That(e.Message, Does.Contain(expected));
    }

    /// <summary>chat_template comes from a file: hostile nesting or amplification must end in a TemplateException, never
    /// a stack overflow (which would kill the process) or an unbounded allocation.</summary>
    [Test]
    public void HostileTemplatesFailCleanly()
    {
        string Fails(string template) =>
            Assert.Throws<TemplateException>(() => ChatTemplate.Parse(template).Render([new("user", "x")]), template[..Math.Min(60, template.Length)])!.Message;

        Assert.That(Fails("{{ " + new string('(', 200_000) + "1" + new string(')', 200_000) + " }}"), Does.Contain("nests expressions or blocks too deeply"));
        Assert.That(Fails("{{ " + string.Concat(Enumerable.Repeat("not ", 200_000)) + "x }}"), Does.Contain("too deeply"));
        Assert.That(Fails(string.Concat(Enumerable.Repeat("{% if true %}", 50_000)) + string.Concat(Enumerable.Repeat("{% endif %}", 50_000))),
            Does.Contain("too deeply"));
        // A left-deep chain parses in a loop but evaluates recursively.
        Assert.That(Fails("{{ 1" + string.Concat(Enumerable.Repeat(" + 1", 300_000)) + " }}"), Does.Contain("too deeply"));

        // (A plain {% set %} in a loop body is reset every iteration, as in Jinja2; namespace() carries state out.)
        Assert.That(Fails("{% set ns = namespace(s='ab') %}{% for i in range(100) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}"),
            Does.Contain("builds a string of 67,108,864 characters, over the limit of 33,554,432"));
        Assert.That(Fails("{{ 'a' * 1000000000000 }}"), Does.Contain("over the limit of 33,554,432"));
        Assert.That(Fails("{% set ns = namespace(l=[1]) %}{% for i in range(100) %}{% set ns.l = ns.l + ns.l %}{% endfor %}"),
            Does.Contain("builds a list of 2,097,152 items"));
        // Python Jinja2's sandbox (what transformers uses) refuses the same range with this message.
        Assert.That(Fails("{% for i in range(100001) %}{% endfor %}"),
            Does.Contain("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000)."));
        Assert.That(Fails("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"), Does.Contain($"more than {JinjaEvaluator.MaxSteps:N0} steps"));
        Assert.That(Fails("{% set ns = namespace(s='abcdefgh') %}{% for i in range(30) %}{% set ns.s = ns.s.replace('a', ns.s) %}{% endfor %}"),
            Does.Contain("over the limit of 33,554,432"));
        Assert.That(Fails("{% set ns = namespace(s='abcdefgh') %}{% for i in range(30) %}{% set ns.s = [ns.s, ns.s] | join('') %}{% endfor %}"),
            Does.Contain("over the limit of 33,554,432"));
    }

    [Test]
    public void ReplaceWithAnEmptyPatternFollowsPython()
    {
        // Python: "abc".replace("", "-") == "-a-b-c-" (.NET's string.Replace throws on an empty pattern).
        Assert.That(ChatTemplate.Parse("{{ messages[0].content.replace('', '-') }}|{{ messages[0].content | replace('', '+') }}").Render([new("user", "abc")]),
            Is.EqualTo("-a-b-c-|+a+b+c+"));
    }

    [Test]
    public void MissingTemplateFileOrFieldIsClear()
    {
        var dir = SharedData.NewTempDirectory("tpl");
        try
        {
            Assert.That(Assert.Throws<TemplateException>(() => ChatTemplate.FromDirectory(dir))!.Message, Does.Contain("tokenizer_config.json is missing"));
            File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), "{\"bos_token\": \"<s>\"}");
            Assert.That(Assert.Throws<TemplateException>(() => ChatTemplate.FromDirectory(dir))!.Message, Does.Contain("has no 'chat_template'"));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
