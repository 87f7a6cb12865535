using OnnxReward.Cli.IO;
using OnnxReward.Export.Checkpoints;
using OnnxReward.Model;
using OnnxReward.Text.Chat;
using OnnxReward.Text.Tokenization;

namespace OnnxReward.Cli.Commands;

// The one place that turns library errors into CLI errors. This file (with IO/CliException.cs) is also compiled into
// the `onnxreward-train` tool (train/OnnxReward.Train.Cli links it), so both commands fail the same way.
internal static partial class CommandSupport
{
    /// <summary>Runs a command body; expected failures print one line to stderr and return 1, and so does anything
    /// unexpected (named by its type): a command never ends in a stack trace.</summary>
    public static int Guard(Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception e) when (e is CliException or RewardModelException or CheckpointException or TokenizerException
                                      or TemplateException or ArgumentException or IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"error: {LineError(e)}");
            return 1;
        }
    }

    /// <summary>Whether a failure while handling one input line is that line's error (the command goes on with the
    /// next line) rather than the end of the run: everything but cancellation.</summary>
    public static bool IsLineError(Exception e) => e is not OperationCanceledException;

    /// <summary>The one-line message for a failed input line: the library's own message for the expected kinds, the
    /// exception type beside the message for anything else (a bug to report, but never a lost chunk).</summary>
    public static string LineError(Exception e) =>
        e is FormatException or RewardModelException or ArgumentException or TokenizerException or TemplateException or CliException
            ? e.Message
            : $"internal error ({e.GetType().Name}: {e.Message.ReplaceLineEndings(" ")}); please report it with this input line.";
}
