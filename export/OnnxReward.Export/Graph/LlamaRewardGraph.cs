using OnnxReward.Export.Checkpoints;

namespace OnnxReward.Export.Graph;

// B = batch, T = seq, D = hidden_size, H = num_attention_heads, Hkv = num_key_value_heads, Dh = D / H,
// F = intermediate_size, V = vocab_size, K = num_objectives (19 for ArmoRM), P = gathered positions (2: reward,
// gating; 1 for a backbone graph), R = posterior rank, N = gating hidden dim.

/// <summary>
/// The fused ArmoRM reward graph (or a backbone-only graph): Hugging Face <c>LlamaModel</c> + gather of the two hidden
/// states the head needs + the <c>LlamaForRewardModelWithGating</c> head (armorm.md §1.3), with the graph I/O of
/// <c>RewardModelManifest</c>. See DESIGN.md beside this file for the choice of fused ORT ops.
/// </summary>
internal static class LlamaRewardGraph
{
    /// <summary>Builds the graph (a reward graph when <paramref name="head"/> is set, else backbone-only); weights are
    /// streamed from <paramref name="weights"/> when the model is written. <paramref name="backbone"/>: Float (CPU EP)
    /// or Float16 (CUDA EP) for the backbone, whose config is <paramref name="config"/>; the head is float32 in both.
    /// <paramref name="int8Linears"/> (CPU, Float backbone only): the backbone's Linear layers become ORT's
    /// DynamicQuantizeMatMul with symmetric per-output-channel int8 weights (activations quantized per tensor at run time);
    /// embeddings, norms, attention and the head stay float32.
    /// <paramref name="blocks"/>: the backbone's Linear layers become com.microsoft.MatMulNBits with block-quantized
    /// weights (BlockQuantization.cs), activations in the backbone's type (float32 for the CPU, float16 for CUDA).
    /// <paramref name="float16Embedding"/>: the embedding table is stored as float16 (gathered, then cast), half the bytes
    /// of a float32 table; the quantized variants use it. A table the checkpoint stores as F16 is always kept F16.</summary>
    public static GraphBuilder Build(LlamaConfig config, RewardHeadConfig? head, ITensorSource weights, ElementType backbone,
        bool int8Linears = false, BlockQuantization? blocks = null, bool float16Embedding = false, ClassifierHeadConfig? classifier = null)
    {
        if (head is not null && classifier is not null)
            throw new ArgumentException("a graph has one head: the ArmoRM head or the sequence-classification head.", nameof(classifier));
        if (int8Linears && backbone != ElementType.Float)
            throw new ArgumentException("int8 Linear layers need a float32 backbone (the CPU variant).", nameof(int8Linears));
        if (int8Linears && blocks is not null)
            throw new ArgumentException("choose int8 (DynamicQuantizeMatMul) or block-quantized (MatMulNBits) Linear layers, not both.", nameof(blocks));
        int d = config.HiddenSize, h = config.NumAttentionHeads, hkv = config.NumKeyValueHeads, dh = config.HeadDim;
        int f = config.IntermediateSize, v = config.VocabSize, layers = config.NumHiddenLayers;
        var eps = (float)config.RmsNormEps;
        var g = new GraphBuilder(head is not null ? "armorm_reward" : classifier is not null ? "sequence_classifier" : "llama_backbone");
        Value W(string name) => g.Weight(name, backbone, weights.GetInfo(name).Shape, Weights.Copy(weights, name));
        Value WT(string name, ElementType type)
        {
            var s = weights.GetInfo(name).Shape;
            return g.Weight(name + ".T", type, [s[1], s[0]], Weights.Transposed(weights, name));
        }
        // A backbone Linear x·Wᵀ (several packed side by side), in the variant's precision (BackboneLinear.cs).
        var linear = new BackboneLinear(backbone, int8Linears, blocks);
        Value Linear(Value x, string weightName, string[] parts, string name) => linear.Emit(g, weights, x, weightName, parts, name);
        var i64 = ElementType.Int64;

        // ---- inputs (RewardModelManifest contract) ----
        var inputIds = g.Input("input_ids", i64, "batch", "seq");                 // [B, T] right-padded
        var rewardPositions = g.Input("reward_positions", i64, "batch");          // [B]
        var gatingPositions = head is null ? Value.None : g.Input("gating_positions", i64, "batch"); // [B]

        // ---- attention metadata from the input shape ----
        // Right padding + causal attention: real tokens never attend to the pads that follow them, so every row uses
        // the full length T (seqlens_k = T - 1, total_sequence_length = T) and no attention mask is needed.
        var shape = g.Shape(inputIds, "/model/attn_meta/Shape");                                   // [2] = (B, T)
        var batch = g.Gather(shape, g.Scalar("/model/attn_meta/zero", 0), 0, "/model/attn_meta/batch/Gather");
        var seq = g.Gather(shape, g.Scalar("/model/attn_meta/one", 1), 0, "/model/attn_meta/seq/Gather");
        var totalSeq = g.Cast(seq, ElementType.Int32, "/model/attn_meta/total_seq_len/Cast");      // scalar int32
        var seqMinusOne = g.Sub(seq, g.Scalar("/model/attn_meta/one_i64", 1), "/model/attn_meta/seqlens_k/Sub");
        var seqlensK = g.Expand(
            g.Cast(seqMinusOne, ElementType.Int32, "/model/attn_meta/seqlens_k/Cast"),
            g.Unsqueeze(batch, g.Constant("/model/attn_meta/axes0", [1], 0), "/model/attn_meta/batch/Unsqueeze"),
            "/model/attn_meta/seqlens_k/Expand");                                                   // [B] int32

        // ---- rotary tables (HF LlamaRotaryEmbedding, float32 angles; Llama-3.1's llama3 scaling in inv_freq) ----
        // GQA applies rotate-half RoPE itself when Dh % 16 == 0 (its kernel's requirement); otherwise (e.g. Dh = 8 in
        // stories260K) RoPE is spelled out with plain ops before GQA.
        var fusedRotary = dh % 16 == 0;
        var (cos, sin) = RotaryTables(config);                                 // [maxPos, Dh/2] each
        Value cosCache = Value.None, sinCache = Value.None, cosT = Value.None, sinT = Value.None;
        if (fusedRotary)
        {
            cosCache = g.Weight("model.rotary_emb.cos_cache", backbone, [config.MaxPositionEmbeddings, dh / 2], Weights.FromArray(cos));
            sinCache = g.Weight("model.rotary_emb.sin_cache", backbone, [config.MaxPositionEmbeddings, dh / 2], Weights.FromArray(sin));
        }
        else
        {
            // cos/sin of cat(angle, angle): [maxPos, Dh], sliced to [T, 1, Dh] once for all layers.
            var cosFull = g.Weight("model.rotary_emb.cos_full", backbone, [config.MaxPositionEmbeddings, dh], Weights.FromArray(Duplicate(cos, dh)));
            var sinFull = g.Weight("model.rotary_emb.sin_full", backbone, [config.MaxPositionEmbeddings, dh], Weights.FromArray(Duplicate(sin, dh)));
            var seq1 = g.Unsqueeze(seq, g.Constant("/model/rotary_emb/axes0", [1], 0), "/model/rotary_emb/seq/Unsqueeze");
            var start = g.Constant("/model/rotary_emb/start", [1], 0);
            var axisOne = g.Constant("/model/rotary_emb/axes1", [1], 1);
            cosT = g.Unsqueeze(g.Slice(cosFull, start, seq1, start, "/model/rotary_emb/cos/Slice"), axisOne, "/model/rotary_emb/cos/Unsqueeze");
            sinT = g.Unsqueeze(g.Slice(sinFull, start, seq1, start, "/model/rotary_emb/sin/Slice"), axisOne, "/model/rotary_emb/sin/Unsqueeze");
        }

        // ---- positions to gather: [B, P, 1] ----
        var axisLast = g.Constant("/model/gather_positions/axes", [1], 1);
        var positions = head is null
            ? g.Unsqueeze(rewardPositions, axisLast, "/model/gather_positions/reward/Unsqueeze")
            : g.Concat([
                g.Unsqueeze(rewardPositions, axisLast, "/model/gather_positions/reward/Unsqueeze"),
                g.Unsqueeze(gatingPositions, axisLast, "/model/gather_positions/gating/Unsqueeze")], 1,
                "/model/gather_positions/Concat");                                                 // [B, P]
        positions = g.Unsqueeze(positions, g.Constant("/model/gather_positions/axes_last", [1], -1),
            "/model/gather_positions/Unsqueeze");                                                  // [B, P, 1]

        // ---- backbone ----
        // x = embed_tokens[input_ids]
        // A table the checkpoint stores as F16 stays F16 in an fp32 graph (half the bytes, and exact: every value is an
        // fp16 value) and is widened after the gather; this keeps a 128K-vocabulary default model small.
        var embedInfo = weights.GetInfo("model.embed_tokens.weight");
        var x = backbone == ElementType.Float && (embedInfo.DType == ElementType.Float16 || float16Embedding)
            ? g.Cast(g.Gather(g.Weight("model.embed_tokens.weight", ElementType.Float16, embedInfo.Shape,
                    Weights.Copy(weights, "model.embed_tokens.weight")), inputIds, 0, "/model/embed_tokens/Gather"),
                ElementType.Float, "/model/embed_tokens/Cast")
            : g.Gather(W("model.embed_tokens.weight"), inputIds, 0, "/model/embed_tokens/Gather");  // [B, T, D]
        var hidden = g.SimplifiedLayerNorm(x, W("model.layers.0.input_layernorm.weight"), eps,
            "/model/layers.0/input_layernorm/SimplifiedLayerNorm");                                // [B, T, D]
        var residual = x;
        for (var i = 0; i < layers; i++)
        {
            var p = $"model.layers.{i}";
            var n = $"/model/layers.{i}";
            var last = i == layers - 1;

            // q, k, v = h Wqᵀ, h Wkᵀ, h Wvᵀ in one MatMul                                        [B, T, (H + 2Hkv)·Dh]
            var qkv = Linear(hidden, $"{p}.attn.qkv_proj.MatMul.weight",
                [$"{p}.self_attn.q_proj.weight", $"{p}.self_attn.k_proj.weight", $"{p}.self_attn.v_proj.weight"],
                $"{n}/attn/qkv_proj");
            // o = softmax(q' k'ᵀ / √Dh + causal) v with RoPE on q, k and query head j reading kv head j / (H / Hkv)
            Value attn;
            if (config.QkNorm)
            {
                // Qwen3: q = q_norm(q), k = k_norm(k) per head over Dh, BEFORE RoPE (modeling_qwen3.py Qwen3Attention.forward:
                // `query_states = self.q_norm(self.q_proj(hidden_states).view(hidden_shape))`), so q, k, v go to GQA unpacked.
                var qkvParts = g.Split(qkv, g.Constant($"{n}/attn/qkv_split/sizes", [3], h * dh, hkv * dh, hkv * dh), -1, 3,
                    $"{n}/attn/qkv_split/Split");
                var q = HeadRmsNorm(g, qkvParts[0], W($"{p}.self_attn.q_norm.weight"), eps, h, dh, $"{n}/attn/q_norm");
                var kNormed = HeadRmsNorm(g, qkvParts[1], W($"{p}.self_attn.k_norm.weight"), eps, hkv, dh, $"{n}/attn/k_norm");
                if (fusedRotary)
                    attn = g.Node("GroupQueryAttention", $"{n}/attn/GroupQueryAttention",
                        [q, kNormed, qkvParts[2], Value.None, Value.None, seqlensK, totalSeq, cosCache, sinCache], 3,
                        GraphBuilder.MsDomain,
                        Attr.Int("num_heads", h), Attr.Int("kv_num_heads", hkv), Attr.Int("do_rotary", 1),
                        Attr.Int("rotary_interleaved", 0))[0];                                     // [B, T, H·Dh]
                else
                    attn = g.Node("GroupQueryAttention", $"{n}/attn/GroupQueryAttention",
                        [RotateHalfRope(g, q, cosT, sinT, h, dh, $"{n}/attn/q_rotary"),
                         RotateHalfRope(g, kNormed, cosT, sinT, hkv, dh, $"{n}/attn/k_rotary"), qkvParts[2],
                         Value.None, Value.None, seqlensK, totalSeq], 3, GraphBuilder.MsDomain,
                        Attr.Int("num_heads", h), Attr.Int("kv_num_heads", hkv))[0];               // [B, T, H·Dh]
            }
            else if (fusedRotary)
            {
                attn = g.Node("GroupQueryAttention", $"{n}/attn/GroupQueryAttention",
                    [qkv, Value.None, Value.None, Value.None, Value.None, seqlensK, totalSeq, cosCache, sinCache], 3,
                    GraphBuilder.MsDomain,
                    Attr.Int("num_heads", h), Attr.Int("kv_num_heads", hkv), Attr.Int("do_rotary", 1),
                    Attr.Int("rotary_interleaved", 0))[0];                                         // [B, T, H·Dh]
            }
            else
            {
                var qkvParts = g.Split(qkv, g.Constant($"{n}/attn/qkv_split/sizes", [3], h * dh, hkv * dh, hkv * dh), -1, 3,
                    $"{n}/attn/qkv_split/Split");
                var q = RotateHalfRope(g, qkvParts[0], cosT, sinT, h, dh, $"{n}/attn/q_rotary");
                var kRot = RotateHalfRope(g, qkvParts[1], cosT, sinT, hkv, dh, $"{n}/attn/k_rotary");
                attn = g.Node("GroupQueryAttention", $"{n}/attn/GroupQueryAttention",
                    [q, kRot, qkvParts[2], Value.None, Value.None, seqlensK, totalSeq], 3, GraphBuilder.MsDomain,
                    Attr.Int("num_heads", h), Attr.Int("kv_num_heads", hkv))[0];                   // [B, T, H·Dh]
            }
            var o = Linear(attn, $"{p}.self_attn.o_proj.weight.T", [$"{p}.self_attn.o_proj.weight"], $"{n}/attn/o_proj"); // [B, T, D]

            if (!last)
            {
                // x = x + o;  h = RMSNorm(x) · post_attention_layernorm
                (hidden, residual) = g.SkipSimplifiedLayerNorm(o, residual, W($"{p}.post_attention_layernorm.weight"), eps,
                    $"{n}/post_attention_layernorm/SkipSimplifiedLayerNorm");
            }
            else
            {
                // Last layer: the MLP and the final norm act per position, so gather the P needed positions first.
                var xLast = g.Add(o, residual, $"{n}/attn/residual/Add");                          // [B, T, D]
                residual = g.GatherND(xLast, positions, 1, "/model/gather_positions/GatherND");    // [B, P, D]
                hidden = g.SimplifiedLayerNorm(residual, W($"{p}.post_attention_layernorm.weight"), eps,
                    $"{n}/post_attention_layernorm/SimplifiedLayerNorm");                          // [B, P, D]
            }

            // mlp: down( silu(gate(h)) * up(h) ), gate and up in one MatMul                       [B, ·, 2F]
            var gateUp = Linear(hidden, $"{p}.mlp.gate_up_proj.MatMul.weight",
                [$"{p}.mlp.gate_proj.weight", $"{p}.mlp.up_proj.weight"], $"{n}/mlp/gate_up_proj");
            var gu = g.Split(gateUp, g.Constant($"{n}/mlp/gate_up_split/sizes", [2], f, f), -1, 2, $"{n}/mlp/gate_up_split/Split");
            var silu = g.Mul(gu[0], g.Sigmoid(gu[0], $"{n}/mlp/act_fn/Sigmoid"), $"{n}/mlp/act_fn/Mul"); // [B, ·, F]
            var down = Linear(g.Mul(silu, gu[1], $"{n}/mlp/Mul"), $"{p}.mlp.down_proj.weight.T", [$"{p}.mlp.down_proj.weight"],
                $"{n}/mlp/down_proj");                                                             // [B, ·, D]

            if (!last)
                (hidden, residual) = g.SkipSimplifiedLayerNorm(down, residual, W($"model.layers.{i + 1}.input_layernorm.weight"), eps,
                    $"/model/layers.{i + 1}/input_layernorm/SkipSimplifiedLayerNorm");
            else
                residual = g.Add(down, residual, $"{n}/mlp/residual/Add");                         // [B, P, D]
        }

        // last_hidden_state at the P positions, after model.norm; the head (and the final norm) run in float32.
        if (backbone != ElementType.Float)
            residual = g.Cast(residual, ElementType.Float, "/model/norm/Cast");
        var norm = g.Weight("model.norm.weight", ElementType.Float, [d], Weights.Copy(weights, "model.norm.weight"));
        var final = g.SimplifiedLayerNorm(residual, norm, eps, "/model/norm/SimplifiedLayerNorm");   // [B, P, D]
        var embedding = g.Gather(final, g.Scalar("/model/reward_hidden/index", 0), 1, "/model/reward_hidden/Gather"); // [B, D]
        g.Output(embedding, "embedding", ElementType.Float, "batch", (long)d);
        if (classifier is not null)
        {
            // ---- sequence-classification head, float32: logits = score(h_pooled) = h Wᵀ, no bias ----      [B, L]
            // (transformers GenericForSequenceClassification: `pooled_logits = logits[arange(B), last_non_pad_token]`;
            // applying score to the one pooled state is the same product.) score = logits[:, 0] when L = 1.
            var logits = g.MatMul(embedding, WT(CheckpointLayout.ScoreWeight, ElementType.Float), "/head/score/MatMul");
            g.Output(logits, "logits", ElementType.Float, "batch", (long)classifier.NumLabels);
            if (classifier.NumLabels == 1)
                g.Output(g.Gather(logits, g.Scalar("/head/score/index", 0), 1, "/head/score/Gather"), "score", ElementType.Float, "batch");
            return g;
        }
        if (head is null) return g;

        // ---- ArmoRM head (armorm.md §1.3), float32 ----
        var k = head.NumObjectives;
        var f32 = ElementType.Float;
        var promptHidden = g.Gather(final, g.Scalar("/model/prompt_hidden/index", 1), 1, "/model/prompt_hidden/Gather"); // [B, D]

        // rewards = regression_layer(h_r) = h_r Wᵀ                                                [B, K]
        var rewards = g.MatMul(embedding, WT("regression_layer.weight", f32), "/head/regression_layer/MatMul");

        // z = L_n(relu(... relu(L_0(h_p)))); gating = softmax(z / temperature) · logit_scale       [B, K]
        var z = promptHidden;
        for (var j = 0; j <= head.GatingNHidden; j++)
        {
            var wj = g.Weight($"gating.layers.{j}.weight", f32, weights.GetInfo($"gating.layers.{j}.weight").Shape,
                Weights.Copy(weights, $"gating.layers.{j}.weight"));
            var bj = g.Weight($"gating.layers.{j}.bias", f32, weights.GetInfo($"gating.layers.{j}.bias").Shape,
                Weights.Copy(weights, $"gating.layers.{j}.bias"));
            z = g.GemmTransB(z, wj, bj, $"/head/gating/layers.{j}/Gemm");                          // [B, N] … [B, K]
            if (j < head.GatingNHidden) z = g.Relu(z, $"/head/gating/layers.{j}/Relu");
        }
        var temperature = g.Constant("/head/gating/temperature", f32, [], (float)head.GatingTemperature);
        var logitScale = g.Weight("gating.logit_scale", f32, [1], Weights.Copy(weights, "gating.logit_scale"));
        var gating = g.Mul(
            g.Softmax(g.Div(z, temperature, "/head/gating/Div"), -1, "/head/gating/Softmax"),
            logitScale, "/head/gating/logit_scale/Mul");                                            // [B, K]

        // score = Σ_k gating_k · (rewards · T)_k  (row vector times T; T is not symmetric)          [B]
        var transform = g.Weight("reward_transform_matrix", f32, [k, k], Weights.Copy(weights, "reward_transform_matrix"));
        var adjusted = g.MatMul(rewards, transform, "/head/reward_transform/MatMul");               // [B, K]
        var axis1 = g.Constant("/head/axes1", [1], 1);
        var score = g.ReduceSum(g.Mul(gating, adjusted, "/head/score/Mul"), axis1, false, "/head/score/ReduceSum");

        g.Output(score, "score", f32, "batch");
        g.Output(rewards, "rewards", f32, "batch", (long)k);
        g.Output(gating, "gating", f32, "batch", (long)k);

        if (head.HasPosterior)
        {
            // Var(score) = Σ_k c_k² ‖F_kᵀ φ‖² with c = T g (armorm.md §5; RewardHeadConfig.HasPosterior)
            var r = weights.GetInfo("posterior.regression_factor").Shape[2];
            var c = g.MatMul(gating, WT("reward_transform_matrix", f32), "/head/posterior/c/MatMul");           // [B, K]
            var factor = g.Weight("posterior.regression_factor.DKR", f32, [d, k * r],
                Weights.PosteriorFactor(weights, "posterior.regression_factor"));
            var u = g.Reshape(g.MatMul(embedding, factor, "/head/posterior/u/MatMul"),
                g.Constant("/head/posterior/u/shape", [3], -1, k, r), "/head/posterior/u/Reshape");             // [B, K, R]
            var varK = g.ReduceSum(g.Mul(u, u, "/head/posterior/u2/Mul"), g.Constant("/head/axes2", [1], 2), false,
                "/head/posterior/var_k/ReduceSum");                                                             // [B, K]
            var variance = g.ReduceSum(
                g.Mul(g.Mul(c, c, "/head/posterior/c2/Mul"), varK, "/head/posterior/weighted/Mul"), axis1, false,
                "/head/posterior/var/ReduceSum");                                                               // [B]
            g.Output(g.Sqrt(variance, "/head/posterior/Sqrt"), "score_std", f32, "batch");
        }
        return g;
    }

    /// <summary>HF's inv_freq in float32: 1 / θ^(2i/Dh) (<c>_compute_default_rope_parameters</c>), then Llama-3.1's
    /// scaling when the config has it (<c>_compute_llama3_parameters</c>, same float32 operations in the same order:
    /// wavelen = 2π / f; f kept below original / high_freq_factor, f / factor above original / low_freq_factor, and
    /// (1 − s)·f / factor + s·f between, s = (original / wavelen − low) / (high − low)).</summary>
    internal static float[] InverseFrequencies(LlamaConfig config)
    {
        var half = config.HeadDim / 2;
        var invFreq = new float[half];
        for (var i = 0; i < half; i++)
            invFreq[i] = 1.0f / MathF.Pow((float)config.RopeTheta, 2 * i / (float)config.HeadDim);
        if (config.RopeScaling is not { } rs)
            return invFreq;
        float factor = (float)rs.Factor, low = (float)rs.LowFreqFactor, high = (float)rs.HighFreqFactor, original = rs.OriginalMaxPositionEmbeddings;
        double lowFreqWavelen = rs.OriginalMaxPositionEmbeddings / rs.LowFreqFactor;     // Python floats
        double highFreqWavelen = rs.OriginalMaxPositionEmbeddings / rs.HighFreqFactor;
        for (var i = 0; i < half; i++)
        {
            var f = invFreq[i];
            var wavelen = 1.0f / f * (float)(2 * Math.PI);           // torch: scalar / tensor is reciprocal(tensor) · scalar
            if (wavelen < highFreqWavelen)
                continue;                                             // high frequency: unchanged
            if (wavelen > lowFreqWavelen)
            {
                invFreq[i] = f / factor;                              // low frequency: divided by factor
                continue;
            }
            var smooth = (1.0f / wavelen * original - low) / (high - low);
            invFreq[i] = (1 - smooth) * f / factor + smooth * f;     // medium: interpolated
        }
        return invFreq;
    }

    /// <summary>HF LlamaRotaryEmbedding in float32: angle = p · inv_freq_i (<see cref="InverseFrequencies"/>).</summary>
    internal static (float[] Cos, float[] Sin) RotaryTables(LlamaConfig config)
    {
        int half = config.HeadDim / 2, maxPos = config.MaxPositionEmbeddings;
        var invFreq = InverseFrequencies(config);
        var cos = new float[(long)maxPos * half];
        var sin = new float[(long)maxPos * half];
        for (var p = 0; p < maxPos; p++)
            for (var i = 0; i < half; i++)
            {
                var angle = p * invFreq[i];                 // float32 product, as torch's outer(t, inv_freq)
                cos[p * half + i] = MathF.Cos(angle);
                sin[p * half + i] = MathF.Sin(angle);
            }
        return (cos, sin);
    }

    private static float[] Duplicate(float[] table, int dh)
    {
        var half = dh / 2;
        var rows = table.Length / half;
        var full = new float[(long)rows * dh];
        for (var p = 0; p < rows; p++)
        {
            Array.Copy(table, p * half, full, p * dh, half);
            Array.Copy(table, p * half, full, p * dh + half, half);
        }
        return full;
    }

    /// <summary>Per-head RMSNorm over Dh (Qwen3's q_norm / k_norm): [B, T, heads·Dh] → [B, T, heads, Dh] → norm → back.</summary>
    private static Value HeadRmsNorm(GraphBuilder g, Value u, Value weight, float eps, int heads, int dh, string n)
    {
        var heads4 = g.Reshape(u, g.Constant($"{n}/shape4", [4], 0, 0, heads, dh), $"{n}/Reshape");        // [B, T, heads, Dh]
        var normed = g.SimplifiedLayerNorm(heads4, weight, eps, $"{n}/SimplifiedLayerNorm");
        return g.Reshape(normed, g.Constant($"{n}/shape3", [3], 0, 0, heads * dh), $"{n}/Reshape3");       // [B, T, heads·Dh]
    }

    /// <summary>u' = u · cos + rotate_half(u) · sin with rotate_half(u) = cat(−u[Dh/2:], u[:Dh/2]) per head.</summary>
    private static Value RotateHalfRope(GraphBuilder g, Value u, Value cos, Value sin, int heads, int dh, string n)
    {
        var heads4 = g.Reshape(u, g.Constant($"{n}/shape4", [4], 0, 0, heads, dh), $"{n}/Reshape");      // [B, T, heads, Dh]
        var axis3 = g.Constant($"{n}/axes3", [1], 3);
        var lo = g.Slice(heads4, g.Constant($"{n}/lo_start", [1], 0), g.Constant($"{n}/lo_end", [1], dh / 2), axis3, $"{n}/lo/Slice");
        var hi = g.Slice(heads4, g.Constant($"{n}/hi_start", [1], dh / 2), g.Constant($"{n}/hi_end", [1], dh), axis3, $"{n}/hi/Slice");
        var rotated = g.Concat([g.Neg(hi, $"{n}/hi/Neg"), lo], 3, $"{n}/rotate_half/Concat");           // [B, T, heads, Dh]
        var outp = g.Add(g.Mul(heads4, cos, $"{n}/cos/Mul"), g.Mul(rotated, sin, $"{n}/sin/Mul"), $"{n}/Add");
        return g.Reshape(outp, g.Constant($"{n}/shape3", [3], 0, 0, heads * dh), $"{n}/Reshape3");       // [B, T, heads·Dh]
    }
}
