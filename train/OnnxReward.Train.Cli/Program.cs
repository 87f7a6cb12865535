using System.CommandLine;

namespace OnnxReward.Train.Cli;

/// <summary>The `onnxreward-train` command: the training pipeline (TorchSharp, CPU) kept out of the `onnxreward` tool so
/// that scoring and serving do not ship libtorch. Same conventions as `onnxreward`: one-line errors, exit code 1.</summary>
public static class Program
{
    public static int Main(string[] args) => BuildRoot().Parse(args).Invoke();

    public static RootCommand BuildRoot()
    {
        var root = new RootCommand("onnxreward-train: train an ArmoRM-style reward model on the shared data (TorchSharp, CPU) and export it " +
                                   "for `onnxreward`.");
        root.Subcommands.Add(TrainCommand.Run());
        root.Subcommands.Add(TrainCommand.Split());
        return root;
    }
}
