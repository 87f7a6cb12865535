using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Microsoft.OpenApi;
using OnnxReward.Wire;

namespace OnnxReward.Hosting;

/// <summary>Names the hosting registers (policy, scheme, health check), for applications that compose with them.</summary>
public static class RewardModelHosting
{
    /// <summary>Authorization policy of the scoring endpoints: the bearer API key when one is configured, open otherwise.
    /// Apply it to other endpoints too (<c>.RequireAuthorization(RewardModelHosting.ApiKeyPolicy)</c>, e.g. /metrics).</summary>
    public const string ApiKeyPolicy = "OnnxReward.ApiKey";

    /// <summary>Authentication scheme that checks <c>Authorization: Bearer &lt;key&gt;</c> against <see cref="RewardModelHostingOptions.ApiKey"/>.</summary>
    public const string ApiKeyScheme = "OnnxReward.ApiKey";

    /// <summary>Name of the health check that is Unhealthy until the model is loaded.</summary>
    public const string HealthCheckName = "reward-model";
}

/// <summary>Registration of a hosted reward model in an ASP.NET Core (or generic) host.</summary>
public static class RewardModelServiceCollectionExtensions
{
    /// <summary>
    /// Registers the hosted model: <see cref="RewardModelHostingOptions"/> (validated at start), the
    /// <see cref="RewardModelProvider"/> singleton and the hosted service that loads the model after start and drains
    /// its scorer on stop, the <c>reward-model</c> health check, the API-key authorization policy, problem details,
    /// source-generated JSON for the endpoints' bodies and the OpenAPI document services. Map the routes with
    /// <see cref="RewardModelEndpointRouteBuilderExtensions.MapRewardModelEndpoints"/>.
    /// </summary>
    public static IServiceCollection AddRewardModel(this IServiceCollection services, Action<RewardModelHostingOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        AddCore(services).Configure(configure);
        return services;
    }

    /// <summary>As <see cref="AddRewardModel(IServiceCollection, Action{RewardModelHostingOptions})"/>, binding the options
    /// from <paramref name="section"/> (usually <c>configuration.GetSection(RewardModelHostingOptions.SectionName)</c>),
    /// then applying <paramref name="configure"/> when given.</summary>
    public static IServiceCollection AddRewardModel(this IServiceCollection services, IConfiguration section, Action<RewardModelHostingOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(section);
        var builder = AddCore(services).Bind(section);
        if (configure is not null)
            builder.Configure(configure);
        return services;
    }

    private static OptionsBuilder<RewardModelHostingOptions> AddCore(IServiceCollection services)
    {
        var builder = services.AddOptions<RewardModelHostingOptions>();
        builder.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<RewardModelHostingOptions>, RewardModelHostingOptionsValidator>());
        if (services.Any(d => d.ServiceType == typeof(RewardModelProvider)))
            return builder;                                        // registered once; options calls still add up

        services.AddSingleton<RewardModelProvider>();
        services.AddSingleton<RewardModelEndpoints>();
        services.AddHostedService<RewardModelHostedService>();
        services.AddHealthChecks().AddCheck<RewardModelHealthCheck>(RewardModelHosting.HealthCheckName, tags: ["ready"]);
        services.AddProblemDetails();
        services.ConfigureHttpJsonOptions(o =>
        {
            o.SerializerOptions.TypeInfoResolverChain.Insert(0, RewardHostingJsonContext.Default);
            o.SerializerOptions.TypeInfoResolverChain.Insert(1, RewardJsonContext.Default);
        });
        // AddAuthenticationCore, not AddAuthentication: the latter brings data protection, which writes key files to the
        // user's profile at start, and a bearer key check needs none of it.
        services.AddAuthenticationCore();
        services.AddWebEncoders();
        services.TryAddSingleton(TimeProvider.System);
        new AuthenticationBuilder(services).AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(RewardModelHosting.ApiKeyScheme, null);
        services.AddAuthorizationBuilder().AddPolicy(RewardModelHosting.ApiKeyPolicy, p => p
            .AddAuthenticationSchemes(RewardModelHosting.ApiKeyScheme)
            .RequireAuthenticatedUser());
        services.AddOpenApi(o => o.AddDocumentTransformer((document, _, _) =>
        {
            document.Info.Title = "OnnxReward";
            document.Info.Description = "Reward-model scoring over HTTP with cross-request batching. Every error is an RFC 7807 " +
                "problem (application/problem+json) whose detail names what is wrong and how to fix it; \"index\" names the failing item. " +
                "With an API key configured, every route but /health and this document needs 'Authorization: Bearer <key>'.";
            document.Components ??= new OpenApiComponents();
            document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
            document.Components.SecuritySchemes["bearer"] = new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.Http,
                Scheme = "bearer",
                Description = "The server's API key (--api-key / ApiKey), when it has one.",
            };
            return Task.CompletedTask;
        }));
        return builder;
    }
}
