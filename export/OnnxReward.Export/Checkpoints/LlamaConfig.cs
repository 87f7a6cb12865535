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

    /// <summary>Dh = D / H.</summary>
    public int HeadDim => HiddenSize / NumAttentionHeads;
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
