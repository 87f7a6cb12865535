using System.Globalization;
using TorchSharp;
using static TorchSharp.torch;

namespace OnnxReward.Training.Stages;

// Shape legend: N = preference pairs, D = embedding size.

/// <summary>
/// The "BT head alone" baseline with its Laplace posterior (armorm.md §5, cheap variant): reward r = wᵀφ, ŵ = MAP of
/// L2-regularised logistic regression on d_n = φ(x, y⁺) − φ(x, y⁻) (no intercept: BT rewards are shift-invariant),
/// i.e. minimise Σ_n −log σ(wᵀd_n) + λ/2 ‖w‖². <see cref="Precision"/> H = λI + Σ_n π_n(1 − π_n) d_n d_nᵀ with
/// π_n = σ(ŵᵀd_n); predictive μ = ŵᵀφ, σ² = φᵀH⁻¹φ, and for two candidates of one prompt Var(r_a − r_b) =
/// (φ_a − φ_b)ᵀH⁻¹(φ_a − φ_b). <see cref="CovarianceFactor"/> F = L⁻ᵀ (H = L Lᵀ) gives H⁻¹ = F Fᵀ, the same factor
/// layout as the ridge posterior.
/// </summary>
public sealed record BradleyTerryHead(double[] Weight, double Lambda, double[,] Precision, double[,] CovarianceFactor,
    int Iterations, double GradientNorm, IReadOnlyList<(double Lambda, double ValidationNll)> LambdaSearch)
{
    /// <summary>μ = ŵᵀφ.</summary>
    public double Reward(ReadOnlySpan<float> embedding)
    {
        Check(embedding.Length);
        double s = 0;
        for (var i = 0; i < Weight.Length; i++)
            s += Weight[i] * embedding[i];
        return s;
    }

    /// <summary>σ² = vᵀH⁻¹v = ‖Fᵀv‖² for a vector v (an embedding, or a difference of two).</summary>
    public double Variance(ReadOnlySpan<float> v)
    {
        Check(v.Length);
        int d = Weight.Length;
        double total = 0;
        for (var r = 0; r < d; r++)
        {
            double s = 0;
            for (var i = 0; i < d; i++)
                s += CovarianceFactor[i, r] * v[i];
            total += s * s;
        }
        return total;
    }

    private void Check(int length)
    {
        if (length != Weight.Length)
            throw new ArgumentException($"Vector of length {length}, the head expects D = {Weight.Length}.");
    }
}

/// <summary>Fits <see cref="BradleyTerryHead"/> by Newton's method (IRLS) in float64.</summary>
public static class BradleyTerryStage
{
    /// <summary>λ grid searched by validation negative log-likelihood when more than one λ is given.</summary>
    public static readonly IReadOnlyList<double> DefaultLambdas = [1e-2, 1e-1, 1, 10, 100, 1000];

    /// <param name="chosen">φ_c [N, D].</param>
    /// <param name="rejected">φ_r [N, D].</param>
    /// <param name="trainRows">Pairs to fit on.</param>
    /// <param name="validationRows">Pairs to choose λ by mean NLL (needed when <paramref name="lambdas"/> has more than one value).</param>
    /// <param name="lambdas">Prior precisions to try; default <see cref="DefaultLambdas"/>.</param>
    /// <param name="tolerance">Newton stops when the gradient's max-norm is below this.</param>
    public static BradleyTerryHead Fit(float[,] chosen, float[,] rejected, int[] trainRows, int[] validationRows,
        IReadOnlyList<double>? lambdas = null, double tolerance = 1e-9)
    {
        ArgumentNullException.ThrowIfNull(chosen);
        ArgumentNullException.ThrowIfNull(rejected);
        lambdas ??= DefaultLambdas;
        int n = chosen.GetLength(0), d = chosen.GetLength(1);
        if (rejected.GetLength(0) != n || rejected.GetLength(1) != d)
            throw new ArgumentException($"chosen is [{n}, {d}] but rejected is [{rejected.GetLength(0)}, {rejected.GetLength(1)}]: one row per pair, same D.", nameof(rejected));
        Matrices.CheckRows(nameof(trainRows), trainRows, n);
        Matrices.CheckRows(nameof(validationRows), validationRows, n);
        if (trainRows.Length == 0)
            throw new ArgumentException("No training pairs.", nameof(trainRows));
        if (lambdas.Count == 0 || lambdas.Any(l => !(l > 0) || !double.IsFinite(l)))
            throw new ArgumentException("lambdas must be finite and > 0 (the prior precision makes H positive definite).", nameof(lambdas));
        if (lambdas.Count > 1 && validationRows.Length == 0)
            throw new ArgumentException("Several λ need validation pairs to choose between them; pass validationRows or one λ.", nameof(validationRows));

        using var scope = NewDisposeScope();
        var diff = Matrices.ToTensor(chosen) - Matrices.ToTensor(rejected);                     // d_n [N, D] float64
        var dt = Matrices.Rows(diff, trainRows);
        var dv = Matrices.Rows(diff, validationRows);
        var search = new List<(double, double)>();
        (double Lambda, double Nll, Tensor W, Tensor L, int It, double G)? best = null;
        foreach (var lambda in lambdas)
        {
            var (w, l, iterations, gradient) = Newton(dt, lambda, tolerance);
            var nll = validationRows.Length == 0 ? double.NaN : -nn.functional.logsigmoid(dv.matmul(w)).mean().item<double>();
            search.Add((lambda, nll));
            if (best is null || nll < best.Value.Nll)
                best = (lambda, nll, w, l, iterations, gradient);
        }
        var b = best!.Value;
        var eye = torch.eye(d, dtype: ScalarType.Float64);
        var factor = linalg.solve_triangular(b.L, eye, upper: false).t();                       // F = L⁻ᵀ [D, D]
        var h = b.L.matmul(b.L.t());                                                             // H = L Lᵀ
        return new BradleyTerryHead(b.W.data<double>().ToArray(), b.Lambda, Matrices.ToDouble2D(h), Matrices.ToDouble2D(factor),
            b.It, b.G, search);
    }

    /// <summary>Newton / IRLS: w ← w − H⁻¹∇, ∇ = λw − Σ(1 − π)d, H = λI + Σ π(1 − π) d dᵀ. The loss is strictly convex,
    /// so full steps from w = 0 converge (a halving line search guards the first steps). Returns ŵ and chol(H(ŵ)).</summary>
    private static (Tensor W, Tensor L, int Iterations, double Gradient) Newton(Tensor d, double lambda, double tolerance)
    {
        var dim = d.shape[1];
        var eye = torch.eye(dim, dtype: ScalarType.Float64);
        var w = zeros(dim, dtype: ScalarType.Float64);
        double Loss(Tensor v) => -nn.functional.logsigmoid(d.matmul(v)).sum().item<double>() + 0.5 * lambda * v.dot(v).item<double>();
        for (var iteration = 1; iteration <= 100; iteration++)
        {
            using var step = NewDisposeScope();                                                  // one D×D Hessian alive at a time
            var pi = d.matmul(w).sigmoid();                                                      // π [N]
            var gradient = lambda * w - d.t().matmul(1 - pi);                                    // ∇ [D]
            var hessian = lambda * eye + d.t().matmul(d * (pi * (1 - pi)).unsqueeze(1));        // H [D, D]
            var l = linalg.cholesky(hessian);
            var g = gradient.abs().max().item<double>();
            if (g < tolerance)
                return (w.MoveToOuterDisposeScope(), l.MoveToOuterDisposeScope(), iteration - 1, g);
            var direction = cholesky_solve(gradient.unsqueeze(1), l).squeeze(1);                 // H⁻¹∇
            var current = Loss(w);
            var t = 1.0;
            while (Loss(w - t * direction) > current && t > 1e-8)
                t /= 2;
            w = (w - t * direction).MoveToOuterDisposeScope();
        }
        throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
            $"Newton's method for the BT head did not converge in 100 iterations at λ = {lambda}: the embeddings may hold NaN/Inf, or λ is too small for separable data; raise λ."));
    }
}
