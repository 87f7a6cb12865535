namespace OnnxReward.Cli.IO;

/// <summary>A usage problem the command reports as one line (<c>error: …</c>) with exit code 1, no stack trace.</summary>
internal sealed class CliException(string message) : Exception(message);
