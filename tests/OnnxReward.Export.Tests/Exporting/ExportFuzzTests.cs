using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using OnnxReward.Export.Checkpoints;
using OnnxReward.Export.Exporting;
using OnnxReward.Model;
using OnnxReward.Testing;

namespace OnnxReward.Export.Tests.Exporting;

/// <summary>
/// Issue 16's done-when point: <c>export</c> fuzzed over corrupted checkpoints and configs never leaves a partial or
/// unloadable model folder and never changes the source. Each seeded case copies armorm-tiny, applies one to three
/// corruptions (safetensors header/length/data bytes, truncation, config.json values and types, the index, tokenizer
/// files, deleted files) and exports it — into a new folder, or with --force over a good previous model. Then either
/// the export succeeded and the folder loads and scores, or it failed with a <see cref="CheckpointException"/> /
/// <see cref="ExportException"/> and --out is exactly as before (absent, or the previous model byte for byte); no
/// staging folder is left; the source's bytes, mtimes and modes are unchanged; nothing else is ever thrown.
/// Time bound: 48 cases in about 20 s on this 2-core machine (a successful export with its validation is ~0.5 s, a
/// refused one ~50 ms); each case is held to 15 s, well above that, so a hang or runaway allocation fails it.
/// </summary>
[NonParallelizable]
public class ExportFuzzTests
{
    private const int Cases = 48;
    private string _root = "", _pristine = "", _previous = "";

    [OneTimeSetUp]
    public void Prepare()
    {
        _root = SharedData.NewTempDirectory("export-fuzz");
        _pristine = CheckpointCopies.ArmormTiny(Path.Combine(_root, "pristine"));
        _previous = Path.Combine(_root, "previous");
        ModelExporter.Export(_pristine, _previous);
    }

    [OneTimeTearDown]
    public void CleanUp() => Directory.Delete(_root, recursive: true);

    private static IEnumerable<int> Seeds() => Enumerable.Range(1, Cases);

    [TestCaseSource(nameof(Seeds))]
    public void CorruptedCheckpoint_ExportsCompletelyOrChangesNothing(int seed)
    {
        var rng = new Random(seed);
        var caseDir = Path.Combine(_root, $"case-{seed}");
        var source = Path.Combine(caseDir, "ckpt");
        CopyFolder(_pristine, source);
        var applied = new List<string>();
        for (int i = 0, n = rng.Next(1, 4); i < n; i++)
            applied.Add(Corrupt(rng, source));
        if (rng.Next(3) == 0)
        {
            foreach (var f in Directory.GetFiles(source))          // a read-only source, as ../shared is (item 10)
                File.SetUnixFileMode(f, UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
            applied.Add("files made read-only");
        }
        var force = rng.Next(2) == 0;
        var outDir = Path.Combine(caseDir, "out");
        if (force) CopyFolder(_previous, outDir);
        var what = $"seed {seed}, {(force ? "--force over a previous model" : "new --out")}: {string.Join("; ", applied)}";
        TestContext.Out.WriteLine(what);

        var sourceBefore = CheckpointCopies.Snapshot(source);
        var outBefore = CheckpointCopies.Snapshot(outDir);
        var clock = Stopwatch.StartNew();
        Exception? failure = null;
        try
        {
            ModelExporter.Export(source, outDir, new ExportOptions { Overwrite = force });
        }
        catch (Exception e) when (e is CheckpointException or ExportException)
        {
            failure = e;
            TestContext.Out.WriteLine($"refused: {e.GetType().Name}: {e.Message}");
            Assert.That(e.Message, Does.Not.Contain("\n"), "one-line message");
        }
        catch (Exception e)
        {
            Assert.Fail($"{what}: {e.GetType().Name} is not a clear export error: {e}");
        }
        Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(15)), what);

        Assert.That(CheckpointCopies.Snapshot(source), Is.EqualTo(sourceBefore), $"{what}: the source changed");
        Assert.That(CheckpointCopies.StagingLeftovers(outDir), Is.Empty, $"{what}: a staging folder was left");
        if (failure is not null)
        {
            Assert.That(CheckpointCopies.Snapshot(outDir), Is.EqualTo(outBefore), $"{what}: a failed export changed --out");
            return;
        }
        using var model = RewardModel.Load(outDir);      // the written folder loads and scores
        var score = File.Exists(Path.Combine(outDir, "tokenizer.json")) && model.Encoder.Template is not null
            ? model.Score(Conversation.FromPromptResponse("What is 2 + 2?", "4."))
            : model.ScoreTokens([[.. model.Manifest.GatingTokenPattern, 0]])[0];
        Assert.That(float.IsFinite(score.Score), $"{what}: score {score.Score}");
    }

    // ---- corruptions ----------------------------------------------------------------------------------------------

    private static readonly string[] Shards = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"];

    private static readonly string[] ConfigKeys =
    [
        "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "vocab_size",
        "max_position_embeddings", "pad_token_id", "bos_token_id", "eos_token_id", "rms_norm_eps", "rope_theta",
        "num_objectives", "gating_n_hidden", "gating_hidden_dim", "gating_temperature", "rope_scaling", "hidden_act",
        "tie_word_embeddings", "objective_names",
    ];

    private static JsonNode? RandomValue(Random rng) => rng.Next(14) switch
    {
        0 => 1_000_000_000,
        1 => int.MaxValue,
        2 => -1,
        3 => 0,
        4 => 1,
        5 => 3,
        6 => 1.5,
        7 => "64",
        8 => null,
        9 => new JsonArray(1, 2),
        10 => true,
        11 => 1e300,
        12 => new JsonArray([.. Enumerable.Range(0, 19).Select(i => (JsonNode)JsonValue.Create(i % 3 == 0 ? "same" : $"o{i}"))]),
        _ => rng.Next(-5, 200_000),
    };

    /// <summary>Applies one random corruption to the checkpoint copy and says what it did.</summary>
    private static string Corrupt(Random rng, string dir)
    {
        var shard = Path.Combine(dir, Shards[rng.Next(Shards.Length)]);
        switch (rng.Next(11))
        {
            case 0 when File.Exists(shard):
            {
                var headerLength = HeaderLength(shard);
                var at = 8 + rng.NextInt64(Math.Max(1, headerLength));
                FlipByte(rng, shard, at);
                return $"flipped header byte {at} of {Path.GetFileName(shard)}";
            }
            case 1 when File.Exists(shard):
            {
                var value = rng.Next(4) switch { 0 => 1UL, 1 => 0UL, 2 => ulong.MaxValue, _ => (ulong)rng.NextInt64(1, 1L << 40) };
                CheckpointCopies.Overwrite(shard, 0, BitConverter.GetBytes(value));
                return $"header length of {Path.GetFileName(shard)} set to {value}";
            }
            case 2 when File.Exists(shard):
            {
                var length = new FileInfo(shard).Length;
                var to = rng.NextInt64(length);
                using (var f = new FileStream(shard, FileMode.Open)) f.SetLength(to);
                return $"truncated {Path.GetFileName(shard)} to {to} of {length} bytes";
            }
            case 3 when File.Exists(shard):
            {
                var start = 8 + HeaderLength(shard);
                var flips = rng.Next(1, 64);
                for (var i = 0; i < flips; i++)
                    FlipByte(rng, shard, start + rng.NextInt64(Math.Max(1, new FileInfo(shard).Length - start)));
                return $"flipped {flips} data bytes of {Path.GetFileName(shard)}";
            }
            case 4 or 5 when File.Exists(Path.Combine(dir, "config.json")):
            {
                var key = ConfigKeys[rng.Next(ConfigKeys.Length)];
                var remove = rng.Next(8) == 0;
                var value = RandomValue(rng);
                try
                {
                    CheckpointCopies.EditJson(dir, c => { if (remove) c.Remove(key); else c[key] = value; });
                }
                catch (System.Text.Json.JsonException)
                {
                    return "config.json left as it was (already not JSON)";
                }
                return remove ? $"config.json: removed '{key}'" : $"config.json: '{key}' = {value?.ToJsonString() ?? "null"}";
            }
            case 6 when File.Exists(Path.Combine(dir, "tokenizer.json")):
            {
                var path = Path.Combine(dir, "tokenizer.json");
                var how = rng.Next(4);
                if (how == 0) File.WriteAllText(path, "{}");
                else if (how == 1) File.WriteAllBytes(path, RandomBytes(rng, 256));
                else if (how == 2) using (var f = new FileStream(path, FileMode.Open)) f.SetLength(rng.NextInt64(f.Length));
                else for (var i = 0; i < 16; i++) FlipByte(rng, path, rng.NextInt64(new FileInfo(path).Length));
                return $"tokenizer.json corrupted ({new[] { "{}", "random bytes", "truncated", "16 bytes flipped" }[how]})";
            }
            case 7 when File.Exists(Path.Combine(dir, "tokenizer_config.json")):
            {
                string[] templates = ["{% for m in messages %}{{ m.content", "{{ raise_exception('no') }}", "{% if %}", "{{ messages[0]['content'] }}", "plain text"];
                var template = templates[rng.Next(templates.Length)];
                if (rng.Next(4) == 0)
                {
                    File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), "{\"chat_template\": ");
                    return "tokenizer_config.json truncated";
                }
                CheckpointCopies.EditJson(dir, c => c["chat_template"] = template, "tokenizer_config.json");
                return $"chat_template = {template}";
            }
            case 8 when File.Exists(Path.Combine(dir, "model.safetensors.index.json")):
            {
                var path = Path.Combine(dir, "model.safetensors.index.json");
                if (rng.Next(2) == 0)
                {
                    File.WriteAllBytes(path, Encoding.UTF8.GetBytes(File.ReadAllText(path)[..rng.Next(1, 200)]));
                    return "index truncated";
                }
                try
                {
                    CheckpointCopies.EditJson(dir, c => c["weight_map"]!["model.norm.weight"] =
                        c["weight_map"]!["model.norm.weight"]!.GetValue<string>() == Shards[0] ? Shards[1] : Shards[0], "model.safetensors.index.json");
                }
                catch (Exception e) when (e is System.Text.Json.JsonException or NullReferenceException or InvalidOperationException)
                {
                    return "index left as it was (already damaged)";
                }
                return "index places model.norm.weight in the wrong shard";
            }
            case 9:
            {
                // NaN weights pass every structural check: only the validation by scoring finds them.
                var tensor = rng.Next(2) == 0 ? "model.norm.weight" : "gating.logit_scale";
                try
                {
                    var (file, offset, length) = CheckpointCopies.Locate(dir, tensor);
                    if (new FileInfo(file).Length < offset + length) return $"{tensor} not overwritten (its shard is short)";
                    CheckpointCopies.Overwrite(file, offset, Enumerable.Repeat((byte)0xFF, (int)length).ToArray());
                }
                catch (Exception e) when (e is IOException or System.Text.Json.JsonException or KeyNotFoundException or InvalidOperationException
                                              or EndOfStreamException or OverflowException or ArgumentException)
                {
                    return $"{tensor} not overwritten (the files are already damaged)";
                }
                return $"{tensor} set to NaN";
            }
            default:
            {
                var files = Directory.GetFiles(dir);
                if (files.Length == 0) return "nothing left to delete";
                var victim = files[rng.Next(files.Length)];
                File.Delete(victim);
                return $"deleted {Path.GetFileName(victim)}";
            }
        }
    }

    private static long HeaderLength(string shard)
    {
        using var f = File.OpenRead(shard);
        if (f.Length < 8) return 0;
        var b = new byte[8];
        f.ReadExactly(b);
        return (long)Math.Min(BitConverter.ToUInt64(b), (ulong)Math.Max(0, f.Length - 8));
    }

    private static void FlipByte(Random rng, string path, long at)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        if (f.Length == 0) return;
        at = Math.Min(at, f.Length - 1);
        f.Position = at;
        var b = f.ReadByte();
        f.Position = at;
        f.WriteByte((byte)(b ^ (1 << rng.Next(8))));
    }

    private static byte[] RandomBytes(Random rng, int n)
    {
        var b = new byte[n];
        rng.NextBytes(b);
        return b;
    }

    private static void CopyFolder(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from))
            File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
    }
}
