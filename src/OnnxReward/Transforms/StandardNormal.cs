namespace OnnxReward.Transforms;

/// <summary>The standard normal distribution's quantile function, for the normal-fit reference reward of the LSC transform.</summary>
public static class StandardNormal
{
    /// <summary>
    /// <c>Φ⁻¹(p)</c>, the z with <c>P(Z ≤ z) = p</c> for Z ~ N(0, 1), by Wichura's algorithm AS 241 (PPND16; Applied Statistics
    /// 37(3):477–484, 1988), relative error about 1e−16: the algorithm of R's <c>qnorm</c> and of Python's
    /// <c>statistics.NormalDist.inv_cdf</c>, which it matches bit for bit (<c>Φ⁻¹(0.85) = 1.0364333894937894</c>, the correctly
    /// rounded value). scipy's <c>norm.ppf</c> (Cephes <c>ndtri</c>) prints <c>1.0364333894937898</c>, 2 ulps away; the
    /// difference in a reference reward μ + zσ is ≈ 4e−16·σ.
    /// </summary>
    /// <param name="p">A probability in [0, 1]; 0 gives −∞ and 1 gives +∞.</param>
    /// <exception cref="ArgumentOutOfRangeException">p is NaN or outside [0, 1].</exception>
    public static double InverseCdf(double p)
    {
        if (!(p >= 0.0 && p <= 1.0))
            throw new ArgumentOutOfRangeException(nameof(p), p,
                $"p = {p} is not a probability: pass a value in [0, 1] (e.g. 0.85 for the 85th percentile).");
        if (p == 0.0) return double.NegativeInfinity;
        if (p == 1.0) return double.PositiveInfinity;

        double q = p - 0.5;
        if (Math.Abs(q) <= 0.425)
        {
            // central region, 0.075 ≤ p ≤ 0.925: z = q · A(r) / B(r), r = 0.180625 − q²
            double r = 0.180625 - q * q;
            return q * (((((((2.5090809287301226727e+3 * r + 3.3430575583588128105e+4) * r + 6.7265770927008700853e+4) * r
                            + 4.5921953931549871457e+4) * r + 1.3731693765509461125e+4) * r + 1.9715909503065514427e+3) * r
                            + 1.3314166789178437745e+2) * r + 3.3871328727963666080e+0)
                     / (((((((5.2264952788528545610e+3 * r + 2.8729085735721942674e+4) * r + 3.9307895800092710610e+4) * r
                            + 2.1213794301586595867e+4) * r + 5.3941960214247511077e+3) * r + 6.8718700749205790830e+2) * r
                            + 4.2313330701600911252e+1) * r + 1.0);
        }

        // tails: r = sqrt(−log(min(p, 1 − p)))
        double t = Math.Sqrt(-Math.Log(q < 0.0 ? p : 1.0 - p));
        double z;
        if (t <= 5.0)
        {
            t -= 1.6;
            z = (((((((7.74545014278341407640e-4 * t + 2.27238449892691845833e-2) * t + 2.41780725177450611770e-1) * t
                    + 1.27045825245236838258e+0) * t + 3.64784832476320460504e+0) * t + 5.76949722146069140550e+0) * t
                    + 4.63033784615654529590e+0) * t + 1.42343711074968357734e+0)
              / (((((((1.05075007164441684324e-9 * t + 5.47593808499534494600e-4) * t + 1.51986665636164571966e-2) * t
                    + 1.48103976427480074590e-1) * t + 6.89767334985100004550e-1) * t + 1.67638483018380384940e+0) * t
                    + 2.05319162663775882187e+0) * t + 1.0);
        }
        else
        {
            t -= 5.0;
            z = (((((((2.01033439929228813265e-7 * t + 2.71155556874348757815e-5) * t + 1.24266094738807843860e-3) * t
                    + 2.65321895265761230930e-2) * t + 2.96560571828504891230e-1) * t + 1.78482653991729133580e+0) * t
                    + 5.46378491116411436990e+0) * t + 6.65790464350110377720e+0)
              / (((((((2.04426310338993978564e-15 * t + 1.42151175831644588870e-7) * t + 1.84631831751005468180e-5) * t
                    + 7.86869131145613259100e-4) * t + 1.48753612908506148525e-2) * t + 1.36929880922735805310e-1) * t
                    + 5.99832206555887937690e-1) * t + 1.0);
        }
        return q < 0.0 ? -z : z;
    }
}
