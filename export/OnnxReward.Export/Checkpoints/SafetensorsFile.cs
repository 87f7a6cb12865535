using System.Text.Json;
using Microsoft.Win32.SafeHandles;

namespace OnnxReward.Export.Checkpoints;

/// <summary>
/// One <c>.safetensors</c> file, read with positioned reads (pread) and validated when opened (after huggingface/safetensors <c>validate</c>):
/// 8-byte little-endian header length, capped and within the file; a JSON header of
/// <c>{name: {dtype, shape, data_offsets: [begin, end]}}</c> (+ optional <c>__metadata__</c>); every tensor's byte range
/// inside the data section, of exactly elements × dtype-size bytes, and no two ranges overlapping. All arithmetic is
/// checked, so hostile headers produce a <see cref="CheckpointException"/>, never an overflow or a huge allocation.
/// Nothing is loaded until a tensor is read, and then only into the caller's buffer: unlike a memory map, positioned
/// reads leave the file's pages in the OS page cache instead of the process's resident set, so exporting a 15 GB
/// checkpoint keeps the working set at one tensor (a mapped file counted every touched page: 2.8 GB RSS for a 2.7 GB
/// checkpoint in ExportScaleTests).
/// </summary>
internal sealed class SafetensorsFile : IDisposable
{
    /// <summary>Header size cap (safetensors uses 100 MB as well).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private readonly SafeFileHandle _file;
    private readonly long _dataStart;
    private readonly Dictionary<string, (TensorInfo Info, long Begin, long End)> _tensors;
    private int _disposed;

    public string Path { get; }
    public long Length { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }
    public IEnumerable<string> Names => _tensors.Keys;

    private SafetensorsFile(string path, long length, SafeFileHandle file,
        long dataStart, Dictionary<string, (TensorInfo, long, long)> tensors, Dictionary<string, string> metadata)
    {
        Path = path;
        Length = length;
        _file = file;
        _dataStart = dataStart;
        _tensors = tensors;
        Metadata = metadata;
    }

    public static SafetensorsFile Open(string path)
    {
        long length;
        try
        {
            length = new FileInfo(path).Length;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CheckpointException($"{path}: cannot read the file ({e.Message}).", path, inner: e);
        }
        if (length < 8)
            throw new CheckpointException(
                $"{path} is {length} bytes, too short for a safetensors file (an 8-byte header length comes first). " +
                "The file is truncated: download or write it again.", path, byteOffset: 0);

        SafeFileHandle? file = null;
        try
        {
            file = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
            var (tensors, metadata, dataStart) = ParseHeader(path, file, length);
            return new SafetensorsFile(path, length, file, dataStart, tensors, metadata);
        }
        catch (Exception e)
        {
            file?.Dispose();
            if (e is CheckpointException)
                throw;
            if (e is IOException or UnauthorizedAccessException)
                throw new CheckpointException($"{path}: cannot read the file ({e.Message}).", path, inner: e);
            throw;
        }
    }

    private static (Dictionary<string, (TensorInfo, long, long)>, Dictionary<string, string>, long) ParseHeader(string path, SafeFileHandle file, long length)
    {
        Span<byte> lengthField = stackalloc byte[8];
        RandomAccess.Read(file, lengthField, 0);
        var declared = BitConverter.ToUInt64(lengthField);             // unsigned: a huge value is not a negative one
        if (declared < 2)
            throw new CheckpointException(
                $"{path}: header length {declared} is too small for a JSON header (at least 2 bytes, '{{}}'). " +
                "The file is corrupt or not a safetensors file: download or write it again.", path, byteOffset: 0);
        if (declared > (ulong)MaxHeaderBytes || declared > (ulong)(length - 8))
            throw new CheckpointException(
                $"{path}: header length {declared} is beyond the file ({length} bytes; at most {Math.Min(length - 8, MaxHeaderBytes)} possible). " +
                "The file is truncated or not a safetensors file: download or write it again.", path, byteOffset: 0);
        var headerLength = (long)declared;
        var dataStart = 8 + headerLength;
        var dataLength = length - dataStart;

        JsonDocument doc;
        try
        {
            var header = new byte[headerLength];               // ≤ 100 MB and ≤ the file: checked above
            if (RandomAccess.Read(file, header, 8) != header.Length)
                throw new CheckpointException($"{path}: short read of the {headerLength}-byte header; the file changed while open.", path, byteOffset: 8);
            doc = JsonDocument.Parse(header, new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw new CheckpointException(
                $"{path}: the {headerLength}-byte header is not valid JSON ({e.Message}). The file is corrupt: download or write it again.",
                path, byteOffset: 8, inner: e);
        }

        using (doc)
        {
            try
            {
                return ParseTensors(path, doc, dataStart, dataLength);
            }
            catch (InvalidOperationException e)        // e.g. a name that is not valid UTF-8
            {
                throw new CheckpointException(
                    $"{path}: the header holds text that is not valid UTF-8 ({e.Message}). The file is corrupt: download or write it again.",
                    path, byteOffset: 8, inner: e);
            }
        }
    }

    private static (Dictionary<string, (TensorInfo, long, long)>, Dictionary<string, string>, long) ParseTensors(
        string path, JsonDocument doc, long dataStart, long dataLength)
    {
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new CheckpointException($"{path}: the header is JSON {doc.RootElement.ValueKind}, expected an object of tensors. The file is corrupt.", path, byteOffset: 8);
            var tensors = new Dictionary<string, (TensorInfo, long, long)>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (prop.Name == "__metadata__")
                {
                    if (prop.Value.ValueKind == JsonValueKind.Object)
                        foreach (var m in prop.Value.EnumerateObject())
                            metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()! : m.Value.GetRawText();
                    continue;
                }
                if (tensors.ContainsKey(prop.Name))
                    throw new CheckpointException($"{path}: tensor '{prop.Name}' appears twice in the header. The file is corrupt.", path, prop.Name);
                tensors[prop.Name] = ParseTensor(path, prop.Name, prop.Value, dataLength);
            }

            // No two byte ranges may overlap (a corrupt or hostile header could alias tensors).
            var ordered = tensors.OrderBy(t => t.Value.Item2).ThenBy(t => t.Value.Item3).ToList();
            for (var i = 1; i < ordered.Count; i++)
            {
                var (prevName, prev) = (ordered[i - 1].Key, ordered[i - 1].Value);
                var (name, cur) = (ordered[i].Key, ordered[i].Value);
                if (cur.Item2 < prev.Item3 && cur.Item3 > cur.Item2 && prev.Item3 > prev.Item2)
                    throw new CheckpointException(
                        $"{path}: tensors '{prevName}' (bytes {prev.Item2}..{prev.Item3}) and '{name}' (bytes {cur.Item2}..{cur.Item3}) overlap. " +
                        "The header is corrupt: write the file again.", path, name, dataStart + cur.Item2);
            }
            return (tensors, metadata, dataStart);
        }
    }

    private static (TensorInfo, long, long) ParseTensor(string path, string name, JsonElement e, long dataLength)
    {
        CheckpointException Bad(string what) => new(
            $"{path}: tensor '{name}' {what}. The header is corrupt: write the file again.", path, name);
        if (e.ValueKind != JsonValueKind.Object)
            throw Bad("is not an object with dtype, shape and data_offsets");
        if (!e.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String)
            throw Bad("has no string 'dtype'");
        var dtypeName = dt.GetString();
        if (!ElementTypes.TryParseSafetensors(dtypeName, out var dtype) || !dtype.IsCheckpointFloat())
            throw new CheckpointException(
                $"{path}: tensor '{name}' has dtype {dtypeName}; only F32, F16 and BF16 are supported. Convert the checkpoint to one of them.",
                path, name);
        if (!e.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array)
            throw Bad("has no 'shape' array");
        var shape = new long[sh.GetArrayLength()];
        if (shape.Length > 8)
            throw Bad($"has {shape.Length} dimensions (at most 8 are plausible)");
        var k = 0;
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out var v) || v < 0)
                throw Bad($"has an invalid shape entry {d.GetRawText()}");
            shape[k++] = v;
        }
        if (!e.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2
            || !off[0].TryGetInt64(out var begin) || !off[1].TryGetInt64(out var end))
            throw Bad("has no 'data_offsets' [begin, end] of two integers");
        var info = new TensorInfo(name, dtype, shape);
        long bytes;
        try
        {
            bytes = checked(info.ElementCount * info.ElementSize);
        }
        catch (OverflowException)
        {
            throw Bad($"has shape {info.ShapeText}, whose size overflows");
        }
        if (begin < 0 || end < begin || end > dataLength)
            throw new CheckpointException(
                $"{path}: tensor '{name}' has data_offsets [{begin}, {end}] outside the data section (0..{dataLength} bytes). " +
                "The file is truncated or its header corrupt: download or write it again.", path, name, begin);
        if (end - begin != bytes)
            throw new CheckpointException(
                $"{path}: tensor '{name}' ({dtype.SafetensorsName()} {info.ShapeText}) needs {bytes} bytes but its data_offsets [{begin}, {end}] span {end - begin}. " +
                "The header is corrupt: write the file again.", path, name, begin);
        return (info, begin, end);
    }

    public bool Contains(string name) => _tensors.ContainsKey(name);

    public TensorInfo GetInfo(string name) =>
        _tensors.TryGetValue(name, out var t) ? t.Info
            : throw new CheckpointException($"{Path}: no tensor '{name}' in this file.", Path, name);

    /// <summary>Copies raw bytes of the tensor, starting at element <paramref name="firstElement"/>, filling
    /// <paramref name="destination"/> (a whole number of elements).</summary>
    public void Read(string name, long firstElement, Span<byte> destination)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        var (info, begin, end) = _tensors.TryGetValue(name, out var t) ? t
            : throw new CheckpointException($"{Path}: no tensor '{name}' in this file.", Path, name);
        var from = checked(begin + firstElement * info.ElementSize);
        if (firstElement < 0 || destination.Length % info.ElementSize != 0 || from + destination.Length > end)
            throw new ArgumentOutOfRangeException(nameof(firstElement), $"bytes {from}..{from + destination.Length} are outside '{name}' ({begin}..{end}).");
        while (destination.Length > 0)
        {
            var n = RandomAccess.Read(_file, destination, _dataStart + from);
            if (n <= 0)
                throw new CheckpointException($"{Path}: the file ended inside tensor '{name}'; it was truncated while open.", Path, name, _dataStart + from);
            destination = destination[n..];
            from += n;
        }
    }

    /// <summary>All raw bytes of a tensor (tests and small tensors).</summary>
    public byte[] Bytes(string name)
    {
        var info = GetInfo(name);
        var bytes = new byte[checked(info.ElementCount * info.ElementSize)];
        Read(name, 0, bytes);
        return bytes;
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        _file.Dispose();
    }
}
