using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using OnnxReward.Export.Checkpoints;

namespace OnnxReward.Export.Tests.Exporting;

/// <summary>
/// Writes a Hugging Face-layout ArmoRM checkpoint with random weights to disk (config.json + one model.safetensors;
/// BF16 backbone, F32 head), streaming chunk by chunk so multi-GB checkpoints cost no memory. For export timing and
/// memory tests only; never committed. Values: uniform with the armorm-tiny README's standard deviations.
/// </summary>
internal static class SyntheticCheckpoint
{
    public static long Write(string dir, LlamaConfig c, RewardHeadConfig? head, ulong seed = 1)
    {
        Directory.CreateDirectory(dir);
        var tensors = new List<(string Name, string DType, long[] Shape, double Std, double Mean)>();
        int d = c.HiddenSize, f = c.IntermediateSize, dh = c.HeadDim;
        tensors.Add(("model.embed_tokens.weight", "BF16", [c.VocabSize, d], 1, 0));
        for (var i = 0; i < c.NumHiddenLayers; i++)
        {
            var p = $"model.layers.{i}";
            tensors.Add(($"{p}.self_attn.q_proj.weight", "BF16", [c.NumAttentionHeads * dh, d], 1 / Math.Sqrt(d), 0));
            tensors.Add(($"{p}.self_attn.k_proj.weight", "BF16", [c.NumKeyValueHeads * dh, d], 1 / Math.Sqrt(d), 0));
            tensors.Add(($"{p}.self_attn.v_proj.weight", "BF16", [c.NumKeyValueHeads * dh, d], 1 / Math.Sqrt(d), 0));
            tensors.Add(($"{p}.self_attn.o_proj.weight", "BF16", [d, c.NumAttentionHeads * dh], 1 / Math.Sqrt(d), 0));
            tensors.Add(($"{p}.mlp.gate_proj.weight", "BF16", [f, d], 1 / Math.Sqrt(d), 0));
            tensors.Add(($"{p}.mlp.up_proj.weight", "BF16", [f, d], 1 / Math.Sqrt(d), 0));
            tensors.Add(($"{p}.mlp.down_proj.weight", "BF16", [d, f], 1 / Math.Sqrt(f), 0));
            tensors.Add(($"{p}.input_layernorm.weight", "BF16", [d], 0.1, 1));
            tensors.Add(($"{p}.post_attention_layernorm.weight", "BF16", [d], 0.1, 1));
        }
        tensors.Add(("model.norm.weight", "BF16", [d], 0.1, 1));
        if (head is not null)
        {
            var k = head.NumObjectives;
            tensors.Add(("regression_layer.weight", "F32", [k, d], 0.5 / Math.Sqrt(d), 0));
            var inF = d;
            for (var j = 0; j <= head.GatingNHidden; j++)
            {
                var outF = j < head.GatingNHidden ? head.GatingHiddenDim : k;
                tensors.Add(($"gating.layers.{j}.weight", "F32", [outF, inF], j < head.GatingNHidden ? Math.Sqrt(2.0 / inF) : 10 / Math.Sqrt(inF), 0));
                tensors.Add(($"gating.layers.{j}.bias", "F32", [outF], 0.1, 0));
                inF = outF;
            }
            tensors.Add(("gating.logit_scale", "F32", [1], 0, 1.7));
            tensors.Add(("reward_transform_matrix", "F32", [k, k], 0.05, 0));
        }

        // safetensors: u64 header length, JSON header {name: {dtype, shape, data_offsets}}, then the data.
        var header = new Dictionary<string, object> { ["__metadata__"] = new Dictionary<string, string> { ["format"] = "pt" } };
        long offset = 0;
        foreach (var t in tensors)
        {
            var bytes = t.Shape.Aggregate(1L, (a, b) => a * b) * (t.DType == "F32" ? 4 : 2);
            header[t.Name] = new Dictionary<string, object> { ["dtype"] = t.DType, ["shape"] = t.Shape, ["data_offsets"] = new[] { offset, offset + bytes } };
            offset += bytes;
        }
        var json = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(header));
        var padded = (json.Length + 7) / 8 * 8;
        using (var fs = new FileStream(Path.Combine(dir, "model.safetensors"), FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            fs.Write(BitConverter.GetBytes((ulong)padded));
            fs.Write(json);
            for (var i = json.Length; i < padded; i++) fs.WriteByte((byte)' ');
            var state = seed * 0x9E3779B97F4A7C15UL + 1;
            var chunk = new float[1 << 20];
            var raw = new byte[chunk.Length * 4];
            foreach (var t in tensors)
            {
                var count = t.Shape.Aggregate(1L, (a, b) => a * b);
                var half = Math.Sqrt(3) * t.Std;
                for (long start = 0; start < count; start += chunk.Length)
                {
                    var n = (int)Math.Min(chunk.Length, count - start);
                    for (var i = 0; i < n; i++)
                    {
                        state ^= state << 13; state ^= state >> 7; state ^= state << 17;       // xorshift64
                        chunk[i] = (float)(t.Mean + half * ((state >> 11) * (2.0 / (1UL << 53)) - 1));
                    }
                    if (t.DType == "F32")
                        fs.Write(MemoryMarshal.AsBytes(chunk.AsSpan(0, n)));
                    else
                    {
                        var dst = MemoryMarshal.Cast<byte, ushort>(raw.AsSpan(0, n * 2));
                        for (var i = 0; i < n; i++) dst[i] = (ushort)(BitConverter.SingleToUInt32Bits(chunk[i]) >> 16);
                        fs.Write(raw, 0, n * 2);
                    }
                }
            }
        }

        var config = new Dictionary<string, object?>
        {
            ["architectures"] = new[] { head is null ? "LlamaModel" : "LlamaForRewardModelWithGating" },
            ["model_type"] = "llama",
            ["hidden_size"] = d, ["intermediate_size"] = f, ["num_hidden_layers"] = c.NumHiddenLayers,
            ["num_attention_heads"] = c.NumAttentionHeads, ["num_key_value_heads"] = c.NumKeyValueHeads,
            ["vocab_size"] = c.VocabSize, ["rms_norm_eps"] = c.RmsNormEps, ["rope_theta"] = c.RopeTheta,
            ["max_position_embeddings"] = c.MaxPositionEmbeddings, ["tie_word_embeddings"] = false,
            ["pad_token_id"] = c.PadTokenId, ["bos_token_id"] = c.BosTokenId, ["eos_token_id"] = c.EosTokenId,
            ["torch_dtype"] = "bfloat16", ["hidden_act"] = "silu",
        };
        if (head is not null)
        {
            config["num_objectives"] = head.NumObjectives;
            config["gating_temperature"] = head.GatingTemperature;
            config["gating_hidden_dim"] = head.GatingHiddenDim;
            config["gating_n_hidden"] = head.GatingNHidden;
        }
        File.WriteAllText(Path.Combine(dir, "config.json"), JsonSerializer.Serialize(config, new JsonSerializerOptions { WriteIndented = true }));
        return 8 + padded + offset;
    }
}
