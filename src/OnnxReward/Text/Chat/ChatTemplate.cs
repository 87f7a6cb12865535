using System.Text.Json;
using OnnxReward;

namespace OnnxReward.Text.Chat;

/// <summary>
/// A model directory's chat template (<c>tokenizer_config.json</c> → <c>chat_template</c>), rendered the way
/// transformers' <c>apply_chat_template</c> does: Jinja with trim_blocks and lstrip_blocks, variables
/// <c>messages</c>, <c>add_generation_prompt</c>, <c>bos_token</c>, <c>eos_token</c>, <c>pad_token</c>, <c>unk_token</c>,
/// and <c>raise_exception</c>. The template is the directory's own, never a built-in copy. Thread-safe.
/// </summary>
public sealed class ChatTemplate
{
    public const string ConfigFile = "tokenizer_config.json";

    private readonly string _source;
    private readonly List<Node> _nodes;
    private readonly Dictionary<string, object?> _tokens;

    private ChatTemplate(string source, List<Node> nodes, Dictionary<string, object?> tokens)
    {
        _source = source;
        _nodes = nodes;
        _tokens = tokens;
    }

    /// <summary>The template text.</summary>
    public string Source => _source;

    /// <summary>tokenizer_config.json's <c>pad_token</c> text (ArmoRM: <c>[PAD]</c>), or null when it has none.</summary>
    public string? PadToken => _tokens["pad_token"] as string;

    /// <summary>tokenizer_config.json's <c>eos_token</c> text (Llama-3: <c>&lt;|end_of_text|&gt;</c> or
    /// <c>&lt;|eot_id|&gt;</c>), or null when it has none.</summary>
    public string? EosToken => _tokens["eos_token"] as string;

    /// <summary>tokenizer_config.json's <c>bos_token</c> text (Llama-3: <c>&lt;|begin_of_text|&gt;</c>), or null when
    /// it has none (Qwen3).</summary>
    public string? BosToken => _tokens["bos_token"] as string;

    /// <summary>Parses a template; special-token variables are given explicitly.</summary>
    /// <exception cref="TemplateException">The template uses syntax outside the supported subset; the message names it.</exception>
    public static ChatTemplate Parse(string template, string? bosToken = null, string? eosToken = null, string? padToken = null, string? unkToken = null) =>
        new(template, NestingGuard(() => JinjaParser.Parse(ArgumentNullExceptionOr(template))), new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["bos_token"] = bosToken ?? (object)Undefined.Instance,
            ["eos_token"] = eosToken ?? (object)Undefined.Instance,
            ["pad_token"] = padToken ?? (object)Undefined.Instance,
            ["unk_token"] = unkToken ?? (object)Undefined.Instance,
        });

    /// <summary>Loads <c>tokenizer_config.json</c> from a model directory.</summary>
    public static ChatTemplate FromDirectory(string directory)
    {
        var path = Path.Combine(directory, ConfigFile);
        if (!File.Exists(path))
            throw new TemplateException($"{path} is missing: the chat template lives in the model's tokenizer_config.json (copy it into the model directory).");
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("chat_template", out var ct))
                throw new TemplateException($"{path} has no 'chat_template': this tokenizer has no chat template, so conversations cannot be " +
                                            "rendered. Score already templated text ({\"text\": …}) or token ids instead.");
            string template;
            if (ct.ValueKind == JsonValueKind.String)
                template = ct.GetString()!;
            else if (ct.ValueKind == JsonValueKind.Array)      // [{"name": "default", "template": "..."}, ...]
                template = ct.EnumerateArray().FirstOrDefault(t => t.TryGetProperty("name", out var n) && n.GetString() == "default")
                               is { ValueKind: JsonValueKind.Object } d && d.TryGetProperty("template", out var tt) && tt.GetString() is { } s
                    ? s
                    : throw new TemplateException($"{path}: chat_template is a list without a 'default' template.");
            else
                throw new TemplateException($"{path}: chat_template is {ct.ValueKind}, expected a string.");

            string? Token(string key) => root.TryGetProperty(key, out var v)
                ? v.ValueKind == JsonValueKind.String ? v.GetString()
                : v.ValueKind == JsonValueKind.Object && v.TryGetProperty("content", out var c) ? c.GetString() : null
                : null;
            return Parse(template, Token("bos_token"), Token("eos_token"), Token("pad_token"), Token("unk_token"));
        }
        catch (JsonException e)
        {
            throw new TemplateException($"{path} is not valid JSON ({e.Message}). Copy an intact tokenizer_config.json.");
        }
        catch (TemplateException e) when (!e.Message.Contains(path, StringComparison.Ordinal))
        {
            throw new TemplateException($"{path}: chat_template: {e.Message}");
        }
    }

    /// <summary>Renders messages (role/content pairs; extra fields are visible to the template too). The render is
    /// bounded by one budget of steps and built characters (a <see cref="TemplateException"/> past it), and
    /// <paramref name="cancellationToken"/> is checked as it runs.</summary>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = false, CancellationToken cancellationToken = default)
    {
        var list = messages.Select(m => (object?)new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["role"] = m.Role,
            ["content"] = m.Content,
        }).ToList();
        return RenderValues(list, addGenerationPrompt, cancellationToken);
    }

    internal string RenderValues(List<object?> messages, bool addGenerationPrompt, CancellationToken cancellationToken = default)
    {
        var globals = new Dictionary<string, object?>(_tokens, StringComparer.Ordinal)
        {
            ["messages"] = messages,
            ["add_generation_prompt"] = addGenerationPrompt,
            ["raise_exception"] = (JinjaFunction)((args, _) =>
                throw new TemplateException("the chat template rejected the conversation: " + JinjaEvaluator.ToStr(args.FirstOrDefault()))),
            ["namespace"] = (JinjaFunction)((_, kwargs) =>
            {
                var ns = new JinjaNamespace();
                foreach (var (k, v) in kwargs) ns[k] = v;
                return ns;
            }),
            ["range"] = (JinjaFunction)((args, _) =>
            {
                long a = args.Count > 1 ? (long)args[0]! : 0, b = (long)args[args.Count > 1 ? 1 : 0]!;
                if (b - a > JinjaEvaluator.MaxRange)      // jinja2.sandbox.safe_range, as transformers renders in a sandbox
                    throw new TemplateException($"Range too big. The sandbox blocks ranges larger than MAX_RANGE ({JinjaEvaluator.MaxRange}).");
                var r = new List<object?>();
                for (var i = a; i < b; i++) r.Add(i);
                return r;
            }),
            ["strftime_now"] = (JinjaFunction)((args, _) => DateTime.Now.ToString(PythonDateFormat(JinjaEvaluator.ToStr(args.FirstOrDefault())),
                System.Globalization.CultureInfo.InvariantCulture)),
        };
        return NestingGuard(() => JinjaEvaluator.Render(_source, _nodes, globals, cancellationToken));
    }

    private static string ArgumentNullExceptionOr(string template)
    {
        ArgumentNullException.ThrowIfNull(template);
        return template;
    }

    /// <summary>Parsing and rendering recurse over the template's nesting; a hostile template nested thousands deep
    /// ends here as a <see cref="TemplateException"/> instead of a stack overflow that would kill the process.</summary>
    private static T NestingGuard<T>(Func<T> work)
    {
        try
        {
            return work();
        }
        catch (InsufficientExecutionStackException)
        {
            throw new TemplateException("the chat template nests expressions or blocks too deeply to be evaluated (no real chat " +
                                        "template does): use the model's original tokenizer_config.json.");
        }
    }

    private static string PythonDateFormat(string f) =>
        f.Replace("%d", "dd").Replace("%b", "MMM").Replace("%B", "MMMM").Replace("%Y", "yyyy").Replace("%m", "MM");
}
