namespace OnnxReward.Export.Checkpoints;

/// <summary>
/// An opened checkpoint: its backbone config, its ArmoRM head config (null for a backbone-only checkpoint such as a
/// llama2.c file) and its tensors by Hugging Face name. Opening validates the layout against the config, so every
/// tensor the config implies is present with the right shape.
/// </summary>
public sealed partial class Checkpoint : IDisposable
{
    public required LlamaConfig Config { get; init; }

    public RewardHeadConfig? Head { get; init; }

    /// <summary>The sequence-classification head (<c>score.weight</c>), or null. At most one of <see cref="Head"/> and
    /// this is set.</summary>
    public ClassifierHeadConfig? Classifier { get; init; }

    public required ITensorSource Tensors { get; init; }

    /// <summary><c>huggingface</c> or <c>llama2c</c>.</summary>
    public required string Format { get; init; }

    /// <summary>The files the tensors come from (for hashing into the export manifest).</summary>
    public required IReadOnlyList<string> SourceFiles { get; init; }

    /// <summary>The folder of a Hugging Face checkpoint (tokenizer files live there), or the .bin file's folder.</summary>
    public required string Location { get; init; }

    public void Dispose() => Tensors.Dispose();
}
