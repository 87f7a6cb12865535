using System.Runtime.InteropServices;
using System.Security.Cryptography;
using OnnxReward.Export.Graph;
using OnnxReward.Export.Onnx;

namespace OnnxReward.Export.Exporting;

/// <summary>
/// Streams initializers one after another into the ONNX external data file (<c>model.onnx.data</c>) and returns the
/// TensorProtos that point at them (data_location = EXTERNAL, keys location/offset/length). Each tensor starts on a
/// 4096-byte boundary so ONNX Runtime can memory-map it. Only one tensor's buffers are alive at a time.
/// </summary>
internal sealed class ExternalDataWriter : WeightSink, IDisposable
{
    public const int Alignment = 4096;
    private readonly FileStream _stream;
    private readonly IncrementalHash _sha256 = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);   // recorded in the manifest
    private readonly string _location;
    private readonly byte[] _encoded = new byte[ScratchBuffers.ChunkElements * 4];
    private ElementType _type;
    private long _expected, _written;
    private string _current = "";

    public ExternalDataWriter(string path)
    {
        _location = Path.GetFileName(path);
        _stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20);
    }

    /// <summary>Bytes written so far (including alignment padding).</summary>
    public long Length => _stream.Position;

    /// <summary>Runs the initializer's producer into the file; checks it wrote exactly the declared element count.</summary>
    public TensorProto Write(StreamedInitializer initializer)
    {
        var pad = (int)((Alignment - _stream.Position % Alignment) % Alignment);
        if (pad > 0) Append(new byte[pad]);
        var offset = _stream.Position;
        _type = initializer.Type;
        _expected = initializer.ElementCount;
        _written = 0;
        _current = initializer.Name;
        initializer.Producer(this);
        if (_written != _expected)
            throw new InvalidOperationException(
                $"initializer {initializer.Name}: the producer wrote {_written} values, the graph declares {_expected} ([{string.Join(", ", initializer.Dims)}]).");
        var length = _stream.Position - offset;
        var proto = new TensorProto
        {
            Name = initializer.Name,
            DataType = initializer.Type.OnnxCode(),
            DataLocation = TensorProto.Types.DataLocation.External,
        };
        proto.Dims.AddRange(initializer.Dims);
        proto.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = _location });
        proto.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = offset.ToString() });
        proto.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = length.ToString() });
        return proto;
    }

    public override void Write(ReadOnlySpan<float> values)
    {
        if (_written + values.Length > _expected)
            throw new InvalidOperationException($"initializer {_current}: the producer wrote more than the declared {_expected} values.");
        _written += values.Length;
        if (_type == ElementType.Float)
        {
            Append(MemoryMarshal.AsBytes(values));
            return;
        }
        var size = _type.Size();
        for (var start = 0; start < values.Length; start += ScratchBuffers.ChunkElements)
        {
            var chunk = values.Slice(start, Math.Min(ScratchBuffers.ChunkElements, values.Length - start));
            ElementConversion.FromFloat32(chunk, _type, _encoded);
            Append(_encoded.AsSpan(0, chunk.Length * size));
        }
    }

    public override void WriteBytes(ReadOnlySpan<byte> bytes)
    {
        if (_type is not (ElementType.UInt8 or ElementType.Int8))
            throw new InvalidOperationException($"initializer {_current} is {_type}; only one-byte initializers take raw bytes.");
        if (_written + bytes.Length > _expected)
            throw new InvalidOperationException($"initializer {_current}: the producer wrote more than the declared {_expected} values.");
        _written += bytes.Length;
        Append(bytes);
    }

    private void Append(ReadOnlySpan<byte> bytes)
    {
        _stream.Write(bytes);
        _sha256.AppendData(bytes);
    }

    /// <summary>Flushes the file and returns its length and SHA-256 (hashed as written: no second pass over the weights).</summary>
    public (long Bytes, string Sha256) Complete()
    {
        _stream.Flush();
        return (_stream.Length, Convert.ToHexStringLower(_sha256.GetHashAndReset()));
    }

    public void Dispose()
    {
        _stream.Dispose();
        _sha256.Dispose();
    }
}
