using Microsoft.Extensions.Logging;

namespace OnnxReward.Diagnostics;

/// <summary>The library's log messages (source-generated: no formatting work unless the level is enabled).</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "execution provider: {Provider}")]
    public static partial void ExecutionProvider(ILogger logger, string provider);

    [LoggerMessage(EventId = 2, Level = LogLevel.Warning, Message = "execution provider: CPU (CUDA unavailable: {Reason})")]
    public static partial void CudaUnavailable(ILogger logger, string reason);

    [LoggerMessage(EventId = 3, Level = LogLevel.Information,
        Message = "memory: about {Needed} needed (weights {Weights}, activations {Activations}, runtime {Runtime}); {Available} available ({Source})")]
    public static partial void MemoryEstimate(ILogger logger, string needed, string weights, string activations, string runtime, string available, string source);

    [LoggerMessage(EventId = 4, Level = LogLevel.Error, Message = "a scoring round of {Rows} rows from {Requests} requests failed")]
    public static partial void RoundFailed(ILogger logger, Exception exception, int rows, int requests);
}
