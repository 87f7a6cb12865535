using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace OnnxReward.Text.Chat;

/// <summary>The filters, tests and str/dict methods chat templates use, with CPython semantics.</summary>
internal static class JinjaBuiltins
{
    /// <summary>Characters CPython's str.strip() removes (str.isspace): armorm-tiny README "trim".</summary>
    internal static bool IsPythonSpace(char c) =>
        c is >= '\u0009' and <= '\u000D' or >= '\u001C' and <= '\u0020' or '\u0085' or '\u00A0' or '\u1680'
            or >= '\u2000' and <= '\u200A' or '\u2028' or '\u2029' or '\u202F' or '\u205F' or '\u3000';

    /// <summary>Python str.replace (an empty pattern inserts between every character), refused before allocating when
    /// the result would be over <see cref="JinjaEvaluator.MaxStringLength"/>.</summary>
    private static string Replace(JinjaEvaluator ev, string s, string old, string replacement, int pos)
    {
        long count = 0;
        if (old.Length == 0)
            count = s.Length + 1L;
        else
            for (var i = s.IndexOf(old, StringComparison.Ordinal); i >= 0; i = s.IndexOf(old, i + old.Length, StringComparison.Ordinal))
                count++;
        ev.CheckLength(s.Length + count * (replacement.Length - old.Length), pos);
        if (old.Length > 0)
            return s.Replace(old, replacement, StringComparison.Ordinal);
        var sb = new StringBuilder(replacement);
        foreach (var c in s)
            sb.Append(c).Append(replacement);
        return sb.ToString();
    }

    internal static string PyStrip(string s, string? chars = null, bool left = true, bool right = true)
    {
        Func<char, bool> strip = chars is null ? IsPythonSpace : chars.Contains;
        int a = 0, b = s.Length;
        if (left) while (a < b && strip(s[a])) a++;
        if (right) while (b > a && strip(s[b - 1])) b--;
        return s[a..b];
    }

    public static object? Filter(JinjaEvaluator ev, string name, object? v, List<object?> args, Dictionary<string, object?> kwargs, int pos)
    {
        switch (name)
        {
            case "trim":
                return PyStrip(Str(ev, v, name, pos), args.Count > 0 ? args[0] as string : null);
            case "length" or "count":
                return v switch
                {
                    string text1 => (long)CodePoints(text1),                 // Python len(): code points
                    System.Collections.ICollection c => (long)c.Count,
                    Undefined => 0L,
                    _ => throw ev.ErrorAt(pos, $"'{name}' needs a string or a list, got {JinjaEvaluator.TypeName(v)}"),
                };
            case "upper":
                return Str(ev, v, name, pos).ToUpperInvariant();
            case "lower":
                return Str(ev, v, name, pos).ToLowerInvariant();
            case "capitalize":
            {
                var text = Str(ev, v, name, pos);
                return text.Length == 0 ? text : char.ToUpperInvariant(text[0]) + text[1..].ToLowerInvariant();
            }
            case "default" or "d":
            {
                var fallback = args.Count > 0 ? args[0] : "";
                var boolean = args.Count > 1 && JinjaEvaluator.Truthy(args[1]);
                return v is Undefined || (boolean && !JinjaEvaluator.Truthy(v)) ? fallback : v;
            }
            case "string":
                return JinjaEvaluator.ToStr(v);
            case "int":
                return v switch
                {
                    long i => i, double d => (long)d, bool b => b ? 1L : 0L,
                    string text2 when long.TryParse(text2.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var parsed) => parsed,
                    _ => 0L,
                };
            case "first":
                return ev.Iterate(v, pos).FirstOrDefault(Undefined.Instance);
            case "last":
                return v is List<object?> l && l.Count > 0 ? l[^1] : v is string str && str.Length > 0 ? str[^1].ToString() : Undefined.Instance;
            case "list":
                return ev.Iterate(v, pos).ToList();
            case "reverse":
                return v is string rs ? new string(rs.Reverse().ToArray()) : ev.Iterate(v, pos).Reverse().ToList();
            case "join":
            {
                var separator = args.Count > 0 ? JinjaEvaluator.ToStr(args[0]) : "";
                var parts = ev.Iterate(v, pos).Select(JinjaEvaluator.ToStr).ToList();
                ev.CheckLength(parts.Sum(x => (long)x.Length) + (long)separator.Length * Math.Max(0, parts.Count - 1), pos);
                return string.Join(separator, parts);
            }
            case "replace":
                return Replace(ev, Str(ev, v, name, pos), Str(ev, args.ElementAtOrDefault(0), name, pos), Str(ev, args.ElementAtOrDefault(1), name, pos), pos);
            case "tojson":
                return ToJson(v, kwargs.TryGetValue("indent", out var ind) && ind is long n ? (int)n : args.Count > 0 && args[0] is long n2 ? (int)n2 : null);
            default:
                throw ev.ErrorAt(pos, $"filter '{name}' is not supported by OnnxReward's chat-template engine " +
                                      "(supported: trim, length, count, upper, lower, capitalize, default, string, int, first, last, list, reverse, join, replace, tojson)");
        }
    }

    public static bool Test(JinjaEvaluator ev, string name, object? v, List<object?> args, int pos) => name switch
    {
        "defined" => v is not Undefined,
        "undefined" => v is Undefined,
        "none" => v is null,
        "string" => v is string,
        "number" => v is long or double,
        "integer" => v is long,
        "float" => v is double,
        "boolean" => v is bool,
        "true" => v is true,
        "false" => v is false,
        "mapping" => v is Dictionary<string, object?>,
        "sequence" or "iterable" => v is string or List<object?> or Dictionary<string, object?>,
        "even" => v is long i && i % 2 == 0,
        "odd" => v is long j && j % 2 != 0,
        "eq" or "equalto" or "==" => JinjaEvaluator.PyEquals(v, args.ElementAtOrDefault(0)),
        "ne" or "!=" => !JinjaEvaluator.PyEquals(v, args.ElementAtOrDefault(0)),
        _ => throw ev.ErrorAt(pos, $"test 'is {name}' is not supported by OnnxReward's chat-template engine"),
    };

    public static object? Method(JinjaEvaluator ev, object? target, string name, List<object?> args, Dictionary<string, object?> kwargs, int pos)
    {
        if (target is string s)
        {
            string Arg(int i) => args.Count > i ? Str(ev, args[i], name, pos) : throw ev.ErrorAt(pos, $"str.{name}() needs an argument");
            return name switch
            {
                "strip" => PyStrip(s, args.Count > 0 ? args[0] as string : null),
                "lstrip" => PyStrip(s, args.Count > 0 ? args[0] as string : null, right: false),
                "rstrip" => PyStrip(s, args.Count > 0 ? args[0] as string : null, left: false),
                "upper" => s.ToUpperInvariant(),
                "lower" => s.ToLowerInvariant(),
                "title" => CultureInfo.InvariantCulture.TextInfo.ToTitleCase(s.ToLowerInvariant()),
                "startswith" => s.StartsWith(Arg(0), StringComparison.Ordinal),
                "endswith" => s.EndsWith(Arg(0), StringComparison.Ordinal),
                "replace" => Replace(ev, s, Arg(0), Arg(1), pos),
                "split" => (args.Count == 0 || args[0] is null
                    ? s.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)
                    : s.Split(Arg(0))).Select(x => (object?)x).ToList(),
                _ => throw ev.ErrorAt(pos, $"str.{name}() is not supported by OnnxReward's chat-template engine"),
            };
        }
        if (target is Dictionary<string, object?> d)
            return name switch
            {
                "items" => d.Select(kv => (object?)new List<object?> { kv.Key, kv.Value }).ToList(),
                "keys" => d.Keys.Select(k => (object?)k).ToList(),
                "values" => d.Values.ToList(),
                "get" => d.TryGetValue(Str(ev, args.ElementAtOrDefault(0), name, pos), out var v) ? v : args.ElementAtOrDefault(1),
                _ => throw ev.ErrorAt(pos, $"dict.{name}() is not supported by OnnxReward's chat-template engine"),
            };
        throw ev.ErrorAt(pos, $"{JinjaEvaluator.TypeName(target)} has no method '{name}' here");
    }

    private static string Str(JinjaEvaluator ev, object? v, string what, int pos) => v switch
    {
        string s => s,
        Undefined => "",
        _ => throw ev.ErrorAt(pos, $"'{what}' needs a string, got {JinjaEvaluator.TypeName(v)}"),
    };

    private static int CodePoints(string s)
    {
        var n = 0;
        for (var i = 0; i < s.Length; i++, n++)
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
                i++;
        return n;
    }

    /// <summary>transformers' tojson: json.dumps(x, ensure_ascii=False) with Python's default separators.</summary>
    private static string ToJson(object? v, int? indent)
    {
        var sb = new StringBuilder();
        Write(v, 0);
        return sb.ToString();

        void Write(object? x, int level)
        {
            switch (x)
            {
                case null or Undefined: sb.Append("null"); break;
                case bool b: sb.Append(b ? "true" : "false"); break;
                case long i: sb.Append(i.ToString(CultureInfo.InvariantCulture)); break;
                case double d: sb.Append(JinjaEvaluator.ToStr(d)); break;
                case string s: sb.Append(JsonSerializer.Serialize(s, new JsonSerializerOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping })); break;
                case List<object?> l:
                    sb.Append('[');
                    for (var k = 0; k < l.Count; k++) { Sep(k, level); Write(l[k], level + 1); }
                    End(l.Count, level, ']');
                    break;
                case Dictionary<string, object?> d:
                    sb.Append('{');
                    var n = 0;
                    foreach (var (key, val) in d) { Sep(n++, level); Write(key, level + 1); sb.Append(": "); Write(val, level + 1); }
                    End(d.Count, level, '}');
                    break;
                default: sb.Append(JsonSerializer.Serialize(JinjaEvaluator.ToStr(x))); break;
            }
        }
        void Sep(int k, int level)
        {
            if (k > 0) sb.Append(indent is null ? ", " : ",");
            if (indent is { } n) sb.Append('\n').Append(' ', n * (level + 1));
        }
        void End(int count, int level, char close)
        {
            if (indent is { } n && count > 0) sb.Append('\n').Append(' ', n * level);
            sb.Append(close);
        }
    }
}
