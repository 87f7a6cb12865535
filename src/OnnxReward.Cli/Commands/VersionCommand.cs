using System.CommandLine;
using System.Reflection;

namespace OnnxReward.Cli.Commands;

internal static class VersionCommand
{
    public static Command Create()
    {
        var command = new Command("info", "Print the version and the ONNX Runtime execution providers compiled in.");
        command.SetAction(_ =>
        {
            var version = typeof(VersionCommand).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion;
            Console.WriteLine($"onnxreward {version}");
            Console.WriteLine("providers compiled in: " + string.Join(", ", Microsoft.ML.OnnxRuntime.OrtEnv.Instance().GetAvailableProviders()));
            return 0;
        });
        return command;
    }
}
