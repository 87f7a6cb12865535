using OnnxReward.Export.Checkpoints;

namespace OnnxReward.Export.Graph;

/// <summary>
/// How a backbone Linear layer is written into a graph, for every precision the exporter offers: the one place that
/// chooses between MatMul (fp32 / fp16), DynamicQuantizeMatMul (int8) and MatMulNBits (int8-block, int4) and quantizes
/// the weights. Both the reward graph (<see cref="LlamaRewardGraph"/>) and the benchmarks' kernel-ceiling graphs
/// (<see cref="KernelCeilingGraph"/>) call it, so a ceiling runs exactly the nodes, weight layouts and quantization
/// parameters the exported model runs.
/// </summary>
/// <param name="Backbone">The activation type: Float (CPU) or Float16 (CUDA).</param>
/// <param name="Int8Linears">DynamicQuantizeMatMul with symmetric per-output-channel int8 weights (<see cref="Int8Columns"/>).</param>
/// <param name="Blocks">MatMulNBits with block-quantized weights (<see cref="BlockQuantization"/>), or null.</param>
internal sealed record BackboneLinear(ElementType Backbone, bool Int8Linears, BlockQuantization? Blocks)
{
    /// <summary>x·Wᵀ for the Hugging Face Linear weights <paramref name="parts"/> ([out_j, in] each, packed side by side
    /// along the output: QKV, gate/up) read from <paramref name="weights"/>. The weight initializer is named
    /// <paramref name="weightName"/> (fp32 / fp16), with <c>.int8</c> / <c>.scale</c> (int8) or <c>.q{bits}</c> /
    /// <c>.scales</c> / <c>.zero_points</c> (block-quantized) appended; the node is <c>{name}/{op type}</c>.</summary>
    public Value Emit(GraphBuilder g, ITensorSource weights, Value x, string weightName, IReadOnlyList<string> parts, string name)
    {
        var shapes = parts.Select(p => weights.GetInfo(p).Shape).ToArray();
        long k = shapes[0][1], m = shapes.Sum(s => s[0]);
        if (Blocks is { } blocks)
        {
            // MatMulNBits(x, B, scales[, zero_points]) = x · dequant(B)ᵀ with B's rows the HF [out, in] rows.
            var q = new BlockQuantizedLinear(weights, parts, blocks, float16Scales: Backbone == ElementType.Float16);
            var wb = g.Weight(weightName + $".q{blocks.Bits}", ElementType.UInt8, q.WeightDims, q.Weights);
            var ws = g.Weight(weightName + ".scales", Backbone, q.ScaleDims, q.Scales);
            var wz = blocks.ZeroPoints ? g.Weight(weightName + ".zero_points", ElementType.UInt8, q.ZeroPointDims, q.ZeroPointValues) : Value.None;
            return g.Node("MatMulNBits", $"{name}/MatMulNBits", [x, wb, ws, wz], 1, GraphBuilder.MsDomain,
                Attr.Int("K", k), Attr.Int("N", m), Attr.Int("bits", blocks.Bits), Attr.Int("block_size", blocks.BlockSize),
                Attr.Int("accuracy_level", blocks.AccuracyLevel))[0];
        }
        var producer = Weights.PackedTransposed(weights, parts);
        if (!Int8Linears)
            return g.MatMul(x, g.Weight(weightName, Backbone, [k, m], producer), $"{name}/MatMul");
        var quantized = new Int8Columns(producer, k, m);
        var wq = g.Weight(weightName + ".int8", ElementType.Int8, [k, m], quantized.Values);
        var scale = g.Weight(weightName + ".scale", ElementType.Float, [m], quantized.Scales);
        return g.Node("DynamicQuantizeMatMul", $"{name}/DynamicQuantizeMatMul", [x, wq, scale], 1, GraphBuilder.MsDomain)[0];
    }
}
