namespace OnnxReward.Training.Pipeline;

/// <summary>
/// Extracted embeddings on disk (ArmoRM's stage-1/2 "prepare" outputs): a small header (magic, key, N, D) and two
/// float32 matrices [N, D] (reward-position and gating-position hidden states). A different key (options or backbone
/// weights changed) recomputes.
/// </summary>
internal static class EmbeddingCache
{
    private const uint Magic = 0x4F524545; // "EERO"

    public static (float[,] Reward, float[,] Gating) GetOrCompute(string path, string key, Func<(float[,], float[,])> compute)
    {
        if (TryRead(path, key) is { } cached)
            return cached;
        var result = compute();
        var tmp = path + ".tmp";
        using (var w = new BinaryWriter(File.Create(tmp)))
        {
            w.Write(Magic);
            w.Write(key);
            w.Write(result.Item1.GetLength(0));
            w.Write(result.Item1.GetLength(1));
            WriteMatrix(w, result.Item1);
            WriteMatrix(w, result.Item2);
        }
        File.Move(tmp, path, overwrite: true);
        return result;
    }

    private static (float[,], float[,])? TryRead(string path, string key)
    {
        if (!File.Exists(path))
            return null;
        try
        {
            using var r = new BinaryReader(File.OpenRead(path));
            if (r.ReadUInt32() != Magic || r.ReadString() != key)
                return null;
            int n = r.ReadInt32(), d = r.ReadInt32();
            if (n < 0 || d < 0 || (long)n * d * 8 > r.BaseStream.Length)
                return null;
            return (ReadMatrix(r, n, d), ReadMatrix(r, n, d));
        }
        catch (Exception e) when (e is IOException or EndOfStreamException)
        {
            return null;                 // a damaged cache is recomputed, never trusted
        }
    }

    private static void WriteMatrix(BinaryWriter w, float[,] m)
    {
        var bytes = new byte[m.Length * sizeof(float)];
        Buffer.BlockCopy(m, 0, bytes, 0, bytes.Length);
        w.Write(bytes);
    }

    private static float[,] ReadMatrix(BinaryReader r, int n, int d)
    {
        var m = new float[n, d];
        var bytes = r.ReadBytes(n * d * sizeof(float));
        if (bytes.Length != n * d * sizeof(float))
            throw new EndOfStreamException();
        Buffer.BlockCopy(bytes, 0, m, 0, bytes.Length);
        return m;
    }
}
