using OnnxReward.Model;

namespace OnnxReward.Export.Checkpoints;

/// <summary>
/// The Llama backbone hyperparameters (Hugging Face <c>config.json</c> names in the comments).
/// D = hidden_size, H = num_attention_heads, Hkv = num_key_value_heads, Dh = D / H, F = intermediate_size, V = vocab_size.
/// </summary>
public sealed record LlamaConfig
{
    public required int HiddenSize { get; init; }            // hidden_size (D)
    public required int IntermediateSize { get; init; }      // intermediate_size (F)
    public required int NumHiddenLayers { get; init; }       // num_hidden_layers
    public required int NumAttentionHeads { get; init; }     // num_attention_heads (H)
    public required int NumKeyValueHeads { get; init; }      // num_key_value_heads (Hkv)
    public required int VocabSize { get; init; }             // vocab_size (V)
    public double RmsNormEps { get; init; } = 1e-5;          // rms_norm_eps
    public double RopeTheta { get; init; } = 10000.0;        // rope_theta
    public int MaxPositionEmbeddings { get; init; } = 2048;  // max_position_embeddings
    public bool TieWordEmbeddings { get; init; }             // tie_word_embeddings
    public int? PadTokenId { get; init; }                    // pad_token_id
    public int? BosTokenId { get; init; }                    // bos_token_id
    public int? EosTokenId { get; init; }                    // eos_token_id

    /// <summary>config.json's <c>head_dim</c> when given (Qwen3: 128 with D / H = 64); null means D / H.</summary>
    public int? ExplicitHeadDim { get; init; }              // head_dim

    /// <summary>Dh: <see cref="ExplicitHeadDim"/>, else D / H.</summary>
    public int HeadDim => ExplicitHeadDim ?? HiddenSize / NumAttentionHeads;

    /// <summary>Llama-3.1's <c>rope_scaling</c> of type <c>llama3</c>; null for plain RoPE.</summary>
    public Llama3RopeScaling? RopeScaling { get; init; }    // rope_scaling

    /// <summary>The backbone family (<see cref="ModelFamily"/>): which config keys and per-family graph parts apply.</summary>
    public ModelFamily Family { get; init; } = ModelFamily.Llama;

    /// <summary>Qwen3: per-head RMSNorm of q and k (<c>self_attn.q_norm</c> / <c>k_norm</c>, weight [Dh]) before RoPE.</summary>
    public bool QkNorm => Family == ModelFamily.Qwen3;
}

/// <summary>The backbone families the exporter supports: the shared Llama-style block plus what a family changes.</summary>
public enum ModelFamily
{
    /// <summary>Llama / Llama-3 / Llama-3.1 (<c>model_type</c> llama).</summary>
    Llama,

    /// <summary>Qwen3 (<c>model_type</c> qwen3): q_norm / k_norm before RoPE, explicit head_dim.</summary>
    Qwen3,
}

/// <summary>
/// Llama-3.1's RoPE scaling (transformers <c>_compute_llama3_parameters</c>): with wavelen_i = 2π / f_i,
/// frequencies with wavelen below original / high_freq_factor are kept, those above original / low_freq_factor are
/// divided by factor, and the band between is interpolated with s = (original / wavelen − low) / (high − low).
/// </summary>
public sealed record Llama3RopeScaling(double Factor, double LowFreqFactor, double HighFreqFactor, int OriginalMaxPositionEmbeddings);

/// <summary>The sequence-classification head (<c>*ForSequenceClassification</c>): <c>score.weight</c> [L, D], no bias,
/// applied to the final hidden state at the pooled token (transformers' rule: the rightmost token that is not
/// pad_token_id). L = num_labels (config: <c>id2label</c>), with label names in index order.</summary>
public sealed record ClassifierHeadConfig
{
    public required int NumLabels { get; init; }
    public required IReadOnlyList<string> LabelNames { get; init; }
}

/// <summary>
/// The ArmoRM head (<c>LlamaForRewardModelWithGating</c>): regression layer [K, D], gating MLP with
/// <see cref="GatingNHidden"/> hidden ReLU layers of <see cref="GatingHiddenDim"/>, softmax(z / temperature) · logit_scale,
/// and the K×K reward transform matrix. K = num_objectives.
/// </summary>
public sealed record RewardHeadConfig
{
    public required int NumObjectives { get; init; }          // num_objectives (K)
    public double GatingTemperature { get; init; } = 10;      // gating_temperature
    public int GatingHiddenDim { get; init; } = 1024;         // gating_hidden_dim
    public int GatingNHidden { get; init; } = 3;              // gating_n_hidden

    /// <summary>Objective names in index order (config key <c>objective_names</c>, written by our trainer); for the
    /// 19-objective ArmoRM layout without names, <see cref="ArmoRmObjectiveNames"/>.</summary>
    public IReadOnlyList<string>? ObjectiveNames { get; init; }

    /// <summary>True when the checkpoint carries a Gaussian posterior over the regression head: tensor
    /// <c>posterior.regression_factor</c> [K, D, R] with Σ_k = F_k F_kᵀ, so Var(r_k | φ) = ‖F_kᵀ φ‖² and, at fixed
    /// gating, Var(score) = Σ_k c_k² ‖F_kᵀ φ‖² with c = T g (armorm.md §5).</summary>
    public bool HasPosterior { get; init; }

    /// <summary>ArmoRM-Llama3-8B-v0.1's objectives, in index order (armorm.md §1.5).</summary>
    public static readonly IReadOnlyList<string> ArmoRmObjectiveNames =
    [
        "helpsteer-helpfulness", "helpsteer-correctness", "helpsteer-coherence", "helpsteer-complexity",
        "helpsteer-verbosity", "ultrafeedback-overall_score", "ultrafeedback-instruction_following",
        "ultrafeedback-truthfulness", "ultrafeedback-honesty", "ultrafeedback-helpfulness", "beavertails-is_safe",
        "prometheus-score", "argilla-overall_quality", "argilla-judge_lm", "code-complexity", "code-style",
        "code-explanation", "code-instruction-following", "code-readability",
    ];
}

/// <summary>
/// Bounds for config.json values (<see cref="ModelBounds"/>, which reward_model.json is held to as well), checked when
/// a config is read and before anything is allocated from it (issue 16 item 4: <c>num_hidden_layers: 1000000000</c>
/// grew to 16.5 GB, <c>max_position_embeddings: 2147483647</c> was an OverflowException), plus the head's and what the
/// export allocates from the config alone (the rotary tables: positions × head_dim floats). Tensors are checked against
/// the safetensors headers, which the files must back, before any is read.
/// </summary>
public static class ConfigBounds
{
    public const int MaxLayers = ModelBounds.MaxLayers;
    public const int MaxHiddenSize = ModelBounds.MaxHiddenSize;
    public const int MaxIntermediateSize = ModelBounds.MaxIntermediateSize;
    public const int MaxAttentionHeads = ModelBounds.MaxAttentionHeads;
    public const int MaxVocabSize = ModelBounds.MaxVocabSize;
    public const int MaxPositions = ModelBounds.MaxPositions;
    public const int MinPositions = ModelBounds.MinPositions;
    public const int MaxObjectives = ModelBounds.MaxObjectives;
    public const int MaxGatingHiddenLayers = 64;
    public const int MaxGatingHiddenDim = 1 << 16;

    /// <summary>Rotary tables hold positions × head_dim floats each (cos and sin), each in one .NET array
    /// (<see cref="Array.MaxLength"/>; Llama-4's 10 M positions × 128 is 1.34 G).</summary>
    public static long MaxRotaryElements => Array.MaxLength;

    /// <summary>The (key, value, least, most) a config's integers must satisfy; <c>num_key_value_heads</c> also divides
    /// <c>num_attention_heads</c> and heads divide <c>hidden_size</c> (checked where read).</summary>
    public static IEnumerable<(string Key, long Value, long Least, long Most)> Of(LlamaConfig c, RewardHeadConfig? head)
    {
        yield return ("num_hidden_layers", c.NumHiddenLayers, 1, MaxLayers);
        yield return ("hidden_size", c.HiddenSize, 1, MaxHiddenSize);
        yield return ("intermediate_size", c.IntermediateSize, 1, MaxIntermediateSize);
        yield return ("num_attention_heads", c.NumAttentionHeads, 1, Math.Min(MaxAttentionHeads, Math.Max(1, c.HiddenSize)));
        yield return ("num_key_value_heads", c.NumKeyValueHeads, 1, Math.Max(1, c.NumAttentionHeads));
        yield return ("vocab_size", c.VocabSize, 1, MaxVocabSize);
        yield return ("max_position_embeddings", c.MaxPositionEmbeddings, MinPositions, MaxPositions);
        if (head is null) yield break;
        yield return ("num_objectives", head.NumObjectives, 1, MaxObjectives);
        yield return ("gating_n_hidden", head.GatingNHidden, 0, MaxGatingHiddenLayers);
        yield return ("gating_hidden_dim", head.GatingHiddenDim, 1, MaxGatingHiddenDim);
    }

    /// <summary>The first bound <paramref name="c"/> breaks, as a sentence naming the key, the value and the bound; null
    /// when every value is within bounds.</summary>
    public static string? Violation(LlamaConfig c, RewardHeadConfig? head)
    {
        foreach (var (key, value, least, most) in Of(c, head))
        {
            if (value < least)
                return $"'{key}' is {value}, below the least value {least}";
            if (value > most)
                return $"'{key}' is {value}, over the bound of {most:N0}" + key switch
                {
                    "num_attention_heads" when c.HiddenSize < MaxAttentionHeads => $" (at most hidden_size {c.HiddenSize} heads)",
                    "num_key_value_heads" => $" (at most num_attention_heads {c.NumAttentionHeads})",
                    _ => " (no released model comes near it)",
                };
        }
        if (c.ExplicitHeadDim is { } explicitHeadDim && (explicitHeadDim < 2 || explicitHeadDim > MaxHiddenSize))
            return $"'head_dim' is {explicitHeadDim}, outside [2, {MaxHiddenSize:N0}]";
        var rotary = (long)c.MaxPositionEmbeddings * c.HeadDim;
        if (rotary > MaxRotaryElements)
            return $"'max_position_embeddings' {c.MaxPositionEmbeddings:N0} × head_dim {c.HeadDim} = {rotary:N0} " +
                   $"rotary-table entries, over the bound of {MaxRotaryElements:N0}";
        return null;
    }
}
