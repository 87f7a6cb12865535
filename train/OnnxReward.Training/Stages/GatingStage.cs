using OnnxReward.Training.Reference;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace OnnxReward.Training.Stages;

// Shape legend: N = preference pairs, D = embedding size, K = objectives, G = gating hidden size, B = batch.

/// <summary>Stage-2 hyperparameters (armorm.md §2.2 CLI defaults, except sizes that tests shrink).</summary>
public sealed record GatingOptions
{
    public int HiddenSize { get; init; } = 1024;           // gating_hidden_dim
    public int NHidden { get; init; } = 3;                 // gating_n_hidden
    public double Dropout { get; init; } = 0.2;            // after each hidden ReLU, training only
    public double Temperature { get; init; } = 10;         // gating_temperature τ
    public double LearningRate { get; init; } = 1e-3;      // AdamW, weight_decay 0, cosine annealing to 0
    public int Steps { get; init; } = 2000;
    public int BatchSize { get; init; } = 1024;            // sampled with replacement every step
    public int EvaluateEvery { get; init; } = 100;         // validation loss / accuracy every this many steps (and at the end)
    public long Seed { get; init; } = 0;

    internal void Validate()
    {
        if (HiddenSize < 1 || NHidden < 0 || Steps < 1 || BatchSize < 1 || EvaluateEvery < 1)
            throw new ArgumentOutOfRangeException(nameof(GatingOptions), $"Gating options need HiddenSize ≥ 1 (got {HiddenSize}), NHidden ≥ 0 ({NHidden}), Steps ≥ 1 ({Steps}), BatchSize ≥ 1 ({BatchSize}), EvaluateEvery ≥ 1 ({EvaluateEvery}).");
        if (!(Dropout >= 0 && Dropout < 1) || !(Temperature > 0) || !(LearningRate > 0))
            throw new ArgumentOutOfRangeException(nameof(GatingOptions), $"Dropout must be in [0, 1) (got {Dropout}), Temperature > 0 ({Temperature}), LearningRate > 0 ({LearningRate}).");
    }
}

/// <summary>A trained gating network and its curves. Dispose it when done.</summary>
public sealed class GatingHead : IDisposable
{
    private readonly GatingNetwork mlp;

    internal GatingHead(GatingNetwork mlp, float[] trainLoss, int[] evalSteps, float[] validationLoss, float[] validationAccuracy)
    {
        this.mlp = mlp;
        TrainLoss = trainLoss;
        EvaluationSteps = evalSteps;
        ValidationLoss = validationLoss;
        ValidationAccuracy = validationAccuracy;
    }

    /// <summary>BT loss of each training batch, one per step.</summary>
    public IReadOnlyList<float> TrainLoss { get; }

    /// <summary>Steps (1-based) after which the validation set was scored.</summary>
    public IReadOnlyList<int> EvaluationSteps { get; }
    public IReadOnlyList<float> ValidationLoss { get; }

    /// <summary>mean(pred_c − pred_r &gt; 0) on the validation pairs, per evaluation.</summary>
    public IReadOnlyList<float> ValidationAccuracy { get; }

    /// <summary>Gating weights g = β softmax(z/τ) [N, K] (evaluation mode: no dropout).</summary>
    public float[,] Gate(float[,] promptEmbeddings)
    {
        ArgumentNullException.ThrowIfNull(promptEmbeddings);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        mlp.eval();
        return Matrices.ToFloat2D(mlp.forward(Matrices.ToTensor(promptEmbeddings, ScalarType.Float32)));
    }

    /// <summary>The parameters by checkpoint key (<c>gating.layers.0.weight</c> …, <c>gating.logit_scale</c>):
    /// shape and row-major float32 data.</summary>
    public IReadOnlyDictionary<string, (long[] Shape, float[] Data)> Parameters()
    {
        var result = new SortedDictionary<string, (long[], float[])>(StringComparer.Ordinal);
        foreach (var (name, p) in mlp.named_parameters())
            result["gating." + name] = (p.shape.ToArray(), p.detach().contiguous().data<float>().ToArray());
        return result;
    }

    public void Dispose() => mlp.Dispose();
}

/// <summary>
/// ArmoRM stage 2 (armorm.md §2.2–2.3, released-model semantics): a gating MLP on the prompt embedding mixes the
/// debiased objective rewards, pred = Σ_j g_j (r T)_j with g = β softmax(z/τ), trained by the BT loss
/// BCEWithLogits(pred_c − pred_r, 1) with AdamW (lr 1e-3, weight decay 0) and cosine annealing; batches are drawn
/// with replacement from a generator seeded by <see cref="GatingOptions.Seed"/>. W and T stay frozen.
/// Deterministic: torch.manual_seed(seed) before initialisation and one intra-op thread during training (restored
/// afterwards), so the same inputs and seed give bit-identical weights.
/// </summary>
public static class GatingStage
{
    /// <param name="promptEmbeddings">Prompt (gating-token) embeddings [N, D], one per pair.</param>
    /// <param name="chosenRewards">Objective rewards of the chosen responses, r_c = φ_c Wᵀ [N, K].</param>
    /// <param name="rejectedRewards">r_r = φ_r Wᵀ [N, K].</param>
    /// <param name="transform">T [K, K] from <see cref="VerbosityDebias"/> (identity for none).</param>
    /// <param name="trainRows">Pairs to train on.</param>
    /// <param name="validationRows">Pairs for the validation curves (may be empty).</param>
    /// <param name="options">Hyperparameters; null for the defaults.</param>
    public static GatingHead Train(float[,] promptEmbeddings, float[,] chosenRewards, float[,] rejectedRewards, float[,] transform,
        int[] trainRows, int[] validationRows, GatingOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(promptEmbeddings);
        ArgumentNullException.ThrowIfNull(chosenRewards);
        ArgumentNullException.ThrowIfNull(rejectedRewards);
        ArgumentNullException.ThrowIfNull(transform);
        options ??= new GatingOptions();
        options.Validate();
        int n = promptEmbeddings.GetLength(0), d = promptEmbeddings.GetLength(1), k = chosenRewards.GetLength(1);
        if (chosenRewards.GetLength(0) != n || rejectedRewards.GetLength(0) != n || rejectedRewards.GetLength(1) != k)
            throw new ArgumentException($"promptEmbeddings [{n}, {d}], chosenRewards [{chosenRewards.GetLength(0)}, {k}] and rejectedRewards [{rejectedRewards.GetLength(0)}, {rejectedRewards.GetLength(1)}] must have one row per pair and the same K.", nameof(rejectedRewards));
        if (transform.GetLength(0) != k || transform.GetLength(1) != k)
            throw new ArgumentException($"transform is [{transform.GetLength(0)}, {transform.GetLength(1)}], expected [{k}, {k}] (identity when there is no debiasing).", nameof(transform));
        Matrices.CheckRows(nameof(trainRows), trainRows, n);
        Matrices.CheckRows(nameof(validationRows), validationRows, n);
        if (trainRows.Length == 0)
            throw new ArgumentException("No training pairs: pass the train split's pair indices.", nameof(trainRows));

        var threads = get_num_threads();
        set_num_threads(1);
        try
        {
            manual_seed(options.Seed);
            var mlp = new GatingNetwork(d, k, options.HiddenSize, options.NHidden, options.Temperature, options.Dropout);
            using var scope = NewDisposeScope();
            var t = Matrices.ToTensor(transform, ScalarType.Float32);                              // [K, K]
            var prompts = Matrices.ToTensor(promptEmbeddings, ScalarType.Float32);                 // [N, D]
            var rc = Matrices.ToTensor(chosenRewards, ScalarType.Float32).matmul(t);               // r_c T [N, K]
            var rr = Matrices.ToTensor(rejectedRewards, ScalarType.Float32).matmul(t);             // r_r T [N, K]
            var train = tensor(trainRows.Select(r => (long)r).ToArray());
            var validation = tensor(validationRows.Select(r => (long)r).ToArray());

            var optimizer = optim.AdamW(mlp.parameters(), lr: options.LearningRate, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0);
            var scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, options.Steps);
            using var generator = new Generator((ulong)options.Seed);
            var trainLoss = new float[options.Steps];
            List<int> steps = [];
            List<float> valLoss = [], valAccuracy = [];
            for (var step = 1; step <= options.Steps; step++)
            {
                using var stepScope = NewDisposeScope();
                mlp.train();
                var pick = randint(0, trainRows.Length, [options.BatchSize], generator: generator); // with replacement [B]
                var batch = train.index_select(0, pick);
                var loss = BtLoss(mlp, prompts, rc, rr, batch, out _);
                optimizer.zero_grad();
                loss.backward();
                optimizer.step();
                scheduler.step();
                trainLoss[step - 1] = loss.item<float>();

                if (validationRows.Length > 0 && (step % options.EvaluateEvery == 0 || step == options.Steps))
                {
                    using var noGrad = no_grad();
                    mlp.eval();
                    var vLoss = BtLoss(mlp, prompts, rc, rr, validation, out var margin);
                    steps.Add(step);
                    valLoss.Add(vLoss.item<float>());
                    valAccuracy.Add(margin.gt(0).to_type(ScalarType.Float32).mean().item<float>());
                }
            }
            return new GatingHead(mlp, trainLoss, [.. steps], [.. valLoss], [.. valAccuracy]);
        }
        finally
        {
            set_num_threads(threads);
        }
    }

    /// <summary>BT loss of pairs <paramref name="rows"/>: BCEWithLogits(pred_c − pred_r, 1), pred = Σ_j g_j (r T)_j.</summary>
    private static Tensor BtLoss(GatingNetwork mlp, Tensor prompts, Tensor rc, Tensor rr, Tensor rows, out Tensor margin)
    {
        var g = mlp.forward(prompts.index_select(0, rows));                    // [B, K]
        var predC = (g * rc.index_select(0, rows)).sum(-1);                    // [B]
        var predR = (g * rr.index_select(0, rows)).sum(-1);                    // [B]
        margin = predC - predR;
        return nn.functional.binary_cross_entropy_with_logits(margin, ones_like(margin));
    }

    /// <summary>Validation accuracy of a fixed mixture with equal weights 1/K on r T (the uniform baseline).</summary>
    public static double UniformMixtureAccuracy(float[,] chosenRewards, float[,] rejectedRewards, float[,] transform, int[] rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        int k = transform.GetLength(0), correct = 0;
        foreach (var n in rows)
        {
            double margin = 0;
            for (var j = 0; j < k; j++)
                for (var i = 0; i < k; i++)
                    margin += (chosenRewards[n, i] - rejectedRewards[n, i]) * transform[i, j] / k;
            correct += margin > 0 ? 1 : 0;
        }
        return rows.Length == 0 ? double.NaN : (double)correct / rows.Length;
    }
}
