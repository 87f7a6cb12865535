using System.Globalization;
using System.Text;
using System.Text.Json;

namespace OnnxReward.Text.Chat;

/// <summary>Jinja's Undefined: renders as "", is falsy, iterates as empty; anything else on it is an error.</summary>
internal sealed class Undefined
{
    public static readonly Undefined Instance = new();
    public override string ToString() => "";
}

/// <summary>A namespace() object: the one mutable value Jinja templates use to carry state out of a loop.</summary>
internal sealed class JinjaNamespace : Dictionary<string, object?>
{
    public JinjaNamespace() : base(StringComparer.Ordinal) { }
}

internal delegate object? JinjaFunction(List<object?> args, Dictionary<string, object?> kwargs);

/// <summary>
/// Renders a parsed template. Values are .NET objects with Python semantics: string, long, double, bool, null (None),
/// List&lt;object?&gt;, Dictionary&lt;string, object?&gt;, <see cref="Undefined"/>. Output formatting, truthiness and
/// <c>str.strip</c> follow CPython, because transformers renders with Python Jinja2.
/// </summary>
internal sealed class JinjaEvaluator
{
    // Limits that keep a hostile chat_template (it comes from a file) from exhausting memory or time. Real templates
    // over real conversations stay orders of magnitude below them. Ranges use Jinja's own sandbox limit, MAX_RANGE.
    // One budget covers every operation of a render: each statement, loop iteration and expression evaluated (loop
    // filters, filter and method calls included) is a step, and every string or list an operation builds is charged
    // its length to the built budget (concatenation, filters, ns.x = ns.x ~ … growth), so no combination of them can
    // run longer than the two bounds allow (issue 16 item 6: each of those took over 120 s per conversation).
    internal const int MaxStringLength = 1 << 25;        // 32M characters in any one string, the output included
    internal const int MaxListLength = 1 << 20;
    internal const int MaxRange = 100_000;
    // Statements + loop iterations + expressions evaluated. Real templates take 23-31 steps per message (8,001 messages:
    // ArmoRM/Llama-3 184 K, Skywork-Llama-3.1 248 K; TemplateBudgetTests), so 4 M is 16x a 4,000-turn-pair render and
    // a hostile template spends it in ~3 s on a 2-core machine (10 M took ~7 s).
    internal const long MaxSteps = 4_000_000;
    internal const long MaxBuiltChars = 1L << 28;        // characters (and list items, see ListItemCost) built per render
    private const int ListItemCost = 8;                  // a list item (a boxed value, a slot) costs what 8 characters do
    private const int CancellationStride = 4096;

    private readonly string _src;
    private readonly CancellationToken _cancellation;
    private long _steps;
    private long _built;
    private readonly List<Dictionary<string, object?>> _scopes = [];
    private readonly StringBuilder _out = new();

    private JinjaEvaluator(string src, Dictionary<string, object?> globals, CancellationToken cancellation)
    {
        _src = src;
        _cancellation = cancellation;
        _scopes.Add(globals);
    }

    /// <summary>Steps and built characters the last render on this thread used (tests and diagnostics).</summary>
    [ThreadStatic] internal static (long Steps, long Built) LastWork;

    public static string Render(string src, List<Node> nodes, Dictionary<string, object?> globals, CancellationToken cancellation = default)
    {
        var e = new JinjaEvaluator(src, new Dictionary<string, object?>(globals, StringComparer.Ordinal), cancellation);
        try
        {
            e.Exec(nodes);
        }
        finally
        {
            LastWork = (e._steps, e._built);
        }
        return e._out.ToString();
    }

    private TemplateException Error(int pos, string msg) => JinjaLexer.Error(_src, pos, msg);

    // ---- statements -------------------------------------------------------------------------------------------------

    private void Exec(List<Node> nodes)
    {
        System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();
        foreach (var node in nodes)
        {
            Step(node.Position);
            switch (node)
            {
                case TextNode t:
                    _out.Append(t.Text);
                    break;
                case OutputNode o:
                {
                    var text = ToStr(Eval(o.Expr));
                    Charge(text.Length, o.Position);
                    _out.Append(text);
                    break;
                }
                case SetNode s:
                    var value = Eval(s.Value);
                    if (s.Attribute is null)
                        _scopes[^1][s.Target] = value;
                    else if (Lookup(s.Target) is JinjaNamespace ns)
                        ns[s.Attribute] = value;
                    else
                        throw Error(s.Position, $"cannot set '{s.Target}.{s.Attribute}': '{s.Target}' is not a namespace()");
                    break;
                case IfNode i:
                {
                    var done = false;
                    foreach (var (cond, body) in i.Branches)
                        if (Truthy(Eval(cond)))
                        {
                            Exec(body);
                            done = true;
                            break;
                        }
                    if (!done && i.Else is not null)
                        Exec(i.Else);
                    break;
                }
                case ForNode f:
                    ExecFor(f);
                    break;
            }
        }
    }

    private void Step(int pos)
    {
        if (++_steps > MaxSteps)
            throw Error(pos, $"the template ran more than {MaxSteps:N0} steps (statements, loop iterations and expressions); a " +
                             "chat template that does this is broken or hostile: use the model's original tokenizer_config.json");
        if ((_steps & (CancellationStride - 1)) == 0)
            _cancellation.ThrowIfCancellationRequested();
        if (_out.Length > MaxStringLength)
            throw Error(pos, $"the rendered text is over {MaxStringLength:N0} characters: the conversation is far too long to score, or the template is hostile");
    }

    /// <summary>A string about to be built from parts of these lengths, refused before allocating when too long or when
    /// it would take the render over its built budget.</summary>
    internal void CheckLength(long length, int pos)
    {
        if (length > MaxStringLength)
            throw Error(pos, $"the template builds a string of {length:N0} characters, over the limit of {MaxStringLength:N0}");
        if (_built + length > MaxBuiltChars)
            throw OverBudget(pos);
    }

    /// <summary>Charges what an operation built (a string's characters, a list's items) to the render's budget.</summary>
    private void Charge(long amount, int pos)
    {
        _built += amount;
        if (_built > MaxBuiltChars)
            throw OverBudget(pos);
    }

    private TemplateException OverBudget(int pos) => Error(pos,
        $"the template built more than {MaxBuiltChars:N0} characters in one render (strings grown in a loop, or a filter " +
        "building large strings per item); a chat template that does this is broken or hostile: use the model's original " +
        "tokenizer_config.json");

    /// <summary>Charges a value an operation created (not one it only looked up).</summary>
    private object? Built(object? value, int pos)
    {
        switch (value)
        {
            case string s:
                Charge(s.Length, pos);
                break;
            case System.Collections.ICollection c:
                Charge((long)c.Count * ListItemCost, pos);
                break;
        }
        return value;
    }

    internal void CheckCount(long count, int pos)
    {
        if (count > MaxListLength)
            throw Error(pos, $"the template builds a list of {count:N0} items, over the limit of {MaxListLength:N0}");
    }

    private void ExecFor(ForNode f)
    {
        var items = Iterate(Eval(f.Iterable), f.Iterable.Position).ToList();
        Charge((long)items.Count * ListItemCost, f.Position);
        var scope = new Dictionary<string, object?>(StringComparer.Ordinal);
        _scopes.Add(scope);
        try
        {
            if (f.Filter is not null)
                items = items.Where(item => { Bind(scope, f, item); return Truthy(Eval(f.Filter)); }).ToList();
            for (var k = 0; k < items.Count; k++)
            {
                Step(f.Position);
                scope.Clear();
                Bind(scope, f, items[k]);
                scope["loop"] = new Dictionary<string, object?>(StringComparer.Ordinal)
                {
                    ["index"] = (long)(k + 1), ["index0"] = (long)k, ["revindex"] = (long)(items.Count - k),
                    ["revindex0"] = (long)(items.Count - k - 1), ["first"] = k == 0, ["last"] = k == items.Count - 1,
                    ["length"] = (long)items.Count, ["previtem"] = k > 0 ? items[k - 1] : Undefined.Instance,
                    ["nextitem"] = k < items.Count - 1 ? items[k + 1] : Undefined.Instance,
                };
                Exec(f.Body);
            }
        }
        finally
        {
            _scopes.RemoveAt(_scopes.Count - 1);
        }
        if (items.Count == 0 && f.Else is not null)
            Exec(f.Else);
    }

    private void Bind(Dictionary<string, object?> scope, ForNode f, object? item)
    {
        if (f.Targets.Length == 1)
        {
            scope[f.Targets[0]] = item;
            return;
        }
        var parts = item as List<object?> ?? throw Error(f.Position, "cannot unpack a non-sequence in a for loop");
        if (parts.Count != f.Targets.Length)
            throw Error(f.Position, $"cannot unpack {parts.Count} values into {f.Targets.Length} loop variables");
        for (var k = 0; k < parts.Count; k++)
            scope[f.Targets[k]] = parts[k];
    }

    private object? Lookup(string name)
    {
        for (var k = _scopes.Count - 1; k >= 0; k--)
            if (_scopes[k].TryGetValue(name, out var v))
                return v;
        return Undefined.Instance;
    }

    // ---- expressions ------------------------------------------------------------------------------------------------

    private object? Eval(Expr e)
    {
        System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();
        Step(e.Position);
        switch (e)
        {
            case Literal l:
                return l.Value;
            case NameExpr n:
                return Lookup(n.Name);
            case ListExpr l:
                return Built(l.Items.Select(Eval).ToList(), l.Position);
            case DictExpr d:
                return Built(d.Items.ToDictionary(kv => ToStr(Eval(kv.Key)), kv => Eval(kv.Value), StringComparer.Ordinal), d.Position);
            case AttrExpr a:
                return GetAttr(Eval(a.Target), a.Name);
            case IndexExpr ix:
                return ix.IsSlice ? Built(Slice(Eval(ix.Target), ix), ix.Position) : GetItem(Eval(ix.Target), Eval(ix.Index!), ix.Position);
            case CallExpr c:
                return Built(Call(c), c.Position);
            case FilterExpr f:
                return Built(JinjaBuiltins.Filter(this, f.Name, Eval(f.Target), f.Args.Select(Eval).ToList(),
                    f.Kwargs.ToDictionary(k => k.Name, k => Eval(k.Value)), f.Position), f.Position);
            case TestExpr t:
                return JinjaBuiltins.Test(this, t.Name, Eval(t.Target), t.Args.Select(Eval).ToList(), t.Position) != t.Negated;
            case UnaryExpr u:
                var operand = Eval(u.Operand);
                return u.Op switch
                {
                    "not" => !Truthy(operand),
                    "-" => operand switch { long i => (object)(-i), double d => -d, _ => throw Error(u.Position, $"cannot negate {TypeName(operand)}") },
                    _ => operand,
                };
            case BinaryExpr b:
                return b.Op is "~" or "+" or "*" ? Built(Binary(b), b.Position) : Binary(b);
            case CondExpr c:
                return Truthy(Eval(c.Condition)) ? Eval(c.Then) : c.Else is null ? Undefined.Instance : Eval(c.Else);
            default:
                throw Error(e.Position, "unsupported expression");
        }
    }

    private object? Binary(BinaryExpr b)
    {
        if (b.Op == "and")
        {
            var l = Eval(b.Left);
            return Truthy(l) ? Eval(b.Right) : l;
        }
        if (b.Op == "or")
        {
            var l = Eval(b.Left);
            return Truthy(l) ? l : Eval(b.Right);
        }
        var left = Eval(b.Left);
        var right = Eval(b.Right);
        switch (b.Op)
        {
            case "~":
            {
                string leftText = ToStr(left), rightText = ToStr(right);
                CheckLength((long)leftText.Length + rightText.Length, b.Position);
                return leftText + rightText;
            }
            case "+":
                if (left is string ls && right is string rs)
                {
                    CheckLength((long)ls.Length + rs.Length, b.Position);
                    return ls + rs;
                }
                if (left is List<object?> ll && right is List<object?> rl)
                {
                    CheckCount((long)ll.Count + rl.Count, b.Position);
                    return ll.Concat(rl).ToList();
                }
                return Arithmetic(b, left, right);
            case "-" or "*" or "/" or "//" or "%":
                if (b.Op == "*" && left is string s && right is long n)
                {
                    CheckLength(s.Length * Math.Max(0, Math.Min(n, MaxStringLength + 1L)), b.Position);
                    return string.Concat(Enumerable.Repeat(s, (int)Math.Max(0, n)));
                }
                return Arithmetic(b, left, right);
            case "==": return PyEquals(left, right);
            case "!=": return !PyEquals(left, right);
            case "<" or ">" or "<=" or ">=":
                var c = Compare(left, right, b.Position);
                return b.Op switch { "<" => c < 0, ">" => c > 0, "<=" => c <= 0, _ => c >= 0 };
            case "in": return Contains(right, left, b.Position);
            case "not in": return !Contains(right, left, b.Position);
            default:
                throw Error(b.Position, $"operator '{b.Op}' is not supported");
        }
    }

    private object Arithmetic(BinaryExpr b, object? l, object? r)
    {
        if (l is bool lb) l = lb ? 1L : 0L;
        if (r is bool rb) r = rb ? 1L : 0L;
        if (l is long li && r is long ri)
            return b.Op switch
            {
                // (object) keeps ints as ints: a switch expression would otherwise widen every arm to double.
                "+" => (object)(li + ri), "-" => li - ri, "*" => li * ri,
                "/" => (double)li / ri,
                "//" => ri == 0 ? throw Error(b.Position, "integer division by zero") : (long)Math.Floor((double)li / ri),
                _ => ri == 0 ? throw Error(b.Position, "modulo by zero") : ((li % ri) + ri) % ri,
            };
        if (l is long or double && r is long or double)
        {
            double x = Convert.ToDouble(l, CultureInfo.InvariantCulture), y = Convert.ToDouble(r, CultureInfo.InvariantCulture);
            return b.Op switch { "+" => x + y, "-" => x - y, "*" => x * y, "/" => x / y, "//" => Math.Floor(x / y), _ => x - y * Math.Floor(x / y) };
        }
        throw Error(b.Position, $"unsupported operand types for {b.Op}: {TypeName(l)} and {TypeName(r)}");
    }

    private object? Call(CallExpr c)
    {
        var args = c.Args.Select(Eval).ToList();
        var kwargs = c.Kwargs.ToDictionary(k => k.Name, k => Eval(k.Value));
        if (c.Target is AttrExpr a)
            return JinjaBuiltins.Method(this, Eval(a.Target), a.Name, args, kwargs, c.Position);
        var fn = Eval(c.Target);
        if (fn is JinjaFunction f)
            return f(args, kwargs);
        throw Error(c.Position, c.Target is NameExpr n
            ? $"'{n.Name}' is not a function this engine provides (raise_exception, namespace, range, strftime_now are)"
            : "calling this value is not supported");
    }

    internal object? GetAttr(object? target, string name) => target switch
    {
        Dictionary<string, object?> d => d.TryGetValue(name, out var v) ? v : Undefined.Instance,   // also namespace()
        _ => Undefined.Instance,
    };

    private object? GetItem(object? target, object? index, int pos)
    {
        switch (target)
        {
            case Dictionary<string, object?> d:
                return index is string k && d.TryGetValue(k, out var v) ? v : Undefined.Instance;
            case List<object?> l when index is long i:
                if (i < 0) i += l.Count;
                return i >= 0 && i < l.Count ? l[(int)i] : Undefined.Instance;
            case string s when index is long i:
                if (i < 0) i += s.Length;
                return i >= 0 && i < s.Length ? s[(int)i].ToString() : Undefined.Instance;
            case Undefined:
                return Undefined.Instance;
            default:
                throw Error(pos, $"cannot index {TypeName(target)} with {TypeName(index)}");
        }
    }

    private object? Slice(object? target, IndexExpr ix)
    {
        long? start = ix.SliceStart is null ? null : Eval(ix.SliceStart) as long?;
        long? end = ix.SliceEnd is null ? null : Eval(ix.SliceEnd) as long?;
        var step = ix.SliceStep is null ? 1 : Eval(ix.SliceStep) as long? ?? 1;
        if (step == 0)
            throw Error(ix.Position, "slice step cannot be zero");
        var length = target switch
        {
            List<object?> l => l.Count,
            string s => s.Length,
            _ => throw Error(ix.Position, $"cannot slice {TypeName(target)}"),
        };
        // Python's slice.indices(length): negative bounds count from the end, then clamp to [0, len] (step > 0) or
        // [-1, len - 1] (step < 0); the defaults are the two ends in the step's direction.
        long Bound(long? v, long whenNull)
        {
            if (v is null) return whenNull;
            var x = v.Value < 0 ? v.Value + length : v.Value;
            return step > 0 ? Math.Clamp(x, 0, length) : Math.Clamp(x, -1, length - 1);
        }
        long a = Bound(start, step > 0 ? 0 : length - 1), b = Bound(end, step > 0 ? length : -1);
        var picked = new List<int>();
        for (var i = a; step > 0 ? i < b : i > b; i += step)
        {
            Step(ix.Position);
            picked.Add((int)i);
        }
        return target switch
        {
            List<object?> l => step == 1 && picked.Count > 0 ? l.GetRange(picked[0], picked.Count) : picked.Select(i => l[i]).ToList(),
            string s => step == 1 && picked.Count > 0 ? s.Substring(picked[0], picked.Count) : string.Concat(picked.Select(i => s[i])),
            _ => throw Error(ix.Position, $"cannot slice {TypeName(target)}"),
        };
    }

    internal IEnumerable<object?> Iterate(object? value, int pos) => value switch
    {
        List<object?> l => l,
        Dictionary<string, object?> d => d.Keys,
        string s => s.Select(ch => (object?)ch.ToString()),
        Undefined => [],
        _ => throw Error(pos, $"cannot iterate over {TypeName(value)}"),
    };

    private bool Contains(object? container, object? item, int pos) => container switch
    {
        string s => item is string sub ? s.Contains(sub, StringComparison.Ordinal) : throw Error(pos, "'in <string>' needs a string on the left"),
        List<object?> l => l.Any(x => PyEquals(x, item)),
        Dictionary<string, object?> d => item is string k && d.ContainsKey(k),
        Undefined => false,
        _ => throw Error(pos, $"'in' is not supported for {TypeName(container)}"),
    };

    // ---- Python semantics -------------------------------------------------------------------------------------------

    internal static bool Truthy(object? v) => v switch
    {
        null => false,
        Undefined => false,
        bool b => b,
        long i => i != 0,
        double d => d != 0,
        string s => s.Length > 0,
        System.Collections.ICollection c => c.Count > 0,
        _ => true,
    };

    internal static bool PyEquals(object? a, object? b) => (a, b) switch
    {
        (null, null) => true,
        (Undefined, Undefined) => true,
        (long x, long y) => x == y,
        (long or double, long or double) => Convert.ToDouble(a, CultureInfo.InvariantCulture) == Convert.ToDouble(b, CultureInfo.InvariantCulture),
        (bool x, bool y) => x == y,
        (string x, string y) => string.Equals(x, y, StringComparison.Ordinal),
        (List<object?> x, List<object?> y) => x.Count == y.Count && x.Zip(y).All(p => PyEquals(p.First, p.Second)),
        _ => ReferenceEquals(a, b),
    };

    private int Compare(object? a, object? b, int pos) => (a, b) switch
    {
        (long or double, long or double) => Convert.ToDouble(a, CultureInfo.InvariantCulture).CompareTo(Convert.ToDouble(b, CultureInfo.InvariantCulture)),
        (string x, string y) => string.CompareOrdinal(x, y),
        _ => throw Error(pos, $"cannot compare {TypeName(a)} with {TypeName(b)}"),
    };

    /// <summary>Python's str() of a value, as Jinja prints it.</summary>
    internal static string ToStr(object? v) => v switch
    {
        null => "None",
        Undefined => "",
        string s => s,
        bool b => b ? "True" : "False",
        long i => i.ToString(CultureInfo.InvariantCulture),
        double d => PyFloat(d),
        List<object?> l => "[" + string.Join(", ", l.Select(Repr)) + "]",
        Dictionary<string, object?> d => "{" + string.Join(", ", d.Select(kv => Repr(kv.Key) + ": " + Repr(kv.Value))) + "}",
        _ => v.ToString() ?? "",
    };

    private static string Repr(object? v) => v is string s ? "'" + s.Replace("\\", "\\\\").Replace("'", "\\'") + "'" : ToStr(v);

    private static string PyFloat(double d)
    {
        if (double.IsNaN(d)) return "nan";
        if (double.IsInfinity(d)) return d > 0 ? "inf" : "-inf";
        var r = d.ToString("R", CultureInfo.InvariantCulture);
        return r.Contains('.') || r.Contains('E') ? r.Replace("E+", "e+").Replace("E-", "e-") : r + ".0";
    }

    internal static string TypeName(object? v) => v switch
    {
        null => "None", Undefined => "undefined", string => "str", bool => "bool", long => "int", double => "float",
        List<object?> => "list", Dictionary<string, object?> => "dict", _ => v.GetType().Name,
    };

    internal TemplateException ErrorAt(int pos, string msg) => Error(pos, msg);

    /// <summary>Converts JSON (messages from the user) to template values.</summary>
    public static object? FromJson(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => e.EnumerateObject().ToDictionary(p => p.Name, p => FromJson(p.Value), StringComparer.Ordinal),
        JsonValueKind.Array => e.EnumerateArray().Select(FromJson).ToList(),
        JsonValueKind.String => e.GetString(),
        JsonValueKind.Number => e.TryGetInt64(out var i) ? i : e.GetDouble(),
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        _ => null,
    };
}
