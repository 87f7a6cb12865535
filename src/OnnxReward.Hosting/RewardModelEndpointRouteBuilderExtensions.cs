using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Microsoft.OpenApi;
using OnnxReward.Wire;

namespace OnnxReward.Hosting;

/// <summary>Maps the hosted model's HTTP endpoints (after <see cref="RewardModelServiceCollectionExtensions.AddRewardModel(IServiceCollection, Action{RewardModelHostingOptions})"/>).</summary>
public static class RewardModelEndpointRouteBuilderExtensions
{
    private static readonly int[] ScoringProblems =
    [
        StatusCodes.Status400BadRequest, StatusCodes.Status401Unauthorized, StatusCodes.Status408RequestTimeout,
        StatusCodes.Status413PayloadTooLarge, StatusCodes.Status422UnprocessableEntity, StatusCodes.Status503ServiceUnavailable,
    ];

    /// <summary>
    /// Maps the scoring routes, all behind <see cref="RewardModelHosting.ApiKeyPolicy"/>:
    /// <c>POST /v1/score</c>, <c>POST /v1/bon</c>, <c>POST /get_reward</c> (OpenRLHF), <c>POST /v1/classify</c> and
    /// <c>/classify</c> (vLLM / SGLang), and <c>GET /info</c> (what is served, with which limits). Returns the group, to
    /// add conventions (a prefix is given as <paramref name="prefix"/>).
    /// </summary>
    public static RouteGroupBuilder MapRewardModelEndpoints(this IEndpointRouteBuilder endpoints, string prefix = "")
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        var group = endpoints.MapGroup(prefix).RequireAuthorization(RewardModelHosting.ApiKeyPolicy).WithTags("OnnxReward");
        group.AddOpenApiOperationTransformer((operation, context, _) =>
        {
            // Behind the API key when the server has one (the "bearer" scheme AddRewardModel declares).
            operation.Security ??= [];
            operation.Security.Add(new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference("bearer", context.Document)] = [] });
            return Task.CompletedTask;
        });

        Scoring(group.MapPost("/v1/score", (HttpContext ctx, RewardModelEndpoints e) =>
                e.Run(ctx, RewardHostingJsonContext.Default.ScoreRequest, RewardModelEndpoints.ScoreShape, e.Score)), "Score")
            .WithSummary("Score conversations")
            .WithDescription("Scores each input (messages, prompt + response, templated text or token ids); results in input order, " +
                             "each with its objectives and gating (ArmoRM) or logits (a sequence classifier).")
            .JsonBody<ScoreRequest>();

        Scoring(group.MapPost("/v1/bon", (HttpContext ctx, RewardModelEndpoints e) =>
                e.Run(ctx, RewardHostingJsonContext.Default.BestOfNHttpRequest, RewardModelEndpoints.BestOfNShape, e.BestOfN)), "BestOfN")
            .WithSummary("Pick the best of n candidates")
            .WithDescription("One prompt's candidates scored together and one chosen by the rule (highest score, LSC-AND, mean - k std).")
            .JsonBody<BestOfNHttpRequest>();

        Scoring(group.MapPost("/get_reward", (HttpContext ctx, RewardModelEndpoints e) =>
                e.Run(ctx, RewardHostingJsonContext.Default.GetRewardRequest, RewardModelEndpoints.GetRewardShape, e.GetReward)), "GetReward")
            .WithSummary("OpenRLHF remote reward model")
            .WithDescription("OpenRLHF's --remote_rm_url protocol: templated query texts in, one reward per query out.")
            .JsonBody<GetRewardRequest>();

        foreach (var (route, name) in new[] { ("/v1/classify", "Classify"), ("/classify", "ClassifyUnversioned") })
            Scoring(group.MapPost(route, (HttpContext ctx, RewardModelEndpoints e) =>
                    e.Run(ctx, RewardHostingJsonContext.Default.ClassifyRequest, RewardModelEndpoints.ClassifyShape, e.Classify)), name)
                .WithSummary("vLLM / SGLang classify")
                .WithDescription("vLLM's classification API: the raw reward as the one class's score (no sigmoid).")
                .JsonBody<ClassifyRequest>();

        group.MapGet("/info", (HttpContext ctx, RewardModelEndpoints e) => e.Info(ctx))
            .WithName("Info")
            .WithSummary("What is served")
            .WithDescription("The model (name, dtype, head, objectives), the execution provider and the service's limits.")
            .ProducesProblem(StatusCodes.Status401Unauthorized)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        return group;
    }

    /// <summary>Documents the JSON request body as <typeparamref name="T"/>'s schema. Not <c>Accepts&lt;T&gt;</c>: that
    /// metadata makes routing answer 415 to a body sent without <c>Content-Type: application/json</c> (curl -d), which
    /// the service reads as JSON all the same.</summary>
    private static RouteHandlerBuilder JsonBody<T>(this RouteHandlerBuilder builder) =>
        builder.AddOpenApiOperationTransformer(async (operation, context, cancellationToken) =>
        {
            var schema = await context.GetOrCreateSchemaAsync(typeof(T), null, cancellationToken).ConfigureAwait(false);
            operation.RequestBody = new OpenApiRequestBody
            {
                Required = true,
                Content = new Dictionary<string, OpenApiMediaType> { ["application/json"] = new() { Schema = schema } },
            };
        });

    private static RouteHandlerBuilder Scoring(RouteHandlerBuilder builder, string name)
    {
        builder.WithName(name);
        foreach (var status in ScoringProblems)
            builder.ProducesProblem(status);
        return builder;
    }

    /// <summary>
    /// Maps <c>GET <paramref name="pattern"/></c> (default <c>/health</c>) to the registered health checks, the
    /// <c>reward-model</c> one included: 503 with <c>{"status": "loading"}</c> (or <c>"failed"</c> and the error) and
    /// Retry-After until the model is ready, then 200 with the model's name, execution provider, head and objectives.
    /// Open to all (no API key): probes need none.
    /// </summary>
    public static IEndpointConventionBuilder MapRewardModelHealthChecks(this IEndpointRouteBuilder endpoints, string pattern = "/health")
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        return endpoints.MapHealthChecks(pattern, new HealthCheckOptions { ResponseWriter = WriteHealth }).AllowAnonymous();
    }

    private static Task WriteHealth(HttpContext ctx, HealthReport report)
    {
        var provider = ctx.RequestServices.GetRequiredService<RewardModelProvider>();
        var options = ctx.RequestServices.GetRequiredService<IOptions<RewardModelHostingOptions>>().Value;
        HealthResponse body;
        if (report.Status != HealthStatus.Unhealthy && provider.Model is { } model)
            body = new HealthResponse("ok", Model: provider.ModelName(options), ExecutionProvider: model.ExecutionProvider,
                Head: model.Manifest.IsClassifier ? "sequence_classification" : "armorm", HasPosterior: model.HasPosterior, Objectives: model.ObjectiveNames);
        else
        {
            body = provider.State switch
            {
                RewardModelState.Loading => new HealthResponse("loading"),
                RewardModelState.Failed => new HealthResponse("failed", Error: provider.LoadError!.Message),
                RewardModelState.Stopped => new HealthResponse("stopped"),
                _ => new HealthResponse("unhealthy", Checks: report.Entries.Where(e => e.Value.Status == HealthStatus.Unhealthy)
                    .ToDictionary(e => e.Key, e => e.Value.Description ?? e.Value.Status.ToString())),
            };
            ctx.Response.Headers.RetryAfter = options.RetryAfterSeconds.ToString(CultureInfo.InvariantCulture);
        }
        return ctx.Response.WriteAsJsonAsync(body, RewardHostingJsonContext.Default.HealthResponse, "application/json; charset=utf-8");
    }
}
