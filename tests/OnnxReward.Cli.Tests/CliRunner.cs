using System.Diagnostics;
using OnnxReward.Testing;

namespace OnnxReward.Cli.Tests;

/// <summary>Runs the built `onnxreward` app host in a child process with optional stdin.</summary>
internal static class CliRunner
{
    public static (int Code, string Out, string Err) Run(string? stdin, params string[] args) => Run(TimeSpan.FromSeconds(300), stdin, args);

    /// <summary>As <see cref="Run(string?, string[])"/>, failing the test when the command runs past <paramref name="limit"/>.</summary>
    public static (int Code, string Out, string Err) Run(TimeSpan limit, string? stdin, params string[] args)
    {
        var exe = Path.Combine(SharedData.RepositoryRoot, "src", "OnnxReward.Cli", "bin", "Release", "net10.0", "linux-x64", "onnxreward");
        if (!File.Exists(exe)) Assert.Fail($"{exe} is missing: build src/OnnxReward.Cli in Release (this project's build does).");
        var psi = new ProcessStartInfo(exe, args) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        psi.Environment["NO_COLOR"] = "1";
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (stdin is not null)
            p.StandardInput.Write(stdin);
        p.StandardInput.Close();
        if (!p.WaitForExit(limit)) { p.Kill(entireProcessTree: true); Assert.Fail($"onnxreward {string.Join(' ', args)} did not finish in {limit.TotalSeconds} s"); }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

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
