using OnnxReward.Export.Checkpoints;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace OnnxReward.Training.Reference;

// Shape legend: B = batch, D = hidden_size, K = num_objectives, G = gating_hidden_dim.
//
// The ArmoRM head of LlamaForRewardModelWithGating (armorm.md §1.3), fields named like the checkpoint keys:
//   rewards = regression_layer(h_r)                                   [B, K], Linear D→K, no bias
//   z       = layers[n](relu(layers[n-1](... relu(layers[0](h_p)))))  [B, K], every layer with bias
//   gating  = logit_scale · softmax(z / temperature, dim=-1)          [B, K], rows sum to logit_scale
//   score   = sum(gating * (rewards @ reward_transform_matrix), dim=1) [B]

#pragma warning disable IDE1006 // field names are Hugging Face state-dict keys

/// <summary>
/// ArmoRM's GatingNetwork, the one gating module of the repository: the reference head below and stage-2 training
/// (<see cref="Stages.GatingStage"/>) both use it. An MLP with ReLU between layers (and, for training, dropout after each
/// hidden ReLU), then g = logit_scale · softmax(z / temperature) over the objective axis (dim −1, the released model's
/// semantics; armorm.md §2.3 item 1: the public training code's dim=1 is a bug). Fields are the checkpoint
/// keys under <c>gating.</c>: <c>layers.{i}.weight/bias</c>, <c>logit_scale</c> (β, initialised to 1).
/// </summary>
internal sealed class GatingNetwork : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<Linear> layers;
    private readonly Parameter logit_scale;
    private readonly Dropout dropout;
    private readonly double temperature;

    /// <param name="inFeatures">D, the prompt embedding size.</param>
    /// <param name="objectives">K.</param>
    /// <param name="hiddenDim">G, the width of each hidden layer (gating_hidden_dim).</param>
    /// <param name="nHidden">the number of hidden layers (gating_n_hidden).</param>
    /// <param name="temperature">τ (gating_temperature).</param>
    /// <param name="dropout">the dropout probability after each hidden ReLU in training mode; 0 (the reference) is the identity.</param>
    public GatingNetwork(int inFeatures, int objectives, int hiddenDim, int nHidden, double temperature, double dropout = 0)
        : base(nameof(GatingNetwork))
    {
        var widths = new List<int> { inFeatures };
        widths.AddRange(Enumerable.Repeat(hiddenDim, nHidden));
        widths.Add(objectives);
        layers = nn.ModuleList(widths.Zip(widths.Skip(1), (i, o) => nn.Linear(i, o, hasBias: true)).ToArray());
        logit_scale = new Parameter(ones(1));                                  // β, init 1
        this.dropout = nn.Dropout(dropout);
        this.temperature = temperature;
        RegisterComponents();
    }

    /// <summary>The gating network a checkpoint's head config describes (no dropout).</summary>
    public GatingNetwork(int inFeatures, RewardHeadConfig head)
        : this(inFeatures, head.NumObjectives, head.GatingHiddenDim, head.GatingNHidden, head.GatingTemperature)
    {
    }

    public override Tensor forward(Tensor promptHidden)                        // [B, D]
    {
        using var scope = NewDisposeScope();
        var x = promptHidden;
        for (var i = 0; i < layers.Count - 1; i++)
            x = dropout.forward(nn.functional.relu(layers[i].forward(x)));    // [B, G]
        var z = layers[^1].forward(x);                                         // [B, K]
        return (logit_scale * (z / temperature).softmax(-1)).MoveToOuterDisposeScope(); // g = β softmax(z/τ) [B, K]
    }
}

/// <summary>The ArmoRM head on top of the backbone's hidden states. All parameters are trainable.</summary>
internal sealed class ArmoRmHead : nn.Module<Tensor, Tensor, ArmoRmHeadOutput>
{
    private readonly Linear regression_layer;
    private readonly GatingNetwork gating;
    private readonly Parameter reward_transform_matrix;

    public ArmoRmHead(int hiddenSize, RewardHeadConfig head) : base(nameof(ArmoRmHead))
    {
        Config = head;
        regression_layer = nn.Linear(hiddenSize, head.NumObjectives, hasBias: false);
        gating = new GatingNetwork(hiddenSize, head);
        reward_transform_matrix = new Parameter(eye(head.NumObjectives));
        RegisterComponents();
    }

    public RewardHeadConfig Config { get; }

    /// <summary>Head outputs from the reward-token state h_r [B, D] and the gating-token state h_p [B, D].</summary>
    public override ArmoRmHeadOutput forward(Tensor rewardHidden, Tensor promptHidden)
    {
        using var scope = NewDisposeScope();
        var rewards = regression_layer.forward(rewardHidden);                  // [B, K]
        var gatingOutput = gating.forward(promptHidden);                       // [B, K]
        var adjusted = rewards.matmul(reward_transform_matrix);                // [B, K], row vector times T
        var score = (gatingOutput * adjusted).sum(1);                          // [B]
        return new ArmoRmHeadOutput(score.MoveToOuterDisposeScope(), rewards.MoveToOuterDisposeScope(),
            gatingOutput.MoveToOuterDisposeScope());
    }
}

/// <summary>score [B], rewards [B, K], gating [B, K] (includes logit_scale). Dispose to free the tensors.</summary>
internal sealed record ArmoRmHeadOutput(Tensor Score, Tensor Rewards, Tensor Gating) : IDisposable
{
    public void Dispose()
    {
        Score.Dispose();
        Rewards.Dispose();
        Gating.Dispose();
    }
}
