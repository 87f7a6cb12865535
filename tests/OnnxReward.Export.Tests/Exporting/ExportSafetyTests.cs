using System.Text.Json.Nodes;
using OnnxReward.Export.Checkpoints;
using OnnxReward.Export.Exporting;
using OnnxReward.Model;
using OnnxReward.Testing;

namespace OnnxReward.Export.Tests.Exporting;

/// <summary>
/// Issue 16's export items, one regression test each: the source is never touched (item 2), a failed export leaves
/// --out as it was (previous model intact, no empty or partial folder: items 10, 14), copied files are writable
/// (item 10), unloadable folders are refused before writing (item 9), and messages name the real problem (item 14).
/// </summary>
[NonParallelizable]
public class ExportSafetyTests
{
    private string _root = "";

    [SetUp]
    public void SetUp() => _root = SharedData.NewTempDirectory("export-safety");

    [TearDown]
    public void TearDown()
    {
        foreach (var f in Directory.EnumerateFileSystemEntries(_root, "*", SearchOption.AllDirectories))
            if (!Directory.Exists(f)) File.SetUnixFileMode(f, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        Directory.Delete(_root, recursive: true);
    }

    private string Copy(string name = "ckpt") => CheckpointCopies.ArmormTiny(Path.Combine(_root, name));

    private static ExportOptions Force => new() { Overwrite = true };

    // ---- item 2: the source is never changed -------------------------------------------------------------------------

    [Test]
    public void ExportOntoItsOwnFolder_WithForce_IsRefused_AndTheSourceIsUnchanged()
    {
        var ckpt = Copy();
        var before = CheckpointCopies.Snapshot(ckpt);
        var e = Assert.Throws<ExportException>(() => ModelExporter.Export(ckpt, ckpt, Force))!;
        Assert.That(e.Message, Does.Contain("own folder").And.Contain("--out"));
        Assert.That(CheckpointCopies.Snapshot(ckpt), Is.EqualTo(before), "before issue 16 this deleted the source's tokenizer.json");
        Assert.That(CheckpointCopies.StagingLeftovers(ckpt), Is.Empty);
    }

    [Test]
    public void OutInsideTheSource_SourceInsideOut_AndASymlinkToTheSource_AreRefused()
    {
        var ckpt = Copy();
        var before = CheckpointCopies.Snapshot(ckpt);
        Assert.That(Assert.Throws<ExportException>(() => ModelExporter.Export(ckpt, Path.Combine(ckpt, "onnx")))!.Message,
            Does.Contain("inside the checkpoint folder"));
        Assert.That(Assert.Throws<ExportException>(() => ModelExporter.Export(ckpt, _root, Force))!.Message,
            Does.Contain("contains the checkpoint"));
        var link = Path.Combine(_root, "link");
        Directory.CreateSymbolicLink(link, ckpt);
        Assert.That(Assert.Throws<ExportException>(() => ModelExporter.Export(ckpt, link, Force))!.Message, Does.Contain("own folder"));
        Assert.That(CheckpointCopies.Snapshot(ckpt), Is.EqualTo(before));
    }

    // ---- item 10: read-only sources, and --force over a previous model ------------------------------------------------

    [Test]
    public void ReadOnlySource_CopiedFilesAreWritable_AndForceOverThePreviousModelKeepsUserFiles()
    {
        var ckpt = Copy();
        foreach (var f in Directory.GetFiles(ckpt))
            File.SetUnixFileMode(f, UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead);   // 0444, as in ../shared
        var outDir = Path.Combine(_root, "model");
        ModelExporter.Export(ckpt, outDir);
        foreach (var name in new[] { "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json" })
            Assert.That(File.GetUnixFileMode(Path.Combine(outDir, name)) & UnixFileMode.UserWrite, Is.EqualTo(UnixFileMode.UserWrite),
                $"{name} keeps the source's 0444 (issue 16 item 10: a later --force failed half-way as a non-root user)");
        File.WriteAllText(Path.Combine(outDir, "notes.txt"), "mine");
        var summary = ModelExporter.Export(ckpt, outDir, Force);
        Assert.That(File.ReadAllText(Path.Combine(outDir, "notes.txt")), Is.EqualTo("mine"), "--force replaces the model files only");
        Assert.That(summary.Validation, Does.StartWith("loaded and scored"));
        Assert.That(CheckpointCopies.StagingLeftovers(outDir), Is.Empty);
    }

    [Test]
    public void FailedForceExport_LeavesThePreviousModelExactlyAsItWas()
    {
        var good = Copy("good");
        var outDir = Path.Combine(_root, "model");
        ModelExporter.Export(good, outDir);
        var previous = CheckpointCopies.Snapshot(outDir);

        var truncated = Copy("truncated");                 // fails when opened (before issue 16: after the old model was deleted)
        var shard = Path.Combine(truncated, "model-00002-of-00002.safetensors");
        using (var fs = new FileStream(shard, FileMode.Open)) fs.SetLength(fs.Length / 2);
        Assert.Throws<CheckpointException>(() => ModelExporter.Export(truncated, outDir, Force));
        Assert.That(CheckpointCopies.Snapshot(outDir), Is.EqualTo(previous));

        var nan = Copy("nan");                             // fails only when the written model is validated
        var (file, offset, length) = CheckpointCopies.Locate(nan, "model.norm.weight");
        CheckpointCopies.Overwrite(file, offset, Enumerable.Repeat((byte)0xFF, (int)length).ToArray());   // NaN in any float format
        var e = Assert.Throws<ExportException>(() => ModelExporter.Export(nan, outDir, Force))!;
        Assert.That(e.Message, Does.Contain("NaN"));
        Assert.That(CheckpointCopies.Snapshot(outDir), Is.EqualTo(previous));
        Assert.That(CheckpointCopies.StagingLeftovers(outDir), Is.Empty);
    }

    // ---- item 14: a failed export leaves no folder, and messages that do not mislead ----------------------------------

    [Test]
    public void FailedExport_LeavesNoOutputFolder_NorTheParentsItCreated()
    {
        var ckpt = Copy();
        CheckpointCopies.EditJson(ckpt, c => c["pad_token_id"] = 999_999_999);
        var outDir = Path.Combine(_root, "new", "deeper", "model");
        Assert.Throws<CheckpointException>(() => ModelExporter.Export(ckpt, outDir));
        Assert.That(Directory.Exists(Path.Combine(_root, "new")), Is.False, "no empty output folder (issue 16 item 14)");
    }

    [Test]
    public void MaxPositionEmbeddingsOfOne_NamesThatKey_WithoutAHeadDimRemark()
    {
        var ckpt = Copy();
        CheckpointCopies.EditJson(ckpt, c => c["max_position_embeddings"] = 1);
        var e = Assert.Catch(() => ModelExporter.Export(ckpt, Path.Combine(_root, "model")))!;
        Assert.That(e, Is.TypeOf<CheckpointException>().Or.TypeOf<ExportException>());
        Assert.That(e.Message, Does.Contain("'max_position_embeddings' is 1").And.Not.Contain("head_dim"));
    }

    // ---- item 9: nothing unloadable is written --------------------------------------------------------------------------

    private static IEnumerable<TestCaseData> Unloadable()
    {
        yield return new TestCaseData((Action<string>)(d => CheckpointCopies.EditJson(d, c => c["pad_token_id"] = 999_999_999)),
            "'pad_token_id' is 999999999, outside the vocabulary").SetName("PadTokenIdOutsideTheVocabulary");
        yield return new TestCaseData((Action<string>)(d => File.WriteAllText(Path.Combine(d, "tokenizer.json"), "{\"garbage\": true}")),
            "tokenizer.json").SetName("GarbageTokenizerJson");
        yield return new TestCaseData((Action<string>)(d => CheckpointCopies.EditJson(d, c => c["chat_template"] = "{% for m in messages %}{{ m.content"
            , "tokenizer_config.json")), "tokenizer_config.json").SetName("ChatTemplateThatDoesNotParse");
        yield return new TestCaseData((Action<string>)(d => CheckpointCopies.EditJson(d, c => c["chat_template"] = "{{ messages[0]['content'] }}",
            "tokenizer_config.json")), "without the assistant header").SetName("ChatTemplateWithoutTheAssistantHeader");
        yield return new TestCaseData((Action<string>)(d => CheckpointCopies.EditJson(d, c =>
                c["objective_names"] = new JsonArray([.. Enumerable.Range(0, 19).Select(i => (JsonNode)JsonValue.Create(i < 2 ? "helpful" : $"o{i}"))]))),
            "lists 'helpful' 2 times").SetName("DuplicateObjectiveNames");
    }

    [TestCaseSource(nameof(Unloadable))]
    public void UnloadableCheckpoint_IsACheckpointException_BeforeAnythingIsWritten(Action<string> corrupt, string expected)
    {
        var ckpt = Copy();
        corrupt(ckpt);
        var outDir = Path.Combine(_root, "model");
        var e = Assert.Throws<CheckpointException>(() => ModelExporter.Export(ckpt, outDir))!;
        TestContext.Out.WriteLine(e.Message);
        Assert.That(e.Message, Does.Contain(expected));
        Assert.That(Directory.Exists(outDir), Is.False);
        Assert.That(CheckpointCopies.StagingLeftovers(outDir), Is.Empty);
    }
}
