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
//   gating  = softmax(z / temperature, dim=1) · logit_scale[0]        [B, K], rows sum to logit_scale
//   score   = sum(gating * (rewards @ reward_transform_matrix), dim=1) [B]

#pragma warning disable IDE1006 // field names are Hugging Face state-dict keys

/// <summary>ArmoRM's GatingNetwork: an MLP with ReLU between layers, softmax(z / temperature) · logit_scale.</summary>
internal sealed class GatingNetwork : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<Linear> layers;
    private readonly Parameter logit_scale;
    private readonly double temperature;

    public GatingNetwork(int inFeatures, RewardHeadConfig head) : base(nameof(GatingNetwork))
    {
        var widths = new List<int> { inFeatures };
        widths.AddRange(Enumerable.Repeat(head.GatingHiddenDim, head.GatingNHidden));
        widths.Add(head.NumObjectives);
        layers = nn.ModuleList(widths.Zip(widths.Skip(1), (i, o) => nn.Linear(i, o, hasBias: true)).ToArray());
        logit_scale = new Parameter(ones(1));
        temperature = head.GatingTemperature;
        RegisterComponents();
    }

    public override Tensor forward(Tensor promptHidden)                        // [B, D]
    {
        using var scope = NewDisposeScope();
        var x = promptHidden;
        for (var i = 0; i < layers.Count; i++)
        {
            x = layers[i].forward(x);                                          // [B, G], last layer [B, K]
            if (i < layers.Count - 1)
                x = nn.functional.relu(x);
        }
        var weights = (x / temperature).softmax(1);                            // [B, K], softmax over objectives
        return (weights * logit_scale[0]).MoveToOuterDisposeScope();
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
