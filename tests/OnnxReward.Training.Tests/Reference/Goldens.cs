using System.Text.Json;
using OnnxReward.Testing;

namespace OnnxReward.Training.Tests.Reference;

/// <summary>One armorm-tiny golden case (../shared/reference/armorm-tiny/golden.jsonl). Floats are parsed as float32,
/// the exact bits the README says were written.</summary>
internal sealed record ArmormGolden(string Id, long[] InputIds, long RewardPosition, long GatingPosition, float[] Rewards,
    float[] GatingOutput, float Score, float[] LastHiddenReward, float[] PromptHidden);

/// <summary>One stories260K golden case: tokens, hidden [T][64] after the final norm, last_logits [512].</summary>
internal sealed record StoriesGolden(long[] Tokens, float[][] Hidden, float[] LastLogits);

internal static class Goldens
{
    public static IReadOnlyList<ArmormGolden> ArmormTiny() =>
        File.ReadLines(Path.Combine(SharedData.ArmormTiny, "golden.jsonl")).Where(l => l.Length > 0).Select(line =>
        {
            using var doc = JsonDocument.Parse(line);
            var r = doc.RootElement;
            return new ArmormGolden(r.GetProperty("id").GetString()!, Longs(r.GetProperty("input_ids")),
                r.GetProperty("reward_position").GetInt64(), r.GetProperty("gating_position").GetInt64(),
                Floats(r.GetProperty("rewards")), Floats(r.GetProperty("gating_output")), r.GetProperty("score").GetSingle(),
                Floats(r.GetProperty("last_hidden_reward")), Floats(r.GetProperty("prompt_hidden")));
        }).ToArray();

    public static IReadOnlyList<StoriesGolden> Stories260K() =>
        File.ReadLines(Path.Combine(SharedData.Stories260K, "golden.jsonl")).Where(l => l.Length > 0).Select(line =>
        {
            using var doc = JsonDocument.Parse(line);
            var r = doc.RootElement;
            return new StoriesGolden(Longs(r.GetProperty("tokens")),
                r.GetProperty("hidden").EnumerateArray().Select(Floats).ToArray(), Floats(r.GetProperty("last_logits")));
        }).ToArray();

    private static long[] Longs(JsonElement e) => e.EnumerateArray().Select(x => x.GetInt64()).ToArray();

    private static float[] Floats(JsonElement e) => e.EnumerateArray().Select(x => x.GetSingle()).ToArray();

    /// <summary>max |a - b| over two equally long vectors.</summary>
    public static double MaxAbsDiff(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        Assert.That(a.Length, Is.EqualTo(b.Length), "vector lengths differ");
        double m = 0;
        for (var i = 0; i < a.Length; i++)
            m = Math.Max(m, Math.Abs((double)a[i] - b[i]));
        return m;
    }

    /// <summary>The first index where |ours - golden| > abs + rel·|golden|, or -1.</summary>
    public static int FirstOutside(ReadOnlySpan<float> ours, ReadOnlySpan<float> golden, double abs, double rel)
    {
        Assert.That(ours.Length, Is.EqualTo(golden.Length), "vector lengths differ");
        for (var i = 0; i < ours.Length; i++)
            if (!(Math.Abs((double)ours[i] - golden[i]) <= abs + rel * Math.Abs((double)golden[i])))
                return i;
        return -1;
    }
}
