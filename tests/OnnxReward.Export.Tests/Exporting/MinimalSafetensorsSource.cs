using System.Text.Json;
using OnnxReward.Export.Checkpoints;

namespace OnnxReward.Export.Tests.Exporting;

/// <summary>
/// A deliberately naive, test-only reader of small sharded safetensors checkpoints (whole files in memory, no
/// validation): it lets the graph be checked against the armorm-tiny goldens independently of the production
/// readers, so a reader bug and a graph bug cannot cancel out.
/// </summary>
internal static class MinimalSafetensorsSource
{
    public static Checkpoint OpenArmorm(string dir)
    {
        var source = new InMemoryTensorSource();
        var index = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "model.safetensors.index.json")));
        foreach (var file in index.RootElement.GetProperty("weight_map").EnumerateObject().Select(p => p.Value.GetString()!).Distinct())
        {
            var bytes = File.ReadAllBytes(Path.Combine(dir, file));
            var headerLength = (int)BitConverter.ToUInt64(bytes, 0);
            var header = JsonDocument.Parse(bytes.AsMemory(8, headerLength)).RootElement;
            foreach (var t in header.EnumerateObject().Where(p => p.Name != "__metadata__"))
            {
                var dtype = t.Value.GetProperty("dtype").GetString() switch { "F32" => ElementType.Float, "BF16" => ElementType.BFloat16, _ => ElementType.Float16 };
                var shape = t.Value.GetProperty("shape").EnumerateArray().Select(v => v.GetInt64()).ToArray();
                var offsets = t.Value.GetProperty("data_offsets").EnumerateArray().Select(v => v.GetInt64()).ToArray();
                var raw = bytes.AsSpan((int)(8 + headerLength + offsets[0]), (int)(offsets[1] - offsets[0]));
                var values = new float[raw.Length / (dtype == ElementType.Float ? 4 : 2)];
                for (var i = 0; i < values.Length; i++)
                    values[i] = dtype == ElementType.Float ? BitConverter.ToSingle(raw[(i * 4)..])
                        : BitConverter.Int32BitsToSingle(BitConverter.ToUInt16(raw[(i * 2)..]) << 16);
                source.Add(t.Name, dtype, shape, values);
            }
        }
        var c = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "config.json"))).RootElement;
        int I(string n) => c.GetProperty(n).GetInt32();
        return new Checkpoint
        {
            Config = new LlamaConfig
            {
                HiddenSize = I("hidden_size"), IntermediateSize = I("intermediate_size"), NumHiddenLayers = I("num_hidden_layers"),
                NumAttentionHeads = I("num_attention_heads"), NumKeyValueHeads = I("num_key_value_heads"), VocabSize = I("vocab_size"),
                RmsNormEps = c.GetProperty("rms_norm_eps").GetDouble(), RopeTheta = c.GetProperty("rope_theta").GetDouble(),
                MaxPositionEmbeddings = I("max_position_embeddings"), PadTokenId = I("pad_token_id"), BosTokenId = I("bos_token_id"),
            },
            Head = new RewardHeadConfig
            {
                NumObjectives = I("num_objectives"), GatingTemperature = c.GetProperty("gating_temperature").GetDouble(),
                GatingHiddenDim = I("gating_hidden_dim"), GatingNHidden = I("gating_n_hidden"),
            },
            Tensors = source,
            Format = "huggingface",
            SourceFiles = [],
            Location = dir,
        };
    }
}
