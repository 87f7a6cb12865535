using System.CommandLine;

namespace OnnxReward.Cli.Commands;

/// <summary>
/// <c>onnxreward train …</c> from before issue 14: training is the separate <c>onnxreward-train</c> tool now (so this tool
/// ships without TorchSharp and libtorch). The command is hidden from <c>--help</c> and answers any arguments with one
/// line that names the tool to run instead, exit code 1.
/// </summary>
internal static class TrainMovedCommand
{
    /// <summary>What <c>onnxreward train</c> prints (after <c>error: </c>).</summary>
    public const string Message =
        "training is not part of `onnxreward` any more: it is the `onnxreward-train` tool (run, split), which carries TorchSharp and " +
        "libtorch. Run `onnxreward-train run --out WORK` or `onnxreward-train split --part test --out FILE` " +
        "(from the repository: dotnet run --project train/OnnxReward.Train.Cli -c Release -- …; as a tool: dotnet tool install OnnxReward.Train.Cli).";

    public static Command Create()
    {
        var command = new Command("train", "Moved to the onnxreward-train tool.") { Hidden = true, TreatUnmatchedTokensAsErrors = false };
        command.SetAction(_ =>
        {
            Console.Error.WriteLine($"error: {Message}");
            return 1;
        });
        return command;
    }
}
