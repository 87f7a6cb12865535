namespace OnnxReward.Export.Checkpoints;

/// <summary>
/// The tensors a config implies, by Hugging Face name and shape (TEI's "request every weight with its expected shape"):
/// a checkpoint that contradicts config.json fails at open, naming the tensor, not halfway through an export.
/// D = hidden, F = intermediate, V = vocab, H/Hkv = heads, Dh = head size, K = objectives, G = gating hidden.
/// </summary>
public static class CheckpointLayout
{
    public const string PosteriorFactor = "posterior.regression_factor";

    public const string ScoreWeight = "score.weight";

    public static IEnumerable<(string Name, long[] Shape, string Because)> Expected(LlamaConfig c, RewardHeadConfig? head,
        ClassifierHeadConfig? classifier = null)
    {
        long d = c.HiddenSize, f = c.IntermediateSize, v = c.VocabSize, dh = c.HeadDim;
        long q = c.NumAttentionHeads * dh, kv = c.NumKeyValueHeads * dh;
        yield return ("model.embed_tokens.weight", [v, d], "vocab_size × hidden_size");
        for (var i = 0; i < c.NumHiddenLayers; i++)
        {
            var p = $"model.layers.{i}.";
            yield return (p + "input_layernorm.weight", [d], "hidden_size");
            yield return (p + "self_attn.q_proj.weight", [q, d], "num_attention_heads·head_dim × hidden_size");
            yield return (p + "self_attn.k_proj.weight", [kv, d], "num_key_value_heads·head_dim × hidden_size");
            yield return (p + "self_attn.v_proj.weight", [kv, d], "num_key_value_heads·head_dim × hidden_size");
            yield return (p + "self_attn.o_proj.weight", [d, q], "hidden_size × num_attention_heads·head_dim");
            if (c.QkNorm)
            {
                yield return (p + "self_attn.q_norm.weight", [dh], "head_dim");
                yield return (p + "self_attn.k_norm.weight", [dh], "head_dim");
            }
            yield return (p + "post_attention_layernorm.weight", [d], "hidden_size");
            yield return (p + "mlp.gate_proj.weight", [f, d], "intermediate_size × hidden_size");
            yield return (p + "mlp.up_proj.weight", [f, d], "intermediate_size × hidden_size");
            yield return (p + "mlp.down_proj.weight", [d, f], "hidden_size × intermediate_size");
        }
        yield return ("model.norm.weight", [d], "hidden_size");
        if (classifier is not null)
            yield return (ScoreWeight, [classifier.NumLabels, d], "num_labels × hidden_size");
        if (head is null)
            yield break;
        long k = head.NumObjectives, g = head.GatingHiddenDim;
        yield return ("regression_layer.weight", [k, d], "num_objectives × hidden_size");
        yield return ("reward_transform_matrix", [k, k], "num_objectives × num_objectives");
        var inFeatures = d;
        for (var j = 0; j < head.GatingNHidden; j++)
        {
            yield return ($"gating.layers.{j}.weight", [g, inFeatures], $"gating_hidden_dim × {(j == 0 ? "hidden_size" : "gating_hidden_dim")}");
            yield return ($"gating.layers.{j}.bias", [g], "gating_hidden_dim");
            inFeatures = g;
        }
        yield return ($"gating.layers.{head.GatingNHidden}.weight", [k, inFeatures], "num_objectives × gating_hidden_dim");
        yield return ($"gating.layers.{head.GatingNHidden}.bias", [k], "num_objectives");
        yield return ("gating.logit_scale", [1], "a scalar β");
    }

    /// <summary>Checks names and shapes; all missing (or unexpected) tensors are named in one message.</summary>
    public static void Validate(string location, LlamaConfig config, RewardHeadConfig? head, ITensorSource source,
        ClassifierHeadConfig? classifier = null)
    {
        var expected = Expected(config, head, classifier).ToList();
        var names = expected.Select(e => e.Name).ToHashSet(StringComparer.Ordinal);
        var missing = expected.Where(e => !source.Contains(e.Name)).Select(e => e.Name).ToList();
        if (missing.Count > 0)
            throw new CheckpointException(
                $"{location} is missing {missing.Count} tensor(s) that its config implies: {Preview(missing)}. " +
                (head is null && missing.All(m => m.StartsWith("model.", StringComparison.Ordinal))
                    ? "Is config.json from another model size? Use the config.json that came with these weights."
                    : "Use the complete checkpoint (all shards) with its own config.json."), location, missing[0]);

        foreach (var (name, shape, because) in expected)
        {
            var info = source.GetInfo(name);
            if (!info.Shape.SequenceEqual(shape))
                throw new CheckpointException(
                    $"{location}: tensor '{name}' has shape {info.ShapeText} but config.json implies [{string.Join(", ", shape)}] " +
                    $"({because}). The weights and config.json come from different models: use the config.json that came with them.",
                    location, name);
        }

        var optional = new HashSet<string>(StringComparer.Ordinal) { "lm_head.weight", PosteriorFactor };
        var unexpected = source.Names.Where(n => !names.Contains(n) && !optional.Contains(n)
                                                 && !n.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal)).ToList();
        if (unexpected.Count > 0)
            throw new CheckpointException(
                $"{location} holds {unexpected.Count} tensor(s) that a {config.Family}{(head is not null ? " + ArmoRM head" : classifier is not null ? " + score head" : "")} " +
                $"checkpoint with this config.json does not have: {Preview(unexpected)}. This is another architecture (or biases the " +
                $"family lacks); OnnxReward exports {ModelArchitectures.SupportedList} checkpoints.", location, unexpected[0]);

        if (source.Contains("lm_head.weight") && !source.GetInfo("lm_head.weight").Shape.SequenceEqual(new long[] { config.VocabSize, config.HiddenSize }))
            throw new CheckpointException(
                $"{location}: tensor 'lm_head.weight' has shape {source.GetInfo("lm_head.weight").ShapeText}, expected [{config.VocabSize}, {config.HiddenSize}].",
                location, "lm_head.weight");
        if (source.Contains(PosteriorFactor))
        {
            var s = source.GetInfo(PosteriorFactor).Shape;
            if (head is null || s.Length != 3 || s[0] != head.NumObjectives || s[1] != config.HiddenSize || s[2] < 1)
                throw new CheckpointException(
                    $"{location}: tensor '{PosteriorFactor}' has shape {source.GetInfo(PosteriorFactor).ShapeText}, expected " +
                    $"[num_objectives, hidden_size, rank] = [{head?.NumObjectives}, {config.HiddenSize}, R] on a reward checkpoint.",
                    location, PosteriorFactor);
        }
    }

    private static string Preview(List<string> names) =>
        string.Join(", ", names.Take(64)) + (names.Count > 64 ? $", … and {names.Count - 64} more" : "");
}
