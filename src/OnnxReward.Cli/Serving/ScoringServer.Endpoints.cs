using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using OnnxReward.Cli.Commands;
using OnnxReward.Selection;
using OnnxReward.Text.Conversations;
using OnnxReward.Transforms;
using OnnxReward.Wire;

namespace OnnxReward.Cli.Serving;

internal sealed partial class ScoringServer
{
    // The routes. Every scoring route encodes its inputs on the request thread (so a bad input fails alone, with the
    // library's message, before anything is queued) and then waits on the batcher.
    private void MapEndpoints(WebApplication app)
    {
        app.MapPost("/v1/score", ctx => Run(ctx, Score));
        app.MapPost("/v1/bon", ctx => Run(ctx, BestOfN));
        app.MapPost("/get_reward", ctx => Run(ctx, GetReward));
        app.MapPost("/v1/classify", ctx => Run(ctx, Classify));
        app.MapPost("/classify", ctx => Run(ctx, Classify));          // vLLM serves the same handler without /v1
        app.MapGet("/health", Health);
        app.MapGet("/metrics", async ctx =>
        {
            ctx.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
            await ctx.Response.WriteAsync(_metrics.ToPrometheusText());
        });
        app.MapGet("/openapi.json", async ctx =>
        {
            ctx.Response.ContentType = "application/json; charset=utf-8";
            await ctx.Response.WriteAsync(OpenApiDocument.Json);
        });
    }

    private Task Health(HttpContext ctx)
    {
        if (_model is { } model)
            return WriteJson(ctx, StatusCodes.Status200OK, Obj(w =>
            {
                w.WriteString("status", "ok");
                w.WriteString("model", ModelName(model));
                w.WriteString("execution_provider", model.ExecutionProvider);
                w.WriteString("head", model.Manifest.IsClassifier ? "sequence_classification" : "armorm");
                w.WriteBoolean("has_posterior", model.HasPosterior);
                w.WriteStartArray("objectives");
                foreach (var name in model.ObjectiveNames)
                    w.WriteStringValue(name);
                w.WriteEndArray();
            }));
        ctx.Response.Headers.RetryAfter = _settings.RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return WriteJson(ctx, StatusCodes.Status503ServiceUnavailable, Obj(w =>
        {
            w.WriteString("status", LoadError is null ? "loading" : "failed");
            if (LoadError is not null)
                w.WriteString("error", LoadError);
        }));
    }

    private string ModelName(RewardModel model) => _settings.ModelName ?? Path.GetFileName(model.Directory.TrimEnd('/'));

    // ---- POST /v1/score: {"conversations": [input, ...]} → {"results": [score, ...]} -------------------------------

    private async Task<Action<Utf8JsonWriter>> Score(JsonElement body, RewardModel model, RewardScorer batcher, CancellationToken ct)
    {
        var items = RequireArray(body, "conversations",
            "expected {\"conversations\": [{\"messages\": [...]} | {\"prompt\", \"response\"} | {\"text\"} | {\"input_ids\"}, ...]}");
        var rows = new EncodedInput[items.Count];
        for (var i = 0; i < rows.Length; i++)
            rows[i] = model.Encode(Parse(items[i], $"conversations[{i}]"), i, ct);
        var scores = Finite(await batcher.ScoreAsync(rows, ct), "conversations");
        return w => RewardJson.WriteResponse(w, scores);
    }

    private async Task<Action<Utf8JsonWriter>> BestOfN(JsonElement body, RewardModel model, RewardScorer batcher, CancellationToken ct)
    {
        var request = RewardJson.ReadBestOfNRequest(body);
        var rows = request.Candidates.Count + (request.ReferenceResponses?.Count ?? 0);
        CheckCount(rows, "candidates + reference_responses");
        var ruleName = OptionalString(body, "rule") ?? "score";
        var options = new BestOfNOptions
        {
            Rule = ruleName.ToLowerInvariant() switch
            {
                "score" => SelectionRule.Score,
                "lsc-and" => SelectionRule.LscAnd,
                "mean-minus-k-std" => SelectionRule.MeanMinusKStd,
                "mean-minus-k-var" => SelectionRule.MeanMinusKVariance,
                _ => throw new FormatException($"\"rule\" '{ruleName}' is not one of score, lsc-and, mean-minus-k-std, mean-minus-k-var."),
            },
            K = OptionalNumber(body, "k") ?? 1.0,
            Quantile = OptionalNumber(body, "quantile") ?? ReferenceReward.DefaultQuantile,
            ReferenceMethod = (OptionalString(body, "reference") ?? "normal").ToLowerInvariant() switch
            {
                "normal" => ReferenceRewardMethod.NormalFit,
                "empirical" => ReferenceRewardMethod.EmpiricalQuantile,
                var r => throw new FormatException($"\"reference\" '{r}' is not one of normal, empirical."),
            },
            Objectives = body.TryGetProperty("objectives", out var o) && o.ValueKind != JsonValueKind.Null
                ? o.ValueKind == JsonValueKind.Array
                    ? o.EnumerateArray().Select((v, i) => v.ValueKind == JsonValueKind.String ? v.GetString()!
                        : throw new FormatException($"\"objectives\"[{i}] is not a string.")).ToList()
                    : throw new FormatException("\"objectives\" is not an array of objective names.")
                : null,
        };
        if (options.Objectives is { } names)
            _ = ObjectiveSubset.FromNames(model.ObjectiveNames, names);
        // The candidates of one prompt are already a batch: they run under the queue's admission bound, not through it.
        var result = await batcher.RunExclusiveAsync(rows, token => BestOfNSelector.Select(model, request, options, token), ct);
        if (RewardJson.NonFinite(result) is { } bad)
            throw new HttpError(StatusCodes.Status422UnprocessableEntity, bad);
        return w => RewardJson.Write(w, result, ruleName.ToLowerInvariant());
    }

    // ---- POST /get_reward: OpenRLHF's remote reward model --------------------------------------------------------
    // Shape from OpenRLHF openrlhf/cli/serve_rm.py (`queries = data.get("query")` → JSONResponse({"rewards": rewards});
    // later versions add "scores" beside it) and openrlhf/utils/remote_rm_utils.py (request_api_wrapper POSTs JSON and
    // reads score_key="rewards"; the trainer sends "query" plus "prompts"/"labels", which are accepted and ignored).

    private async Task<Action<Utf8JsonWriter>> GetReward(JsonElement body, RewardModel model, RewardScorer batcher, CancellationToken ct)
    {
        if (body.ValueKind != JsonValueKind.Object || !body.TryGetProperty("query", out var query))
            throw new FormatException("expected {\"query\": [\"<templated conversation text>\", ...]} (OpenRLHF's remote reward model request).");
        var texts = query.ValueKind == JsonValueKind.String ? [query.GetString()!] : StringList(query, "query");
        CheckCount(texts.Count, "query");
        var scores = Finite(await batcher.ScoreAsync(texts.Select(t => ScoringInput.FromTemplatedText(WithBos(model, t))).ToArray(), ct), "query");
        return Obj(w =>
        {
            foreach (var name in new[] { "rewards", "scores" })
            {
                w.WriteStartArray(name);
                foreach (var s in scores)
                    w.WriteNumberValue(s.Score);
                w.WriteEndArray();
            }
        });
    }

    /// <summary>
    /// Templated text as a Hugging Face tokenizer call with add_special_tokens would see it, without doubling BOS: the
    /// text is tokenized with special tokens recognised; <c>&lt;|begin_of_text|&gt;</c> is prepended only when the text
    /// does not already start with it (chat templates usually emit it themselves).
    /// </summary>
    internal static string WithBos(RewardModel model, string text)
    {
        const string bos = "<|begin_of_text|>";
        return text.StartsWith(bos, StringComparison.Ordinal) || model.Encoder.Tokenizer.AddedTokenId(bos) is null ? text : bos + text;
    }

    // ---- POST /v1/classify: vLLM / SGLang classification ---------------------------------------------------------
    // Shapes from vLLM vllm/entrypoints/pooling/classify/protocol.py (ClassificationCompletionRequest {model?, input:
    // str | [str]}, ClassificationChatRequest {model?, messages}; response {id, object: "list", created, model,
    // data: [{index, label, probs, num_classes}], usage}) and SGLang docs/supported_models/classify_models.md (same
    // format, POST /v1/classify). A reward model has one output: "probs" carries the raw score (no sigmoid/softmax),
    // num_classes is 1 and the label is "LABEL_0" as in a one-label Hugging Face config.

    private async Task<Action<Utf8JsonWriter>> Classify(JsonElement body, RewardModel model, RewardScorer batcher, CancellationToken ct)
    {
        if (body.ValueKind != JsonValueKind.Object)
            throw new FormatException("expected {\"input\": text | [texts]} or {\"messages\": [...]} (vLLM/SGLang classify request).");
        var hasMessages = body.TryGetProperty("messages", out var messages);
        var hasInput = body.TryGetProperty("input", out var input);
        if (hasMessages == hasInput)
            throw new FormatException(hasMessages ? "the request has both \"messages\" and \"input\": give exactly one."
                : "the request has neither \"input\" nor \"messages\": give text(s) to score as \"input\", or a chat as \"messages\".");

        var inputs = new List<ScoringInput>();
        if (hasMessages)
            inputs.Add(ScoringInput.FromConversation(Conversation.FromMessages(ScoringInput.ParseMessages(messages))));
        else if (input.ValueKind == JsonValueKind.String)
            inputs.Add(ScoringInput.FromTemplatedText(WithBos(model, input.GetString()!)));
        else if (input.ValueKind == JsonValueKind.Array && input.GetArrayLength() > 0 && input[0].ValueKind == JsonValueKind.Number)
            inputs.Add(ScoringInput.FromTokenIds(TokenIds(input, "input")));
        else if (input.ValueKind == JsonValueKind.Array)
        {
            CheckCount(input.GetArrayLength(), "input");
            var i = 0;
            foreach (var item in input.EnumerateArray())
            {
                inputs.Add(item.ValueKind switch
                {
                    JsonValueKind.String => ScoringInput.FromTemplatedText(WithBos(model, item.GetString()!)),
                    JsonValueKind.Array => ScoringInput.FromTokenIds(TokenIds(item, $"input[{i}]")),
                    _ => throw new FormatException($"\"input\"[{i}] is neither a string nor an array of token ids."),
                });
                i++;
            }
        }
        else
            throw new FormatException("\"input\" is neither a string, an array of strings, nor an array of token ids.");

        var scores = Finite(await batcher.ScoreAsync(inputs, ct), "input");
        var name = OptionalString(body, "model") ?? ModelName(model);
        return Obj(w =>
        {
            w.WriteString("id", "classify-" + Guid.NewGuid().ToString("N"));
            w.WriteString("object", "list");
            w.WriteNumber("created", DateTimeOffset.UtcNow.ToUnixTimeSeconds());
            w.WriteString("model", name);
            w.WriteStartArray("data");
            var tokens = 0;
            for (var i = 0; i < scores.Count; i++)
            {
                w.WriteStartObject();
                w.WriteNumber("index", i);
                w.WriteString("label", model.Manifest.Labels.Count == 1 ? model.Manifest.Labels[0] : "LABEL_0");
                w.WriteStartArray("probs");
                w.WriteNumberValue(scores[i].Score);
                w.WriteEndArray();
                w.WriteNumber("num_classes", 1);
                w.WriteEndObject();
                tokens += scores[i].TokenCount;
            }
            w.WriteEndArray();
            w.WriteStartObject("usage");
            w.WriteNumber("prompt_tokens", tokens);
            w.WriteNumber("total_tokens", tokens);
            w.WriteNumber("completion_tokens", 0);
            w.WriteNull("prompt_tokens_details");
            w.WriteEndObject();
        });
    }

    /// <summary>The scores, or 422 naming the first item the model scored NaN/∞ (JSON cannot carry it).</summary>
    private static IReadOnlyList<RewardScore> Finite(IReadOnlyList<RewardScore> scores, string field)
    {
        for (var i = 0; i < scores.Count; i++)
            if (RewardJson.NonFinite(scores[i]) is { } bad)
                throw new HttpError(StatusCodes.Status422UnprocessableEntity, $"\"{field}\"[{i}]: {bad}", i);
        return scores;
    }

    // ---- small parsing helpers (errors name the field and the fix) -----------------------------------------------

    private List<JsonElement> RequireArray(JsonElement body, string field, string shape)
    {
        if (body.ValueKind != JsonValueKind.Object || !body.TryGetProperty(field, out var array) || array.ValueKind != JsonValueKind.Array)
            throw new FormatException($"the body has no \"{field}\" array: {shape}.");
        CheckCount(array.GetArrayLength(), field);
        return array.EnumerateArray().ToList();
    }

    private void CheckCount(int count, string field)
    {
        if (count > _settings.MaxConversations)
            throw new HttpError(StatusCodes.Status413PayloadTooLarge,
                $"\"{field}\" has {count} items, over the limit of {_settings.MaxConversations} per request (--max-conversations): " +
                "split it into several requests (the server batches concurrent requests together).");
    }

    private static ScoringInput Parse(JsonElement e, string where)
    {
        try
        {
            return ScoringInput.FromJson(e);
        }
        catch (FormatException ex)
        {
            throw new FormatException($"{where}: {ex.Message}", ex);
        }
    }

    private static List<string> StringList(JsonElement a, string field)
    {
        if (a.ValueKind != JsonValueKind.Array)
            throw new FormatException($"\"{field}\" is not a string or an array of strings.");
        return a.EnumerateArray().Select((v, i) => v.ValueKind == JsonValueKind.String ? v.GetString()!
            : throw new FormatException($"\"{field}\"[{i}] is not a string.")).ToList();
    }

    private static int[] TokenIds(JsonElement a, string field) =>
        a.EnumerateArray().Select((v, i) => v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out var id) && id >= 0 ? id
            : throw new FormatException($"\"{field}\"[{i}] is {v.GetRawText()}, expected a non-negative integer token id.")).ToArray();

    private static string? OptionalString(JsonElement body, string field) =>
        body.TryGetProperty(field, out var v) && v.ValueKind != JsonValueKind.Null
            ? v.ValueKind == JsonValueKind.String ? v.GetString() : throw new FormatException($"\"{field}\" is not a string.")
            : null;

    private static double? OptionalNumber(JsonElement body, string field) =>
        body.TryGetProperty(field, out var v) && v.ValueKind != JsonValueKind.Null
            ? v.ValueKind == JsonValueKind.Number ? v.GetDouble() : throw new FormatException($"\"{field}\" is not a number.")
            : null;
}
