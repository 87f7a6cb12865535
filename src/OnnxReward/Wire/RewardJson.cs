using System.Text.Json;
using System.Text.Json.Serialization;
using OnnxReward.Selection;
using OnnxReward.Text.Conversations;

namespace OnnxReward.Wire;

// The one wire format: the JSON shapes `onnxreward score/embed/tokenize/bon` write as lines and `onnxreward serve`
// answers with (and that an embedding .NET service can answer with too). Results are typed records serialized by
// System.Text.Json source generation; requests are parsed by hand (ScoringInput.FromJson, ReadBestOfNRequest) because
// their errors must name the field and the fix ("\"candidates\"[2] is not a string"), which the serializer's messages
// do not.

/// <summary>One score: <c>{"score", "score_std"?, "objectives": {name: reward}, "gating": {name: weight}, "tokens"}</c> for
/// an ArmoRM model, <c>{"score", "logits": [...], "tokens"}</c> for a sequence classifier (it has no objectives or gating).</summary>
public sealed record ScoreJson(
    [property: JsonPropertyName("score")] float Score,
    [property: JsonPropertyName("score_std"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] float? ScoreStd,
    [property: JsonPropertyName("logits"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<float>? Logits,
    [property: JsonPropertyName("objectives"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyDictionary<string, float>? Objectives,
    [property: JsonPropertyName("gating"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyDictionary<string, float>? Gating,
    [property: JsonPropertyName("tokens")] int Tokens);

/// <summary><c>{"results": [score, …]}</c>: the answer of <c>POST /v1/score</c>.</summary>
public sealed record ScoreResponseJson([property: JsonPropertyName("results")] IReadOnlyList<ScoreJson> Results);

/// <summary>A best-of-n result: <c>{"chosen", "rule", "scores", "transformed"?, "score_std"?, "reference_reward"?}</c>.</summary>
public sealed record BestOfNJson(
    [property: JsonPropertyName("chosen")] int Chosen,
    [property: JsonPropertyName("rule")] string Rule,
    [property: JsonPropertyName("scores")] IReadOnlyList<double> Scores,
    [property: JsonPropertyName("transformed"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<double>? Transformed,
    [property: JsonPropertyName("score_std"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<double>? ScoreStd,
    [property: JsonPropertyName("reference_reward"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] double? ReferenceReward);

/// <summary>An error: <c>{"line"?, "index"?, "error"}</c> (a CLI line's number, or the offending item of a request).</summary>
public sealed record ErrorJson(
    [property: JsonPropertyName("line"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? Line,
    [property: JsonPropertyName("index"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? Index,
    [property: JsonPropertyName("error")] string Error);

/// <summary>An HTTP error body: <c>{"error": {"message", "status", "index"?}}</c> (the OpenAI-style shape clients expect).</summary>
public sealed record HttpErrorJson([property: JsonPropertyName("error")] HttpErrorJson.Body Error)
{
    /// <summary>The error's message, HTTP status and, where one item of the request is to blame, its index.</summary>
    public sealed record Body(
        [property: JsonPropertyName("message")] string Message,
        [property: JsonPropertyName("status")] int Status,
        [property: JsonPropertyName("index"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? Index);
}

/// <summary>Source-generated serialization of the wire records (no reflection; trimming- and AOT-safe).</summary>
[JsonSourceGenerationOptions(WriteIndented = false)]
[JsonSerializable(typeof(ScoreJson))]
[JsonSerializable(typeof(ScoreResponseJson))]
[JsonSerializable(typeof(BestOfNJson))]
[JsonSerializable(typeof(ErrorJson))]
[JsonSerializable(typeof(HttpErrorJson))]
public sealed partial class RewardJsonContext : JsonSerializerContext;

/// <summary>Conversions between the library's results and the wire records, request parsing, and the finiteness
/// check (JSON has no NaN or ∞: a result holding one is reported as that input's error).</summary>
public static class RewardJson
{
    /// <summary>The wire form of a score.</summary>
    public static ScoreJson ToJson(RewardScore s)
    {
        ArgumentNullException.ThrowIfNull(s);
        return s.Logits.Count > 0
            ? new ScoreJson(s.Score, s.ScoreStd, s.Logits, null, null, s.TokenCount)
            : new ScoreJson(s.Score, s.ScoreStd, null, s.Objectives, s.Gating, s.TokenCount);
    }

    /// <summary>The wire form of a best-of-n result selected by <paramref name="rule"/> (its wire name, e.g. <c>lsc-and</c>).</summary>
    public static BestOfNJson ToJson(BestOfNResult r, string rule)
    {
        ArgumentNullException.ThrowIfNull(r);
        return new BestOfNJson(r.Chosen, rule, r.Scores, r.Transformed, r.ScoreStd, r.ReferenceReward);
    }

    /// <summary>Writes a score as one JSON object.</summary>
    public static void Write(Utf8JsonWriter writer, RewardScore s) =>
        JsonSerializer.Serialize(writer, ToJson(s), RewardJsonContext.Default.ScoreJson);

    /// <summary>Writes <c>{"results": [score, …]}</c>.</summary>
    public static void WriteResponse(Utf8JsonWriter writer, IReadOnlyList<RewardScore> scores) =>
        JsonSerializer.Serialize(writer, new ScoreResponseJson(scores.Select(ToJson).ToArray()), RewardJsonContext.Default.ScoreResponseJson);

    /// <summary>Writes a best-of-n result as one JSON object.</summary>
    public static void Write(Utf8JsonWriter writer, BestOfNResult r, string rule) =>
        JsonSerializer.Serialize(writer, ToJson(r, rule), RewardJsonContext.Default.BestOfNJson);

    /// <summary>Writes an error object.</summary>
    public static void WriteError(Utf8JsonWriter writer, string message, int? line = null, int? index = null) =>
        JsonSerializer.Serialize(writer, new ErrorJson(line, index, message), RewardJsonContext.Default.ErrorJson);

    /// <summary>Writes an HTTP error body.</summary>
    public static void WriteHttpError(Utf8JsonWriter writer, string message, int status, int? index = null) =>
        JsonSerializer.Serialize(writer, new HttpErrorJson(new HttpErrorJson.Body(message, status, index)), RewardJsonContext.Default.HttpErrorJson);

    /// <summary>One scoring input (<c>{"messages"}</c>, <c>{"prompt", "response"}</c>, <c>{"text"}</c> or <c>{"input_ids"}</c>).</summary>
    /// <exception cref="FormatException">The value is not one of those shapes; the message names the field and the fix.</exception>
    public static ScoringInput ReadInput(JsonElement e) => ScoringInput.FromJson(e);

    /// <summary>A best-of-n request <c>{"prompt", "candidates": [...], "reference_rewards"?, "reference_responses"?}</c>.</summary>
    /// <exception cref="FormatException">A field is missing or has the wrong type; the message names it.</exception>
    public static BestOfNRequest ReadBestOfNRequest(JsonElement e)
    {
        if (e.ValueKind != JsonValueKind.Object)
            throw new FormatException("expected a JSON object {\"prompt\", \"candidates\": [...]}.");
        if (!e.TryGetProperty("prompt", out var prompt) || prompt.ValueKind != JsonValueKind.String)
            throw new FormatException("\"prompt\" is missing or not a string.");
        if (!e.TryGetProperty("candidates", out var candidates) || candidates.ValueKind != JsonValueKind.Array)
            throw new FormatException("\"candidates\" is missing or not an array of strings.");
        List<string> Strings(JsonElement a, string field) => a.EnumerateArray().Select((c, i) => c.ValueKind == JsonValueKind.String ? c.GetString()!
            : throw new FormatException($"\"{field}\"[{i}] is not a string.")).ToList();
        List<double>? rewards = null;
        if (e.TryGetProperty("reference_rewards", out var rr) && rr.ValueKind != JsonValueKind.Null)
            rewards = rr.ValueKind == JsonValueKind.Array
                ? rr.EnumerateArray().Select((v, i) => v.ValueKind == JsonValueKind.Number ? v.GetDouble()
                    : throw new FormatException($"\"reference_rewards\"[{i}] is not a number.")).ToList()
                : throw new FormatException("\"reference_rewards\" is not an array of numbers.");
        List<string>? responses = null;
        if (e.TryGetProperty("reference_responses", out var rs) && rs.ValueKind != JsonValueKind.Null)
            responses = rs.ValueKind == JsonValueKind.Array ? Strings(rs, "reference_responses")
                : throw new FormatException("\"reference_responses\" is not an array of strings.");
        return new BestOfNRequest(prompt.GetString()!, Strings(candidates, "candidates"), rewards, responses);
    }

    /// <summary>The error for a score holding NaN or ∞ (JSON cannot carry one), or null when every value is finite.</summary>
    public static string? NonFinite(RewardScore s)
    {
        ArgumentNullException.ThrowIfNull(s);
        string? where = !float.IsFinite(s.Score) ? $"score {s.Score}"
            : s.ScoreStd is { } std && !float.IsFinite(std) ? $"score_std {std}" : null;
        for (var k = 0; where is null && k < s.Logits.Count; k++)
            if (!float.IsFinite(s.Logits[k]))
                where = $"logit {k} {s.Logits[k]}";
        for (var k = 0; where is null && k < s.ObjectiveNames.Count; k++)
            if (!float.IsFinite(s.RewardValues[k]))
                where = $"objective {s.ObjectiveNames[k]} {s.RewardValues[k]}";
            else if (!float.IsFinite(s.GatingValues[k]))
                where = $"gating {s.ObjectiveNames[k]} {s.GatingValues[k]}";
        return where is null ? null : NonFiniteMessage(where);
    }

    /// <summary>The error for an embedding holding NaN or ∞, or null.</summary>
    public static string? NonFinite(ReadOnlySpan<float> embedding)
    {
        var i = FirstNonFinite(embedding);
        return i < 0 ? null : NonFiniteMessage($"embedding[{i}] {embedding[i]}");
    }

    /// <summary>The error for a best-of-n result holding NaN or ∞, or null.</summary>
    public static string? NonFinite(BestOfNResult r)
    {
        ArgumentNullException.ThrowIfNull(r);
        foreach (var (name, values) in new[] { ("scores", r.Scores), ("transformed", r.Transformed), ("score_std", r.ScoreStd) })
            for (var i = 0; values is not null && i < values.Count; i++)
                if (!double.IsFinite(values[i]))
                    return NonFiniteMessage($"{name}[{i}] {values[i]}");
        return r.ReferenceReward is { } rRef && !double.IsFinite(rRef) ? NonFiniteMessage($"reference_reward {rRef}") : null;
    }

    private static int FirstNonFinite(ReadOnlySpan<float> values)
    {
        for (var i = 0; i < values.Length; i++)
            if (!float.IsFinite(values[i]))
                return i;
        return -1;
    }

    private static string NonFiniteMessage(string where) =>
        $"the model produced {where.Split(' ')[^1]} for this input ({where}), which is not a number JSON can carry: the graph overflowed " +
        "or its weights are broken. Check the model (re-export it, or use fp32) or leave this input out.";
}
