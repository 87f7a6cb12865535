using System.Text.Json;
using BenchmarkDotNet.Attributes;
using OnnxReward.Batching;
using OnnxReward.Text;

namespace OnnxReward.Benchmarks;

/// <summary>
/// Token-budget, length-sorted batching vs naive fixed-size batches (16 rows, input order) on the hh-rlhf length
/// distribution: the first 128 conversations of ../shared/data/preferences/hh_rlhf_harmless_test.jsonl (prompt + chosen,
/// tokenized with the default model's template), scored with the mid-size model. Each row keeps its real length; its
/// ids are synthetic (the mid-size weights are random, so only shapes matter). Ratio = time relative to fixed batches.
/// Two token-budget cases: the library default (padding bounded to 10 % per batch) and the budget alone.
/// </summary>
[MemoryDiagnoser]
public class BatchingBenchmarks
{
    private RewardModel _budget = null!;
    private RewardModel _budgetOnly = null!;
    private RewardModel _fixed = null!;
    private int[][] _rows = [];

    [GlobalSetup]
    public void Setup()
    {
        MidSizeModel.Ensure();
        var shared = SharedPaths.Shared();
        var encoder = InputEncoder.Load(Path.Combine(shared, "reference", "armorm-tiny"));
        var lengths = File.ReadLines(Path.Combine(shared, "data", "preferences", "hh_rlhf_harmless_test.jsonl")).Take(128).Select((line, i) =>
        {
            using var d = JsonDocument.Parse(line);
            var c = Conversation.FromPromptResponse(d.RootElement.GetProperty("prompt").GetString()!, d.RootElement.GetProperty("chosen").GetString()!);
            return Math.Min(encoder.Encode(c, i).TokenCount, 2048);
        }).ToArray();
        var rng = new Random(3);
        _rows = lengths.Select(t => MidSizeModel.Rows(1, Math.Max(t, 12), rng.Next())[0]).ToArray();
        var realLengths = _rows.Select(r => r.Length).ToArray();
        var defaults = new RewardModelOptions();
        var budgetPlan = TokenBudgetBatcher.Plan(realLengths, 4096, 64, defaults.MaxPaddingWaste);
        var budgetOnlyPlan = TokenBudgetBatcher.Plan(realLengths, 4096, 64);
        var fixedPlan = TokenBudgetBatcher.PlanFixed(realLengths, 16);
        Console.WriteLine($"// hh-rlhf sample: {realLengths.Length} rows, {realLengths.Sum()} tokens, median {realLengths.Order().ElementAt(realLengths.Length / 2)}; " +
                          $"padding waste: token budget + {defaults.MaxPaddingWaste:P0} bound {TokenBudgetBatcher.PaddingWaste(budgetPlan, realLengths):P1} in {budgetPlan.Count} batches, " +
                          $"budget alone {TokenBudgetBatcher.PaddingWaste(budgetOnlyPlan, realLengths):P1} in {budgetOnlyPlan.Count} batches, " +
                          $"fixed-16 {TokenBudgetBatcher.PaddingWaste(fixedPlan, realLengths):P1} in {fixedPlan.Count} batches");
        _budget = RewardModel.Load(MidSizeModel.ModelDirectory, new RewardModelOptions
        {
            ExecutionProvider = ExecutionProviderKind.Cpu, IntraOpThreads = 2, MaxBatchTokens = 4096, MaxBatchSize = 64,
        });
        _budgetOnly = RewardModel.Load(MidSizeModel.ModelDirectory, new RewardModelOptions
        {
            ExecutionProvider = ExecutionProviderKind.Cpu, IntraOpThreads = 2, MaxBatchTokens = 4096, MaxBatchSize = 64, MaxPaddingWaste = 1,
        });
        _fixed = RewardModel.Load(MidSizeModel.ModelDirectory, new RewardModelOptions
        {
            ExecutionProvider = ExecutionProviderKind.Cpu, IntraOpThreads = 2, MaxBatchTokens = int.MaxValue, MaxBatchSize = 16, MaxPaddingWaste = 1,
        });
    }

    /// <summary>Naive: chunks of 16 in input order, each one padded batch (one call per chunk, so no sorting across chunks).</summary>
    [Benchmark(Baseline = true, Description = "fixed batches of 16, input order")]
    public int Fixed()
    {
        var n = 0;
        foreach (var chunk in _rows.Chunk(16))
            n += _fixed.ScoreTokens(chunk).Count;
        return n;
    }

    [Benchmark(Description = "token budget 4096, length-sorted, padding ≤ 10 % (default)")]
    public int TokenBudget() => _budget.ScoreTokens(_rows).Count;

    [Benchmark(Description = "token budget 4096, length-sorted, no padding bound")]
    public int TokenBudgetOnly() => _budgetOnly.ScoreTokens(_rows).Count;

    [GlobalCleanup]
    public void Cleanup()
    {
        _budget.Dispose();
        _budgetOnly.Dispose();
        _fixed.Dispose();
    }
}
