using static TorchSharp.torch;

namespace OnnxReward.Training.Stages;

/// <summary>Conversions between row-major C# arrays and TorchSharp tensors, with shape checks that name the argument.</summary>
internal static class Matrices
{
    public static Tensor ToTensor(float[,] a, ScalarType dtype = ScalarType.Float64)
    {
        int rows = a.GetLength(0), cols = a.GetLength(1);
        var flat = new float[rows * cols];
        Buffer.BlockCopy(a, 0, flat, 0, flat.Length * sizeof(float));
        var t = tensor(flat, [rows, cols]);
        if (dtype == ScalarType.Float32)
            return t;
        using (t)
            return t.to_type(dtype);
    }

    public static Tensor Rows(Tensor a, int[] rows)
    {
        using var index = tensor(rows.Select(r => (long)r).ToArray());
        return a.index_select(0, index);
    }

    public static float[,] ToFloat2D(Tensor t)
    {
        using var f = t.to_type(ScalarType.Float32).contiguous();
        int rows = (int)f.shape[0], cols = (int)f.shape[1];
        var flat = f.data<float>().ToArray();
        var a = new float[rows, cols];
        Buffer.BlockCopy(flat, 0, a, 0, flat.Length * sizeof(float));
        return a;
    }

    public static double[,] ToDouble2D(Tensor t)
    {
        using var f = t.to_type(ScalarType.Float64).contiguous();
        int rows = (int)f.shape[0], cols = (int)f.shape[1];
        var flat = f.data<double>().ToArray();
        var a = new double[rows, cols];
        Buffer.BlockCopy(flat, 0, a, 0, flat.Length * sizeof(double));
        return a;
    }

    public static void CheckRows(string name, int[] rows, int count)
    {
        ArgumentNullException.ThrowIfNull(rows, name);
        foreach (var r in rows)
            if (r < 0 || r >= count)
                throw new ArgumentOutOfRangeException(name, $"Row index {r} is outside [0, {count}): pass row indices of the embedding matrix.");
    }
}
