using System.Runtime.InteropServices;
using OnnxReward.Export.Checkpoints;
using OnnxReward.Testing;

namespace OnnxReward.Export.Tests.Checkpoints;

public class CheckpointReaderTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp() => _dir = SharedData.NewTempDirectory("ckpt");

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    [Test]
    public void ArmormTiny_OpensThroughTheIndexWithConfigHeadAndDtypes()
    {
        using var c = Checkpoint.Open(SharedData.ArmormTiny);
        Assert.That(c.Format, Is.EqualTo("huggingface"));
        Assert.That((c.Config.HiddenSize, c.Config.IntermediateSize, c.Config.NumHiddenLayers), Is.EqualTo((64, 176, 2)));
        Assert.That((c.Config.NumAttentionHeads, c.Config.NumKeyValueHeads, c.Config.VocabSize), Is.EqualTo((4, 2, 128257)));
        Assert.That(c.Config.RopeTheta, Is.EqualTo(500000.0));
        Assert.That(c.Config.RmsNormEps, Is.EqualTo(1e-5));
        Assert.That(c.Config.PadTokenId, Is.EqualTo(128256));
        Assert.That(c.Head, Is.Not.Null);
        Assert.That((c.Head!.NumObjectives, c.Head.GatingHiddenDim, c.Head.GatingNHidden, c.Head.GatingTemperature), Is.EqualTo((19, 32, 3, 10.0)));
        Assert.That(c.Head.ObjectiveNames![4], Is.EqualTo("helpsteer-verbosity"));
        Assert.That(c.Tensors.GetInfo("model.embed_tokens.weight"), Has.Property("DType").EqualTo(ElementType.BFloat16));
        Assert.That(c.Tensors.GetInfo("model.embed_tokens.weight").Shape, Is.EqualTo(new long[] { 128257, 64 }));
        Assert.That(c.Tensors.GetInfo("regression_layer.weight").DType, Is.EqualTo(ElementType.Float));
        Assert.That(c.Tensors.ReadFloat32("gating.logit_scale"), Is.EqualTo(new[] { 1.7f }), "README: gating.logit_scale [1] = 1.7");
        Assert.That(c.Tensors.Names, Has.Count.EqualTo(9 * 2 + 2 + 2 + 8 + 1));
        // Layer 1 is split across the two shards (README): both halves must resolve.
        Assert.That(c.Tensors.ReadFloat32("model.layers.1.self_attn.q_proj.weight"), Has.Length.EqualTo(64 * 64));
        Assert.That(c.Tensors.ReadFloat32("model.layers.1.mlp.down_proj.weight"), Has.Length.EqualTo(64 * 176));
        // T has the debiasing structure: T[4,4] = 0.
        Assert.That(c.Tensors.ReadFloat32("reward_transform_matrix")[4 * 19 + 4], Is.EqualTo(0f));
    }

    [Test]
    public void Stories260K_ReadsTheHeaderAndPermutesWqWkLikeTheHuggingFaceConversion()
    {
        var path = Path.Combine(SharedData.Stories260K, "stories260K.bin");
        using var c = Checkpoint.Open(path);
        Assert.That(c.Format, Is.EqualTo("llama2c"));
        Assert.That((c.Config.HiddenSize, c.Config.IntermediateSize, c.Config.NumHiddenLayers, c.Config.NumAttentionHeads,
            c.Config.NumKeyValueHeads, c.Config.VocabSize, c.Config.MaxPositionEmbeddings), Is.EqualTo((64, 172, 5, 8, 4, 512, 512)));
        Assert.That(c.Config.TieWordEmbeddings, Is.True);
        Assert.That(c.Tensors.Contains("lm_head.weight"), Is.False, "shared classifier: no separate lm_head");

        // Independent re-derivation: read wq of layer 0 straight from the file (offset after the header, the embedding
        // table and rms_att of all 5 layers) and apply HF's permute with explicit index arithmetic.
        const int dim = 64, vocab = 512, layers = 5, heads = 8, headDim = 8;
        var bytes = File.ReadAllBytes(path);
        var wqOffset = 28 + (vocab * dim + layers * dim) * 4;
        var meta = MemoryMarshal.Cast<byte, float>(bytes.AsSpan(wqOffset, dim * dim * 4)).ToArray();
        var ours = c.Tensors.ReadFloat32("model.layers.0.self_attn.q_proj.weight");
        for (var h = 0; h < heads; h++)
            for (var i = 0; i < headDim / 2; i++)
                for (var j = 0; j < 2; j++)
                    for (var col = 0; col < dim; col++)
                        Assert.That(ours[(h * headDim + j * headDim / 2 + i) * dim + col],
                            Is.EqualTo(meta[(h * headDim + 2 * i + j) * dim + col]));
        // v_proj is not permuted.
        var wvOffset = wqOffset + layers * dim * dim * 4 + layers * (4 * headDim) * dim * 4;
        var wv = MemoryMarshal.Cast<byte, float>(bytes.AsSpan(wvOffset, 4 * headDim * dim * 4)).ToArray();
        Assert.That(c.Tensors.ReadFloat32("model.layers.0.self_attn.v_proj.weight"), Is.EqualTo(wv));
    }

    [TestCase(ElementType.Float)]
    [TestCase(ElementType.Float16)]
    [TestCase(ElementType.BFloat16)]
    public void WriteThenRead_IsBitExactForEveryDtype(ElementType dtype)
    {
        // Raw path: arbitrary bit patterns (NaN payloads, ±Inf, subnormals, -0) come back unchanged.
        var rng = new Random(42);
        var size = dtype == ElementType.Float ? 4 : 2;
        var raw = new byte[37 * size];
        rng.NextBytes(raw);
        uint[] special = dtype == ElementType.Float
            ? [0x7FC00001, 0xFF800000, 0x7F800000, 0x00000001, 0x80000000]
            : [0x7E01, 0xFC00, 0x7C00, 0x0001, 0x8000];
        for (var i = 0; i < special.Length; i++)
            if (size == 4) BitConverter.TryWriteBytes(raw.AsSpan(i * 4), special[i]);
            else BitConverter.TryWriteBytes(raw.AsSpan(i * 2), (ushort)special[i]);
        // Float path: values representable in every dtype come back as the same floats.
        var values = TinyCheckpoints.Values("values", 64);

        using (var w = new HuggingFaceCheckpointWriter(_dir))
        {
            w.AddRaw("raw", dtype, [37], raw);
            w.Add("values", dtype, [8, 8], values);
            w.Complete(TinyCheckpoints.Config, null);
        }
        using var file = SafetensorsFile.Open(Path.Combine(_dir, "model.safetensors"));
        Assert.That(file.GetInfo("raw").DType, Is.EqualTo(dtype));
        Assert.That(file.GetInfo("values").Shape, Is.EqualTo(new long[] { 8, 8 }));
        Assert.That(file.Bytes("raw"), Is.EqualTo(raw));
        var back = new float[64];
        ElementConversion.ToFloat32(file.Bytes("values"), dtype, back);
        Assert.That(back, Is.EqualTo(values));
        Assert.That(file.Metadata["format"], Is.EqualTo("pt"));
    }

    [Test]
    public void ShardedAndUnshardedCheckpointsLoadIdenticalTensors()
    {
        var single = TinyCheckpoints.WriteReward(Path.Combine(_dir, "single"));
        var sharded = TinyCheckpoints.WriteReward(Path.Combine(_dir, "sharded"), maxShardBytes: 300);
        Assert.That(File.Exists(Path.Combine(single, "model.safetensors")), Is.True);
        Assert.That(Directory.GetFiles(sharded, "model-*-of-*.safetensors"), Has.Length.GreaterThan(2));
        Assert.That(File.Exists(Path.Combine(sharded, "model.safetensors.index.json")), Is.True);
        using var a = Checkpoint.Open(single);
        using var b = Checkpoint.Open(sharded);
        Assert.That(b.Tensors.Names, Is.EqualTo(a.Tensors.Names));
        Assert.That(b.Head, Is.EqualTo(a.Head with { ObjectiveNames = b.Head!.ObjectiveNames }));
        foreach (var name in a.Tensors.Names)
        {
            Assert.That(b.Tensors.GetInfo(name), Is.EqualTo(a.Tensors.GetInfo(name)).Using<TensorInfo>((x, y) =>
                x.Name == y.Name && x.DType == y.DType && x.Shape.SequenceEqual(y.Shape)));
            Assert.That(b.Tensors.ReadFloat32(name), Is.EqualTo(a.Tensors.ReadFloat32(name)), name);
            Assert.That(a.Tensors.ReadFloat32(name), Is.EqualTo(TinyCheckpoints.Values(name, a.Tensors.GetInfo(name).ElementCount)), name);
        }
    }
}
