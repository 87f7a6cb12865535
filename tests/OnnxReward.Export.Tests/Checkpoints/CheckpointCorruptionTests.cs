using System.Diagnostics;
using System.Text.Json.Nodes;
using OnnxReward.Export.Checkpoints;
using OnnxReward.Testing;

namespace OnnxReward.Export.Tests.Checkpoints;

/// <summary>Each corruption the readers guard against, fed as a real file, with the specific message asserted.</summary>
public class CheckpointCorruptionTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp() => _dir = SharedData.NewTempDirectory("ckpt-bad");

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private string File_(string name) => Path.Combine(_dir, name);

    private static CheckpointException OpenFails(string path) =>
        Assert.Throws<CheckpointException>(() => Checkpoint.Open(path).Dispose())!;

    [Test]
    public void HeaderLengthBeyondTheFile()
    {
        TinyCheckpoints.WriteSafetensors(File_("model.safetensors"), "{}", new byte[16], headerLengthOverride: 1_000_000);
        File.WriteAllText(File_("config.json"), HuggingFaceCheckpointWriter.ConfigJson(TinyCheckpoints.Config, null));
        var e = OpenFails(_dir);
        Assert.That(e.Message, Does.Contain("header length 1000000 is beyond the file"));
        Assert.That(e.File, Does.EndWith("model.safetensors"));
    }

    [Test]
    public void HeaderLengthOfOne_IsTooSmall_NotBeyondTheFile()
    {
        // Issue 16 item 14: a 1-byte header fits in the file; it is too short to be JSON.
        TinyCheckpoints.WriteSafetensors(File_("x.safetensors"), "{}", new byte[16], headerLengthOverride: 1);
        var e = Assert.Throws<CheckpointException>(() => SafetensorsFile.Open(File_("x.safetensors")))!;
        Assert.That(e.Message, Does.Contain("header length 1 is too small").And.Not.Contain("beyond"));
    }

    [Test]
    public void FileShorterThanTheHeaderLengthField()
    {
        File.WriteAllBytes(File_("x.safetensors"), [1, 2, 3]);
        var e = Assert.Throws<CheckpointException>(() => SafetensorsFile.Open(File_("x.safetensors")))!;
        Assert.That(e.Message, Does.Contain("is 3 bytes, too short for a safetensors file"));
    }

    [Test]
    public void OffsetsOutOfRange()
    {
        TinyCheckpoints.WriteSafetensors(File_("x.safetensors"),
            """{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[16,32]}}""", new byte[20]);
        var e = Assert.Throws<CheckpointException>(() => SafetensorsFile.Open(File_("x.safetensors")))!;
        Assert.That(e.Message, Does.Contain("tensor 'b' has data_offsets [16, 32] outside the data section (0..20 bytes)"));
        Assert.That(e.Tensor, Is.EqualTo("b"));
    }

    [Test]
    public void OverlappingOffsets()
    {
        TinyCheckpoints.WriteSafetensors(File_("x.safetensors"),
            """{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}""", new byte[24]);
        var e = Assert.Throws<CheckpointException>(() => SafetensorsFile.Open(File_("x.safetensors")))!;
        Assert.That(e.Message, Does.Contain("tensors 'a' (bytes 0..16) and 'b' (bytes 8..24) overlap"));
    }

    [Test]
    public void ByteLengthContradictingDtypeAndShape()
    {
        TinyCheckpoints.WriteSafetensors(File_("x.safetensors"), """{"a":{"dtype":"BF16","shape":[4],"data_offsets":[0,16]}}""", new byte[16]);
        var e = Assert.Throws<CheckpointException>(() => SafetensorsFile.Open(File_("x.safetensors")))!;
        Assert.That(e.Message, Does.Contain("tensor 'a' (BF16 [4]) needs 8 bytes but its data_offsets [0, 16] span 16"));
    }

    [Test]
    public void UnsupportedDtype()
    {
        TinyCheckpoints.WriteSafetensors(File_("x.safetensors"), """{"a":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}}""", new byte[16]);
        var e = Assert.Throws<CheckpointException>(() => SafetensorsFile.Open(File_("x.safetensors")))!;
        Assert.That(e.Message, Does.Contain("tensor 'a' has dtype I64; only F32, F16 and BF16 are supported"));
    }

    [Test]
    public void ShapeContradictingConfig()
    {
        TinyCheckpoints.WriteReward(_dir);
        var config = JsonNode.Parse(File.ReadAllText(File_("config.json")))!;
        config["intermediate_size"] = 16;                                  // the weights have 12
        File.WriteAllText(File_("config.json"), config.ToJsonString());
        var e = OpenFails(_dir);
        Assert.That(e.Message, Does.Contain("tensor 'model.layers.0.mlp.gate_proj.weight' has shape [12, 16] but config.json implies [16, 16] (intermediate_size × hidden_size)"));
        Assert.That(e.Tensor, Is.EqualTo("model.layers.0.mlp.gate_proj.weight"));
    }

    [Test]
    public void MissingTensorsAreAllNamed()
    {
        TinyCheckpoints.WriteReward(_dir);
        var config = JsonNode.Parse(File.ReadAllText(File_("config.json")))!;
        config["num_hidden_layers"] = 3;                                   // the weights have 2 layers
        File.WriteAllText(File_("config.json"), config.ToJsonString());
        var e = OpenFails(_dir);
        Assert.That(e.Message, Does.Contain("is missing 9 tensor(s) that its config implies"));
        Assert.That(e.Message, Does.Contain("model.layers.2.input_layernorm.weight"));
        Assert.That(e.Message, Does.Contain("model.layers.2.mlp.down_proj.weight"));
    }

    [Test]
    public void UnexpectedTensorsAreNamed()
    {
        using (var w = new HuggingFaceCheckpointWriter(_dir))
        {
            foreach (var (name, shape, _) in CheckpointLayout.Expected(TinyCheckpoints.Config, null))
                w.Add(name, ElementType.Float, shape, TinyCheckpoints.Values(name, shape.Aggregate(1L, (a, d) => a * d)));
            w.Add("model.layers.0.self_attn.q_proj.bias", ElementType.Float, [8], new float[8]);
            w.Complete(TinyCheckpoints.Config, null);
        }
        var e = OpenFails(_dir);
        Assert.That(e.Message, Does.Contain("holds 1 tensor(s) that a Llama checkpoint with this config.json does not have: model.layers.0.self_attn.q_proj.bias"));
    }

    [Test]
    public void IndexPointingToAMissingShard()
    {
        TinyCheckpoints.WriteReward(_dir, maxShardBytes: 300);
        var victim = Directory.GetFiles(_dir, "model-00002-of-*.safetensors").Single();
        File.Delete(victim);
        var e = OpenFails(_dir);
        Assert.That(e.Message, Does.Contain($"points to shard {Path.GetFileName(victim)}, which is missing"));
    }

    [Test]
    public void IndexAndShardDisagree()
    {
        TinyCheckpoints.WriteReward(_dir, maxShardBytes: 300);
        var index = JsonNode.Parse(File.ReadAllText(File_("model.safetensors.index.json")))!;
        var map = index["weight_map"]!.AsObject();
        var wrong = map["model.norm.weight"]!.GetValue<string>() == "model-00001-of-" + Directory.GetFiles(_dir, "model-*").Length.ToString("D5") + ".safetensors"
            ? "model-00002-of-" : "model-00001-of-";
        map["model.norm.weight"] = wrong + Directory.GetFiles(_dir, "model-*").Length.ToString("D5") + ".safetensors";
        File.WriteAllText(File_("model.safetensors.index.json"), index.ToJsonString());
        var e = OpenFails(_dir);
        Assert.That(e.Message, Does.Contain("says tensor 'model.norm.weight' is in"));
        Assert.That(e.Message, Does.Contain("but that shard has no such tensor"));
    }

    [Test]
    public void NoWeightsAndNoConfig()
    {
        var e1 = OpenFails(_dir);
        Assert.That(e1.Message, Does.Contain("has no config.json"));
        File.WriteAllText(File_("config.json"), HuggingFaceCheckpointWriter.ConfigJson(TinyCheckpoints.Config, null));
        File.WriteAllBytes(File_("pytorch_model.bin"), [0x80, 0x02]);
        var e2 = OpenFails(_dir);
        Assert.That(e2.Message, Does.Contain("has neither model.safetensors nor model.safetensors.index.json"));
        Assert.That(e2.Message, Does.Contain("pickles are not read"));
    }

    [Test]
    public void TruncatedLlama2cFile()
    {
        var source = Path.Combine(SharedData.Stories260K, "stories260K.bin");
        var bytes = File.ReadAllBytes(source);
        File.WriteAllBytes(File_("cut.bin"), bytes[..(bytes.Length - 1000)]);
        var e = OpenFails(File_("cut.bin"));
        Assert.That(e.Message, Does.Contain($"is {bytes.Length - 1000} bytes but its header"));
        Assert.That(e.Message, Does.Contain($"needs {bytes.Length}: the file is truncated"));
    }

    [Test]
    public void Llama2cHeaderThatIsNotALlama()
    {
        var header = new int[] { 64, 172, 5, 7, 4, 512, 512 };             // 64 is not a multiple of 7 heads
        File.WriteAllBytes(File_("bad.bin"), header.SelectMany(BitConverter.GetBytes).ToArray());
        var e = OpenFails(File_("bad.bin"));
        Assert.That(e.Message, Does.Contain("does not describe a Llama model"));
    }

    /// <summary>
    /// Seeded random byte flips and truncations of a valid checkpoint (header region in particular) and of the llama2.c
    /// file: opening and reading every tensor either works or throws CheckpointException — never another exception,
    /// a crash or a hang (each case is timed).
    /// </summary>
    [Test]
    public void FuzzedFilesOnlyEverThrowCheckpointException()
    {
        var valid = TinyCheckpoints.WriteReward(Path.Combine(_dir, "valid"));
        var validBytes = File.ReadAllBytes(Path.Combine(valid, "model.safetensors"));
        var headerEnd = 8 + (int)BitConverter.ToUInt64(validBytes, 0);
        var llama = File.ReadAllBytes(Path.Combine(SharedData.Stories260K, "stories260K.bin"));
        var rng = new Random(20261125);
        int ok = 0, rejected = 0;
        var slowest = TimeSpan.Zero;

        for (var round = 0; round < 300; round++)
        {
            var isLlama = round % 5 == 4;
            var bytes = (byte[])(isLlama ? llama : validBytes).Clone();
            var limit = isLlama ? 28 + 64 : headerEnd;                 // mostly mutate headers: that is where parsing happens
            switch (rng.Next(3))
            {
                case 0:
                    for (var k = rng.Next(1, 8); k > 0; k--)
                        bytes[rng.Next(rng.Next(4) == 0 ? bytes.Length : limit)] = (byte)rng.Next(256);
                    break;
                case 1:
                    bytes = bytes[..rng.Next(bytes.Length)];
                    break;
                default:
                    var at = rng.Next(limit);
                    bytes[at] ^= (byte)(1 << rng.Next(8));
                    break;
            }
            var dir = Path.Combine(_dir, $"case{round}");
            Directory.CreateDirectory(dir);
            string target;
            if (isLlama)
            {
                target = Path.Combine(dir, "m.bin");
                File.WriteAllBytes(target, bytes);
            }
            else
            {
                File.Copy(Path.Combine(valid, "config.json"), Path.Combine(dir, "config.json"));
                File.WriteAllBytes(Path.Combine(dir, "model.safetensors"), bytes);
                target = dir;
            }

            var sw = Stopwatch.StartNew();
            try
            {
                using var c = Checkpoint.Open(target);
                foreach (var name in c.Tensors.Names)
                    _ = c.Tensors.ReadFloat32(name);
                ok++;
            }
            catch (CheckpointException e)
            {
                Assert.That(e.Message, Is.Not.Empty);
                rejected++;
            }
            catch (Exception e)
            {
                Assert.Fail($"case {round} ({(isLlama ? "llama2.c" : "safetensors")}): {e.GetType().Name}: {e.Message}");
            }
            slowest = sw.Elapsed > slowest ? sw.Elapsed : slowest;
            Directory.Delete(dir, true);
        }
        TestContext.Out.WriteLine($"fuzz: {ok} opened, {rejected} rejected with CheckpointException, slowest case {slowest.TotalMilliseconds:F1} ms");
        Assert.That(rejected, Is.GreaterThan(100), "most mutations must be detected");
        Assert.That(slowest, Is.LessThan(TimeSpan.FromSeconds(5)), "no case may hang");
    }
}
