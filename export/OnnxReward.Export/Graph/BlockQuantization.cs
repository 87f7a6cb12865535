using OnnxReward.Export.Checkpoints;

namespace OnnxReward.Export.Graph;

/// <summary>
/// How the backbone's Linear layers are block-quantized for <c>com.microsoft.MatMulNBits</c> (weights only; the
/// activations stay in the backbone's float type, and <see cref="AccuracyLevel"/> 4 lets the CPU kernel quantize them
/// per block to int8 internally).
/// </summary>
/// <param name="Bits">4 or 8.</param>
/// <param name="BlockSize">Weights quantized together along K (the input features): 16, 32, 64 or 128.</param>
/// <param name="ZeroPoints">Asymmetric blocks with a stored zero point per block (uint8, packed like the weights);
/// without, symmetric blocks and MatMulNBits' default zero point 2^(bits−1).</param>
/// <param name="AccuracyLevel">MatMulNBits' <c>accuracy_level</c>: 0 (unset: fp32 compute), 1 (fp32), 4 (int8 compute on
/// the CPU: activations quantized per block).</param>
internal sealed record BlockQuantization(int Bits, int BlockSize, bool ZeroPoints, int AccuracyLevel)
{
    public int BlocksPer(long k) => checked((int)((k + BlockSize - 1) / BlockSize));

    /// <summary>Bytes of one block of packed weights: block_size · bits / 8.</summary>
    public int BlobBytes => BlockSize * Bits / 8;

    /// <summary>Bytes of one output row of packed zero points: ceil(k_blocks · bits / 8).</summary>
    public int ZeroPointBytesPer(long k) => (BlocksPer(k) * Bits + 7) / 8;

    /// <summary>
    /// Quantizes one output row w[0..K) (the Hugging Face [out, in] row of a Linear weight, which is MatMulNBits' B row:
    /// B is [N, k_blocks, blob] with the blocks along K) into <paramref name="packed"/> (k_blocks · blob bytes),
    /// <paramref name="scales"/> (k_blocks) and <paramref name="zeroPoints"/> (k_blocks unpacked values; ignored without
    /// <see cref="ZeroPoints"/>). Dequantization, as MatMulNBits does it: w ≈ (q − zp) · scale.
    /// <list type="bullet">
    /// <item>asymmetric: lo = min(0, min w), hi = max(0, max w), scale = (hi − lo) / (2^bits − 1), zp = round(−lo / scale);</item>
    /// <item>symmetric (MLAS's own convention): the value v of largest magnitude maps to q = 0, scale = v / −2^(bits−1), zp = 2^(bits−1);</item>
    /// <item>q = clamp(round(w / scale) + zp, 0, 2^bits − 1); 4-bit values are packed two per byte, the first in the low nibble;
    /// a last partial block is padded with zp (dequantizes to 0).</item>
    /// </list>
    /// <paramref name="roundScale"/> rounds a scale to its stored type (float16 scales in the CUDA variant), so the
    /// quantized values are computed with the scale the kernel will use.
    /// </summary>
    public void QuantizeRow(ReadOnlySpan<float> w, Span<byte> packed, Span<float> scales, Span<byte> zeroPoints, Func<float, float> roundScale)
    {
        var blocks = BlocksPer(w.Length);
        var qmax = (1 << Bits) - 1;
        Span<byte> q = stackalloc byte[BlockSize];
        for (var b = 0; b < blocks; b++)
        {
            var start = b * BlockSize;
            var x = w.Slice(start, Math.Min(BlockSize, w.Length - start));
            float scale;
            int zp;
            if (ZeroPoints)
            {
                float lo = 0, hi = 0;
                foreach (var v in x) { lo = Math.Min(lo, v); hi = Math.Max(hi, v); }
                scale = roundScale((hi - lo) / qmax);
                if (!(scale > 0) || !float.IsFinite(scale)) scale = roundScale(1f);   // an all-zero block: any scale gives zeros
                zp = Math.Clamp((int)MathF.Round(-lo / scale), 0, qmax);
            }
            else
            {
                float extreme = 0;
                foreach (var v in x) if (Math.Abs(v) > Math.Abs(extreme)) extreme = v;
                zp = 1 << (Bits - 1);
                scale = roundScale(extreme / -zp);
                if (scale == 0 || !float.IsFinite(scale)) scale = roundScale(1f);
            }
            var inverse = 1 / scale;
            for (var i = 0; i < BlockSize; i++)
                q[i] = i < x.Length ? (byte)Math.Clamp((int)MathF.Round(x[i] * inverse) + zp, 0, qmax) : (byte)zp;
            var blob = packed.Slice(b * BlobBytes, BlobBytes);
            if (Bits == 8)
                q.CopyTo(blob);
            else
                for (var j = 0; j < blob.Length; j++)
                    blob[j] = (byte)(q[2 * j] | (q[2 * j + 1] << 4));
            scales[b] = scale;
            if (ZeroPoints) zeroPoints[b] = (byte)zp;
        }
    }

    /// <summary>Packs one row's k_blocks zero points like the weights (4-bit: two per byte, low nibble first; the high
    /// nibble of an odd last byte is 0).</summary>
    public void PackZeroPoints(ReadOnlySpan<byte> zeroPoints, Span<byte> packed)
    {
        if (Bits == 8)
        {
            zeroPoints.CopyTo(packed);
            return;
        }
        packed.Clear();
        for (var b = 0; b < zeroPoints.Length; b++)
            packed[b / 2] |= (byte)(zeroPoints[b] << (4 * (b % 2)));
    }
}

/// <summary>
/// One backbone Linear (several packed side by side along N: QKV, gate/up) as MatMulNBits' three constant inputs:
/// B uint8 [N, k_blocks, blob], scales [N, k_blocks] (the backbone's float type) and, with zero points, uint8
/// [N, ceil(k_blocks · bits / 8)]. The Hugging Face [out, in] rows are MatMulNBits' B rows, so nothing is transposed:
/// each source tensor is read once (the export's memory bound stays one tensor) and quantized row by row.
/// <see cref="Weights"/> must be streamed before <see cref="Scales"/> and <see cref="ZeroPointValues"/> (the graph
/// registers them in that order); the scales and zero points (k_blocks per row, 1/8–1/32 of the packed bytes) are
/// kept from the first pass until they are written.
/// </summary>
internal sealed class BlockQuantizedLinear(ITensorSource source, IReadOnlyList<string> parts, BlockQuantization quantization, bool float16Scales)
{
    private float[]? _scales;
    private byte[]? _zeroPoints;

    public long K => source.GetInfo(parts[0]).Shape[1];
    public long N => parts.Sum(p => source.GetInfo(p).Shape[0]);
    public long[] WeightDims => [N, quantization.BlocksPer(K), quantization.BlobBytes];
    public long[] ScaleDims => [N, quantization.BlocksPer(K)];
    public long[] ZeroPointDims => [N, quantization.ZeroPointBytesPer(K)];

    public WeightProducer Weights => sink =>
    {
        var infos = parts.Select(source.GetInfo).ToArray();
        var k = (int)infos[0].Shape[1];
        if (infos.Any(i => i.Shape.Length != 2 || i.Shape[1] != k))
            throw new InvalidOperationException($"{string.Join(", ", parts)}: the packed Linear weights need one input width.");
        var blocks = quantization.BlocksPer(k);
        var n = infos.Sum(i => i.Shape[0]);
        var scales = new float[n * blocks];
        var zeroPoints = quantization.ZeroPoints ? new byte[n * quantization.ZeroPointBytesPer(k)] : null;
        var rowBytes = blocks * quantization.BlobBytes;
        var rowsPerWrite = Math.Max(1, (1 << 20) / rowBytes);
        var packed = new byte[rowsPerWrite * rowBytes];
        var zpRow = new byte[blocks];
        Func<float, float> round = float16Scales ? s => (float)(Half)s : s => s;
        long row = 0;
        sink.Scratch.Prepare(infos.Max(i => i.ElementCount), 0, 0);
        foreach (var info in infos)
        {
            var w = sink.Scratch.A(info.ElementCount);                       // [out_j, K]
            source.ReadFloat32(info.Name, w);
            for (var r = 0; r < info.Shape[0];)
            {
                var count = (int)Math.Min(rowsPerWrite, info.Shape[0] - r);
                for (var i = 0; i < count; i++, row++)
                {
                    quantization.QuantizeRow(w.Slice((r + i) * k, k), packed.AsSpan(i * rowBytes, rowBytes),
                        scales.AsSpan((int)(row * blocks), blocks), zpRow, round);
                    if (zeroPoints is not null)
                    {
                        var zpBytes = quantization.ZeroPointBytesPer(k);
                        quantization.PackZeroPoints(zpRow, zeroPoints.AsSpan((int)(row * zpBytes), zpBytes));
                    }
                }
                sink.WriteBytes(packed.AsSpan(0, count * rowBytes));
                r += count;
            }
        }
        _scales = scales;
        _zeroPoints = zeroPoints;
    };

    public WeightProducer Scales => sink =>
    {
        var scales = _scales ?? throw new InvalidOperationException("block scales requested before the weights were quantized; stream the weights first.");
        _scales = null;
        sink.Write(scales);
    };

    public WeightProducer ZeroPointValues => sink =>
    {
        var zeroPoints = _zeroPoints ?? throw new InvalidOperationException("zero points requested before the weights were quantized (or the quantization has none).");
        _zeroPoints = null;
        sink.WriteBytes(zeroPoints);
    };
}
