namespace OnnxReward.Batching;

/// <summary>One planned batch: which requests go in it (indices into the caller's list) and the padded length.</summary>
public readonly record struct BatchPlan(int[] Items, int PaddedLength)
{
    /// <summary>Padded cost of the batch: rows × padded length (what the graph computes over).</summary>
    public long PaddedTokens => (long)Items.Length * PaddedLength;
}

/// <summary>
/// Packs requests into right-padded batches under a token budget (TEI's queue.rs idea): sort by length, longest first,
/// and close a batch when one more row would push rows × padded length over the budget or the row cap, or would make
/// the batch's padding exceed <c>maxPaddingWaste</c> of its padded tokens. Sorting keeps rows of similar length
/// together; the waste bound stops a long-tailed length distribution from padding short rows up to a long one (a few
/// more, smaller batches instead: on the CPU a batch costs about its padded tokens, so that is a net win, and on a GPU
/// the budget still keeps batches wide). A row longer than the budget runs alone.
/// Because attention is causal and padding is on the right, the batch a request lands in never changes its score.
/// </summary>
public static class TokenBudgetBatcher
{
    public static List<BatchPlan> Plan(ReadOnlySpan<int> lengths, int maxBatchTokens, int maxBatchSize, double maxPaddingWaste = 1.0)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatchTokens, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatchSize, 1);
        if (!(maxPaddingWaste is >= 0 and <= 1))
            throw new ArgumentOutOfRangeException(nameof(maxPaddingWaste), maxPaddingWaste, "the padding bound is a fraction between 0 and 1.");
        var order = new int[lengths.Length];
        for (var i = 0; i < order.Length; i++)
        {
            if (lengths[i] < 1)
                throw new ArgumentException($"request {i} has {lengths[i]} tokens; every request needs at least one.", nameof(lengths));
            order[i] = i;
        }

        // Longest first; ties by index so the plan is deterministic.
        var keys = lengths.ToArray();
        Array.Sort(order, (a, b) => keys[a] != keys[b] ? keys[b].CompareTo(keys[a]) : a.CompareTo(b));

        var plans = new List<BatchPlan>();
        var start = 0;
        while (start < order.Length)
        {
            var padded = keys[order[start]];                  // the first row is the longest of its batch
            var rows = 1;
            long real = padded;
            while (start + rows < order.Length && rows < maxBatchSize && (long)(rows + 1) * padded <= maxBatchTokens)
            {
                // Rows arrive shortest-last, so the batch's waste only grows: stop at the first row over the bound.
                var next = keys[order[start + rows]];
                if (1.0 - (double)(real + next) / ((rows + 1L) * padded) > maxPaddingWaste)
                    break;
                real += next;
                rows++;
            }
            plans.Add(new BatchPlan(order.AsSpan(start, rows).ToArray(), padded));
            start += rows;
        }
        return plans;
    }

    /// <summary>Fixed-size batches in input order (the naive baseline the benchmarks compare against).</summary>
    public static List<BatchPlan> PlanFixed(ReadOnlySpan<int> lengths, int batchSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        var plans = new List<BatchPlan>();
        for (var start = 0; start < lengths.Length; start += batchSize)
        {
            var n = Math.Min(batchSize, lengths.Length - start);
            var items = new int[n];
            var padded = 0;
            for (var j = 0; j < n; j++)
            {
                items[j] = start + j;
                padded = Math.Max(padded, lengths[start + j]);
            }
            plans.Add(new BatchPlan(items, padded));
        }
        return plans;
    }

    /// <summary>Fraction of computed positions that are padding: 1 − real / (Σ rows × padded length).</summary>
    public static double PaddingWaste(IReadOnlyList<BatchPlan> plans, ReadOnlySpan<int> lengths)
    {
        long real = 0, padded = 0;
        foreach (var p in plans)
        {
            padded += p.PaddedTokens;
            foreach (var i in p.Items)
                real += lengths[i];
        }
        return padded == 0 ? 0 : 1.0 - (double)real / padded;
    }
}
