using System.Text.Json;
using BenchmarkDotNet.Attributes;
using OnnxReward.Batching;

namespace OnnxReward.Benchmarks;

/// <summary>
/// Front-end share of end-to-end text scoring on the mid-size model (design.md: tokenization + batching ≤ 5 %).
/// Input: the first 64 hh-rlhf harmless-test pairs (prompt + chosen) from ../shared/data/preferences, as
/// <see cref="Conversation"/>s. Baseline = <c>RewardModel.Score(conversations)</c> end to end (chat template, Llama-3
/// tokenizer, positions, token-budget plan, ONNX runs, results); the other case runs only the front end of that path
/// (<c>RewardModel.Tokenize</c> per conversation + <c>TokenBudgetBatcher.Plan</c>), so its Ratio is the front-end share.
/// </summary>
[MemoryDiagnoser]
public class FrontEndBenchmarks
{
    private const int MaxBatchTokens = 4096, MaxBatchSize = 64;
    private RewardModel _model = null!;
    private Conversation[] _conversations = [];

    [GlobalSetup]
    public void Setup()
    {
        MidSizeModel.Ensure();
        _model = RewardModel.Load(MidSizeModel.ModelDirectory, new RewardModelOptions
        {
            ExecutionProvider = ExecutionProviderKind.Cpu, IntraOpThreads = 2, MaxBatchTokens = MaxBatchTokens, MaxBatchSize = MaxBatchSize,
        });
        var file = Path.Combine(SharedPaths.Shared(), "data", "preferences", "hh_rlhf_harmless_test.jsonl");
        _conversations = File.ReadLines(file).Take(64).Select(line =>
        {
            using var d = JsonDocument.Parse(line);
            return Conversation.FromPromptResponse(d.RootElement.GetProperty("prompt").GetString()!, d.RootElement.GetProperty("chosen").GetString()!);
        }).ToArray();
        var tokens = _conversations.Select(c => _model.Tokenize(c).InputIds.Length).ToArray();
        Console.WriteLine($"// front end: {tokens.Length} hh-rlhf conversations, {tokens.Sum()} tokens (median {tokens.Order().ElementAt(tokens.Length / 2)}, max {tokens.Max()})");
    }

    [Benchmark(Baseline = true, Description = "end to end: RewardModel.Score(conversations)")]
    public int EndToEnd() => _model.Score(_conversations).Count;

    [Benchmark(Description = "front end only: template + tokenize + positions + plan")]
    public int FrontEnd()
    {
        var lengths = new int[_conversations.Length];
        for (var i = 0; i < lengths.Length; i++)
            lengths[i] = _model.Tokenize(_conversations[i]).InputIds.Length;
        return TokenBudgetBatcher.Plan(lengths, MaxBatchTokens, MaxBatchSize).Count;
    }

    [GlobalCleanup]
    public void Cleanup() => _model.Dispose();
}
