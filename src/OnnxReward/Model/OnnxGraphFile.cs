using System.Text;

namespace OnnxReward.Model;

/// <summary>
/// The few facts of a <c>model.onnx</c> that <see cref="RewardModelManifest.Load"/> checks before ONNX Runtime sees
/// the graph (issue 16 item 12): each initializer's name, dims and external-data range. Read with a minimal protobuf
/// wire-format reader (ModelProto.graph = 7, GraphProto.initializer = 5; TensorProto dims = 1, name = 8,
/// external_data = 13 of StringStringEntryProto key = 1 / value = 2), so the library needs no protobuf dependency.
/// Anything that does not parse is reported as not a graph; ONNX Runtime would reject it as well.
/// </summary>
internal sealed class OnnxGraphFile
{
    public sealed record Initializer(string Name, long[] Dims, string? Location, long Offset, long Length);

    public required IReadOnlyList<Initializer> Initializers { get; init; }

    /// <summary>Parses the graph's initializers; null when the bytes are not a ModelProto with a graph.</summary>
    public static OnnxGraphFile? Parse(ReadOnlySpan<byte> model)
    {
        try
        {
            var initializers = new List<Initializer>();
            var r = new Reader(model);
            var sawGraph = false;
            while (!r.End)
            {
                var (field, wire) = r.Tag();
                if (field == 7 && wire == 2)
                {
                    sawGraph = true;
                    var g = new Reader(r.Bytes());
                    while (!g.End)
                    {
                        var (gf, gw) = g.Tag();
                        if (gf == 5 && gw == 2) initializers.Add(ParseTensor(g.Bytes()));
                        else g.Skip(gw);
                    }
                }
                else r.Skip(wire);
            }
            return sawGraph ? new OnnxGraphFile { Initializers = initializers } : null;
        }
        catch (FormatException)
        {
            return null;
        }
    }

    private static Initializer ParseTensor(ReadOnlySpan<byte> bytes)
    {
        var r = new Reader(bytes);
        var dims = new List<long>();
        string name = "";
        string? location = null;
        long offset = 0, length = -1;
        while (!r.End)
        {
            var (f, w) = r.Tag();
            if (f == 1 && w == 0) dims.Add((long)r.Varint());
            else if (f == 1 && w == 2)
            {
                var packed = new Reader(r.Bytes());
                while (!packed.End) dims.Add((long)packed.Varint());
            }
            else if (f == 8 && w == 2) name = Encoding.UTF8.GetString(r.Bytes());
            else if (f == 13 && w == 2)
            {
                var e = new Reader(r.Bytes());
                string? key = null, value = null;
                while (!e.End)
                {
                    var (ef, ew) = e.Tag();
                    if (ef == 1 && ew == 2) key = Encoding.UTF8.GetString(e.Bytes());
                    else if (ef == 2 && ew == 2) value = Encoding.UTF8.GetString(e.Bytes());
                    else e.Skip(ew);
                }
                switch (key)
                {
                    case "location": location = value; break;
                    case "offset": offset = long.TryParse(value, out var o) ? o : throw new FormatException("offset"); break;
                    case "length": length = long.TryParse(value, out var l) ? l : throw new FormatException("length"); break;
                }
            }
            else r.Skip(w);
        }
        return new Initializer(name, [.. dims], location, offset, length);
    }

    private ref struct Reader(ReadOnlySpan<byte> data)
    {
        private readonly ReadOnlySpan<byte> _data = data;
        private int _pos;

        public readonly bool End => _pos >= _data.Length;

        public (int Field, int Wire) Tag()
        {
            var tag = Varint();
            return ((int)(tag >> 3), (int)(tag & 7));
        }

        public ulong Varint()
        {
            ulong result = 0;
            for (var shift = 0; shift < 64; shift += 7)
            {
                if (_pos >= _data.Length) throw new FormatException("truncated varint");
                var b = _data[_pos++];
                result |= (ulong)(b & 0x7f) << shift;
                if (b < 0x80) return result;
            }
            throw new FormatException("varint too long");
        }

        public ReadOnlySpan<byte> Bytes()
        {
            var n = Varint();
            if (n > (ulong)(_data.Length - _pos)) throw new FormatException("length beyond the message");
            var s = _data.Slice(_pos, (int)n);
            _pos += (int)n;
            return s;
        }

        public void Skip(int wire)
        {
            switch (wire)
            {
                case 0: Varint(); break;
                case 1: Advance(8); break;
                case 2: Bytes(); break;
                case 5: Advance(4); break;
                default: throw new FormatException($"wire type {wire}");
            }
        }

        private void Advance(int n)
        {
            if (_data.Length - _pos < n) throw new FormatException("truncated field");
            _pos += n;
        }
    }
}
