using System.Diagnostics;
using OnnxReward.Model;
using OnnxReward.Testing;

namespace OnnxReward.Cli.Tests;

/// <summary>`onnxreward export` end to end: the built executable in a child process (exit code, stdout, stderr).</summary>
[NonParallelizable]
public class ExportCommandTests
{
    private static (int Code, string Out, string Err) Cli(params string[] args)
    {
        var exe = Path.Combine(SharedData.RepositoryRoot, "src", "OnnxReward.Cli", "bin", "Release", "net10.0", "linux-x64", "onnxreward");
        if (!File.Exists(exe)) Assert.Fail($"{exe} is missing: build src/OnnxReward.Cli in Release (this project's build does).");
        var psi = new ProcessStartInfo(exe, args) { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.Environment["NO_COLOR"] = "1";
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEnd();
        if (!p.WaitForExit(120_000)) { p.Kill(); Assert.Fail("onnxreward export did not finish in 120 s"); }
        return (p.ExitCode, stdout.Result, stderr);
    }

    private static (int Code, string Out, string Err) Run(string checkpoint, string outDir, bool force = false) =>
        force ? Cli("export", checkpoint, "--out", outDir, "--force") : Cli("export", checkpoint, "--out", outDir);

    [Test]
    public void ArmormTiny_ExportsModelDirectory_AndPrintsSummary()
    {
        var outDir = Path.Combine(SharedData.NewTempDirectory(), "model");
        var (code, stdout, stderr) = Run(SharedData.ArmormTiny, outDir);
        Assert.That(code, Is.Zero, stderr);
        Assert.That(stdout, Does.Contain("tensors written").And.Contain("parameters").And.Contain("weights bytes").And.Contain("time"));
        var manifest = RewardModelManifest.Load(outDir);
        Assert.That(manifest.Kind, Is.EqualTo("reward"));
        Assert.That(File.Exists(Path.Combine(outDir, "model.onnx.data")));
    }

    [Test]
    public void NoValidateSkipsOnlyTheLoadCheck_TheModelIsStillWholeAndScores()
    {
        var outDir = Path.Combine(SharedData.NewTempDirectory(), "model");
        var (code, stdout, stderr) = Cli("export", SharedData.ArmormTiny, "--out", outDir, "--no-validate");
        Assert.That(code, Is.Zero, stderr);
        Assert.That(stdout, Does.Contain("not validated").And.Contain("--no-validate"), "the summary says the load check was skipped");
        using var model = RewardModel.Load(outDir, new RewardModelOptions { ExecutionProvider = ExecutionProviderKind.Cpu });
        Assert.That(float.IsFinite(model.Score(Conversation.FromPromptResponse("Hi", "Hello!")).Score), "the skipped check was not needed here");
        (code, _, stderr) = Cli("export", Path.Combine(SharedData.NewTempDirectory(), "missing"), "--out", outDir + "2", "--no-validate");
        Assert.That(code, Is.Not.Zero, "checkpoint checks still run");
        Assert.That(Directory.Exists(outDir + "2"), Is.False, "and nothing is written for a bad checkpoint");
    }

    [Test]
    public void Int4WithABlockSize_RecordsTheQuantizationInTheManifest_AndABadBlockSizeIsRefused()
    {
        var outDir = Path.Combine(SharedData.NewTempDirectory(), "model");
        var (code, stdout, stderr) = Cli("export", SharedData.ArmormTiny, "--out", outDir, "--dtype", "int4", "--block-size", "64");
        Assert.That(code, Is.Zero, stderr);
        Assert.That(stdout, Does.Contain("MatMulNBits, 4-bit, block 64"));
        var q = RewardModelManifest.Load(outDir).Quantization!;
        Assert.That((q.Method, q.Bits, q.BlockSize, q.AccuracyLevel), Is.EqualTo(("MatMulNBits", 4, (int?)64, (int?)1)), "int4 on the CPU: accuracy level 1 by default (least memory)");

        (code, _, stderr) = Cli("export", SharedData.ArmormTiny, "--out", Path.Combine(SharedData.NewTempDirectory(), "m"), "--dtype", "int4", "--block-size", "48");
        Assert.That(code, Is.Not.Zero);
        Assert.That(stderr, Does.Contain("48"));
    }

    [Test]
    public void CorruptCheckpoint_IsOneErrorLine_ExitCode1_NoStackTrace()
    {
        var copy = SharedData.NewTempDirectory("cli-corrupt");
        foreach (var f in Directory.EnumerateFiles(SharedData.ArmormTiny))
            File.Copy(f, Path.Combine(copy, Path.GetFileName(f)));
        File.WriteAllText(Path.Combine(copy, "model-00001-of-00002.safetensors"), "not a safetensors file");
        var (code, _, stderr) = Run(copy, Path.Combine(SharedData.NewTempDirectory(), "out"));
        TestContext.Out.WriteLine(stderr);
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.Contain("error: ").And.Contain("model-00001-of-00002.safetensors"));
        Assert.That(stderr, Does.Not.Contain("   at "), "no stack trace");
        Assert.That(stderr, Does.Not.Contain("Exception"), "no exception type names");
    }

    [Test]
    public void MissingCheckpoint_IsAClearError()
    {
        var (code, _, stderr) = Run(Path.Combine(SharedData.NewTempDirectory(), "nope"), Path.Combine(SharedData.NewTempDirectory(), "out"));
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.StartWith("error: ").And.Contain("nope"));
    }

    [Test]
    public void NonEmptyOut_RequiresForce()
    {
        var outDir = SharedData.NewTempDirectory();
        File.WriteAllText(Path.Combine(outDir, "other.txt"), "x");
        var (code, _, stderr) = Run(SharedData.ArmormTiny, outDir);
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.Contain("not empty").And.Contain("--force"));
        var forced = Run(SharedData.ArmormTiny, outDir, force: true);
        Assert.That(forced.Code, Is.Zero, forced.Err);
        Assert.That(File.ReadAllText(Path.Combine(outDir, "other.txt")), Is.EqualTo("x"), "--force replaces only the model files");
    }

    [Test]
    public void ExportOntoItsOwnCheckpoint_WithForce_IsOneErrorLine_AndTheCheckpointIsUntouched()
    {
        // Issue 16 item 2: this used to delete the checkpoint's own tokenizer.json and exit 1.
        var copy = SharedData.NewTempDirectory("cli-self");
        foreach (var f in Directory.EnumerateFiles(SharedData.ArmormTiny))
            File.Copy(f, Path.Combine(copy, Path.GetFileName(f)));
        var before = Directory.GetFiles(copy).Order().Select(f => (f, new FileInfo(f).Length, File.GetLastWriteTimeUtc(f))).ToList();
        var (code, _, stderr) = Run(copy, copy, force: true);
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.StartWith("error: ").And.Contain("own folder"));
        Assert.That(stderr.TrimEnd().Split('\n'), Has.Length.EqualTo(1), "one line, no stack trace");
        var after = Directory.GetFiles(copy).Order().Select(f => (f, new FileInfo(f).Length, File.GetLastWriteTimeUtc(f))).ToList();
        Assert.That(after, Is.EqualTo(before));
    }

    [Test]
    public void Summary_SaysTheExportWasValidated()
    {
        var (code, stdout, stderr) = Run(SharedData.ArmormTiny, Path.Combine(SharedData.NewTempDirectory(), "model"));
        Assert.That(code, Is.Zero, stderr);
        Assert.That(stdout, Does.Contain("validation").And.Contain("loaded and scored"));
    }

    [Test]
    public void InputThatIsADirectory_IsCalledADirectory_NotMissing()
    {
        // Issue 16 item 14 (JsonLines --input).
        var dir = SharedData.NewTempDirectory("cli-input-dir");
        var (code, _, stderr) = CliRunner.Run(null, "tokenize", "--tokenizer", SharedData.ArmormTiny, "--input", dir);
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.StartWith("error: ").And.Contain("is a directory").And.Not.Contain("does not exist"));
    }

    [Test]
    public void Parse_RejectsUnknownDtype_AndRequiresOut()
    {
        var bad = Cli("export", SharedData.ArmormTiny, "--out", Path.Combine(SharedData.NewTempDirectory(), "x"), "--dtype", "bf16");
        Assert.That(bad.Code, Is.Not.Zero);
        Assert.That(bad.Err + bad.Out, Does.Contain("bf16"));
        var noOut = Cli("export", SharedData.ArmormTiny);
        Assert.That(noOut.Code, Is.Not.Zero);
        Assert.That(noOut.Err + noOut.Out, Does.Contain("--out"));
    }

    [Test]
    public void Fp16_ForCuda_IsWrittenAndRecorded()
    {
        var outDir = Path.Combine(SharedData.NewTempDirectory(), "fp16");
        var r = Cli("export", SharedData.ArmormTiny, "-o", outDir, "--dtype", "fp16");
        Assert.That(r.Code, Is.Zero, r.Err);
        var m = RewardModelManifest.Load(outDir);
        Assert.That((m.DType, m.Variant), Is.EqualTo(("fp16", "cuda")));
    }
}
