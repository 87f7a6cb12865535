using System.Buffers;
using System.Text;
using System.Text.Json;

namespace OnnxReward.Wire;

/// <summary>
/// The one way untrusted JSON bytes (a CLI input line, an HTTP body) become a <see cref="JsonDocument"/>: the bytes
/// must be valid UTF-8 (never silently replaced by U+FFFD), the JSON well formed and at most <see cref="MaxDepth"/>
/// deep, and every string (values and property names) valid Unicode: a lone surrogate escape such as <c>"\ud800"</c>
/// would otherwise throw an InvalidOperationException from whichever <c>GetString()</c> first reads it. Each problem
/// is one <see cref="FormatException"/> whose message names the byte offset and the fix.
/// </summary>
public static class StrictJson
{
    /// <summary>Deepest nesting accepted (System.Text.Json's default; inputs are at most 3 deep).</summary>
    public const int MaxDepth = 64;

    /// <exception cref="FormatException">The bytes are not valid UTF-8, not JSON, or hold a lone surrogate.</exception>
    public static JsonDocument Parse(ReadOnlyMemory<byte> utf8)
    {
        if (InvalidUtf8At(utf8.Span) is { } bad)
            throw new FormatException(
                $"invalid UTF-8 at byte {bad} (0x{utf8.Span[(int)bad]:X2}): the input must be UTF-8 text; re-encode it (e.g. iconv -t UTF-8).");
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(utf8, new JsonDocumentOptions { MaxDepth = MaxDepth });
        }
        catch (JsonException e)
        {
            throw new FormatException($"invalid JSON ({e.Message.Split(" Path:")[0]}).");
        }
        if (utf8.Span.IndexOf("\\u"u8) >= 0 && LoneSurrogateAt(utf8.Span) is { } at)
        {
            doc.Dispose();
            throw new FormatException(
                $"a lone surrogate in the JSON string at byte {at} (a \\ud800-\\udfff escape without its pair), which is not Unicode " +
                "text: remove it or give the complete surrogate pair.");
        }
        return doc;
    }

    /// <summary>Byte offset of the first invalid UTF-8 sequence, or null when the bytes are valid.</summary>
    public static long? InvalidUtf8At(ReadOnlySpan<byte> utf8)
    {
        if (System.Text.Unicode.Utf8.IsValid(utf8))
            return null;
        long offset = 0;
        while (!utf8.IsEmpty)
        {
            if (Rune.DecodeFromUtf8(utf8, out _, out var consumed) != OperationStatus.Done)
                return offset;
            utf8 = utf8[consumed..];
            offset += consumed;
        }
        return null;
    }

    /// <summary>Byte offset of the first escaped string or property name that does not unescape to valid UTF-16.</summary>
    private static long? LoneSurrogateAt(ReadOnlySpan<byte> utf8)
    {
        var reader = new Utf8JsonReader(utf8, new JsonReaderOptions { MaxDepth = MaxDepth });
        while (reader.Read())
        {
            if (reader.TokenType is not (JsonTokenType.String or JsonTokenType.PropertyName) || !reader.ValueIsEscaped)
                continue;
            try
            {
                _ = reader.GetString();
            }
            catch (InvalidOperationException)
            {
                return reader.TokenStartIndex;
            }
        }
        return null;
    }
}
