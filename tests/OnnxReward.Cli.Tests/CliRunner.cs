using OnnxReward.Testing;

namespace OnnxReward.Cli.Tests;

/// <summary>Runs the built `onnxreward` app host in a child process with optional stdin.</summary>
internal static class CliRunner
{
    public static (int Code, string Out, string Err) Run(string? stdin, params string[] args) => Run(TimeSpan.FromSeconds(300), stdin, args);

    /// <summary>As <see cref="Run(string?, string[])"/>, failing the test when the command runs past <paramref name="limit"/>.</summary>
    public static (int Code, string Out, string Err) Run(TimeSpan limit, string? stdin, params string[] args) =>
        ToolRunner.Run(ToolRunner.AppHost(Path.Combine("src", "OnnxReward.Cli"), "onnxreward"), limit, stdin, args);

    private static readonly Lazy<string> ArmormTinyModel = new(() =>
    {
        var dir = Path.Combine(Path.GetTempPath(), $"onnxreward-cli-{Environment.ProcessId}", "armorm-tiny");
        if (!File.Exists(Path.Combine(dir, "reward_model.json")))
        {
            var (code, _, err) = Run(null, "export", SharedData.ArmormTiny, "--out", dir, "--force");
            Assert.That(code, Is.Zero, err);
        }
        return dir;
    });

    /// <summary>armorm-tiny exported once per test run.</summary>
    public static string ArmormTiny => ArmormTinyModel.Value;
}
