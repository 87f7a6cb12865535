using System.ComponentModel;
using System.Text.Json;
using System.Text.Json.Serialization;
using OnnxReward.Wire;

namespace OnnxReward.Hosting;

// Request and response bodies of the endpoints (System.Text.Json source generation; the score records themselves are
// the library's wire records, RewardJson). A field that takes several shapes (an input that is a conversation, a
// templated text or token ids) is a JsonElement here and is parsed by the library, whose errors name the field and the fix.

/// <summary><c>POST /v1/score</c>: conversations to score, each one form of input.</summary>
/// <param name="Conversations">Each <c>{"messages": [{"role", "content"}, …]}</c>, <c>{"prompt", "response"}</c> (an
/// hh-rlhf transcript prompt is accepted), <c>{"text": "templated text"}</c> or <c>{"input_ids": [ids]}</c>.</param>
public sealed record ScoreRequest(
    [property: JsonPropertyName("conversations"), Description("Inputs in order; each {\"messages\"} | {\"prompt\", \"response\"} | {\"text\"} | {\"input_ids\"}.")]
    IReadOnlyList<JsonElement>? Conversations);

/// <summary><c>POST /v1/bon</c>: one prompt's candidates and how to pick one.</summary>
public sealed record BestOfNHttpRequest(
    [property: JsonPropertyName("prompt")] string? Prompt,
    [property: JsonPropertyName("candidates")] IReadOnlyList<string?>? Candidates,
    [property: JsonPropertyName("reference_rewards"), Description("Rewards of reference responses, for the LSC reference reward.")] IReadOnlyList<double>? ReferenceRewards = null,
    [property: JsonPropertyName("reference_responses"), Description("Reference responses to score, for the LSC reference reward.")] IReadOnlyList<string?>? ReferenceResponses = null,
    [property: JsonPropertyName("rule"), Description("score (default), lsc-and, mean-minus-k-std or mean-minus-k-var.")] string? Rule = null,
    [property: JsonPropertyName("k"), Description("k of mean-minus-k-std / -var (default 1).")] double? K = null,
    [property: JsonPropertyName("quantile"), Description("Quantile of the reference reward (default 0.85).")] double? Quantile = null,
    [property: JsonPropertyName("reference"), Description("normal (default) or empirical.")] string? Reference = null,
    [property: JsonPropertyName("objectives"), Description("Objectives lsc-and aggregates (default: all).")] IReadOnlyList<string?>? Objectives = null);

/// <summary><c>POST /get_reward</c>: OpenRLHF's remote reward model request.</summary>
public sealed record GetRewardRequest(
    [property: JsonPropertyName("query"), Description("Templated conversation texts (a string or an array of strings); special tokens are recognised, BOS is not added twice.")]
    JsonElement? Query,
    [property: JsonPropertyName("prompts"), Description("Sent by OpenRLHF's trainer; accepted and ignored.")] JsonElement? Prompts,
    [property: JsonPropertyName("labels"), Description("Sent by OpenRLHF's trainer; accepted and ignored.")] JsonElement? Labels);

/// <summary><c>POST /get_reward</c>'s answer: one reward per query, in order ("scores" is the same list).</summary>
public sealed record GetRewardResponse(
    [property: JsonPropertyName("rewards")] IReadOnlyList<float> Rewards,
    [property: JsonPropertyName("scores")] IReadOnlyList<float> Scores);

/// <summary><c>POST /v1/classify</c>: vLLM / SGLang classification request, exactly one of input and messages.</summary>
public sealed record ClassifyRequest(
    [property: JsonPropertyName("model"), Description("Echoed in the answer; default: the served model name.")] string? Model = null,
    [property: JsonPropertyName("input"), Description("A templated text, an array of them, token ids, or an array of token-id arrays.")] JsonElement? Input = null,
    [property: JsonPropertyName("messages"), Description("One chat: [{\"role\", \"content\"}, …].")] JsonElement? Messages = null);

/// <summary>One row of a classify answer: the raw score as the single class's "probability" (no sigmoid).</summary>
public sealed record ClassifyData(
    [property: JsonPropertyName("index")] int Index,
    [property: JsonPropertyName("label")] string Label,
    [property: JsonPropertyName("probs")] IReadOnlyList<float> Probs,
    [property: JsonPropertyName("num_classes")] int NumClasses);

/// <summary>Token usage of a classify request.</summary>
public sealed record ClassifyUsage(
    [property: JsonPropertyName("prompt_tokens")] int PromptTokens,
    [property: JsonPropertyName("total_tokens")] int TotalTokens,
    [property: JsonPropertyName("completion_tokens")] int CompletionTokens,
    [property: JsonPropertyName("prompt_tokens_details")] JsonElement? PromptTokensDetails);

/// <summary><c>POST /v1/classify</c>'s answer, vLLM's shape.</summary>
public sealed record ClassifyResponse(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("created")] long Created,
    [property: JsonPropertyName("model")] string Model,
    [property: JsonPropertyName("data")] IReadOnlyList<ClassifyData> Data,
    [property: JsonPropertyName("usage")] ClassifyUsage Usage);

/// <summary><c>GET /health</c>: the model's state, and what it scores once ready.</summary>
public sealed record HealthResponse(
    [property: JsonPropertyName("status"), Description("ok, loading, failed, stopped or unhealthy (another check failed).")] string Status,
    [property: JsonPropertyName("error"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Error = null,
    [property: JsonPropertyName("model"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Model = null,
    [property: JsonPropertyName("execution_provider"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? ExecutionProvider = null,
    [property: JsonPropertyName("head"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Head = null,
    [property: JsonPropertyName("has_posterior"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] bool? HasPosterior = null,
    [property: JsonPropertyName("objectives"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<string>? Objectives = null,
    [property: JsonPropertyName("checks"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyDictionary<string, string>? Checks = null);

/// <summary><c>GET /info</c>: what is served and with which limits (the shape of Text Embeddings Inference's /info).</summary>
public sealed record InfoResponse(
    [property: JsonPropertyName("model_id"), Description("The served model name (--served-model-name, else the model directory's name).")] string ModelId,
    [property: JsonPropertyName("model_dir")] string ModelDirectory,
    [property: JsonPropertyName("model_dtype"), Description("fp32, fp16, int8, int8-block or int4.")] string ModelDType,
    [property: JsonPropertyName("model_type"), Description("armorm (objectives, gating) or sequence_classification.")] string ModelType,
    [property: JsonPropertyName("architecture"), Description("Backbone family and head, e.g. llama/armorm.")] string Architecture,
    [property: JsonPropertyName("objectives")] IReadOnlyList<string> Objectives,
    [property: JsonPropertyName("has_posterior")] bool HasPosterior,
    [property: JsonPropertyName("execution_provider")] string ExecutionProvider,
    [property: JsonPropertyName("max_input_length"), Description("Longest accepted input in tokens.")] int MaxInputLength,
    [property: JsonPropertyName("auto_truncate"), Description("Whether over-long conversations drop their oldest turns instead of failing.")] bool AutoTruncate,
    [property: JsonPropertyName("max_batch_tokens")] int MaxBatchTokens,
    [property: JsonPropertyName("max_batch_requests"), Description("Most rows in one scoring round.")] int MaxBatchRequests,
    [property: JsonPropertyName("max_client_batch_size"), Description("Most inputs in one request.")] int MaxClientBatchSize,
    [property: JsonPropertyName("max_concurrent_requests"), Description("Most rows admitted and not yet answered (the queue capacity).")] int MaxConcurrentRequests,
    [property: JsonPropertyName("max_body_bytes")] long MaxBodyBytes,
    [property: JsonPropertyName("request_timeout_s")] double RequestTimeoutSeconds,
    [property: JsonPropertyName("version"), Description("OnnxReward's version.")] string Version);

/// <summary>Source-generated serialization of the hosting records; registered with ConfigureHttpJsonOptions by
/// AddRewardModel (together with <see cref="RewardJsonContext"/>).</summary>
[JsonSourceGenerationOptions(WriteIndented = false)]
[JsonSerializable(typeof(ScoreRequest))]
[JsonSerializable(typeof(BestOfNHttpRequest))]
[JsonSerializable(typeof(GetRewardRequest))]
[JsonSerializable(typeof(GetRewardResponse))]
[JsonSerializable(typeof(ClassifyRequest))]
[JsonSerializable(typeof(ClassifyResponse))]
[JsonSerializable(typeof(HealthResponse))]
[JsonSerializable(typeof(InfoResponse))]
public sealed partial class RewardHostingJsonContext : JsonSerializerContext;
