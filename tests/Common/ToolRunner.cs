using System.Diagnostics;

namespace OnnxReward.Testing;

/// <summary>Runs a built command-line tool (an app host under some project's bin/Release) in a child process with
/// optional stdin: one copy for the `onnxreward` and `onnxreward-train` tests.</summary>
internal static class ToolRunner
{
    /// <summary>The Release app host <paramref name="command"/> of the project in <paramref name="projectFolder"/>
    /// (relative to the repository root); fails the test when it has not been built.</summary>
    public static string AppHost(string projectFolder, string command)
    {
        var exe = Path.Combine(SharedData.RepositoryRoot, projectFolder, "bin", "Release", "net10.0", "linux-x64", command);
        if (!File.Exists(exe)) Assert.Fail($"{exe} is missing: build {projectFolder} in Release (this test project's build does).");
        return exe;
    }

    /// <summary>Runs <paramref name="exe"/>, failing the test when it runs past <paramref name="limit"/>.</summary>
    public static (int Code, string Out, string Err) Run(string exe, TimeSpan limit, string? stdin, params string[] args)
    {
        var psi = new ProcessStartInfo(exe, args) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        psi.Environment["NO_COLOR"] = "1";
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (stdin is not null)
            p.StandardInput.Write(stdin);
        p.StandardInput.Close();
        if (!p.WaitForExit(limit))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"{Path.GetFileName(exe)} {string.Join(' ', args)} did not finish in {limit.TotalSeconds} s");
        }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }
}
