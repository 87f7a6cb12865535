using System.Globalization;
using System.Text;
using static TorchSharp.torch;

namespace OnnxReward.Training.Stages;

// Shape legend: N = examples, n = rows with a label for objective k, D = embedding size, K = objectives, R = factor rank.

/// <summary>One objective's stage-1 fit: the chosen α, validation MSE per α of the grid, and the residual variance.</summary>
public sealed record RidgeObjectiveFit(string Name, double Alpha, IReadOnlyList<double> ValidationMse, int TrainRows,
    int ValidationRows, double TrainMse, double EffectiveDof, double ResidualVariance);

/// <summary>
/// Stage 1 result: <see cref="Weight"/> [K, D] (checkpoint key <c>regression_layer.weight</c>) and, when asked for,
/// <see cref="PosteriorFactor"/> [K, D, R] (key <c>posterior.regression_factor</c>, Σ_k = F_k F_kᵀ).
/// </summary>
public sealed record RidgeHeads(float[,] Weight, float[,,]? PosteriorFactor, IReadOnlyList<RidgeObjectiveFit> Fits)
{
    /// <summary>Per objective: α, rows, validation MSE at α, s², as a markdown table.</summary>
    public string Markdown()
    {
        var ci = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine("| objective | α | train rows | validation rows | train MSE | validation MSE | effective dof | s² |");
        sb.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var f in Fits)
            sb.AppendLine(ci, $"| {f.Name} | {f.Alpha:G3} | {f.TrainRows} | {f.ValidationRows} | {f.TrainMse:G4} | {f.ValidationMse[RidgeStage.Alphas.ToList().IndexOf(f.Alpha)]:G4} | {f.EffectiveDof:F1} | {f.ResidualVariance:G4} |");
        return sb.ToString();
    }
}

/// <summary>
/// ArmoRM stage 1 (armorm.md §2.1): per objective k, drop the rows whose label is NaN, fit ridge regression without
/// intercept, w = (XᵀX + αI)⁻¹ Xᵀy, in float64 via Cholesky for every α of <see cref="Alphas"/>, pick α_k by
/// validation MSE (the smallest α on a tie) and keep the fit on the train rows only (validation rows are not re-added,
/// as in <c>stage-1_train.py</c>).
///
/// Posterior (armorm.md §5): the exact Gaussian posterior of the ridge head with prior w ~ N(0, s²/α I) and noise s²
/// is Σ_k = s_k² (XᵀX + α_k I)⁻¹, with s_k² = RSS / (n − df), df = tr(X (XᵀX + αI)⁻¹ Xᵀ) = D − α tr((XᵀX + αI)⁻¹)
/// (ridge's effective degrees of freedom; n − df is floored at 1). It is stored as a factor F_k with Σ_k = F_k F_kᵀ:
/// full rank F_k = s_k L⁻ᵀ (L the Cholesky factor of XᵀX + α_k I, R = D), or, with a rank R &lt; D, the top-R
/// eigen-factor s_k Q_R (Λ_R + α_k)^{-1/2} over the R smallest eigenvalues of XᵀX (the largest posterior variances).
/// </summary>
public static class RidgeStage
{
    /// <summary>The α grid of <c>stage-1_train.py</c>.</summary>
    public static readonly IReadOnlyList<double> Alphas = [1e-4, 1e-3, 1e-2, 1e-1, 1, 10, 100, 1000, 10000];

    /// <summary>Fits every objective.</summary>
    /// <param name="embeddings">X [N, D] (last-token embeddings).</param>
    /// <param name="labels">Y [N, K], NaN = no label.</param>
    /// <param name="trainRows">Rows of the train split.</param>
    /// <param name="validationRows">Rows of the validation split (α selection only).</param>
    /// <param name="names">K objective names.</param>
    /// <param name="posteriorRank">null: no posterior; 0: full rank (R = D); R in [1, D]: truncated eigen-factor.</param>
    /// <exception cref="ArgumentException">Mismatched shapes, or an objective without train or validation labels.</exception>
    public static RidgeHeads Fit(float[,] embeddings, float[,] labels, int[] trainRows, int[] validationRows,
        IReadOnlyList<string> names, int? posteriorRank = 0)
    {
        ArgumentNullException.ThrowIfNull(embeddings);
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(names);
        int n = embeddings.GetLength(0), d = embeddings.GetLength(1), k = labels.GetLength(1);
        if (labels.GetLength(0) != n)
            throw new ArgumentException($"labels has {labels.GetLength(0)} rows but embeddings has {n}: both must hold one row per example.", nameof(labels));
        if (names.Count != k)
            throw new ArgumentException($"{names.Count} names for {k} label columns: pass one name per objective.", nameof(names));
        Matrices.CheckRows(nameof(trainRows), trainRows, n);
        Matrices.CheckRows(nameof(validationRows), validationRows, n);
        if (posteriorRank is < 0 || posteriorRank > d)
            throw new ArgumentOutOfRangeException(nameof(posteriorRank), $"posteriorRank {posteriorRank} must be null, 0 (full) or in [1, {d}].");
        var rank = posteriorRank is null ? 0 : posteriorRank == 0 ? d : posteriorRank.Value;

        using var scope = NewDisposeScope();
        var x = Matrices.ToTensor(embeddings);                                   // [N, D] float64
        var y = Matrices.ToTensor(labels);                                       // [N, K]
        var weight = new float[k, d];
        var factor = posteriorRank is null ? null : new float[k, d, rank];
        var fits = new RidgeObjectiveFit[k];
        var identity = eye(d, dtype: ScalarType.Float64);                           // [D, D]
        for (var j = 0; j < k; j++)
        {
            using var objective = NewDisposeScope();
            var (xt, yt) = Labelled(x, y, trainRows, j);                         // [n, D], [n]
            var (xv, yv) = Labelled(x, y, validationRows, j);
            if (xt.shape[0] == 0 || xv.shape[0] == 0)
                throw new ArgumentException($"Objective '{names[j]}' has {xt.shape[0]} train and {xv.shape[0]} validation labels; " +
                    "ridge needs both (train to fit, validation to choose α). Drop the objective or add labelled rows.", nameof(labels));
            var gram = xt.t().matmul(xt);                                        // XᵀX [D, D]
            var rhs = xt.t().matmul(yt.unsqueeze(1));                            // Xᵀy [D, 1]

            var mse = new double[Alphas.Count];
            Tensor? best = null, bestL = null;
            var bestIndex = -1;
            for (var a = 0; a < Alphas.Count; a++)
            {
                var l = linalg.cholesky(gram + Alphas[a] * identity);                 // L Lᵀ = XᵀX + αI
                var w = cholesky_solve(rhs, l);                                  // [D, 1]
                mse[a] = (xv.matmul(w).squeeze(1) - yv).square().mean().item<double>();
                if (bestIndex < 0 || mse[a] < mse[bestIndex])
                    (best, bestL, bestIndex) = (w, l, a);
            }
            var alpha = Alphas[bestIndex];
            var residual = xt.matmul(best!).squeeze(1) - yt;                     // [n]
            var rss = residual.square().sum().item<double>();
            var lInv = linalg.solve_triangular(bestL!, identity, upper: false);       // L⁻¹ [D, D]
            var df = d - alpha * lInv.square().sum().item<double>();             // tr(H) = D − α‖L⁻¹‖²_F
            var rows = (int)xt.shape[0];
            var s2 = rss / Math.Max(rows - df, 1.0);
            var wj = best!.squeeze(1).to_type(ScalarType.Float32).data<float>().ToArray();
            for (var c = 0; c < d; c++)
                weight[j, c] = wj[c];
            fits[j] = new RidgeObjectiveFit(names[j], alpha, mse, rows, (int)xv.shape[0], rss / rows, df, s2);

            if (factor is null)
                continue;
            Tensor f;                                                            // [D, R], F Fᵀ = Σ
            if (rank == d)
                f = Math.Sqrt(s2) * lInv.t();                                    // s L⁻ᵀ: s² L⁻ᵀL⁻¹ = s² (XᵀX + αI)⁻¹
            else
            {
                var (lambda, q) = linalg.eigh(gram);                             // ascending eigenvalues
                var scale = (lambda[TensorIndex.Slice(0, rank)].clamp_min(0) + alpha).rsqrt() * Math.Sqrt(s2);
                f = q[TensorIndex.Colon, TensorIndex.Slice(0, rank)] * scale.unsqueeze(0);
            }
            var fj = f.to_type(ScalarType.Float32).contiguous().data<float>().ToArray();
            Buffer.BlockCopy(fj, 0, factor, j * d * rank * sizeof(float), fj.Length * sizeof(float));
        }
        return new RidgeHeads(weight, factor, fits);
    }

    private static (Tensor X, Tensor Y) Labelled(Tensor x, Tensor y, int[] rows, int objective)
    {
        var ys = Matrices.Rows(y, rows)[TensorIndex.Colon, objective];           // [rows]
        var keep = ys.isnan().logical_not().nonzero().squeeze(1);                // rows with a label
        return (Matrices.Rows(x, rows).index_select(0, keep), ys.index_select(0, keep));
    }
}
