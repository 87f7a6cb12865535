using System.Diagnostics;
using OnnxReward.Export.Checkpoints;
using OnnxReward.Export.Exporting;
using OnnxReward.Export.Tests.Graph;
using OnnxReward.Testing;

namespace OnnxReward.Export.Tests.Exporting;

/// <summary>
/// Export at scale, on synthetic random checkpoints written to /tmp (never committed). [Explicit]: they write GBs and
/// take minutes, so CI skips them; run with <c>dotnet test --filter "FullyQualifiedName~ExportScaleTests"</c>.
/// </summary>
[Explicit("writes GB-sized checkpoints to /tmp and takes minutes; run by name to measure")]
[NonParallelizable]
public class ExportScaleTests
{
    /// <summary>design.md's mid-size Llama-3-shaped model: d 512, 8 layers, GQA 8/2, FFN 1536, vocab 128257.</summary>
    private static readonly LlamaConfig MidSize = new()
    {
        HiddenSize = 512, IntermediateSize = 1536, NumHiddenLayers = 8, NumAttentionHeads = 8, NumKeyValueHeads = 2,
        VocabSize = 128257, RopeTheta = 500000, MaxPositionEmbeddings = 8192, PadTokenId = 128256, BosTokenId = 128000,
    };

    private static readonly RewardHeadConfig ArmoHead = new() { NumObjectives = 19, GatingHiddenDim = 1024, GatingNHidden = 3 };

    /// <param name="source">"disk": a safetensors checkpoint through Checkpoint.Open (the real path); "memory": the
    /// same shapes from an in-memory tensor source (export cost without checkpoint reading).</param>
    [TestCase("disk")]
    [TestCase("memory")]
    public void MidSize_ExportTime_And_SessionCreationTime(string source)
    {
        var root = SharedData.NewTempDirectory("midsize");
        try
        {
            var ckpt = Path.Combine(root, "ckpt");
            var bytes = source == "disk" ? SyntheticCheckpoint.Write(ckpt, MidSize, ArmoHead) : 0;
            using var inMemory = source == "memory" ? InMemoryCheckpoint.Create(MidSize, ArmoHead, seed: 5) : null;
            foreach (var dtype in new[] { "fp32", "fp16" })
            {
                var outDir = Path.Combine(root, dtype);
                var clock = Stopwatch.StartNew();
                var options = new ExportOptions { Precision = ExportPrecision.Parse(dtype) };
                var summary = inMemory is null
                    ? ModelExporter.Export(ckpt, outDir, options)
                    : ModelExporter.Export(inMemory, "in-memory", outDir, options, null, CancellationToken.None);
                var export = clock.Elapsed;
                clock.Restart();
                using var ort = new OrtRunner(outDir);
                var session = clock.Elapsed;
                var rows = Enumerable.Range(0, 8).Select(i => Enumerable.Range(0, 512).Select(j => (long)((i * 7919 + j * 31) % 128000)).ToArray()).ToList();
                var rp = Enumerable.Repeat(511L, 8).ToArray();
                var gp = Enumerable.Repeat(200L, 8).ToArray();
                ort.Run(rows, rp, gp);                      // warm-up
                clock.Restart();
                var o = ort.Run(rows, rp, gp);
                var run = clock.Elapsed;
                Assert.That(o["score"].All(float.IsFinite), "scores are finite");
                TestContext.Out.WriteLine(
                    $"mid-size {dtype} ({source}): checkpoint {bytes / 1e6:F0} MB (bf16), {summary.Parameters / 1e6:F1} M params, {summary.Tensors} tensors, " +
                    $"weights {summary.DataBytes / 1e6:F0} MB; export {export.TotalSeconds:F2} s; session creation {session.TotalSeconds:F2} s; " +
                    $"8 × 512 tokens forward {run.TotalMilliseconds:F0} ms");
            }
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    /// <summary>A &gt; 2.5 GB bf16 checkpoint exported by the CLI in a child process; its peak RSS (GNU time's
    /// maximum resident set size = VmHWM) must stay below 1.5 GB; then the model loads in ORT and scores.</summary>
    [Test]
    public void Large_Checkpoint_ExportsWithBoundedPeakMemory_ThenScores()
    {
        var cli = Path.Combine(SharedData.RepositoryRoot, "src", "OnnxReward.Cli", "bin", "Release", "net10.0", "linux-x64", "onnxreward");
        if (!File.Exists(cli)) Assert.Ignore($"{cli} is not built: run `dotnet build src/OnnxReward.Cli -c Release` first.");
        if (!File.Exists("/usr/bin/time")) Assert.Ignore("/usr/bin/time (GNU time) is needed to read the child's peak RSS.");
        var config = new LlamaConfig
        {
            HiddenSize = 2048, IntermediateSize = 5632, NumHiddenLayers = 24, NumAttentionHeads = 16, NumKeyValueHeads = 4,
            VocabSize = 128257, RopeTheta = 500000, MaxPositionEmbeddings = 4096, PadTokenId = 128256, BosTokenId = 128000,
        };
        var root = SharedData.NewTempDirectory("large-export");
        try
        {
            var ckpt = Path.Combine(root, "ckpt");
            var clock = Stopwatch.StartNew();
            var bytes = SyntheticCheckpoint.Write(ckpt, config, ArmoHead);
            TestContext.Out.WriteLine($"wrote {bytes / 1e9:F2} GB checkpoint in {clock.Elapsed.TotalSeconds:F1} s");
            Assert.That(bytes, Is.GreaterThan(2_500_000_000L));

            var outDir = Path.Combine(root, "model");
            var psi = new ProcessStartInfo("/usr/bin/time", ["-f", "PEAK_RSS_KB=%M ELAPSED_S=%e", cli, "export", ckpt, "--out", outDir])
            {
                RedirectStandardError = true, RedirectStandardOutput = true,
            };
            using var child = Process.Start(psi)!;
            var stdoutTask = child.StandardOutput.ReadToEndAsync();
            var stderr = child.StandardError.ReadToEnd();
            child.WaitForExit();
            var stdout = stdoutTask.Result;
            TestContext.Out.WriteLine(stdout);
            var line = stderr.Split('\n').Last(l => l.StartsWith("PEAK_RSS_KB=", StringComparison.Ordinal));
            TestContext.Out.WriteLine(line);
            Assert.That(child.ExitCode, Is.Zero, stderr[^Math.Min(stderr.Length, 2000)..]);
            var peakKb = long.Parse(line.Split(' ')[0]["PEAK_RSS_KB=".Length..]);
            Assert.That(peakKb * 1024L, Is.LessThan(1_500_000_000L), $"peak working set {peakKb / 1024} MiB");
            TestContext.Out.WriteLine($"weights file {new FileInfo(Path.Combine(outDir, "model.onnx.data")).Length / 1e9:F2} GB, graph {new FileInfo(Path.Combine(outDir, "model.onnx")).Length / 1e3:F0} KB");

            clock.Restart();
            using var ort = new OrtRunner(outDir);
            var session = clock.Elapsed;
            long[][] rows = [[128000, 5, 6, 7, 8, 9, 10, 11], [128000, 12, 13, 14]];
            clock.Restart();
            var batch = ort.Run(rows, [7, 3], [2, 1], pad: 128256);
            var run = clock.Elapsed;
            var alone = ort.Run([rows[1]], [3], [1]);
            TestContext.Out.WriteLine($"session creation {session.TotalSeconds:F1} s; 2-row forward {run.TotalMilliseconds:F0} ms; scores {string.Join(", ", batch["score"])}");
            Assert.That(batch["score"].All(float.IsFinite));
            Assert.That(batch["score"][1], Is.EqualTo(alone["score"][0]).Within(1e-4 + 1e-4 * Math.Abs(alone["score"][0])),
                "the padded row scores as when alone");
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }
}
