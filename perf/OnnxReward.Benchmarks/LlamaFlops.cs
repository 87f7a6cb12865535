using OnnxReward.Export.Checkpoints;
using OnnxReward.Export.Graph;

namespace OnnxReward.Benchmarks;

/// <summary>
/// The FLOP count of the benchmarks, for any Llama-shaped config (the mid-size model, the 8B shape), llm.c style
/// (gpt2_estimate_mfu: 2 FLOPs per multiply-add, "6N + 12·L·H·Q·T" for training; the forward is a third of that: 2N per
/// token + 4·L·T·D per token for attention). Legend: B rows, T tokens per row, L layers, D hidden, F FFN width,
/// Dkv = Hkv·Dh, P = 2 gathered positions per row (reward and gating).
/// Only FLOPs the fused graph must execute are counted: the last layer's MLP runs on the P gathered positions, not on
/// all T (LlamaRewardGraph gathers before it), so it is credited for B·P tokens; the head (19 objectives, 3×256 gating)
/// is &lt; 0.1 % and left out. Attention counts the full T×T score and value products (QKᵀ and AV: 2·T·D each per
/// token), as llm.c does — a causal kernel skips about half of it, so this slightly over-credits attention.
/// One layer's GEMMs (<see cref="LayerGemms"/>) are both what the count multiplies and what a kernel ceiling runs.
/// </summary>
internal static class LlamaFlops
{
    /// <summary>One layer's GEMMs [N, K]·[K, M] as the fused graph packs them: QKV, o_proj, gate/up, down_proj (which
    /// reads the FFN activation). o_proj reads the hidden state, so H·Dh = D, as in every Llama.</summary>
    public static KernelShape[] LayerGemms(LlamaConfig c)
    {
        long d = c.HiddenSize, f = c.IntermediateSize, q = c.NumAttentionHeads * c.HeadDim, kv = c.NumKeyValueHeads * c.HeadDim;
        return [new("qkv_proj", d, q + 2 * kv, false), new("o_proj", q, d, false), new("gate_up_proj", d, 2 * f, false), new("down_proj", f, d, true)];
    }

    /// <summary>Weights of one layer's attention Linears (packed QKV + o_proj).</summary>
    public static long AttentionLinearParameters(LlamaConfig c) => LayerGemms(c).Where(s => s.Name is "qkv_proj" or "o_proj").Sum(s => s.K * s.M);

    /// <summary>Weights of one layer's MLP (gate, up, down): 3·D·F.</summary>
    public static long MlpParameters(LlamaConfig c) => LayerGemms(c).Where(s => s.Name is "gate_up_proj" or "down_proj").Sum(s => s.K * s.M);

    /// <summary>QKᵀ and AV at full T×T: 4·L·B·T²·D.</summary>
    public static double Attention(LlamaConfig c, int b, int t) => 4.0 * c.NumHiddenLayers * b * t * (double)t * c.HiddenSize;

    /// <summary>FLOPs the fused graph executes for B rows of T tokens (formula above).</summary>
    public static double Model(LlamaConfig c, int b, int t)
    {
        const int p = 2;
        double l = c.NumHiddenLayers, tokens = (double)b * t;
        var linear = 2 * tokens * (l * AttentionLinearParameters(c) + (l - 1) * MlpParameters(c)) + 2.0 * b * p * MlpParameters(c);
        return linear + Attention(c, b, t);
    }
}
