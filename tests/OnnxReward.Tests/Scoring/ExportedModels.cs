using System.Globalization;
using System.Text.Json;
using OnnxReward.Export.Exporting;
using OnnxReward.Testing;

namespace OnnxReward.Tests.Scoring;

/// <summary>Reference checkpoints exported once per test run into /tmp model directories.</summary>
internal static class ExportedModels
{
    private static readonly Lazy<string> ArmormTinyFp32 = new(() => Export(SharedData.ArmormTiny, "armorm-tiny-fp32"));
    private static readonly Lazy<string> Stories = new(() =>
        Export(Path.Combine(SharedData.Stories260K, "stories260K.bin"), "stories260k"));

    public static string ArmormTiny => ArmormTinyFp32.Value;
    public static string Stories260K => Stories.Value;

    private static string Export(string checkpoint, string name)
    {
        var dir = Path.Combine(Path.GetTempPath(), $"onnxreward-models-{Environment.ProcessId}", name);
        if (Directory.Exists(dir))
            Directory.Delete(dir, true);
        ModelExporter.Export(checkpoint, dir, new ExportOptions { Precision = ExportPrecision.Fp32 });
        return dir;
    }

    public sealed record Golden(string Id, int[] InputIds, int RewardPosition, int GatingPosition, float[] Rewards,
        float[] Gating, float Score, float[] LastHiddenReward, JsonElement Messages);

    public static IReadOnlyList<Golden> ArmormTinyGoldens() =>
        File.ReadLines(Path.Combine(SharedData.ArmormTiny, "golden.jsonl")).Select(line =>
        {
            using var doc = JsonDocument.Parse(line);
            var r = doc.RootElement;
            // Goldens are float32 values written as the shortest round-trip decimal: parse as float32 (README).
            static float[] F(JsonElement e) => e.EnumerateArray().Select(x => float.Parse(x.GetRawText(), CultureInfo.InvariantCulture)).ToArray();
            return new Golden(r.GetProperty("id").GetString()!, r.GetProperty("input_ids").EnumerateArray().Select(x => x.GetInt32()).ToArray(),
                r.GetProperty("reward_position").GetInt32(), r.GetProperty("gating_position").GetInt32(),
                F(r.GetProperty("rewards")), F(r.GetProperty("gating_output")),
                float.Parse(r.GetProperty("score").GetRawText(), CultureInfo.InvariantCulture), F(r.GetProperty("last_hidden_reward")),
                r.GetProperty("messages").Clone());
        }).ToList();

    /// <summary>armorm-tiny README: |ours − golden| ≤ 1e-4 + 1e-4·|golden| for every element (float32 implementations
    /// agree to ~1e-5; this is about 1e-4 relative).</summary>
    public static void AssertClose(IReadOnlyList<float> ours, IReadOnlyList<float> golden, string what)
    {
        Assert.That(ours, Has.Count.EqualTo(golden.Count), what);
        for (var i = 0; i < golden.Count; i++)
            Assert.That(Math.Abs(ours[i] - golden[i]), Is.LessThanOrEqualTo(1e-4 + 1e-4 * Math.Abs(golden[i])), $"{what}[{i}]: {ours[i]} vs {golden[i]}");
    }
}
