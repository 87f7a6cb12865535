using BenchmarkDotNet.Running;

namespace OnnxReward.Benchmarks;

public static class Program
{
    /// <summary>BenchmarkDotNet's switcher; <c>chart &lt;csv&gt; &lt;png&gt;</c> draws perf/README's chart from a report instead;
    /// <c>default-checkpoint &lt;model dir&gt; &lt;out&gt;</c> recovers a trained model's checkpoint (DefaultCheckpoint);
    /// <c>profile [BxT …]</c> prints each variant's ORT time per node type (NodeProfile);
    /// <c>generate-8b &lt;dir&gt;</c> writes the 8B-shaped synthetic checkpoint of the scale run (perf/scale-8b.sh);
    /// <c>scale-score</c> scores an exported model (perf/scale-8b.sh, perf/accuracy-8b.sh); <c>reference-score</c> computes the
    /// layer-streaming fp32 reference scores of perf/accuracy-8b.sh; <c>kernel-ceiling</c> measures a variant's GEMM
    /// ceiling at the 8B shapes (ScaleCeiling, perf/scale-8b.sh).</summary>
    public static int Main(string[] args)
    {
        if (args is ["chart", ..])
            return Chart.Run(args);
        if (args is ["generate-8b", ..])
            return Llama3_8BShape.Run(args);
        if (args is ["default-checkpoint", ..])
            return DefaultCheckpoint.Run(args);
        if (args is ["profile", ..])
            return NodeProfile.Run(args);
        if (args is ["scale-score", ..])
            return ScaleScore.Run(args);
        if (args is ["reference-score", ..])
            return ReferenceScore.Run(args);
        if (args is ["kernel-ceiling", ..])
            return ScaleCeiling.Run(args);
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
        return 0;
    }
}
