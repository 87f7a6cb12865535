using System.Globalization;
using System.Text.Json;
using OnnxReward.Export.Checkpoints;
using OnnxReward.Export.Exporting;
using OnnxReward.Export.Graph;
using OnnxReward.Testing;

namespace OnnxReward.Export.Tests.Graph;

/// <summary>
/// Llama-3.1's llama3 RoPE scaling in the graph's cos/sin caches against skywork-llama31-tiny/rope_check.json (HF's
/// float32 tables from an independent implementation), and the refusal of the scaling types we do not implement.
/// </summary>
public class RopeScalingTests
{
    private static float F(JsonElement e) => float.Parse(e.GetString()!, CultureInfo.InvariantCulture);

    private static LlamaConfig Config(int headDim, JsonElement scaling, int maxPositions) => new()
    {
        HiddenSize = headDim * 4, IntermediateSize = 8, NumHiddenLayers = 1, NumAttentionHeads = 4, NumKeyValueHeads = 2,
        VocabSize = 8, RopeTheta = 500000.0, MaxPositionEmbeddings = maxPositions,
        RopeScaling = new Llama3RopeScaling(scaling.GetProperty("factor").GetDouble(), scaling.GetProperty("low_freq_factor").GetDouble(),
            scaling.GetProperty("high_freq_factor").GetDouble(), scaling.GetProperty("original_max_position_embeddings").GetInt32()),
    };

    /// <summary>inv_freq equals HF's float32 values bit for bit (head_dim 16 of the tiny model, with all three regimes,
    /// and the real 8B head_dim 128); cos/sin rows at positions 0 … 131071 agree to 2e-7 (float32 cos/sin of the same
    /// float32 angle differ between libm implementations by an ulp; the README's mistakes, linear scaling or none, move
    /// the tables by up to 2).</summary>
    [Test]
    public void InverseFrequenciesAndTablesMatchRopeCheck()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(SharedData.SkyworkLlama31Tiny, "rope_check.json")));
        var r = doc.RootElement;
        var tiny = Config(16, r.GetProperty("rope_scaling"), 131072);
        Assert.That(LlamaRewardGraph.InverseFrequencies(tiny), Is.EqualTo(r.GetProperty("inv_freq_llama3_float32").EnumerateArray().Select(F).ToArray()));
        Assert.That(LlamaRewardGraph.InverseFrequencies(tiny with { RopeScaling = null }),
            Is.EqualTo(r.GetProperty("inv_freq_default_float32").EnumerateArray().Select(F).ToArray()));
        var real = r.GetProperty("real_model_head_dim_128");
        Assert.That(LlamaRewardGraph.InverseFrequencies(Config(128, real.GetProperty("rope_scaling"), 16)),
            Is.EqualTo(real.GetProperty("inv_freq_llama3_float32").EnumerateArray().Select(F).ToArray()));

        var (cos, sin) = LlamaRewardGraph.RotaryTables(tiny);                   // [131072, 8] each (the half HF duplicates)
        var positions = r.GetProperty("positions").EnumerateArray().Select(p => p.GetInt32()).ToArray();
        double worst = 0;
        for (var j = 0; j < positions.Length; j++)
        {
            var cosRow = r.GetProperty("cos")[j].EnumerateArray().Select(F).ToArray();
            var sinRow = r.GetProperty("sin")[j].EnumerateArray().Select(F).ToArray();
            for (var i = 0; i < 16; i++)
            {
                int p = positions[j], k = i % 8;                                  // emb = cat(freqs, freqs)
                worst = Math.Max(worst, Math.Max(Math.Abs(cos[p * 8 + k] - cosRow[i]), Math.Abs(sin[p * 8 + k] - sinRow[i])));
            }
        }
        TestContext.Out.WriteLine($"max |Δ| cos/sin over {positions.Length} positions up to {positions.Max()}: {worst:E2}");
        Assert.That(worst, Is.LessThanOrEqualTo(2e-7));
    }

    [TestCase("""{"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}""", "'yarn'")]
    [TestCase("""{"type": "linear", "factor": 2.0}""", "'linear'")]
    [TestCase("""{"rope_type": "dynamic", "factor": 2.0}""", "'dynamic'")]
    [TestCase("""{"factor": 2.0}""", "(missing)")]
    public void OtherRopeScalingTypesAreRefusedNamingThemAndWhatIsSupported(string scaling, string named)
    {
        var dir = SharedData.NewTempDirectory("rope-scaling");
        try
        {
            var path = Path.Combine(dir, "config.json");
            File.WriteAllText(path, $$"""
                {"architectures": ["LlamaForSequenceClassification"], "model_type": "llama", "hidden_size": 64, "intermediate_size": 176,
                 "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 128256,
                 "max_position_embeddings": 131072, "rope_theta": 500000.0, "rope_scaling": {{scaling}}}
                """);
            // Through the export entry point: the config is read (and refused) before any weight file is looked for.
            var e = Assert.Throws<CheckpointException>(() => ModelExporter.Export(dir, Path.Combine(dir, "out")))!;
            Assert.That(e.Message, Does.Contain($"rope_scaling type {named} is not supported"));
            Assert.That(e.Message, Does.Contain("'llama3'").And.Contain("plain RoPE"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [TestCase("MistralForSequenceClassification", "mistral")]
    [TestCase("Qwen2ForSequenceClassification", "qwen2")]
    [TestCase("GemmaForCausalLM", "gemma")]
    public void UnsupportedArchitecturesAreRefusedNamingThemAndListingTheSupportedOnes(string architecture, string modelType)
    {
        var dir = SharedData.NewTempDirectory("architecture");
        try
        {
            var path = Path.Combine(dir, "config.json");
            File.WriteAllText(path, $$"""
                {"architectures": ["{{architecture}}"], "model_type": "{{modelType}}", "hidden_size": 64, "intermediate_size": 176,
                 "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000}
                """);
            var e = Assert.Throws<CheckpointException>(() => ModelExporter.Export(dir, Path.Combine(dir, "out")))!;
            Assert.That(e.Message, Does.Contain($"architecture '{architecture}'"));
            Assert.That(e.Message, Does.Contain("LlamaForSequenceClassification").And.Contain("Qwen3ForSequenceClassification")
                .And.Contain("LlamaForRewardModelWithGating"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
