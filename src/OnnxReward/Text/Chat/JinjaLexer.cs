using System.Text;

namespace OnnxReward.Text.Chat;

/// <summary>A template that uses something outside the supported Jinja subset, or is malformed.</summary>
public sealed class TemplateException : Exception
{
    public TemplateException(string message, int line = 0, int column = 0) : base(line > 0 ? $"{message} (template line {line}, column {column})" : message)
    {
        Line = line;
        Column = column;
    }

    public int Line { get; }
    public int Column { get; }
}

internal enum TokenKind { Text, VariableStart, VariableEnd, BlockStart, BlockEnd, Name, String, Integer, Float, Operator, End }

internal readonly record struct Token(TokenKind Kind, string Value, int Position);

/// <summary>
/// Splits a template into text and tag tokens with Jinja's whitespace rules as transformers configures them:
/// <c>trim_blocks</c> (drop the first newline after a block or comment tag), <c>lstrip_blocks</c> (drop spaces/tabs
/// before a block or comment tag at the start of a line, unless <c>{%+</c>), and <c>-</c> modifiers on either side.
/// </summary>
internal static class JinjaLexer
{
    public static List<Token> Tokenize(string src)
    {
        var tokens = new List<Token>();
        var i = 0;
        var trimNextNewline = false;   // trim_blocks after a block/comment tag
        var stripNextWhitespace = false; // "-%}" / "-}}" / "-#}"
        while (i < src.Length)
        {
            var open = FindOpen(src, i);
            var textEnd = open < 0 ? src.Length : open;
            var text = src[i..textEnd];
            if (stripNextWhitespace)
                text = text.TrimStart(' ', '\t', '\n', '\r', '\v', '\f');
            else if (trimNextNewline && text.StartsWith('\n'))
                text = text[1..];
            else if (trimNextNewline && text.StartsWith("\r\n", StringComparison.Ordinal))
                text = text[2..];
            trimNextNewline = stripNextWhitespace = false;

            if (open >= 0)
            {
                var kind = src[open + 1];
                var minusBefore = open + 2 < src.Length && src[open + 2] == '-';
                var plusBefore = open + 2 < src.Length && src[open + 2] == '+';
                if (minusBefore)
                    text = text.TrimEnd(' ', '\t', '\n', '\r', '\v', '\f');
                else if (kind is '%' or '#' && !plusBefore)
                    text = LStripBlock(text);
                if (text.Length > 0)
                    tokens.Add(new Token(TokenKind.Text, text, i));

                var close = kind switch { '{' => "}}", '%' => "%}", _ => "#}" };
                var bodyStart = open + 2 + (minusBefore || plusBefore ? 1 : 0);
                var end = src.IndexOf(close, bodyStart, StringComparison.Ordinal);
                if (end < 0)
                    throw Error(src, open, $"unclosed '{src.Substring(open, 2)}': no matching '{close}'");
                var minusAfter = end > bodyStart && src[end - 1] == '-';
                var body = src[bodyStart..(minusAfter ? end - 1 : end)];
                if (kind == '#')
                {
                    // comment: nothing emitted
                }
                else
                {
                    tokens.Add(new Token(kind == '{' ? TokenKind.VariableStart : TokenKind.BlockStart, "", open));
                    LexExpression(src, body, bodyStart, tokens);
                    tokens.Add(new Token(kind == '{' ? TokenKind.VariableEnd : TokenKind.BlockEnd, "", end));
                }
                stripNextWhitespace = minusAfter;
                trimNextNewline = kind is '%' or '#';
                i = end + 2;
            }
            else
            {
                if (text.Length > 0)
                    tokens.Add(new Token(TokenKind.Text, text, i));
                i = src.Length;
            }
        }
        tokens.Add(new Token(TokenKind.End, "", src.Length));
        return tokens;
    }

    private static int FindOpen(string src, int from)
    {
        for (var k = from; k < src.Length - 1; k++)
            if (src[k] == '{' && src[k + 1] is '{' or '%' or '#')
                return k;
        return -1;
    }

    /// <summary>lstrip_blocks: remove spaces/tabs between the last newline (or the start) and the tag.</summary>
    private static string LStripBlock(string text)
    {
        var k = text.Length;
        while (k > 0 && text[k - 1] is ' ' or '\t')
            k--;
        return k == 0 || text[k - 1] == '\n' ? text[..k] : text;
    }

    private static readonly string[] Operators =
        ["**", "//", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "(", ")", "[", "]", "{", "}", ",", ".", ":", "|", "="];

    private static void LexExpression(string src, string body, int offset, List<Token> tokens)
    {
        var i = 0;
        while (i < body.Length)
        {
            var c = body[i];
            if (char.IsWhiteSpace(c))
            {
                i++;
                continue;
            }
            var pos = offset + i;
            if (char.IsLetter(c) || c == '_')
            {
                var s = i;
                while (i < body.Length && (char.IsLetterOrDigit(body[i]) || body[i] == '_'))
                    i++;
                tokens.Add(new Token(TokenKind.Name, body[s..i], pos));
            }
            else if (char.IsDigit(c))
            {
                var s = i;
                while (i < body.Length && char.IsDigit(body[i]))
                    i++;
                var isFloat = i + 1 < body.Length && body[i] == '.' && char.IsDigit(body[i + 1]);
                if (isFloat)
                {
                    i++;
                    while (i < body.Length && char.IsDigit(body[i]))
                        i++;
                }
                tokens.Add(new Token(isFloat ? TokenKind.Float : TokenKind.Integer, body[s..i], pos));
            }
            else if (c is '\'' or '"')
            {
                var sb = new StringBuilder();
                i++;
                while (true)
                {
                    if (i >= body.Length)
                        throw Error(src, pos, "unterminated string literal");
                    var ch = body[i++];
                    if (ch == c)
                        break;
                    if (ch == '\\' && i < body.Length)
                    {
                        var e = body[i++];
                        sb.Append(e switch
                        {
                            'n' => '\n', 't' => '\t', 'r' => '\r', '\\' => '\\', '\'' => '\'', '"' => '"', '0' => '\0',
                            _ => throw Error(src, offset + i - 2, $"unsupported escape '\\{e}' in a string literal"),
                        });
                    }
                    else
                        sb.Append(ch);
                }
                tokens.Add(new Token(TokenKind.String, sb.ToString(), pos));
            }
            else
            {
                var op = Operators.FirstOrDefault(o => string.CompareOrdinal(body, i, o, 0, o.Length) == 0)
                         ?? throw Error(src, pos, $"unexpected character '{c}'");
                tokens.Add(new Token(TokenKind.Operator, op, pos));
                i += op.Length;
            }
        }
    }

    public static TemplateException Error(string src, int position, string message)
    {
        var line = 1;
        var col = 1;
        for (var k = 0; k < position && k < src.Length; k++)
        {
            if (src[k] == '\n')
            {
                line++;
                col = 1;
            }
            else
                col++;
        }
        return new TemplateException(message, line, col);
    }
}
