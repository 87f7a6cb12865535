using OnnxReward.Export.Checkpoints;

namespace OnnxReward.Export.Tests.Graph;

// T = seq, D = hidden, H = heads, Hkv = kv heads, Dh = head dim, F = FFN, K = objectives.

/// <summary>
/// A plain, loop-by-loop float64 Llama + ArmoRM head written from the armorm-tiny README's "What was computed" (HF
/// LlamaModel semantics) — no ONNX, no shared code with the graph builder — used as an oracle on random weights
/// where no golden exists (Dh = 8 RoPE fallback, posterior variance, Qwen3's q/k norm on that fallback).
/// </summary>
internal static class ReferenceLlama
{
    /// <summary>last_hidden_state [T][D] of one unpadded sequence.</summary>
    public static double[][] Forward(LlamaConfig c, ITensorSource w, long[] ids)
    {
        int t = ids.Length, d = c.HiddenSize, h = c.NumAttentionHeads, hkv = c.NumKeyValueHeads, dh = c.HeadDim, f = c.IntermediateSize;
        double[] W(string n) => w.ReadFloat32(n).Select(v => (double)v).ToArray();
        var emb = w.ReadFloat32("model.embed_tokens.weight");
        var x = new double[t][];
        for (var p = 0; p < t; p++) x[p] = Enumerable.Range(0, d).Select(j => (double)emb[ids[p] * d + j]).ToArray();
        double[] Norm(double[] v, double[] g)
        {
            var ms = v.Sum(a => a * a) / v.Length;
            var r = 1 / Math.Sqrt(ms + c.RmsNormEps);
            return v.Select((a, j) => a * r * g[j]).ToArray();
        }
        double[] Lin(double[] v, double[] wt, int outF) // y = W v, W [outF, in]
        {
            var y = new double[outF];
            for (var o = 0; o < outF; o++) { double s = 0; for (var j = 0; j < v.Length; j++) s += wt[o * v.Length + j] * v[j]; y[o] = s; }
            return y;
        }
        // HF float32 RoPE angles
        var invFreq = Enumerable.Range(0, dh / 2).Select(i => 1.0f / MathF.Pow((float)c.RopeTheta, 2 * i / (float)dh)).ToArray();
        void Rope(double[] v, int heads, int pos)
        {
            for (var hh = 0; hh < heads; hh++)
            {
                var o = hh * dh;
                var copy = v.Skip(o).Take(dh).ToArray();
                for (var i = 0; i < dh; i++)
                {
                    var a = (double)(pos * invFreq[i % (dh / 2)]);
                    var rot = i < dh / 2 ? -copy[i + dh / 2] : copy[i - dh / 2];
                    v[o + i] = copy[i] * Math.Cos(a) + rot * Math.Sin(a);
                }
            }
        }
        for (var l = 0; l < c.NumHiddenLayers; l++)
        {
            var pfx = $"model.layers.{l}";
            double[] wq = W($"{pfx}.self_attn.q_proj.weight"), wk = W($"{pfx}.self_attn.k_proj.weight"), wv = W($"{pfx}.self_attn.v_proj.weight");
            double[] wo = W($"{pfx}.self_attn.o_proj.weight"), g1 = W($"{pfx}.input_layernorm.weight"), g2 = W($"{pfx}.post_attention_layernorm.weight");
            double[] wg = W($"{pfx}.mlp.gate_proj.weight"), wu = W($"{pfx}.mlp.up_proj.weight"), wd = W($"{pfx}.mlp.down_proj.weight");
            var q = new double[t][]; var k = new double[t][]; var v = new double[t][];
            for (var p = 0; p < t; p++)
            {
                var hn = Norm(x[p], g1);
                q[p] = Lin(hn, wq, h * dh); k[p] = Lin(hn, wk, hkv * dh); v[p] = Lin(hn, wv, hkv * dh);
                if (c.QkNorm)
                {
                    // Qwen3 (skywork-qwen3-tiny README): q = q_norm.weight * (q * rsqrt(mean_over_head_dim(q^2) + eps)) per
                    // head, the same for k, BEFORE RoPE.
                    double[] gq = W($"{pfx}.self_attn.q_norm.weight"), gk = W($"{pfx}.self_attn.k_norm.weight");
                    q[p] = Enumerable.Range(0, h).SelectMany(hh => Norm(q[p].Skip(hh * dh).Take(dh).ToArray(), gq)).ToArray();
                    k[p] = Enumerable.Range(0, hkv).SelectMany(hh => Norm(k[p].Skip(hh * dh).Take(dh).ToArray(), gk)).ToArray();
                }
                Rope(q[p], h, p); Rope(k[p], hkv, p);
            }
            var nx = new double[t][];
            for (var p = 0; p < t; p++)
            {
                var o = new double[h * dh];
                for (var hh = 0; hh < h; hh++)
                {
                    var kv = hh / (h / hkv);                               // repeat_kv: query head j uses kv head j // n_rep
                    var s = new double[p + 1];
                    for (var u = 0; u <= p; u++)
                    {
                        double dot = 0; for (var i = 0; i < dh; i++) dot += q[p][hh * dh + i] * k[u][kv * dh + i];
                        s[u] = dot / Math.Sqrt(dh);
                    }
                    var m = s.Max(); var e = s.Select(a => Math.Exp(a - m)).ToArray(); var z = e.Sum();
                    for (var u = 0; u <= p; u++) for (var i = 0; i < dh; i++) o[hh * dh + i] += e[u] / z * v[u][kv * dh + i];
                }
                var a1 = Lin(o, wo, d);
                nx[p] = x[p].Select((a, j) => a + a1[j]).ToArray();
            }
            for (var p = 0; p < t; p++)
            {
                var hn = Norm(nx[p], g2);
                var gate = Lin(hn, wg, f); var up = Lin(hn, wu, f);
                var act = gate.Select((a, j) => a / (1 + Math.Exp(-a)) * up[j]).ToArray();
                var down = Lin(act, wd, d);
                nx[p] = nx[p].Select((a, j) => a + down[j]).ToArray();
            }
            x = nx;
        }
        var gf = W("model.norm.weight");
        return x.Select(r => Norm(r, gf)).ToArray();
    }

    /// <summary>rewards [K], gating [K], score, score σ (null without posterior) from the two hidden states.</summary>
    public static (double[] Rewards, double[] Gating, double Score, double? Std) Head(RewardHeadConfig head, ITensorSource w, double[] hr, double[] hp)
    {
        int k = head.NumObjectives, d = hr.Length;
        double[] W(string n) => w.ReadFloat32(n).Select(v => (double)v).ToArray();
        var reg = W("regression_layer.weight");
        var rewards = Enumerable.Range(0, k).Select(o => Enumerable.Range(0, d).Sum(j => reg[o * d + j] * hr[j])).ToArray();
        var z = hp;
        for (var j = 0; j <= head.GatingNHidden; j++)
        {
            var wt = W($"gating.layers.{j}.weight"); var b = W($"gating.layers.{j}.bias");
            var inF = z.Length; var zz = z;
            z = Enumerable.Range(0, b.Length).Select(o => Enumerable.Range(0, inF).Sum(i => wt[o * inF + i] * zz[i]) + b[o]).ToArray();
            if (j < head.GatingNHidden) z = z.Select(a => Math.Max(0, a)).ToArray();
        }
        var zs = z.Select(a => a / head.GatingTemperature).ToArray();
        var mx = zs.Max(); var e = zs.Select(a => Math.Exp(a - mx)).ToArray(); var sum = e.Sum();
        var scale = w.ReadFloat32("gating.logit_scale")[0];
        var gating = e.Select(a => a / sum * scale).ToArray();
        var tm = W("reward_transform_matrix");
        var adjusted = Enumerable.Range(0, k).Select(j => Enumerable.Range(0, k).Sum(i => rewards[i] * tm[i * k + j])).ToArray();
        var score = Enumerable.Range(0, k).Sum(j => gating[j] * adjusted[j]);
        double? std = null;
        if (head.HasPosterior)
        {
            var info = w.GetInfo("posterior.regression_factor"); var r = (int)info.Shape[2];
            var fct = W("posterior.regression_factor");
            double variance = 0;
            for (var kk = 0; kk < k; kk++)
            {
                var ck = Enumerable.Range(0, k).Sum(j => tm[kk * k + j] * gating[j]);       // c = T g
                double norm2 = 0;
                for (var rr = 0; rr < r; rr++)
                {
                    double u = 0; for (var dd = 0; dd < d; dd++) u += fct[(kk * d + dd) * r + rr] * hr[dd];
                    norm2 += u * u;
                }
                variance += ck * ck * norm2;
            }
            std = Math.Sqrt(variance);
        }
        return (rewards, gating, score, std);
    }
}
