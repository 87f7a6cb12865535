using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace OnnxReward.Hosting;

/// <summary>The <c>reward-model</c> health check: Unhealthy while the model loads and after a failed load (with the
/// reason), Healthy once it scores, with the model's name, execution provider and objectives as data.</summary>
public sealed class RewardModelHealthCheck(RewardModelProvider provider, IOptions<RewardModelHostingOptions> options) : IHealthCheck
{
    /// <inheritdoc />
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(provider.State switch
        {
            RewardModelState.Ready when provider.Model is { } model => HealthCheckResult.Healthy("the model is loaded and scores.", new Dictionary<string, object>
            {
                ["model"] = provider.ModelName(options.Value),
                ["execution_provider"] = model.ExecutionProvider,
                ["objectives"] = model.ObjectiveNames,
            }),
            RewardModelState.Failed => HealthCheckResult.Unhealthy($"the model failed to load: {provider.LoadError!.Message}", provider.LoadError),
            RewardModelState.Stopped => HealthCheckResult.Unhealthy("the service is stopping."),
            _ => HealthCheckResult.Unhealthy("the model is still loading; retry when GET /health answers 200."),
        });
}
