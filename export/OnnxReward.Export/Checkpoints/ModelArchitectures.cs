using System.Text.Json;

namespace OnnxReward.Export.Checkpoints;

/// <summary>
/// The Hugging Face architectures the exporter supports, by config.json's <c>architectures[0]</c> (or, without it,
/// <c>model_type</c>): which backbone family and which head. Everything family-specific about a config starts here; an
/// architecture outside this table is refused naming it and listing the supported ones.
/// </summary>
internal static class ModelArchitectures
{
    public enum HeadKind
    {
        /// <summary>No head: the graph outputs the final hidden state (lm_head, if any, is ignored).</summary>
        None,

        /// <summary>ArmoRM's regression layer + gating MLP + transform (<c>LlamaForRewardModelWithGating</c>).</summary>
        ArmoRm,

        /// <summary><c>score.weight</c> [num_labels, D] at the pooled token.</summary>
        SequenceClassification,
    }

    public sealed record Architecture(string Name, ModelFamily Family, HeadKind Head, string ModelType, string For);

    /// <summary>Supported architectures and the real checkpoints each is meant for.</summary>
    public static IReadOnlyList<Architecture> Supported { get; } =
    [
        new("LlamaForRewardModelWithGating", ModelFamily.Llama, HeadKind.ArmoRm, "llama", "RLHFlow/ArmoRM-Llama3-8B-v0.1 and models trained here"),
        new("LlamaForSequenceClassification", ModelFamily.Llama, HeadKind.SequenceClassification, "llama",
            "Skywork-Reward-V2-Llama-3.1-8B, Skywork-Reward-Llama-3.1-8B(-v0.2), FsfairX-LLaMA3-RM, GRM-Llama3"),
        new("Qwen3ForSequenceClassification", ModelFamily.Qwen3, HeadKind.SequenceClassification, "qwen3",
            "Skywork-Reward-V2-Qwen3-0.6B / 1.7B / 4B / 8B"),
        new("LlamaModel", ModelFamily.Llama, HeadKind.None, "llama", "a Llama backbone (embeddings only)"),
        new("LlamaForCausalLM", ModelFamily.Llama, HeadKind.None, "llama", "a Llama language model (embeddings only; lm_head ignored)"),
        new("Qwen3Model", ModelFamily.Qwen3, HeadKind.None, "qwen3", "a Qwen3 backbone (embeddings only)"),
        new("Qwen3ForCausalLM", ModelFamily.Qwen3, HeadKind.None, "qwen3", "a Qwen3 language model (embeddings only; lm_head ignored)"),
    ];

    /// <summary>The list for error messages.</summary>
    public static string SupportedList => string.Join(", ", Supported.Select(a => a.Name));

    /// <summary>Reads <c>architectures</c> / <c>model_type</c>. A config with neither (hand-written, or older exports of
    /// this project) is a Llama model whose head the config's keys decide (<c>num_objectives</c>: ArmoRM).</summary>
    public static Architecture Read(string path, JsonElement root)
    {
        string? modelType = root.TryGetProperty("model_type", out var mt) && mt.ValueKind == JsonValueKind.String ? mt.GetString() : null;
        string? name = null;
        if (root.TryGetProperty("architectures", out var archs) && archs.ValueKind != JsonValueKind.Null)
        {
            if (archs.ValueKind != JsonValueKind.Array || archs.GetArrayLength() != 1 || archs[0].ValueKind != JsonValueKind.String)
                throw new CheckpointException(
                    $"{path}: architectures is {archs.GetRawText()}, expected a list of one class name (supported: {SupportedList}). Fix config.json.", path);
            name = archs[0].GetString();
        }
        if (name is null)
        {
            if (modelType is not (null or "llama"))
                throw new CheckpointException(
                    $"{path}: model_type '{modelType}' without architectures is not supported. Supported architectures: {SupportedList} " +
                    "(model_type llama or qwen3). Add the architectures entry of the checkpoint's config.json.", path);
            var armo = root.TryGetProperty("num_objectives", out _);
            return Supported.First(a => a.Name == (armo ? "LlamaForRewardModelWithGating" : "LlamaModel"));
        }
        var known = Supported.FirstOrDefault(a => a.Name == name)
            ?? throw new CheckpointException(
                $"{path}: architecture '{name}'{(modelType is null ? "" : $" (model_type '{modelType}')")} is not supported. Supported: " +
                $"{SupportedList}. Other families (Mistral, Gemma, Qwen2, …) need their own graph parts; see the README's model section.", path);
        if (modelType is not null && modelType != known.ModelType)
            throw new CheckpointException(
                $"{path}: architectures names {name} but model_type is '{modelType}' (expected '{known.ModelType}'). Use the checkpoint's own config.json.", path);
        return known;
    }
}
