using BenchmarkDotNet.Running;

namespace OnnxReward.Benchmarks;

public static class Program
{
    /// <summary>BenchmarkDotNet's switcher; <c>chart &lt;csv&gt; &lt;png&gt;</c> draws perf/README's chart from a report instead.</summary>
    public static int Main(string[] args)
    {
        if (args is ["chart", ..])
            return Chart.Run(args);
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
        return 0;
    }
}
