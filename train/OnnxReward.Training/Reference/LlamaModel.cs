using OnnxReward.Export.Checkpoints;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace OnnxReward.Training.Reference;

// Shape legend: B = batch, T = seq, D = hidden_size, H = num_attention_heads, Hkv = num_key_value_heads,
// Dh = head_dim (config head_dim, else D / H), F = intermediate_size, V = vocab_size.
// Families: Llama (plain RoPE, or Llama-3.1's llama3 scaling of inv_freq) and Qwen3 (q_norm / k_norm per head over Dh,
// before RoPE: transformers modeling_qwen3.py). The classifier head is SequenceClassifierHead (ReferenceRewardModel.cs).
//
// Hugging Face LlamaModel semantics in float32 (transformers 4.40 eager attention), the math of
// ../shared/reference/armorm-tiny/README.md "What was computed". Fields carry the Hugging Face key names
// (snake_case on purpose), so named_parameters() yields exactly the checkpoint's tensor names.
// Positions are 0..T-1 in every row: right padding needs no mask (attention is causal, so a pad never reaches an
// earlier position); left padding would shift RoPE positions and is not supported (armorm.md §1.7).

#pragma warning disable IDE1006 // field names are Hugging Face state-dict keys

/// <summary>RMSNorm: x * rsqrt(mean(x²) + eps) * weight, in float32.</summary>
internal sealed class LlamaRMSNorm : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly double eps;

    public LlamaRMSNorm(int hiddenSize, double eps) : base(nameof(LlamaRMSNorm))
    {
        weight = new Parameter(ones(hiddenSize), requires_grad: false);
        this.eps = eps;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)                                  // [..., D]
    {
        using var variance = x.pow(2).mean([-1L], keepdim: true);            // [..., 1]
        using var rstd = (variance + eps).rsqrt_();
        using var normed = x * rstd;                                          // [..., D]
        return normed * weight;
    }
}

/// <summary>
/// Rotary position embedding, Hugging Face rotate_half convention: inv_freq = 1 / theta^(arange(0, Dh, 2) / Dh) in
/// float32 (as LlamaRotaryEmbedding), angle[p] = p · inv_freq, cos/sin of cat(angle, angle).
/// </summary>
internal static class LlamaRotary
{
    /// <summary>cos, sin: [T, Dh] for positions 0..T-1.</summary>
    public static (Tensor Cos, Tensor Sin) CosSin(long seq, int headDim, double theta) => CosSin(seq, headDim, theta, null);

    /// <summary>cos, sin: [T, Dh] for positions 0..T-1, with Llama-3.1's scaling of inv_freq when given (transformers
    /// <c>_compute_llama3_parameters</c>, tensor for tensor).</summary>
    public static (Tensor Cos, Tensor Sin) CosSin(long seq, LlamaConfig c) => CosSin(seq, c.HeadDim, c.RopeTheta, c.RopeScaling);

    private static (Tensor Cos, Tensor Sin) CosSin(long seq, int headDim, double theta, Llama3RopeScaling? scaling)
    {
        using var exponent = arange(0, headDim, 2, dtype: ScalarType.Int64).to_type(ScalarType.Float32) / headDim; // [Dh/2]
        using var basePow = pow((float)theta, exponent);
        using var defaultInvFreq = basePow.reciprocal();                           // [Dh/2]
        using var invFreq = scaling is null ? defaultInvFreq.alias() : Llama3(defaultInvFreq, scaling);
        using var positions = arange(seq, dtype: ScalarType.Float32);              // [T]
        using var angle = outer(positions, invFreq);                               // [T, Dh/2], p · inv_freq in float32
        using var emb = cat([angle, angle], -1);                                   // [T, Dh]
        return (emb.cos(), emb.sin());
    }

    /// <summary>
    /// <code>
    /// wavelen = 2 * math.pi / inv_freq
    /// inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    /// smooth_factor = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    /// smoothed_inv_freq = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
    /// is_medium_freq = ~(wavelen &lt; high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    /// inv_freq_llama = torch.where(is_medium_freq, smoothed_inv_freq, inv_freq_llama)
    /// </code>
    /// </summary>
    private static Tensor Llama3(Tensor invFreq, Llama3RopeScaling s)
    {
        using var scope = NewDisposeScope();
        double lowFreqWavelen = s.OriginalMaxPositionEmbeddings / s.LowFreqFactor, highFreqWavelen = s.OriginalMaxPositionEmbeddings / s.HighFreqFactor;
        var wavelen = invFreq.reciprocal() * (2 * Math.PI);                        // torch's scalar / tensor
        var scaled = where(wavelen > lowFreqWavelen, invFreq / s.Factor, invFreq);
        var smooth = (wavelen.reciprocal() * (double)s.OriginalMaxPositionEmbeddings - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);
        var smoothed = (1 - smooth) * scaled / s.Factor + smooth * scaled;
        var medium = (wavelen < highFreqWavelen).logical_not().logical_and((wavelen > lowFreqWavelen).logical_not());
        return where(medium, smoothed, scaled).MoveToOuterDisposeScope();           // [Dh/2]
    }

    /// <summary>rotate_half(u) = cat(-u[..., Dh/2:], u[..., :Dh/2]).</summary>
    public static Tensor RotateHalf(Tensor u)
    {
        var half = u.shape[^1] / 2;
        using var first = u[TensorIndex.Ellipsis, TensorIndex.Slice(0, half)];
        using var second = u[TensorIndex.Ellipsis, TensorIndex.Slice(half)];
        using var negSecond = second.neg();
        return cat([negSecond, first], -1);
    }

    /// <summary>u' = u·cos + rotate_half(u)·sin; u [B, heads, T, Dh], cos/sin [T, Dh].</summary>
    public static Tensor Apply(Tensor u, Tensor cos, Tensor sin)
    {
        using var rotated = RotateHalf(u);
        using var a = u * cos;
        using var b = rotated * sin;
        return a + b;
    }
}

/// <summary>Causal grouped-query self-attention (query head j uses kv head j // (H / Hkv)).</summary>
internal sealed class LlamaAttention : nn.Module<Tensor, Tensor, Tensor, Tensor>
{
    private readonly Linear q_proj, k_proj, v_proj, o_proj;
    private readonly LlamaRMSNorm? q_norm, k_norm;                       // Qwen3 only
    private readonly int numHeads, numKvHeads, headDim;

    public LlamaAttention(LlamaConfig c) : base(nameof(LlamaAttention))
    {
        numHeads = c.NumAttentionHeads;
        numKvHeads = c.NumKeyValueHeads;
        headDim = c.HeadDim;
        q_proj = nn.Linear(c.HiddenSize, numHeads * headDim, hasBias: false);
        k_proj = nn.Linear(c.HiddenSize, numKvHeads * headDim, hasBias: false);
        v_proj = nn.Linear(c.HiddenSize, numKvHeads * headDim, hasBias: false);
        o_proj = nn.Linear(numHeads * headDim, c.HiddenSize, hasBias: false);
        if (c.QkNorm)
        {
            q_norm = new LlamaRMSNorm(headDim, c.RmsNormEps);
            k_norm = new LlamaRMSNorm(headDim, c.RmsNormEps);
        }
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor cos, Tensor sin)           // x [B, T, D]
    {
        long b = x.shape[0], t = x.shape[1];
        using var scope = NewDisposeScope();
        var q = q_proj.forward(x).view(b, t, numHeads, headDim);                       // [B, T, H, Dh]
        var k = k_proj.forward(x).view(b, t, numKvHeads, headDim);                     // [B, T, Hkv, Dh]
        // Qwen3: `query_states = self.q_norm(self.q_proj(hidden_states).view(hidden_shape)).transpose(1, 2)`, before RoPE
        if (q_norm is not null) q = q_norm.forward(q);
        if (k_norm is not null) k = k_norm!.forward(k);
        q = q.transpose(1, 2);                                                         // [B, H, T, Dh]
        k = k.transpose(1, 2);                                                         // [B, Hkv, T, Dh]
        var v = v_proj.forward(x).view(b, t, numKvHeads, headDim).transpose(1, 2);    // [B, Hkv, T, Dh]

        q = LlamaRotary.Apply(q, cos, sin);
        k = LlamaRotary.Apply(k, cos, sin);

        // repeat_kv: kv head i serves query heads i·n_rep .. i·n_rep + n_rep - 1, i.e. query head j uses kv head j // n_rep
        var nRep = numHeads / numKvHeads;
        k = k.repeat_interleave(nRep, dim: 1);                                         // [B, H, T, Dh]
        v = v.repeat_interleave(nRep, dim: 1);                                         // [B, H, T, Dh]

        var scores = q.matmul(k.transpose(2, 3)) / Math.Sqrt(headDim);                 // [B, H, T, T]
        var future = ones(t, t, dtype: ScalarType.Bool, device: x.device).triu(1);     // [T, T], true above the diagonal
        scores = scores.masked_fill(future, float.NegativeInfinity);
        var probs = scores.softmax(-1);                                                // [B, H, T, T]
        var o = probs.matmul(v).transpose(1, 2).reshape(b, t, numHeads * headDim);     // [B, T, D]
        return o_proj.forward(o).MoveToOuterDisposeScope();                            // [B, T, D]
    }
}

/// <summary>SwiGLU MLP: down_proj(silu(gate_proj(x)) * up_proj(x)).</summary>
internal sealed class LlamaMLP : nn.Module<Tensor, Tensor>
{
    private readonly Linear gate_proj, up_proj, down_proj;

    public LlamaMLP(LlamaConfig c) : base(nameof(LlamaMLP))
    {
        gate_proj = nn.Linear(c.HiddenSize, c.IntermediateSize, hasBias: false);
        up_proj = nn.Linear(c.HiddenSize, c.IntermediateSize, hasBias: false);
        down_proj = nn.Linear(c.IntermediateSize, c.HiddenSize, hasBias: false);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)                                   // [B, T, D]
    {
        using var gate = gate_proj.forward(x);                                 // [B, T, F]
        using var act = nn.functional.silu(gate);
        using var up = up_proj.forward(x);                                     // [B, T, F]
        using var product = act * up;
        return down_proj.forward(product);                                     // [B, T, D]
    }
}

/// <summary>Pre-norm decoder layer: x += attn(norm(x)); x += mlp(norm(x)).</summary>
internal sealed class LlamaDecoderLayer : nn.Module<Tensor, Tensor, Tensor, Tensor>
{
    private readonly LlamaRMSNorm input_layernorm, post_attention_layernorm;
    private readonly LlamaAttention self_attn;
    private readonly LlamaMLP mlp;

    public LlamaDecoderLayer(LlamaConfig c) : base(nameof(LlamaDecoderLayer))
    {
        input_layernorm = new LlamaRMSNorm(c.HiddenSize, c.RmsNormEps);
        self_attn = new LlamaAttention(c);
        post_attention_layernorm = new LlamaRMSNorm(c.HiddenSize, c.RmsNormEps);
        mlp = new LlamaMLP(c);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor cos, Tensor sin)           // [B, T, D]
    {
        using var scope = NewDisposeScope();
        var h = input_layernorm.forward(x);
        x = x + self_attn.forward(h, cos, sin);
        h = post_attention_layernorm.forward(x);
        return (x + mlp.forward(h)).MoveToOuterDisposeScope();                 // [B, T, D]
    }
}

/// <summary>Hugging Face <c>LlamaModel</c>: embed_tokens → layers → norm; returns last_hidden_state [B, T, D].</summary>
internal sealed class LlamaModel : nn.Module<Tensor, Tensor>
{
    private readonly Embedding embed_tokens;
    private readonly ModuleList<LlamaDecoderLayer> layers;
    private readonly LlamaRMSNorm norm;
    private readonly LlamaConfig config;

    public LlamaModel(LlamaConfig c) : base(nameof(LlamaModel))
    {
        config = c;
        embed_tokens = nn.Embedding(c.VocabSize, c.HiddenSize);
        layers = nn.ModuleList(Enumerable.Range(0, c.NumHiddenLayers).Select(_ => new LlamaDecoderLayer(c)).ToArray());
        norm = new LlamaRMSNorm(c.HiddenSize, c.RmsNormEps);
        RegisterComponents();
    }

    /// <summary>The token embedding table [V, D] (also the tied classifier).</summary>
    public Tensor EmbedWeight => embed_tokens.weight!;

    public override Tensor forward(Tensor inputIds)                            // [B, T] int64
    {
        using var scope = NewDisposeScope();
        var (cos, sin) = LlamaRotary.CosSin(inputIds.shape[1], config);        // [T, Dh]
        var x = embed_tokens.forward(inputIds);                                // [B, T, D]
        foreach (var layer in layers)
            x = layer.forward(x, cos, sin);
        return norm.forward(x).MoveToOuterDisposeScope();                      // [B, T, D]
    }
}

/// <summary>
/// The backbone as stored in a checkpoint: <c>model.*</c> plus, when present, <c>lm_head.weight</c> [V, D]. With
/// tie_word_embeddings and no lm_head, logits = hidden · embed_tokensᵀ.
/// </summary>
internal sealed class LlamaBackbone : nn.Module<Tensor, Tensor>
{
    private readonly LlamaModel model;
    private readonly Linear? lm_head;

    public LlamaBackbone(LlamaConfig c, bool hasLmHead) : base(nameof(LlamaBackbone))
    {
        Config = c;
        model = new LlamaModel(c);
        lm_head = hasLmHead ? nn.Linear(c.HiddenSize, c.VocabSize, hasBias: false) : null;
        RegisterComponents();
    }

    public LlamaConfig Config { get; }

    /// <summary>model.embed_tokens.weight [V, D] (training rounds it to fp16 values before writing a checkpoint).</summary>
    public Tensor EmbedWeight => model.EmbedWeight;

    /// <summary>True when <see cref="Logits"/> can be computed (an lm_head, or tied embeddings).</summary>
    public bool HasClassifier => lm_head is not null || Config.TieWordEmbeddings;

    /// <summary>last_hidden_state [B, T, D] (after the final norm).</summary>
    public override Tensor forward(Tensor inputIds) => model.forward(inputIds);

    /// <summary>logits [..., V] from hidden states [..., D].</summary>
    public Tensor Logits(Tensor hidden)
    {
        if (lm_head is not null)
            return lm_head.forward(hidden);
        if (Config.TieWordEmbeddings)
            return hidden.matmul(model.EmbedWeight.t());
        throw new InvalidOperationException(
            "This checkpoint has no lm_head.weight and tie_word_embeddings is false (e.g. a reward model), so it has no " +
            "language-model logits. Use the hidden states, or load a checkpoint with an lm_head or tied embeddings.");
    }
}
