using Google.Protobuf;
using OnnxReward.Export.Checkpoints;
using OnnxReward.Export.Exporting;
using OnnxReward.Export.Onnx;

namespace OnnxReward.Export.Graph;

/// <summary>One GEMM of a layer: [N, K]·[K, M], reading the hidden state [N, D] or (<see cref="FromFfn"/>) the FFN activation [N, F].</summary>
public readonly record struct KernelShape(string Name, long K, long M, bool FromFfn);

/// <summary>
/// The graphs the performance suite measures kernel ceilings with: nothing but the exporter's own Linear nodes at a
/// model's GEMM shapes, for one <see cref="ExportPrecision"/> — MatMul (fp32, fp16), DynamicQuantizeMatMul with
/// per-channel int8 weights (int8) or MatMulNBits (int8-block, int4) with that precision's bits, block size, zero points
/// and accuracy level. The nodes and their quantized weights come from the code that writes them into the exported
/// model (<see cref="BackboneLinear"/>, <see cref="BlockQuantization"/>, <see cref="Int8Columns"/>), so a ceiling
/// measures exactly the kernels the fused graph runs. Every product is a graph output (none can be pruned); distinct
/// seeded random weights per layer (<see cref="Weight"/>), so the weights stream from memory as a model's do.
/// Inputs <c>h</c> [N, D] and <c>m</c> [N, F] of the precision's activation type (float32 on the CPU, float16 for
/// CUDA); outputs <c>layers.{i}.{name}</c> [N, M]. FLOPs = 2·N·Σ K·M per run, counted as fp32 multiply-adds whatever
/// the precision.
/// </summary>
public static class KernelCeilingGraph
{
    /// <summary>The serialized ONNX model (weights inline, so it must stay under protobuf's 2 GB) of
    /// <paramref name="layers"/> × <paramref name="shapes"/> Linear nodes written as <paramref name="precision"/>
    /// writes them; <paramref name="d"/> and <paramref name="f"/> are the widths of the inputs <c>h</c> and <c>m</c>.</summary>
    /// <exception cref="ArgumentException">a shape reads a width other than <paramref name="d"/> / <paramref name="f"/>.</exception>
    public static byte[] Build(ExportPrecision precision, long d, long f, IReadOnlyList<KernelShape> shapes, int layers, int seed)
    {
        ArgumentNullException.ThrowIfNull(precision);
        ArgumentNullException.ThrowIfNull(shapes);
        ArgumentOutOfRangeException.ThrowIfLessThan(layers, 1);
        foreach (var s in shapes)
            if (s.K != (s.FromFfn ? f : d))
                throw new ArgumentException($"kernel {s.Name} reads K = {s.K} but its input ({(s.FromFfn ? "m" : "h")}) is {(s.FromFfn ? f : d)} wide.", nameof(shapes));
        var type = precision.Backbone;
        var linear = new BackboneLinear(type, precision.Int8Linears, precision.Blocks);
        using var weights = new SeededWeights(shapes, layers, seed);
        var g = new GraphBuilder("kernel_ceiling");
        var h = g.Input("h", type, "rows", d);          // [N, D]
        var m = g.Input("m", type, "rows", f);          // [N, F]
        for (var layer = 0; layer < layers; layer++)
            foreach (var s in shapes)
            {
                var source = SeededWeights.NameOf(layer, s);
                var y = linear.Emit(g, weights, s.FromFfn ? m : h, source + ".T", [source], $"/layers.{layer}/{s.Name}");   // [N, M]
                g.Output(y, $"layers.{layer}.{s.Name}", type, "rows", s.M);
            }
        var initializers = Inline(g.StreamedInitializers);
        return g.ToModel(initializers, "bench", new Dictionary<string, string> { ["precision"] = precision.ToString() }).ToByteArray();
    }

    /// <summary>The float32 weight of kernel <paramref name="shape"/> in layer <paramref name="layer"/> of a graph built
    /// with <paramref name="seed"/>, in the Hugging Face Linear layout [M, K] row-major (y = x·Wᵀ): the exact values the
    /// graph's weights were quantized from, for a reference product. Uniform in ±1/√K.</summary>
    public static float[] Weight(KernelShape shape, int layer, int seed)
    {
        var w = new float[checked(shape.K * shape.M)];
        SeededWeights.Fill(shape, layer, seed, w);
        return w;
    }

    /// <summary>The weights as a checkpoint would hold them (F32, [M, K]), generated from the seed on each read.</summary>
    private sealed class SeededWeights(IReadOnlyList<KernelShape> shapes, int layers, int seed) : ITensorSource
    {
        private readonly Dictionary<string, (KernelShape Shape, int Layer)> _tensors =
            Enumerable.Range(0, layers).SelectMany(l => shapes.Select(s => (s, l))).ToDictionary(t => NameOf(t.l, t.s), t => (t.s, t.l), StringComparer.Ordinal);

        public static string NameOf(int layer, KernelShape shape) => $"layers.{layer}.{shape.Name}.weight";

        public static void Fill(KernelShape shape, int layer, int seed, Span<float> destination)
        {
            var rng = new Random(unchecked(StableHash(shape.Name) * 1_000_003 + layer * 7919 + seed));
            var scale = (float)(1 / Math.Sqrt(shape.K));
            for (var i = 0; i < destination.Length; i++)
                destination[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
        }

        // string.GetHashCode is randomized per process; the weights must be the same in every process (a test's reference
        // and the graph it checks), so the name is hashed by hand.
        private static int StableHash(string s) => s.Aggregate(17, (a, c) => unchecked(a * 31 + c));

        public IReadOnlyList<string> Names => _tensors.Keys.Order(StringComparer.Ordinal).ToList();
        public bool Contains(string name) => _tensors.ContainsKey(name);

        public TensorInfo GetInfo(string name) => _tensors.TryGetValue(name, out var t)
            ? new TensorInfo(name, ElementType.Float, [t.Shape.M, t.Shape.K])
            : throw new CheckpointException($"tensor {name} is not one of the ceiling's kernels", tensor: name);

        public void ReadFloat32(string name, Span<float> destination)
        {
            var (shape, layer) = _tensors[name];
            Fill(shape, layer, seed, destination);
        }

        public void ReadRaw(string name, Span<byte> destination) =>
            ReadFloat32(name, System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(destination));

        public void Dispose() { }
    }

    /// <summary>Runs each weight's producer into an initializer held inside the protobuf (raw data).</summary>
    private static List<TensorProto> Inline(IReadOnlyList<StreamedInitializer> streamed)
    {
        var sink = new InlineSink { Scratch = new ScratchBuffers() };
        var result = new List<TensorProto>(streamed.Count);
        foreach (var init in streamed)
        {
            sink.Begin(init);
            init.Producer(sink);
            var proto = new TensorProto { Name = init.Name, DataType = init.Type.OnnxCode(), RawData = sink.End() };
            proto.Dims.AddRange(init.Dims);
            result.Add(proto);
        }
        return result;
    }

    private sealed class InlineSink : WeightSink
    {
        private readonly MemoryStream _bytes = new();
        private StreamedInitializer? _current;

        public void Begin(StreamedInitializer initializer)
        {
            _current = initializer;
            _bytes.SetLength(0);
        }

        public ByteString End()
        {
            var current = _current!;
            var expected = current.ElementCount * current.Type.Size();
            if (_bytes.Length != expected)
                throw new InvalidOperationException($"initializer {current.Name}: the producer wrote {_bytes.Length} bytes, the graph declares {expected}.");
            return ByteString.CopyFrom(_bytes.GetBuffer(), 0, (int)_bytes.Length);
        }

        public override void Write(ReadOnlySpan<float> values) => _bytes.Write(ElementConversion.FromFloat32(values, _current!.Type));

        public override void WriteBytes(ReadOnlySpan<byte> bytes)
        {
            if (_current!.Type is not (ElementType.UInt8 or ElementType.Int8))
                throw new InvalidOperationException($"initializer {_current.Name} is {_current.Type}; only one-byte initializers take raw bytes.");
            _bytes.Write(bytes);
        }
    }
}
