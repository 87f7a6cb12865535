using System.CommandLine;
using OnnxReward.Cli.Commands;

namespace OnnxReward.Cli;

/// <summary>The `onnxreward` command: parse, call the libraries, print. Each sub-command lives in Commands/.</summary>
public static class Program
{
    public static int Main(string[] args) => BuildRoot().Parse(args).Invoke();

    public static RootCommand BuildRoot()
    {
        var root = new RootCommand("OnnxReward: run ArmoRM-style reward models with ONNX Runtime.");
        // One line per sub-command, in data-flow order.
        foreach (var command in new Command[]
                 {
                     VersionCommand.Create(),
                     TokenizeCommand.Create(),
                     ExportCommand.Create(),
                     ScoreCommand.Create(),
                     ScoreCommand.CreateEmbed(),
                     EvalCommand.Create(),
                     BonCommand.Create(),
                     ServeCommand.Create(),
                 })
            root.Subcommands.Add(command);
        // Hidden: `onnxreward train` points to the onnxreward-train tool instead of "unrecognized command".
        root.Subcommands.Add(TrainMovedCommand.Create());
        return root;
    }
}
