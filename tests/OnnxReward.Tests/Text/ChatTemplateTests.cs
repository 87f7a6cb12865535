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
        Assert.That(n, Is.EqualTo(139));
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
