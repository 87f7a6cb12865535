using OnnxReward.Batching;

namespace OnnxReward.Tests.Batching;

public class TokenBudgetBatcherTests
{
    private static int[] RandomLengths(int n, int seed)
    {
        // Roughly the hh-rlhf shape: many short, a long tail.
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => 8 + (int)(-Math.Log(1 - rng.NextDouble()) * 120)).ToArray();
    }

    [TestCase(1, 8192, 64)]
    [TestCase(257, 8192, 64)]
    [TestCase(1000, 2048, 16)]
    [TestCase(1000, 100, 8)]      // budget below many lengths: long rows run alone
    public void EveryRequestIsPlannedExactlyOnceWithinTheBudget(int n, int budget, int maxRows)
    {
        var lengths = RandomLengths(n, seed: n);
        var plans = TokenBudgetBatcher.Plan(lengths, budget, maxRows);

        var seen = plans.SelectMany(p => p.Items).OrderBy(i => i).ToArray();
        Assert.That(seen, Is.EqualTo(Enumerable.Range(0, n).ToArray()), "each request in exactly one batch");
        foreach (var p in plans)
        {
            Assert.That(p.PaddedLength, Is.EqualTo(p.Items.Max(i => lengths[i])), "padded length is the batch's longest row");
            Assert.That(p.Items, Has.Length.LessThanOrEqualTo(maxRows));
            if (p.Items.Length > 1)
                Assert.That(p.PaddedTokens, Is.LessThanOrEqualTo(budget), "a multi-row batch stays within the token budget");
        }
    }

    [Test]
    public void LengthSortedBatchesWasteLittlePaddingComparedWithFixedBatches()
    {
        var lengths = RandomLengths(2000, seed: 7);
        var sorted = TokenBudgetBatcher.Plan(lengths, 8192, 64);
        var fixedPlans = TokenBudgetBatcher.PlanFixed(lengths, 16);
        var sortedWaste = TokenBudgetBatcher.PaddingWaste(sorted, lengths);
        var fixedWaste = TokenBudgetBatcher.PaddingWaste(fixedPlans, lengths);
        TestContext.Out.WriteLine($"padding waste: sorted {sortedWaste:P1}, fixed-16 {fixedWaste:P1}");
        // design.md target: ≤ 10 % padding waste for token-budget batching on hh-rlhf-like lengths.
        Assert.That(sortedWaste, Is.LessThan(0.10));
        Assert.That(fixedWaste, Is.GreaterThan(sortedWaste));
    }

    [TestCase(0.10)]
    [TestCase(0.05)]
    [TestCase(0.0)]
    public void EveryMultiRowBatchStaysWithinThePaddingBound(double bound)
    {
        // 128 long-tailed lengths under a 4,096 budget: without the bound the first batches pad short rows to long ones.
        var lengths = RandomLengths(128, seed: 11);
        var unbounded = TokenBudgetBatcher.Plan(lengths, 4096, 64);
        var plans = TokenBudgetBatcher.Plan(lengths, 4096, 64, bound);
        Assert.That(plans.SelectMany(p => p.Items).Order(), Is.EqualTo(Enumerable.Range(0, 128)), "each request in exactly one batch");
        foreach (var p in plans)
        {
            var waste = TokenBudgetBatcher.PaddingWaste([p], lengths);
            Assert.That(waste, Is.LessThanOrEqualTo(bound + 1e-12), $"batch of {p.Items.Length} rows padded to {p.PaddedLength}");
        }
        var total = TokenBudgetBatcher.PaddingWaste(plans, lengths);
        TestContext.Out.WriteLine($"bound {bound:P0}: {plans.Count} batches, waste {total:P1}; unbounded {unbounded.Count} batches, waste {TokenBudgetBatcher.PaddingWaste(unbounded, lengths):P1}");
        Assert.That(total, Is.LessThan(TokenBudgetBatcher.PaddingWaste(unbounded, lengths)));
        if (bound == 0)
            Assert.That(plans.All(p => p.Items.All(i => lengths[i] == p.PaddedLength)), "bound 0: only equal lengths share a batch");
        Assert.Throws<ArgumentOutOfRangeException>(() => TokenBudgetBatcher.Plan(lengths, 4096, 64, 1.5));
        Assert.Throws<ArgumentOutOfRangeException>(() => TokenBudgetBatcher.Plan(lengths, 4096, 64, double.NaN));
    }

    [Test]
    public void PlanIsDeterministicAndFixedPlanKeepsInputOrder()
    {
        var lengths = RandomLengths(300, seed: 3);
        var a = TokenBudgetBatcher.Plan(lengths, 4096, 32);
        var b = TokenBudgetBatcher.Plan(lengths, 4096, 32);
        Assert.That(a.Select(p => p.Items), Is.EqualTo(b.Select(p => p.Items)));
        var f = TokenBudgetBatcher.PlanFixed(lengths, 7);
        Assert.That(f.SelectMany(p => p.Items), Is.EqualTo(Enumerable.Range(0, 300)));
    }

    [Test]
    public void RejectsEmptyRequestsAndNonPositiveLimits()
    {
        var e = Assert.Throws<ArgumentException>(() => TokenBudgetBatcher.Plan([3, 0, 5], 100, 4));
        Assert.That(e!.Message, Does.Contain("request 1 has 0 tokens"));
        Assert.Throws<ArgumentOutOfRangeException>(() => TokenBudgetBatcher.Plan([3], 0, 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => TokenBudgetBatcher.Plan([3], 10, 0));
    }
}
