using OnnxReward.Diagnostics;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace OnnxReward.Hosting;

/// <summary>OpenTelemetry registration of the library's meter and activity source.</summary>
public static class RewardModelInstrumentation
{
    /// <summary>Collects the <c>OnnxReward</c> meter (rows, tokens, padding, batch and round durations, queue depth).</summary>
    public static MeterProviderBuilder AddRewardModelInstrumentation(this MeterProviderBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.AddMeter(RewardModelTelemetry.MeterName);
    }

    /// <summary>Collects the <c>OnnxReward</c> activities (one per ONNX Runtime run and per scorer round).</summary>
    public static TracerProviderBuilder AddRewardModelInstrumentation(this TracerProviderBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.AddSource(RewardModelTelemetry.ActivitySourceName);
    }
}
