using System.Runtime.InteropServices;
using OnnxReward.Export.Checkpoints;
using OnnxReward.Export.Onnx;

namespace OnnxReward.Export.Graph;

/// <summary>Produces one initializer's float32 values, in ONNX layout, by calling <see cref="WeightSink.Write"/> with
/// consecutive chunks; the sink converts to the initializer's element type and appends to the data file.</summary>
internal delegate void WeightProducer(WeightSink sink);

/// <summary>Receives an initializer's values chunk by chunk (see Exporting/ExternalDataWriter.cs).</summary>
internal abstract class WeightSink
{
    /// <summary>Reusable buffers shared by all producers of one export.</summary>
    public required ScratchBuffers Scratch { get; init; }

    /// <summary>Appends the next values of the current initializer.</summary>
    public abstract void Write(ReadOnlySpan<float> values);

    /// <summary>Appends the next bytes of a one-byte initializer (UInt8 / Int8) as they are: packed block-quantized
    /// weights and zero points (see BlockQuantization.cs), one element per byte.</summary>
    public abstract void WriteBytes(ReadOnlySpan<byte> bytes);
}

/// <summary>
/// Grow-only work buffers reused across tensors, so an export allocates about max(tensor) instead of sum(tensors).
/// A producer declares what it needs up front (<see cref="Prepare"/>); buffers it does not need are dropped first,
/// so the peak is the largest single producer's need (for a Llama: the packed gate/up weight or the raw embedding),
/// not the sum of every buffer ever used.
/// </summary>
internal sealed class ScratchBuffers
{
    public const int ChunkElements = 1 << 20;
    private float[]? _a, _b;
    private byte[]? _raw;
    private readonly float[] _chunk = new float[ChunkElements];

    /// <summary>Ensures buffer A holds <paramref name="a"/> floats, B <paramref name="b"/> floats and the raw buffer
    /// <paramref name="rawBytes"/> bytes; drops the buffers not requested.</summary>
    public void Prepare(long a, long b, long rawBytes)
    {
        var dropped = false;
        if (a == 0 && _a is not null) { _a = null; dropped = true; }
        if (b == 0 && _b is not null) { _b = null; dropped = true; }
        if (rawBytes == 0 && _raw is not null) { _raw = null; dropped = true; }
        if (a > (_a?.LongLength ?? 0)) { _a = null; dropped = true; }
        if (b > (_b?.LongLength ?? 0)) { _b = null; dropped = true; }
        if (rawBytes > (_raw?.LongLength ?? 0)) { _raw = null; dropped = true; }
        if (dropped) GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        if (a > 0 && _a is null) _a = GC.AllocateUninitializedArray<float>(Checked(a));
        if (b > 0 && _b is null) _b = GC.AllocateUninitializedArray<float>(Checked(b));
        if (rawBytes > 0 && _raw is null) _raw = GC.AllocateUninitializedArray<byte>(Checked(rawBytes));
    }

    public Span<float> A(long n) => _a.AsSpan(0, Checked(n));
    public Span<float> B(long n) => _b.AsSpan(0, Checked(n));
    public Span<byte> Raw(long n) => _raw.AsSpan(0, Checked(n));
    public Span<float> Chunk => _chunk;

    /// <summary>Whether <paramref name="values"/> starts at buffer B (so a consumer may keep reading it in place).</summary>
    public bool IsBufferB(ReadOnlySpan<float> values) =>
        _b is not null && !values.IsEmpty && System.Runtime.CompilerServices.Unsafe.AreSame(
            ref System.Runtime.InteropServices.MemoryMarshal.GetReference(values), ref _b[0]);

    /// <summary>Bytes currently held (for tests of the memory bound).</summary>
    public long HeldBytes => (_a?.LongLength ?? 0) * 4 + (_b?.LongLength ?? 0) * 4 + (_raw?.LongLength ?? 0);

    private static int Checked(long n) => n <= Array.MaxLength
        ? (int)n
        : throw new NotSupportedException(
            $"a single tensor of {n} elements exceeds .NET's array limit ({Array.MaxLength}); this exporter streams tensor by tensor and cannot split one tensor.");
}

/// <summary>The producers a Llama graph needs: copy as stored, transpose [out, in] → [in, out], pack several
/// Linear weights side by side, permute the posterior factor, or emit computed values.</summary>
internal static class Weights
{
    /// <summary>The tensor in its stored layout (e.g. the embedding table [V, D] and RMSNorm weights [D]).
    /// BF16/F16 tensors are read raw and widened chunk by chunk, so the peak is the stored size, not 2× it.</summary>
    public static WeightProducer Copy(ITensorSource source, string name) => sink =>
    {
        var info = source.GetInfo(name);
        var count = info.ElementCount;
        var rawBytes = count * info.ElementSize;
        if (info.DType == ElementType.Float || rawBytes > Array.MaxLength)
        {
            sink.Scratch.Prepare(count, 0, 0);
            var all = sink.Scratch.A(count);
            source.ReadFloat32(name, all);
            sink.Write(all);
            return;
        }
        sink.Scratch.Prepare(0, 0, rawBytes);
        var raw = sink.Scratch.Raw(rawBytes);
        source.ReadRaw(name, raw);
        var chunk = sink.Scratch.Chunk;
        for (long start = 0; start < count; start += chunk.Length)
        {
            var n = (int)Math.Min(chunk.Length, count - start);
            var bytes = raw.Slice((int)(start * info.ElementSize), n * info.ElementSize);
            ElementConversion.ToFloat32(bytes, info.DType, chunk[..n]);
            sink.Write(chunk[..n]);
        }
    };

    /// <summary>A Linear weight W [out, in] as Wᵀ [in, out], the right operand of <c>MatMul(x, Wᵀ)</c> = x Wᵀ.</summary>
    public static WeightProducer Transposed(ITensorSource source, string name) => PackedTransposed(source, [name]);

    /// <summary>Linear weights W_j [out_j, in] side by side as [in, Σ out_j]: x · packed = concat_j(x W_jᵀ) along the
    /// last axis (the packed QKV and gate/up projections).</summary>
    public static WeightProducer PackedTransposed(ITensorSource source, IReadOnlyList<string> names) => sink =>
    {
        var infos = names.Select(source.GetInfo).ToArray();
        var inFeatures = infos[0].Shape[1];
        var total = infos.Sum(i => i.Shape[0]);
        var largest = infos.Max(i => i.ElementCount);
        sink.Scratch.Prepare(largest, inFeatures * total, 0);
        var packed = sink.Scratch.B(inFeatures * total);            // [in, Σ out]
        long column = 0;
        foreach (var info in infos)
        {
            var rows = info.Shape[0];
            var w = sink.Scratch.A(info.ElementCount);               // [out_j, in]
            source.ReadFloat32(info.Name, w);
            TransposeInto(w, (int)rows, (int)inFeatures, packed, (int)total, (int)column);
            column += rows;
        }
        sink.Write(packed);
    };

    /// <summary>The posterior factor F [K, D, R] as [D, K·R], so φ [B, D] · it = [B, K·R] = (F_kᵀ φ)_k.</summary>
    public static WeightProducer PosteriorFactor(ITensorSource source, string name) => sink =>
    {
        var info = source.GetInfo(name);
        int k = (int)info.Shape[0], d = (int)info.Shape[1], r = (int)info.Shape[2];
        sink.Scratch.Prepare(info.ElementCount, info.ElementCount, 0);
        var f = sink.Scratch.A(info.ElementCount);
        source.ReadFloat32(name, f);
        var outp = sink.Scratch.B(info.ElementCount);
        for (var kk = 0; kk < k; kk++)
            for (var dd = 0; dd < d; dd++)
                f.Slice((kk * d + dd) * r, r).CopyTo(outp.Slice((dd * k + kk) * r, r));
        sink.Write(outp);
    };

    /// <summary>Values computed at export time (RoPE caches).</summary>
    public static WeightProducer FromArray(float[] values) => sink => sink.Write(values);

    /// <summary>dst[c, column + r] = src[r, c] for src [rows, cols] and dst [cols, dstCols]; blocked for cache reuse.</summary>
    internal static void TransposeInto(ReadOnlySpan<float> src, int rows, int cols, Span<float> dst, int dstCols, int column)
    {
        const int Block = 32;
        for (var r0 = 0; r0 < rows; r0 += Block)
        {
            var r1 = Math.Min(rows, r0 + Block);
            for (var c0 = 0; c0 < cols; c0 += Block)
            {
                var c1 = Math.Min(cols, c0 + Block);
                for (var r = r0; r < r1; r++)
                {
                    var row = src.Slice(r * cols, cols);
                    for (var c = c0; c < c1; c++) dst[c * dstCols + column + r] = row[c];
                }
            }
        }
    }
}

/// <summary>
/// Symmetric per-output-channel int8 quantization of a MatMul's right operand W [K, M] (ORT's DynamicQuantizeMatMul
/// contract: B int8, b_scale [M], no zero point): scale_j = max_i |W[i, j]| / 127 and q[i, j] = round(W[i, j] / scale_j)
/// in [−127, 127]. <see cref="Values"/> must be streamed before <see cref="Scales"/> (the graph registers them in that
/// order); both come from one read of the float weights.
/// </summary>
internal sealed class Int8Columns(WeightProducer source, long rows, long columns)
{
    private float[]? _scales;

    /// <summary>The quantized values, as integral floats (the sink encodes them as int8).</summary>
    public WeightProducer Values => sink =>
    {
        var capture = new CaptureSink(sink.Scratch, rows * columns);
        source(capture);
        var w = capture.Result;
        var scales = new float[columns];                     // max_i |W[i, j]| first, then the scale
        for (long i = 0; i < rows; i++)
        {
            var row = w.Slice((int)(i * columns), (int)columns);
            for (var j = 0; j < row.Length; j++)
                scales[j] = Math.Max(scales[j], Math.Abs(row[j]));
        }
        for (var j = 0; j < columns; j++)
            scales[j] = scales[j] > 0 ? scales[j] / 127f : 1f;   // an all-zero column quantizes to zeros with any scale
        var chunk = new float[columns];
        for (long i = 0; i < rows; i++)
        {
            var row = w.Slice((int)(i * columns), (int)columns);
            for (var j = 0; j < row.Length; j++)
                chunk[j] = Math.Clamp(MathF.Round(row[j] / scales[j]), -127f, 127f);
            sink.Write(chunk);
        }
        _scales = scales;
    };

    /// <summary>scale_j, one float per output column.</summary>
    public WeightProducer Scales => sink =>
        sink.Write(_scales ?? throw new InvalidOperationException("int8 scales requested before their values were quantized; stream the values first."));

    /// <summary>Collects a producer's output into one span (Transposed/PackedTransposed write the whole matrix at once, in
    /// the shared scratch buffer, which is then used in place; chunked producers are copied into a buffer of their own).</summary>
    private sealed class CaptureSink : WeightSink
    {
        private readonly long _count;
        private float[]? _own;
        private long _written;
        private bool _inPlace;

        [System.Diagnostics.CodeAnalysis.SetsRequiredMembers]
        public CaptureSink(ScratchBuffers scratch, long count)
        {
            Scratch = scratch;
            _count = count;
        }

        public ReadOnlySpan<float> Result =>
            _written != _count
                ? throw new InvalidOperationException($"the weight producer wrote {_written} values, expected {_count}.")
                : _inPlace ? Scratch.B(_count) : _own;

        public override void Write(ReadOnlySpan<float> values)
        {
            if (_written == 0 && values.Length == _count && Scratch.IsBufferB(values))
            {
                _inPlace = true;
                _written = _count;
                return;
            }
            _own ??= GC.AllocateUninitializedArray<float>(checked((int)_count));
            if (_inPlace || _written + values.Length > _count)
                throw new InvalidOperationException($"the weight producer wrote more than the expected {_count} values.");
            values.CopyTo(_own.AsSpan((int)_written));
            _written += values.Length;
        }

        public override void WriteBytes(ReadOnlySpan<byte> bytes) =>
            throw new InvalidOperationException("int8 quantization reads float weights; a byte producer cannot feed it.");
    }
}
