namespace OnnxReward.Transforms;

/// <summary>
/// The numerically stable log-sigmoid, <c>log σ(x) = −softplus(−x) = min(x, 0) − log1p(exp(−|x|))</c>: the building block of
/// the LSC transform <c>u = log σ(r − r_ref)</c> (Wang et al. 2024, docs/armorm.md §4).
/// </summary>
/// <remarks>
/// <para>The naive <c>Math.Log(1 / (1 + Math.Exp(-x)))</c> overflows for x ≲ −710 (exp(−x) = ∞ gives log 0 = −∞ instead
/// of ≈ x) and loses every digit of <c>−e^{−x}</c> for x ≳ 37 (1 + e^{−x} rounds to 1). The form used here never
/// overflows: <c>exp(−|x|) ∈ [0, 1]</c>, so <c>log1p</c> sees an argument in [0, 1], and the result is accurate to a few
/// ulps over the whole double range (the tests compare it with closed forms).</para>
/// <para>Special values, following <see cref="Math.Log(double)"/>: <c>log σ(+∞) = 0</c>, <c>log σ(−∞) = −∞</c>,
/// <c>log σ(NaN) = NaN</c>. This primitive does not throw; the reward-level APIs (<see cref="LogSigmoidCentered"/>,
/// <see cref="RewardAggregation"/>) reject NaN rewards with an <see cref="ArgumentException"/>.</para>
/// </remarks>
public static class LogSigmoid
{
    /// <summary><c>log σ(x) = log(1 / (1 + e^{−x}))</c>, always ≤ 0.</summary>
    public static double Evaluate(double x) => Math.Min(x, 0.0) - Log1P(Math.Exp(-Math.Abs(x)));

    /// <summary>Element-wise <see cref="Evaluate(double)"/>: <c>destination[i] = log σ(x[i])</c>.</summary>
    /// <exception cref="ArgumentException">destination is shorter than x.</exception>
    public static void Evaluate(ReadOnlySpan<double> x, Span<double> destination)
    {
        if (destination.Length < x.Length)
            throw new ArgumentException(
                $"destination has {destination.Length} elements but x has {x.Length}: pass a destination at least as long as x.",
                nameof(destination));
        for (int i = 0; i < x.Length; i++) destination[i] = Evaluate(x[i]);
    }

    /// <summary>
    /// <c>log(1 + t)</c> accurate for small t. .NET's <c>double.LogP1</c> computes <c>Math.Log(1 + t)</c>, which returns 0
    /// for t &lt; 2^−53 and loses the low digits of every small t; this uses Goldberg's correction
    /// (D. Goldberg, "What every computer scientist should know about floating-point arithmetic", Thm. 4):
    /// <c>log1p(t) = t · log(u) / (u − 1)</c> with <c>u = 1 ⊕ t</c>, exact to a few ulps when Math.Log is.
    /// Callers pass t ∈ [0, 1].
    /// </summary>
    internal static double Log1P(double t)
    {
        double u = 1.0 + t;
        if (u == 1.0) return t;                 // t < 2^−53: log1p(t) = t − t²/2 + … rounds to t
        return Math.Log(u) * (t / (u - 1.0));
    }
}
