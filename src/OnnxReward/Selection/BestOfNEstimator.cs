// Shape legend: N = scored samples per prompt, n = best-of-n size (1 … N), P = prompts.
namespace OnnxReward.Selection;

/// <summary>
/// The unbiased best-of-n estimator of Coste et al. (<c>tlc4418/llm_optimization</c>, <c>src/bon/bon_sampling.py</c>; used by
/// the Bayesian-RM paper, docs/armorm.md §5): from N samples per prompt scored by a <b>proxy</b> (the selection key, e.g. the
/// reward model) and by a <b>gold</b> judge (the evaluation), the expected gold score of best-of-n selection by proxy, for every
/// n = 1 … N at once, without resampling:
/// <code>
///   sort the N samples ascending by proxy: gold₍₁₎ … gold₍N₎
///   E[gold of BoN(n)] = Σ_{i=n}^{N} C(i−1, n−1) / C(N, n) · gold₍ᵢ₎
/// </code>
/// C(i−1, n−1)/C(N, n) is the probability that, of a uniformly random n-subset of the N samples, the one ranked i is the
/// proxy-best. Averaging gold₍ᵢ₎ under it is exactly the mean over all C(N, n) subsets of "the gold score of the subset's
/// proxy-argmax" (the tests check this by enumeration).
/// <para><b>Ties in the proxy</b> are ranked as <see cref="BestOfN.ArgMax"/> breaks them: among equal proxy scores the sample
/// with the lowest index counts as the better one (a stable sort by proxy descending, read from the bottom). With that rule the
/// estimator still equals the subset enumeration exactly, ties included.</para>
/// <para><b>Weights</b> are computed by the ratio recurrence <c>w_N = n/N</c>, <c>w_{i−1} = w_i · (i − n)/(i − 1)</c> (no
/// binomial coefficient is formed, so nothing overflows; N = 10⁵ is fine), stopping once they underflow to 0. Relative error
/// O(N·ε).</para>
/// <para><b>Cost</b>: <see cref="Estimate"/> is O(N²) time (all n at once; ≈ 5·10⁵ multiply-adds for N = 1000) and O(N) memory.</para>
/// </summary>
public static class BestOfNEstimator
{
    /// <summary>The weights w_i = C(i−1, n−1)/C(N, n) of the proxy-ranked samples, i = 1 … N (index i − 1; ascending rank).</summary>
    /// <param name="sampleCount">N ≥ 1.</param>
    /// <param name="n">1 ≤ n ≤ N.</param>
    /// <returns>[N] non-negative weights summing to 1; w_i = 0 for i &lt; n.</returns>
    /// <exception cref="ArgumentOutOfRangeException">N &lt; 1 or n outside [1, N].</exception>
    public static double[] RankWeights(int sampleCount, int n)
    {
        if (sampleCount < 1)
            throw new ArgumentOutOfRangeException(nameof(sampleCount), sampleCount,
                $"sampleCount = {sampleCount}: best-of-n needs at least one scored sample per prompt.");
        if (n < 1 || n > sampleCount)
            throw new ArgumentOutOfRangeException(nameof(n), n,
                $"n = {n} is outside 1 … {sampleCount}: best-of-n can only be estimated for n up to the number of samples N = {sampleCount}.");
        var w = new double[sampleCount];
        double wi = (double)n / sampleCount;                     // w_N = C(N−1, n−1)/C(N, n) = n/N
        for (int i = sampleCount; i >= n && wi > 0.0; i--)
        {
            w[i - 1] = wi;
            if (i > n) wi *= (double)(i - n) / (i - 1);          // w_{i−1}/w_i = C(i−2, n−1)/C(i−1, n−1) = (i−n)/(i−1)
        }
        return w;
    }

    /// <summary>E[gold score of best-of-n by proxy] for every n = 1 … N, for one prompt.</summary>
    /// <param name="proxyScores">[N] the selection key of each sample (e.g. the reward model's score, or a penalized score).</param>
    /// <param name="goldScores">[N] the evaluation score of the same samples, same order. Pass the proxy again to get the
    /// proxy's own best-of-n curve.</param>
    /// <returns>[N]: element n − 1 is the estimate for best-of-n. Element 0 is the mean gold score; element N − 1 is the gold
    /// score of the proxy-argmax.</returns>
    /// <exception cref="ArgumentException">no samples, mismatched lengths, or a NaN/infinite score (named by index).</exception>
    public static double[] Estimate(ReadOnlySpan<double> proxyScores, ReadOnlySpan<double> goldScores)
    {
        Check(proxyScores, goldScores, prompt: null);
        double[] gold = GoldByProxyRank(proxyScores, goldScores);   // [N] ascending proxy rank
        int count = gold.Length;
        var result = new double[count];
        for (int n = 1; n <= count; n++)
        {
            // Σ_{i=n}^{N} w_i gold₍ᵢ₎, from the top rank down; the weights shrink monotonically, so stop at underflow
            double wi = (double)n / count, sum = 0.0;
            for (int i = count; i >= n && wi > 0.0; i--)
            {
                sum += wi * gold[i - 1];
                if (i > n) wi *= (double)(i - n) / (i - 1);
            }
            result[n - 1] = sum;
        }
        return result;
    }

    /// <summary>
    /// The best-of-n curve averaged over prompts: <c>mean_p Estimate(proxy_p, gold_p)</c>. Every prompt must have the same
    /// number of samples N (nothing is truncated silently).
    /// </summary>
    /// <param name="proxyScoresPerPrompt">[P][N] proxy scores.</param>
    /// <param name="goldScoresPerPrompt">[P][N] gold scores, same order.</param>
    /// <returns>[N]: element n − 1 is the mean over prompts of E[gold of BoN(n)].</returns>
    /// <exception cref="ArgumentException">no prompt, a different P or N between the inputs, or an invalid score (the message
    /// names the prompt and sample).</exception>
    public static double[] EstimateMean(
        IReadOnlyList<IReadOnlyList<double>> proxyScoresPerPrompt, IReadOnlyList<IReadOnlyList<double>> goldScoresPerPrompt)
    {
        ArgumentNullException.ThrowIfNull(proxyScoresPerPrompt);
        ArgumentNullException.ThrowIfNull(goldScoresPerPrompt);
        if (proxyScoresPerPrompt.Count == 0)
            throw new ArgumentException("proxyScoresPerPrompt is empty: pass the scores of at least one prompt.", nameof(proxyScoresPerPrompt));
        if (goldScoresPerPrompt.Count != proxyScoresPerPrompt.Count)
            throw new ArgumentException(
                $"goldScoresPerPrompt has {goldScoresPerPrompt.Count} prompts but proxyScoresPerPrompt has {proxyScoresPerPrompt.Count}: pass both for the same prompts.",
                nameof(goldScoresPerPrompt));

        int count = proxyScoresPerPrompt[0]?.Count ?? 0;
        double[]? mean = null;
        for (int p = 0; p < proxyScoresPerPrompt.Count; p++)
        {
            double[] proxy = proxyScoresPerPrompt[p]?.ToArray() ?? [];
            double[] gold = goldScoresPerPrompt[p]?.ToArray() ?? [];
            if (proxy.Length != count)
                throw new ArgumentException(
                    $"prompt {p} has {proxy.Length} samples but prompt 0 has {count}: the mean best-of-n curve needs the same N for every prompt; " +
                    "score the same number of samples per prompt, or average Estimate(...) yourself up to the smallest N.",
                    nameof(proxyScoresPerPrompt));
            Check(proxy, gold, p);
            double[] curve = Estimate(proxy, gold);
            mean ??= new double[count];
            for (int n = 0; n < count; n++) mean[n] += curve[n];
        }
        for (int n = 0; n < count; n++) mean![n] /= proxyScoresPerPrompt.Count;
        return mean!;
    }

    /// <summary>The gold scores ordered by ascending proxy rank (rank N = the proxy-best; ties: lower index ranks higher).</summary>
    internal static double[] GoldByProxyRank(ReadOnlySpan<double> proxyScores, ReadOnlySpan<double> goldScores)
    {
        int count = proxyScores.Length;
        double[] proxy = proxyScores.ToArray();
        var order = new int[count];
        for (int i = 0; i < count; i++) order[i] = i;
        // descending by proxy, ties by ascending index (= a stable sort by proxy descending): order[0] is BestOfN.ArgMax
        Array.Sort(order, (a, b) => proxy[a] != proxy[b] ? proxy[b].CompareTo(proxy[a]) : a.CompareTo(b));
        var gold = new double[count];
        for (int r = 0; r < count; r++) gold[count - 1 - r] = goldScores[order[r]];
        return gold;
    }

    static void Check(ReadOnlySpan<double> proxy, ReadOnlySpan<double> gold, int? prompt)
    {
        string where = prompt is null ? "" : $"prompt {prompt}: ";
        if (proxy.IsEmpty)
            throw new ArgumentException($"{where}proxyScores is empty: best-of-n needs at least one scored sample.", "proxyScores");
        if (gold.Length != proxy.Length)
            throw new ArgumentException(
                $"{where}goldScores has {gold.Length} values but proxyScores has {proxy.Length}: score every sample with both, in the same order.",
                "goldScores");
        for (int i = 0; i < proxy.Length; i++)
        {
            if (!double.IsFinite(proxy[i]))
                throw new ArgumentException($"{where}proxyScores[{i}] is {proxy[i]}: scores must be finite; check the model output for sample {i} or leave it out.", "proxyScores");
            if (!double.IsFinite(gold[i]))
                throw new ArgumentException($"{where}goldScores[{i}] is {gold[i]}: scores must be finite; check the judge's score for sample {i} or leave it out.", "goldScores");
        }
    }
}
