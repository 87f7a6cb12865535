namespace OnnxReward.Training.Tests.Stages;

/// <summary>Plain double-precision linear algebra for tests: an independent path from the TorchSharp stages
/// (Gaussian elimination with partial pivoting instead of Cholesky).</summary>
internal static class Dense
{
    public static double[] Solve(double[,] a, double[] b)
    {
        var n = b.Length;
        var m = (double[,])a.Clone();
        var x = (double[])b.Clone();
        for (var c = 0; c < n; c++)
        {
            var p = c;
            for (var r = c + 1; r < n; r++)
                if (Math.Abs(m[r, c]) > Math.Abs(m[p, c]))
                    p = r;
            for (var j = 0; j < n; j++)
                (m[c, j], m[p, j]) = (m[p, j], m[c, j]);
            (x[c], x[p]) = (x[p], x[c]);
            for (var r = c + 1; r < n; r++)
            {
                var f = m[r, c] / m[c, c];
                for (var j = c; j < n; j++)
                    m[r, j] -= f * m[c, j];
                x[r] -= f * x[c];
            }
        }
        for (var r = n - 1; r >= 0; r--)
        {
            var s = x[r];
            for (var j = r + 1; j < n; j++)
                s -= m[r, j] * x[j];
            x[r] = s / m[r, r];
        }
        return x;
    }

    public static double[,] Inverse(double[,] a)
    {
        var n = a.GetLength(0);
        var inv = new double[n, n];
        for (var c = 0; c < n; c++)
        {
            var e = new double[n];
            e[c] = 1;
            var col = Solve(a, e);
            for (var r = 0; r < n; r++)
                inv[r, c] = col[r];
        }
        return inv;
    }

    /// <summary>(XᵀX + αI, Xᵀy) over the given rows.</summary>
    public static (double[,] A, double[] B) Normal(float[,] x, double[] y, int[] rows, double alpha)
    {
        var d = x.GetLength(1);
        var a = new double[d, d];
        var b = new double[d];
        foreach (var n in rows)
            for (var i = 0; i < d; i++)
            {
                b[i] += x[n, i] * y[n];
                for (var j = 0; j < d; j++)
                    a[i, j] += (double)x[n, i] * x[n, j];
            }
        for (var i = 0; i < d; i++)
            a[i, i] += alpha;
        return (a, b);
    }

    public static double Dot(float[,] x, int row, double[] w)
    {
        double s = 0;
        for (var i = 0; i < w.Length; i++)
            s += x[row, i] * w[i];
        return s;
    }

    public static double MaxRelDiff(double expected, double actual, double scale) => Math.Abs(expected - actual) / scale;

    /// <summary>Standard normal draws from a seeded System.Random (Box–Muller), for synthetic problems.</summary>
    public static double Normal01(Random random) =>
        Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
}
