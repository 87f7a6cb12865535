using Microsoft.Extensions.Logging;

namespace OnnxReward.Cli.IO;

/// <summary>
/// The library's diagnostics for the one-shot commands (score, eval, bon, …): each message as one plain line on stderr,
/// written at once (stdout carries the JSON lines; the console logger's background queue could lose the last lines
/// when the command exits). <c>serve</c> uses the standard console logger instead.
/// </summary>
internal sealed class StderrLoggerProvider : ILoggerProvider
{
    /// <summary>A factory that writes information and above to stderr.</summary>
    public static ILoggerFactory CreateFactory() =>
        LoggerFactory.Create(b => b.SetMinimumLevel(LogLevel.Information).AddProvider(new StderrLoggerProvider()));

    public ILogger CreateLogger(string categoryName) => Logger.Instance;

    public void Dispose()
    {
    }

    private sealed class Logger : ILogger
    {
        public static readonly Logger Instance = new();

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel))
                return;
            var line = formatter(state, exception);
            Console.Error.WriteLine(logLevel >= LogLevel.Error && exception is not null ? $"{line}: {exception.Message}" : line);
        }
    }
}
