using OnnxReward.Training.Stages;

namespace OnnxReward.Training.Pipeline;

/// <summary>
/// Everything the ArmoRM-style pipeline needs: where data and tokenizer come from, where results go, the backbone's size
/// and the stages' hyperparameters. The defaults produce the shipped default model (about 17 MB exported) in minutes on
/// 2 cores; <see cref="Quick"/> shrinks every stage for the test suite.
/// </summary>
public sealed record TrainingOptions
{
    /// <summary>The shared data folder holding <c>preferences/</c> and <c>ratings/</c>.</summary>
    public required string DataDirectory { get; init; }

    /// <summary>A folder with the model's tokenizer files (tokenizer.json, tokenizer_config.json with the chat template).</summary>
    public required string TokenizerDirectory { get; init; }

    /// <summary>Work folder: checkpoint/, model/, embeddings cache, report and plots.</summary>
    public required string OutputDirectory { get; init; }

    // Backbone (Llama architecture, Llama-3 vocabulary + [PAD]).
    public int HiddenSize { get; init; } = 64;
    public int Layers { get; init; } = 2;
    public int Heads { get; init; } = 4;
    public int KeyValueHeads { get; init; } = 2;
    public int IntermediateSize { get; init; } = 176;
    public double RopeTheta { get; init; } = 500000;
    public int MaxPositionEmbeddings { get; init; } = 2048;

    /// <summary>Longest training sequence in tokens; longer conversations lose their oldest turns, and those still too
    /// long are skipped and counted in the report.</summary>
    public int MaxTrainLength { get; init; } = 1024;

    public int BackboneEpochs { get; init; } = 2;
    public int BackbonePairsPerBatch { get; init; } = 16;
    public double BackboneLearningRate { get; init; } = 2e-3;

    /// <summary>Stage-2 gating hyperparameters (armorm.md §2.2 defaults, hidden size scaled to the backbone).</summary>
    public GatingOptions Gating { get; init; } = new() { HiddenSize = 64, Steps = 2000, BatchSize = 512, EvaluateEvery = 100 };

    /// <summary>Seeds torch and every sampler; with the same seed a run is reproducible on the same machine.</summary>
    public long Seed { get; init; }

    /// <summary>Test-suite mode: at most this many pairs/ratings per dataset, short sequences, one epoch, few steps.</summary>
    public int? MaxExamplesPerDataset { get; init; }

    public static TrainingOptions Quick(string dataDirectory, string tokenizerDirectory, string outputDirectory) => new()
    {
        DataDirectory = dataDirectory,
        TokenizerDirectory = tokenizerDirectory,
        OutputDirectory = outputDirectory,
        HiddenSize = 32,
        Layers = 1,
        Heads = 2,
        KeyValueHeads = 1,
        IntermediateSize = 64,
        MaxTrainLength = 192,
        BackboneEpochs = 1,
        MaxExamplesPerDataset = 60,
        Gating = new GatingOptions { HiddenSize = 16, Steps = 60, BatchSize = 64, EvaluateEvery = 20 },
    };
}
