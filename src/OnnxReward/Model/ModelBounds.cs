namespace OnnxReward.Model;

/// <summary>
/// Sane bounds for a model's shape, shared by the exporter (config.json values, checked before anything is allocated)
/// and by <see cref="RewardModelManifest.Load"/> (a tampered reward_model.json). Each admits every released
/// Llama-family model with room to spare — Llama-3.1-405B: 126 layers, hidden 16,384, intermediate 53,248, 128 heads,
/// 8 KV heads, vocab 128,256, 131,072 positions; Llama-4: 10 M positions; the largest vocabularies about 256 K to 1 M —
/// and refuses values no model has (issue 16 items 4 and 12).
/// </summary>
public static class ModelBounds
{
    public const int MaxLayers = 1024;
    public const int MaxHiddenSize = 1 << 16;             // 65,536
    public const int MaxIntermediateSize = 1 << 18;       // 262,144
    public const int MaxAttentionHeads = 4096;
    public const int MaxVocabSize = 1 << 22;              // 4,194,304
    public const int MaxPositions = 1 << 24;              // 16,777,216
    public const int MinPositions = 2;
    public const int MaxObjectives = 4096;
    public const int MaxGatingPatternLength = 64;
}
