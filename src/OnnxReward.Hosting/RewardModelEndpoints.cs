using System.Globalization;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OnnxReward.Selection;
using OnnxReward.Text.Chat;
using OnnxReward.Text.Conversations;
using OnnxReward.Text.Tokenization;
using OnnxReward.Transforms;
using OnnxReward.Wire;

namespace OnnxReward.Hosting;

/// <summary>
/// The handlers of <see cref="RewardModelEndpointRouteBuilderExtensions.MapRewardModelEndpoints"/>. Data flow of a
/// scoring request:
/// <code>
/// API key (401) → model ready (503) → body ≤ MaxBodyBytes (413), in time (408), UTF-8 and JSON (400) → typed request (400)
///   → ≤ MaxConversations (413) → encode each input on the request thread (400, the library's message and the item's index)
///   → RewardScorer (503 + Retry-After when full) → finite results (422 naming the item) → 200 with the results in input order
/// </code>
/// Every request runs under one token that fires when the client goes away (RequestAborted) or its deadline
/// (<see cref="RewardModelHostingOptions.RequestTimeout"/>) passes: tokenization, template rendering and ONNX Runtime
/// runs check it, a queued request leaves the scorer, and the answer is 408 (the body did not arrive in time) or 503
/// (the work did not finish in time); a request whose client is gone gets no answer (status 499 in the logs and
/// metrics, nginx's convention). Every error is an RFC 7807 problem whose <c>detail</c> is the message.
/// </summary>
internal sealed partial class RewardModelEndpoints(
    RewardModelProvider provider,
    IOptions<RewardModelHostingOptions> options,
    ILogger<RewardModelEndpoints> logger)
{
    /// <summary>Status of a request whose client went away before the answer (nginx's convention).</summary>
    public const int StatusClientClosedRequest = 499;

    private RewardModelHostingOptions O => options.Value;

    /// <summary>What a handler scores with.</summary>
    internal readonly record struct Scoring(RewardModel Model, RewardScorer Scorer);

    // ---- the runner: readiness, body, deadline, error mapping -----------------------------------------------------

    internal async Task<Results<Ok<TResponse>, ProblemHttpResult, StatusCodeHttpResult>> Run<TRequest, TResponse>(
        HttpContext ctx, JsonTypeInfo<TRequest> requestType, string shape, Func<TRequest, Scoring, CancellationToken, Task<TResponse>> handle)
        where TRequest : class
    {
        var o = O;
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted);
        deadline.CancelAfter(o.RequestTimeout);
        var bodyRead = false;
        try
        {
            if (!provider.TryGet(out var model, out var scorer))
                throw new HttpProblem(StatusCodes.Status503ServiceUnavailable, provider.State switch
                {
                    RewardModelState.Failed => $"the model failed to load: {provider.LoadError!.Message}",
                    RewardModelState.Stopped => "the service is shutting down and takes no new requests; retry against another instance.",
                    _ => "the model is still loading; retry when GET /health answers 200.",
                });
            using var body = await RequestBody.ReadJsonAsync(ctx, o.MaxBodyBytes, deadline.Token).ConfigureAwait(false);
            bodyRead = true;
            var request = RequestBody.Deserialize(body, requestType, shape);
            return TypedResults.Ok(await handle(request, new Scoring(model, scorer), deadline.Token).ConfigureAwait(false));
        }
        catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested)
        {
            LogClientGone(logger, ctx.Request.Path);
            return TypedResults.StatusCode(StatusClientClosedRequest);          // nobody to answer; the work has stopped
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            var limit = o.RequestTimeout.TotalSeconds.ToString(CultureInfo.InvariantCulture);
            return bodyRead
                ? Problem(ctx, StatusCodes.Status503ServiceUnavailable,
                    $"the request did not finish within its deadline of {limit} s (--request-timeout-s) and was stopped: send shorter " +
                    "or fewer conversations per request, or start the server with a larger --request-timeout-s.")
                : Problem(ctx, StatusCodes.Status408RequestTimeout,
                    $"the request body did not arrive within {limit} s (--request-timeout-s): send the whole body at once.");
        }
        catch (HttpProblem e)
        {
            return Problem(ctx, e.Status, e.Message, e.Index);
        }
        catch (ScorerBusyException e)
        {
            return Problem(ctx, StatusCodes.Status503ServiceUnavailable, e.Message);
        }
        catch (RewardModelException e)
        {
            return Problem(ctx, StatusCodes.Status400BadRequest, e.Message, e.InputIndex);
        }
        catch (Exception e) when (e is FormatException or ArgumentException or TemplateException or TokenizerException)
        {
            return Problem(ctx, StatusCodes.Status400BadRequest, e.Message);
        }
        catch (BadHttpRequestException e) when (!ctx.RequestAborted.IsCancellationRequested)
        {
            return Problem(ctx, e.StatusCode, e.StatusCode == StatusCodes.Status408RequestTimeout
                ? "the request body arrived too slowly (below Kestrel's minimum data rate of 240 bytes/s after a 5 s grace): send the whole body at once."
                : $"the request could not be read: {e.Message}");
        }
        catch (Exception e) when (!ctx.RequestAborted.IsCancellationRequested)
        {
            LogInternalError(logger, e, ctx.Request.Path);
            return Problem(ctx, StatusCodes.Status500InternalServerError, $"internal error while scoring: {e.Message}");
        }
    }

    /// <summary>An RFC 7807 answer: the status, its reason phrase as title, the message as detail, the failing item's
    /// index as the extension "index"; 503 asks the client to retry after Retry-After, 413 closes the connection (the
    /// unread rest of the body makes it unusable).</summary>
    internal ProblemHttpResult Problem(HttpContext ctx, int status, string detail, int? index = null)
    {
        if (status == StatusCodes.Status413PayloadTooLarge)
            ctx.Response.Headers.Connection = "close";
        if (status == StatusCodes.Status503ServiceUnavailable)
            ctx.Response.Headers.RetryAfter = O.RetryAfterSeconds.ToString(CultureInfo.InvariantCulture);
        var extensions = index is { } i ? new Dictionary<string, object?> { ["index"] = i } : null;
        return TypedResults.Problem(detail, statusCode: status, title: ReasonPhrases.GetReasonPhrase(status) is { Length: > 0 } p ? p : null,
            extensions: extensions);
    }

    // ---- POST /v1/score: {"conversations": [input, ...]} → {"results": [score, ...]} -------------------------------

    internal const string ScoreShape =
        "expected {\"conversations\": [{\"messages\": [...]} | {\"prompt\", \"response\"} | {\"text\"} | {\"input_ids\"}, ...]}";

    internal async Task<ScoreResponseJson> Score(ScoreRequest request, Scoring s, CancellationToken ct)
    {
        var items = request.Conversations ?? throw new FormatException($"the body has no \"conversations\" array: {ScoreShape}.");
        CheckCount(items.Count, "conversations");
        var rows = new EncodedInput[items.Count];
        for (var i = 0; i < rows.Length; i++)
            rows[i] = s.Model.Encode(Parse(items[i], $"conversations[{i}]"), i, ct);
        var scores = Finite(await s.Scorer.ScoreAsync(rows, ct).ConfigureAwait(false), "conversations");
        return new ScoreResponseJson(scores.Select(RewardJson.ToJson).ToArray());
    }

    // ---- POST /v1/bon: one prompt, its candidates → the pick ----------------------------------------------------

    internal const string BestOfNShape =
        "expected {\"prompt\", \"candidates\": [...], \"reference_rewards\"?, \"reference_responses\"?, \"rule\"?, \"k\"?, \"quantile\"?, \"reference\"?, \"objectives\"?}";

    internal async Task<BestOfNJson> BestOfN(BestOfNHttpRequest r, Scoring s, CancellationToken ct)
    {
        var request = new BestOfNRequest(
            r.Prompt ?? throw new FormatException("\"prompt\" is missing or not a string."),
            Strings(r.Candidates ?? throw new FormatException("\"candidates\" is missing or not an array of strings."), "candidates"),
            r.ReferenceRewards?.ToList(),
            r.ReferenceResponses is { } refs ? Strings(refs, "reference_responses") : null);
        var rows = request.Candidates.Count + (request.ReferenceResponses?.Count ?? 0);
        CheckCount(rows, "candidates + reference_responses");
        var ruleName = (r.Rule ?? "score").ToLowerInvariant();
        var selection = new BestOfNOptions
        {
            Rule = ruleName switch
            {
                "score" => SelectionRule.Score,
                "lsc-and" => SelectionRule.LscAnd,
                "mean-minus-k-std" => SelectionRule.MeanMinusKStd,
                "mean-minus-k-var" => SelectionRule.MeanMinusKVariance,
                _ => throw new FormatException($"\"rule\" '{r.Rule}' is not one of score, lsc-and, mean-minus-k-std, mean-minus-k-var."),
            },
            K = r.K ?? 1.0,
            Quantile = r.Quantile ?? ReferenceReward.DefaultQuantile,
            ReferenceMethod = (r.Reference ?? "normal").ToLowerInvariant() switch
            {
                "normal" => ReferenceRewardMethod.NormalFit,
                "empirical" => ReferenceRewardMethod.EmpiricalQuantile,
                var other => throw new FormatException($"\"reference\" '{other}' is not one of normal, empirical."),
            },
            Objectives = r.Objectives is { } names ? Strings(names, "objectives") : null,
        };
        if (selection.Objectives is { } objectives)
            _ = ObjectiveSubset.FromNames(s.Model.ObjectiveNames, objectives);
        // The candidates of one prompt are already a batch: they run under the queue's admission bound, not through it.
        var result = await s.Scorer.RunExclusiveAsync(rows, token => BestOfNSelector.Select(s.Model, request, selection, token), ct).ConfigureAwait(false);
        if (RewardJson.NonFinite(result) is { } bad)
            throw new HttpProblem(StatusCodes.Status422UnprocessableEntity, bad);
        return RewardJson.ToJson(result, ruleName);
    }

    // ---- POST /get_reward: OpenRLHF's remote reward model --------------------------------------------------------
    // Shape from OpenRLHF openrlhf/cli/serve_rm.py (`queries = data.get("query")` → JSONResponse({"rewards": rewards});
    // later versions add "scores" beside it) and openrlhf/utils/remote_rm_utils.py (request_api_wrapper POSTs JSON and
    // reads score_key="rewards"; the trainer sends "query" plus "prompts"/"labels", which are accepted and ignored).

    internal const string GetRewardShape = "expected {\"query\": [\"<templated conversation text>\", ...]} (OpenRLHF's remote reward model request)";

    internal async Task<GetRewardResponse> GetReward(GetRewardRequest request, Scoring s, CancellationToken ct)
    {
        if (request.Query is not { } query)
            throw new FormatException(GetRewardShape + ".");
        var texts = query.ValueKind == JsonValueKind.String ? [query.GetString()!] : StringList(query, "query");
        CheckCount(texts.Count, "query");
        var scores = Finite(await s.Scorer.ScoreAsync(GetRewardInputs(s.Model, texts), ct).ConfigureAwait(false), "query");
        var rewards = scores.Select(x => x.Score).ToArray();
        return new GetRewardResponse(rewards, rewards);
    }

    /// <summary>What each OpenRLHF query is scored as: the query as OpenRLHF's own reward server prepares it
    /// (<see cref="OnnxReward.Text.InputEncoder.PrepareOpenRlhfQuery"/>: the trainer's leading and trailing pad/EOS runs stripped, one EOS
    /// appended, BOS added when missing), as templated text.</summary>
    internal static ScoringInput[] GetRewardInputs(RewardModel model, IReadOnlyList<string> queries) =>
        queries.Select(t => ScoringInput.FromTemplatedText(model.Encoder.PrepareOpenRlhfQuery(t))).ToArray();

    // ---- POST /v1/classify: vLLM / SGLang classification ---------------------------------------------------------
    // Shapes from vLLM vllm/entrypoints/pooling/classify/protocol.py (ClassificationCompletionRequest {model?, input:
    // str | [str]}, ClassificationChatRequest {model?, messages}; response {id, object: "list", created, model,
    // data: [{index, label, probs, num_classes}], usage}) and SGLang docs/supported_models/classify_models.md (same
    // format, POST /v1/classify). A reward model has one output: "probs" carries the raw score (no sigmoid/softmax),
    // num_classes is 1 and the label is "LABEL_0" as in a one-label Hugging Face config.

    internal const string ClassifyShape = "expected {\"input\": text | [texts]} or {\"messages\": [...]} (vLLM/SGLang classify request)";

    internal async Task<ClassifyResponse> Classify(ClassifyRequest request, Scoring s, CancellationToken ct)
    {
        var model = s.Model;
        if ((request.Messages is null) == (request.Input is null))
            throw new FormatException(request.Messages is not null ? "the request has both \"messages\" and \"input\": give exactly one."
                : "the request has neither \"input\" nor \"messages\": give text(s) to score as \"input\", or a chat as \"messages\".");

        var inputs = new List<ScoringInput>();
        if (request.Messages is { } messages)
            inputs.Add(ScoringInput.FromConversation(Conversation.FromMessages(ScoringInput.ParseMessages(messages))));
        else if (request.Input is { ValueKind: JsonValueKind.String } text)
            inputs.Add(ScoringInput.FromTemplatedText(model.Encoder.WithBos(text.GetString()!)));
        else if (request.Input is { ValueKind: JsonValueKind.Array } ids && ids.GetArrayLength() > 0 && ids[0].ValueKind == JsonValueKind.Number)
            inputs.Add(ScoringInput.FromTokenIds(TokenIds(ids, "input")));
        else if (request.Input is { ValueKind: JsonValueKind.Array } list)
        {
            CheckCount(list.GetArrayLength(), "input");
            var i = 0;
            foreach (var item in list.EnumerateArray())
            {
                inputs.Add(item.ValueKind switch
                {
                    JsonValueKind.String => ScoringInput.FromTemplatedText(model.Encoder.WithBos(item.GetString()!)),
                    JsonValueKind.Array => ScoringInput.FromTokenIds(TokenIds(item, $"input[{i}]")),
                    _ => throw new FormatException($"\"input\"[{i}] is neither a string nor an array of token ids."),
                });
                i++;
            }
        }
        else
            throw new FormatException("\"input\" is neither a string, an array of strings, nor an array of token ids.");

        var scores = Finite(await s.Scorer.ScoreAsync(inputs, ct).ConfigureAwait(false), "input");
        var label = model.Manifest.Labels.Count == 1 ? model.Manifest.Labels[0] : "LABEL_0";
        var data = scores.Select((x, i) => new ClassifyData(i, label, [x.Score], 1)).ToArray();
        var tokens = scores.Sum(x => x.TokenCount);
        return new ClassifyResponse("classify-" + Guid.NewGuid().ToString("N"), "list", DateTimeOffset.UtcNow.ToUnixTimeSeconds(),
            request.Model ?? provider.ModelName(O), data, new ClassifyUsage(tokens, tokens, 0, null));
    }

    // ---- GET /info ------------------------------------------------------------------------------------------------

    internal Results<Ok<InfoResponse>, ProblemHttpResult> Info(HttpContext ctx)
    {
        var o = O;
        if (!provider.TryGet(out var model, out _))
            return Problem(ctx, StatusCodes.Status503ServiceUnavailable, provider.LoadError is { } e
                ? $"the model failed to load: {e.Message}" : "the model is still loading; retry when GET /health answers 200.");
        var m = model.Manifest;
        var head = m.IsClassifier ? "sequence_classification" : "armorm";
        return TypedResults.Ok(new InfoResponse(
            provider.ModelName(o), model.Directory, m.DType, head, $"{m.Family ?? "llama"}/{head}", model.ObjectiveNames, model.HasPosterior,
            model.ExecutionProvider, model.MaxSequenceLength, model.Options.Truncation == TruncationPolicy.DropOldestTurns,
            o.MaxBatchTokens, o.MaxBatchSize, o.MaxConversations, o.QueueCapacity, o.MaxBodyBytes, o.RequestTimeout.TotalSeconds, Version));
    }

    /// <summary>OnnxReward's version (the library assembly's informational version, without the source hash).</summary>
    internal static readonly string Version =
        (typeof(RewardModel).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0.0.0").Split('+')[0];

    // ---- helpers (errors name the field and the fix) ---------------------------------------------------------------

    /// <summary>The scores, or 422 naming the first item the model scored NaN/∞ (JSON cannot carry it).</summary>
    private static IReadOnlyList<RewardScore> Finite(IReadOnlyList<RewardScore> scores, string field)
    {
        for (var i = 0; i < scores.Count; i++)
            if (RewardJson.NonFinite(scores[i]) is { } bad)
                throw new HttpProblem(StatusCodes.Status422UnprocessableEntity, $"\"{field}\"[{i}]: {bad}", i);
        return scores;
    }

    private void CheckCount(int count, string field)
    {
        var max = O.MaxConversations;
        if (count > max)
            throw new HttpProblem(StatusCodes.Status413PayloadTooLarge,
                $"\"{field}\" has {count} items, over the limit of {max} per request (--max-conversations): " +
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

    private static List<string> Strings(IReadOnlyList<string?> values, string field) =>
        values.Select((v, i) => v ?? throw new FormatException($"\"{field}\"[{i}] is not a string.")).ToList();

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

    [LoggerMessage(EventId = 110, Level = LogLevel.Information, Message = "{Path}: the client went away; its work was stopped (499)")]
    private static partial void LogClientGone(ILogger logger, PathString path);

    [LoggerMessage(EventId = 111, Level = LogLevel.Error, Message = "{Path}: internal error while scoring")]
    private static partial void LogInternalError(ILogger logger, Exception exception, PathString path);
}
