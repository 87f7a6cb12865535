using System.Text;
using System.Text.Json;

namespace OnnxReward.Cli.Tests.Fuzz;

/// <summary>
/// Seeded hostile inputs for the CLI and the server (issue 16, "Done when"): random bytes, invalid UTF-8, lone
/// surrogates, deep JSON, huge and whitespace-free strings, special-token strings, wrong shapes and truncated JSON,
/// always interleaved with valid inputs that must still be answered. Every case is a payload of bytes with no
/// newline in it (one JSON line / one HTTP body) and says whether it is valid.
/// </summary>
internal sealed class FuzzCorpus(int seed)
{
    private readonly Random _random = new(seed);

    public readonly record struct Case(string Kind, byte[] Bytes, bool Valid);

    /// <summary>Largest payload a case makes (the whitespace-free strings): 200 KB.</summary>
    public const int MaxCaseBytes = 200_000;

    private static readonly string[] SpecialTokens =
    [
        "<|eot_id|>", "<|begin_of_text|>", "[PAD]", "<|start_header_id|>assistant<|end_header_id|>\n\n", "<|end_of_text|>",
        "<|reserved_special_token_0|>", "<|eot_id|><|start_header_id|>user<|end_header_id|>",
    ];

    /// <summary>A valid input of <paramref name="shape"/> (conversation: prompt/response or messages; bon; pair).</summary>
    public Case Valid(string shape)
    {
        var words = Enumerable.Range(0, _random.Next(1, 12)).Select(_ => Word());
        var text = string.Join(' ', words);
        var json = shape switch
        {
            "bon" => JsonSerializer.Serialize(new { prompt = Word(), candidates = new[] { text, Word() } }),
            "pair" => JsonSerializer.Serialize(new { prompt = Word(), chosen = text, rejected = Word() }),
            _ => _random.Next(2) == 0
                ? JsonSerializer.Serialize(new { prompt = Word(), response = text })
                : JsonSerializer.Serialize(new { messages = new[] { new { role = "user", content = Word() }, new { role = "assistant", content = text } } }),
        };
        return new Case("valid", Encoding.UTF8.GetBytes(json), true);
    }

    /// <summary>A hostile input; <paramref name="shape"/> picks the field names it hides in.</summary>
    public Case Hostile(string shape)
    {
        var (kind, bytes) = _random.Next(12) switch
        {
            0 => ("random bytes", RandomBytes(_random.Next(1, 300))),
            1 => ("invalid UTF-8", Wrap(shape, Bytes("x"), InvalidUtf8(), Bytes("y"))),
            2 => ("lone surrogate", Wrap(shape, Bytes(new[] { "\\ud800", "\\udfff", "\\udc00\\ud800", "a\\ud83d" }[_random.Next(4)]))),
            3 => ("deep JSON", Bytes(_random.Next(2) == 0
                ? new string('[', 10_000) + new string(']', 10_000)
                : string.Concat(Enumerable.Repeat("{\"messages\":", 10_000)) + "1" + new string('}', 10_000))),
            4 => ("whitespace-free", Wrap(shape, Bytes(new string((char)('a' + _random.Next(26)), _random.Next(50_000, MaxCaseBytes))))),
            5 => ("DNA", Wrap(shape, Bytes(string.Concat(Enumerable.Range(0, _random.Next(20_000, 100_000)).Select(_ => "ACGT"[_random.Next(4)]))))),
            6 => ("special tokens", Wrap(shape, Bytes(JsonEscape(string.Concat(Enumerable.Range(0, _random.Next(1, 6))
                .Select(_ => SpecialTokens[_random.Next(SpecialTokens.Length)] + Word())))))),
            7 => ("truncated", Truncated(Valid(shape).Bytes)),
            8 => ("wrong shape", Bytes(new[]
            {
                "1", "null", "[]", "\"text\"", "{}", "{\"messages\": \"x\"}", "{\"messages\": [1]}", "{\"messages\": []}",
                "{\"input_ids\": [-1]}", "{\"input_ids\": [1e30]}", "{\"input_ids\": [999999999]}", "{\"input_ids\": []}",
                "{\"prompt\": 1, \"response\": 2}", "{\"text\": \"\"}", "{\"candidates\": {}}", "{\"prompt\": \"p\", \"candidates\": []}",
                "{\"messages\": [{\"role\": \"user\", \"content\": null}]}", "{\"messages\": [{\"role\": \"user\", \"content\": \"only a prompt\"}]}",
            }[_random.Next(18)])),
            9 => ("control characters", Wrap(shape, Bytes("a\\u0000b\\u0001\\u001f\\t\\b\\f"))),
            10 => ("huge number", Bytes("{\"input_ids\": [" + new string('9', _random.Next(30, 5000)) + "]}")),
            _ => ("many keys", Bytes("{" + string.Join(',', Enumerable.Range(0, 5000).Select(i => $"\"k{i}\": {i}")) + "}")),
        };
        return new Case(kind, bytes, false);
    }

    /// <summary><paramref name="count"/> cases, every other one valid, the rest hostile, shuffled by the seed.</summary>
    public List<Case> Mixed(string shape, int count) =>
        Enumerable.Range(0, count).Select(i => i % 2 == 0 ? Valid(shape) : Hostile(shape)).ToList();

    private string Word() => new(Enumerable.Range(0, _random.Next(1, 9)).Select(_ => (char)('a' + _random.Next(26))).ToArray());

    private byte[] RandomBytes(int n)
    {
        var b = new byte[n];
        _random.NextBytes(b);
        for (var i = 0; i < n; i++)
            if (b[i] is (byte)'\n' or (byte)'\r')
                b[i] = (byte)'x';
        return b;
    }

    private byte[] InvalidUtf8() => new[]
    {
        new byte[] { 0xFF }, [0xC3, 0x28], [0xE2, 0x82], [0xF0, 0x9F, 0x98], [0xED, 0xA0, 0x80], [0xC0, 0xAF], [0xF5, 0x80, 0x80, 0x80],
    }[_random.Next(7)];

    private byte[] Truncated(byte[] valid) => valid[..Math.Max(1, _random.Next(valid.Length - 1))];

    /// <summary>A JSON line of the shape with <paramref name="parts"/> (raw bytes, already JSON-escaped) as its text.</summary>
    private static byte[] Wrap(string shape, params byte[][] parts)
    {
        var (before, after) = shape switch
        {
            "bon" => ("{\"prompt\": \"p\", \"candidates\": [\"ok\", \"", "\"]}"),
            "pair" => ("{\"prompt\": \"p\", \"chosen\": \"", "\", \"rejected\": \"no\"}"),
            _ => ("{\"prompt\": \"p\", \"response\": \"", "\"}"),
        };
        return [.. Bytes(before), .. parts.SelectMany(p => p), .. Bytes(after)];
    }

    private static byte[] Bytes(string s) => Encoding.UTF8.GetBytes(s);

    private static string JsonEscape(string s) => JsonSerializer.Serialize(s)[1..^1];

    /// <summary>Whether a payload is a blank line (the CLI skips it: no output).</summary>
    public static bool IsBlank(byte[] line) => line.All(b => b is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\f' or (byte)'\v');
}
