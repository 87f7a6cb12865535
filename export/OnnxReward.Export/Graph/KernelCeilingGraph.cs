using Google.Protobuf;

namespace OnnxReward.Export.Graph;

/// <summary>One GEMM of a layer: [N, K]·[K, M], reading the hidden state [N, D] or (<see cref="FromFfn"/>) the FFN activation [N, F].</summary>
public readonly record struct KernelShape(string Name, long K, long M, bool FromFfn);

/// <summary>
/// The graphs the performance suite measures machine ceilings with: nothing but the exporter's own GEMM nodes at a
/// model's shapes, built with the same <see cref="GraphBuilder"/> the exporter uses, so a ceiling measures exactly the
/// kernels the fused graph runs. Every product is a graph output (none can be pruned); distinct seeded random weights per
/// layer, so the weights stream from memory as a model's do. Inputs <c>h</c> [N, D] and <c>m</c> [N, F]; outputs
/// <c>layers.{i}.{name}</c> [N, M]. FLOPs = 2·N·Σ K·M per run.
/// </summary>
public static class KernelCeilingGraph
{
    /// <summary>The serialized ONNX model of fp32 MatMuls: <paramref name="layers"/> × <paramref name="shapes"/>.</summary>
    public static byte[] Float32MatMuls(long d, long f, IReadOnlyList<KernelShape> shapes, int layers, int seed)
    {
        ArgumentNullException.ThrowIfNull(shapes);
        ArgumentOutOfRangeException.ThrowIfLessThan(layers, 1);
        var rng = new Random(seed);
        var g = new GraphBuilder("matmul_ceiling");
        var h = g.Input("h", ElementType.Float, "rows", d);          // [N, D]
        var m = g.Input("m", ElementType.Float, "rows", f);          // [N, F]
        for (var layer = 0; layer < layers; layer++)
            foreach (var (name, k, width, fromFfn) in shapes)
            {
                var w = new float[k * width];
                var scale = (float)(1 / Math.Sqrt(k));
                for (var i = 0; i < w.Length; i++)
                    w[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
                var weight = g.Constant($"layers.{layer}.{name}.weight", ElementType.Float, [k, width], w);
                var y = g.MatMul(fromFfn ? m : h, weight, $"/layers.{layer}/{name}/MatMul");   // [N, width]
                g.Output(y, $"layers.{layer}.{name}", ElementType.Float, "rows", width);
            }
        return g.ToModel([], "bench", new Dictionary<string, string>()).ToByteArray();
    }
}
