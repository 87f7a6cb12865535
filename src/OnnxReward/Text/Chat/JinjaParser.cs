namespace OnnxReward.Text.Chat;

// ---- AST ----------------------------------------------------------------------------------------------------------

internal abstract record Node(int Position);
internal sealed record TextNode(string Text, int Position) : Node(Position);
internal sealed record OutputNode(Expr Expr, int Position) : Node(Position);
internal sealed record SetNode(string Target, string? Attribute, Expr Value, int Position) : Node(Position);
internal sealed record IfNode(List<(Expr Condition, List<Node> Body)> Branches, List<Node>? Else, int Position) : Node(Position);
internal sealed record ForNode(string[] Targets, Expr Iterable, Expr? Filter, List<Node> Body, List<Node>? Else, int Position) : Node(Position);

internal abstract record Expr(int Position);
internal sealed record Literal(object? Value, int Position) : Expr(Position);
internal sealed record NameExpr(string Name, int Position) : Expr(Position);
internal sealed record ListExpr(List<Expr> Items, int Position) : Expr(Position);
internal sealed record DictExpr(List<(Expr Key, Expr Value)> Items, int Position) : Expr(Position);
internal sealed record AttrExpr(Expr Target, string Name, int Position) : Expr(Position);
internal sealed record IndexExpr(Expr Target, Expr? Index, Expr? SliceStart, Expr? SliceEnd, bool IsSlice, int Position,
    Expr? SliceStep = null) : Expr(Position);
internal sealed record CallExpr(Expr Target, List<Expr> Args, List<(string Name, Expr Value)> Kwargs, int Position) : Expr(Position);
internal sealed record FilterExpr(Expr Target, string Name, List<Expr> Args, List<(string Name, Expr Value)> Kwargs, int Position) : Expr(Position);
internal sealed record TestExpr(Expr Target, string Name, bool Negated, List<Expr> Args, int Position) : Expr(Position);
internal sealed record UnaryExpr(string Op, Expr Operand, int Position) : Expr(Position);
internal sealed record BinaryExpr(string Op, Expr Left, Expr Right, int Position) : Expr(Position);
internal sealed record CondExpr(Expr Condition, Expr Then, Expr? Else, int Position) : Expr(Position);

/// <summary>Recursive-descent parser for the Jinja subset chat templates use (Jinja's own precedence rules).</summary>
internal sealed class JinjaParser
{
    private readonly string _src;
    private readonly List<Token> _t;
    private int _i;

    private JinjaParser(string src)
    {
        _src = src;
        _t = JinjaLexer.Tokenize(src);
    }

    public static List<Node> Parse(string src)
    {
        var p = new JinjaParser(src);
        var body = p.ParseBody(out var stop);
        if (stop is not null)
            throw p.Error(p.Peek.Position, $"unexpected '{{% {stop} %}}' with no open block");
        return body;
    }

    private Token Peek => _t[_i];
    private Token Next() => _t[_i++];
    private TemplateException Error(int pos, string msg) => JinjaLexer.Error(_src, pos, msg);

    private bool IsOp(string op) => Peek.Kind == TokenKind.Operator && Peek.Value == op;
    private bool IsName(string name) => Peek.Kind == TokenKind.Name && Peek.Value == name;

    private Token Expect(TokenKind kind, string? value = null)
    {
        var t = Peek;
        if (t.Kind != kind || (value is not null && t.Value != value))
            throw Error(t.Position, $"expected {(value ?? kind.ToString())} but found '{(t.Kind == TokenKind.End ? "end of template" : t.Value)}'");
        _i++;
        return t;
    }

    /// <summary>Parses nodes until end of input or a block keyword that closes the caller's block (returned in stop).</summary>
    private List<Node> ParseBody(out string? stop, params string[] stopWords)
    {
        var nodes = new List<Node>();
        while (true)
        {
            var t = Peek;
            switch (t.Kind)
            {
                case TokenKind.End:
                    stop = null;
                    return nodes;
                case TokenKind.Text:
                    nodes.Add(new TextNode(Next().Value, t.Position));
                    break;
                case TokenKind.VariableStart:
                    Next();
                    nodes.Add(new OutputNode(ParseExpression(), t.Position));
                    Expect(TokenKind.VariableEnd);
                    break;
                case TokenKind.BlockStart:
                {
                    var keyword = _t[_i + 1];
                    if (keyword.Kind != TokenKind.Name)
                        throw Error(keyword.Position, "expected a statement name after '{%'");
                    if (stopWords.Contains(keyword.Value))
                    {
                        _i += 2;
                        stop = keyword.Value;
                        return nodes;
                    }
                    Next();
                    nodes.Add(ParseStatement());
                    break;
                }
                default:
                    throw Error(t.Position, $"unexpected '{t.Value}'");
            }
        }
    }

    private Node ParseStatement()
    {
        System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();   // hostile nesting: a catchable error, not a crash
        var kw = Next();
        switch (kw.Value)
        {
            case "set":
            {
                var target = Expect(TokenKind.Name).Value;
                string? attr = null;
                if (IsOp("."))
                {
                    Next();
                    attr = Expect(TokenKind.Name).Value;
                }
                if (!IsOp("="))
                    throw Error(Peek.Position, "block '{% set %}…{% endset %}' is not supported; use '{% set name = value %}'");
                Next();
                var value = ParseExpression();
                Expect(TokenKind.BlockEnd);
                return new SetNode(target, attr, value, kw.Position);
            }
            case "if":
            {
                var branches = new List<(Expr, List<Node>)>();
                var cond = ParseExpression();
                Expect(TokenKind.BlockEnd);
                List<Node>? elseBody = null;
                while (true)
                {
                    var body = ParseBody(out var stop, "elif", "else", "endif");
                    branches.Add((cond, body));
                    if (stop == "elif")
                    {
                        cond = ParseExpression();
                        Expect(TokenKind.BlockEnd);
                        continue;
                    }
                    if (stop == "else")
                    {
                        Expect(TokenKind.BlockEnd);
                        elseBody = ParseBody(out var s2, "endif");
                        if (s2 != "endif") throw Error(kw.Position, "'{% if %}' has no '{% endif %}'");
                    }
                    else if (stop != "endif")
                        throw Error(kw.Position, "'{% if %}' has no '{% endif %}'");
                    Expect(TokenKind.BlockEnd);
                    return new IfNode(branches, elseBody, kw.Position);
                }
            }
            case "for":
            {
                var targets = new List<string> { Expect(TokenKind.Name).Value };
                while (IsOp(","))
                {
                    Next();
                    targets.Add(Expect(TokenKind.Name).Value);
                }
                Expect(TokenKind.Name, "in");
                var iterable = ParseOr(allowConditional: false);
                Expr? filter = null;
                if (IsName("if"))
                {
                    Next();
                    filter = ParseOr(allowConditional: false);
                }
                if (IsName("recursive"))
                    throw Error(Peek.Position, "recursive loops are not supported");
                Expect(TokenKind.BlockEnd);
                var body = ParseBody(out var stop, "else", "endfor");
                List<Node>? elseBody = null;
                if (stop == "else")
                {
                    Expect(TokenKind.BlockEnd);
                    elseBody = ParseBody(out stop, "endfor");
                }
                if (stop != "endfor")
                    throw Error(kw.Position, "'{% for %}' has no '{% endfor %}'");
                Expect(TokenKind.BlockEnd);
                return new ForNode(targets.ToArray(), iterable, filter, body, elseBody, kw.Position);
            }
            default:
                throw Error(kw.Position,
                    $"'{{% {kw.Value} %}}' is not supported by OnnxReward's chat-template engine (supported: set, if/elif/else, for, " +
                    "expressions, filters and tests that chat templates use)");
        }
    }

    // ---- expressions, lowest precedence first -----------------------------------------------------------------------

    public Expr ParseExpression() => ParseConditional();

    private Expr ParseConditional()
    {
        var expr = ParseOr(allowConditional: true);
        return expr;
    }

    private Expr ParseOr(bool allowConditional)
    {
        System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();   // hostile nesting: a catchable error, not a crash
        var left = ParseAnd();
        while (IsName("or"))
        {
            var p = Next().Position;
            left = new BinaryExpr("or", left, ParseAnd(), p);
        }
        if (allowConditional && IsName("if"))
        {
            var p = Next().Position;
            var cond = ParseOr(allowConditional: false);
            Expr? elseExpr = null;
            if (IsName("else"))
            {
                Next();
                elseExpr = ParseOr(allowConditional: true);
            }
            return new CondExpr(cond, left, elseExpr, p);
        }
        return left;
    }

    private Expr ParseAnd()
    {
        var left = ParseNot();
        while (IsName("and"))
        {
            var p = Next().Position;
            left = new BinaryExpr("and", left, ParseNot(), p);
        }
        return left;
    }

    private Expr ParseNot()
    {
        System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();   // hostile nesting: a catchable error, not a crash
        if (IsName("not"))
        {
            var p = Next().Position;
            return new UnaryExpr("not", ParseNot(), p);
        }
        return ParseCompare();
    }

    private Expr ParseCompare()
    {
        var left = ParseConcat();
        while (true)
        {
            var t = Peek;
            if (t.Kind == TokenKind.Operator && t.Value is "==" or "!=" or "<" or ">" or "<=" or ">=")
            {
                Next();
                left = new BinaryExpr(t.Value, left, ParseConcat(), t.Position);
            }
            else if (IsName("in"))
            {
                Next();
                left = new BinaryExpr("in", left, ParseConcat(), t.Position);
            }
            else if (IsName("not") && _t[_i + 1].Kind == TokenKind.Name && _t[_i + 1].Value == "in")
            {
                _i += 2;
                left = new BinaryExpr("not in", left, ParseConcat(), t.Position);
            }
            else
                return left;
        }
    }

    private Expr ParseConcat()
    {
        var left = ParseAdditive();
        while (IsOp("~"))
        {
            var p = Next().Position;
            left = new BinaryExpr("~", left, ParseAdditive(), p);
        }
        return left;
    }

    private Expr ParseAdditive()
    {
        var left = ParseMultiplicative();
        while (IsOp("+") || IsOp("-"))
        {
            var t = Next();
            left = new BinaryExpr(t.Value, left, ParseMultiplicative(), t.Position);
        }
        return left;
    }

    private Expr ParseMultiplicative()
    {
        var left = ParseUnary();
        while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%"))
        {
            var t = Next();
            left = new BinaryExpr(t.Value, left, ParseUnary(), t.Position);
        }
        return left;
    }

    private Expr ParseUnary()
    {
        System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();   // hostile nesting: a catchable error, not a crash
        if (IsOp("-") || IsOp("+"))
        {
            var t = Next();
            return new UnaryExpr(t.Value, ParseUnary(), t.Position);
        }
        var e = ParsePostfix(ParsePrimary());
        return ParseFilters(e);
    }

    private Expr ParsePrimary()
    {
        var t = Next();
        switch (t.Kind)
        {
            case TokenKind.String:
            {
                var s = t.Value;
                while (Peek.Kind == TokenKind.String)               // adjacent literals concatenate
                    s += Next().Value;
                return new Literal(s, t.Position);
            }
            case TokenKind.Integer:
                return new Literal(long.Parse(t.Value, System.Globalization.CultureInfo.InvariantCulture), t.Position);
            case TokenKind.Float:
                return new Literal(double.Parse(t.Value, System.Globalization.CultureInfo.InvariantCulture), t.Position);
            case TokenKind.Name:
                return t.Value switch
                {
                    "true" or "True" => new Literal(true, t.Position),
                    "false" or "False" => new Literal(false, t.Position),
                    "none" or "None" => new Literal(null, t.Position),
                    _ => new NameExpr(t.Value, t.Position),
                };
            case TokenKind.Operator when t.Value == "(":
            {
                var e = ParseExpression();
                if (IsOp(","))
                    throw Error(t.Position, "tuples are not supported");
                Expect(TokenKind.Operator, ")");
                return e;
            }
            case TokenKind.Operator when t.Value == "[":
            {
                var items = new List<Expr>();
                while (!IsOp("]"))
                {
                    items.Add(ParseExpression());
                    if (!IsOp(","))
                        break;
                    Next();
                }
                Expect(TokenKind.Operator, "]");
                return new ListExpr(items, t.Position);
            }
            case TokenKind.Operator when t.Value == "{":
            {
                var items = new List<(Expr, Expr)>();
                while (!IsOp("}"))
                {
                    var k = ParseExpression();
                    Expect(TokenKind.Operator, ":");
                    items.Add((k, ParseExpression()));
                    if (!IsOp(","))
                        break;
                    Next();
                }
                Expect(TokenKind.Operator, "}");
                return new DictExpr(items, t.Position);
            }
            default:
                throw Error(t.Position, $"unexpected '{(t.Kind == TokenKind.End ? "end of template" : t.Value)}' in an expression");
        }
    }

    private Expr ParsePostfix(Expr e)
    {
        while (true)
        {
            if (IsOp("."))
            {
                var p = Next().Position;
                var name = Peek.Kind == TokenKind.Integer ? Next().Value : Expect(TokenKind.Name).Value;
                e = new AttrExpr(e, name, p);
            }
            else if (IsOp("["))
            {
                var p = Next().Position;
                Expr? start = null, end = null;
                if (!IsOp(":"))
                    start = ParseExpression();
                if (IsOp(":"))
                {
                    // Python slices [start:end:step], each part optional (Qwen's template reverses with messages[::-1]).
                    Next();
                    if (!IsOp("]") && !IsOp(":"))
                        end = ParseExpression();
                    Expr? step = null;
                    if (IsOp(":"))
                    {
                        Next();
                        if (!IsOp("]"))
                            step = ParseExpression();
                    }
                    Expect(TokenKind.Operator, "]");
                    e = new IndexExpr(e, null, start, end, true, p, step);
                }
                else
                {
                    Expect(TokenKind.Operator, "]");
                    e = new IndexExpr(e, start, null, null, false, p);
                }
            }
            else if (IsOp("("))
            {
                var p = Peek.Position;
                var (args, kwargs) = ParseArguments();
                e = new CallExpr(e, args, kwargs, p);
            }
            else
                return e;
        }
    }

    private (List<Expr>, List<(string, Expr)>) ParseArguments()
    {
        Expect(TokenKind.Operator, "(");
        var args = new List<Expr>();
        var kwargs = new List<(string, Expr)>();
        while (!IsOp(")"))
        {
            if (Peek.Kind == TokenKind.Name && _t[_i + 1].Kind == TokenKind.Operator && _t[_i + 1].Value == "=")
            {
                var name = Next().Value;
                Next();
                kwargs.Add((name, ParseExpression()));
            }
            else
                args.Add(ParseExpression());
            if (!IsOp(","))
                break;
            Next();
        }
        Expect(TokenKind.Operator, ")");
        return (args, kwargs);
    }

    private Expr ParseFilters(Expr e)
    {
        while (true)
        {
            if (IsOp("|"))
            {
                var p = Next().Position;
                var name = Expect(TokenKind.Name).Value;
                List<Expr> args = [];
                List<(string, Expr)> kwargs = [];
                if (IsOp("("))
                    (args, kwargs) = ParseArguments();
                e = new FilterExpr(e, name, args, kwargs, p);
            }
            else if (IsName("is"))
            {
                var p = Next().Position;
                var negated = false;
                if (IsName("not"))
                {
                    Next();
                    negated = true;
                }
                var name = Expect(TokenKind.Name).Value;
                var args = new List<Expr>();
                if (IsOp("("))
                    args = ParseArguments().Item1;
                else if (Peek.Kind is TokenKind.String or TokenKind.Integer or TokenKind.Float)
                    args.Add(ParsePrimary());
                e = new TestExpr(e, name, negated, args, p);
            }
            else
                return e;
        }
    }
}
