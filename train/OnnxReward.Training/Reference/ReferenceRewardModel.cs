using OnnxReward.Export.Checkpoints;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace OnnxReward.Training.Reference;

// Shape legend: B = batch, T = seq, D = hidden_size, V = vocab_size, K = num_objectives.

/// <summary>
/// The TorchSharp reference of a checkpoint: the Llama <see cref="Backbone"/> (frozen, eval mode) and, for a reward
/// checkpoint, the ArmoRM <see cref="Head"/> (trainable), kept as separate modules. Parameter names are the checkpoint's
/// Hugging Face tensor names, so <see cref="Load"/> copies by name and <see cref="ExportParameters"/> writes them back.
/// Float32 on the CPU; deterministic (no dropout, no sampling).
/// </summary>
internal sealed class ReferenceRewardModel : IDisposable
{
    private ReferenceRewardModel(LlamaBackbone backbone, ArmoRmHead? head, SequenceClassifierHead? classifier)
    {
        Backbone = backbone;
        Head = head;
        Classifier = classifier;
    }

    /// <summary>The sequence-classification head (<c>score.weight</c>), or null.</summary>
    public SequenceClassifierHead? Classifier { get; }

    public LlamaBackbone Backbone { get; }

    /// <summary>The ArmoRM head, or null for a backbone-only checkpoint (e.g. llama2.c).</summary>
    public ArmoRmHead? Head { get; }

    public LlamaConfig Config => Backbone.Config;

    /// <summary>
    /// Builds the modules from the checkpoint's config and copies every parameter from the tensor of the same name,
    /// checking its shape. Tensors the modules do not use (e.g. <c>posterior.*</c>) are ignored.
    /// </summary>
    /// <exception cref="CheckpointException">A parameter's tensor is missing or has another shape; the message names it.</exception>
    public static ReferenceRewardModel Load(Checkpoint checkpoint)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        var config = checkpoint.Config;
        var backbone = new LlamaBackbone(config, hasLmHead: checkpoint.Tensors.Contains("lm_head.weight"));
        ArmoRmHead? head = null;
        SequenceClassifierHead? classifier = null;
        try
        {
            head = checkpoint.Head is null ? null : new ArmoRmHead(config.HiddenSize, checkpoint.Head);
            classifier = checkpoint.Classifier is null ? null : new SequenceClassifierHead(config.HiddenSize, checkpoint.Classifier.NumLabels);
            CopyIn(backbone, checkpoint);
            if (head is not null)
                CopyIn(head, checkpoint);
            if (classifier is not null)
            {
                CopyIn(classifier, checkpoint);
                classifier.eval();
            }
            backbone.eval();
            foreach (var p in backbone.parameters())
                p.requires_grad = false;
            head?.eval();
            return new ReferenceRewardModel(backbone, head, classifier);
        }
        catch
        {
            backbone.Dispose();
            head?.Dispose();
            classifier?.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Copies every parameter of <paramref name="module"/> from the checkpoint tensor named <paramref name="prefix"/> +
    /// its parameter name (bf16/fp16 widened to fp32, exact), checking its shape: the one loading rule of the whole model
    /// (prefix "") and of <see cref="LayerStreamingReference"/>'s single layers (prefix <c>model.layers.{i}.</c>).
    /// </summary>
    /// <exception cref="CheckpointException">A tensor is missing or has another shape; the message names it.</exception>
    internal static void CopyIn(nn.Module module, Checkpoint checkpoint, string prefix = "")
    {
        using var noGrad = no_grad();
        var buffer = Array.Empty<float>();
        foreach (var (parameterName, parameter) in module.named_parameters())
        {
            var name = prefix + parameterName;
            if (!checkpoint.Tensors.Contains(name))
                throw new CheckpointException(
                    $"Tensor {name} {Shape(parameter.shape)} is missing from the checkpoint at {checkpoint.Location}, but its " +
                    "config implies it. Re-export the checkpoint with every backbone and head tensor.", checkpoint.Location, name);
            var info = checkpoint.Tensors.GetInfo(name);
            if (!info.Shape.SequenceEqual(parameter.shape))
                throw new CheckpointException(
                    $"Tensor {name} has shape {info.ShapeText} in the checkpoint at {checkpoint.Location}, but its config " +
                    $"implies {Shape(parameter.shape)}. Fix config.json or the tensor so they agree.", checkpoint.Location, name);
            ReadInto(parameter, checkpoint.Tensors, name, ref buffer);
        }
    }

    /// <summary>Reads the tensor into <paramref name="buffer"/> (grown as needed and reused across one module's
    /// parameters) and copies its bytes into the parameter's float32 storage: one managed buffer per module instead of
    /// a new array per tensor (at 8B widths a projection is 235 MB).</summary>
    private static void ReadInto(Parameter parameter, ITensorSource tensors, string name, ref float[] buffer)
    {
        var count = checked((int)parameter.numel());
        if (buffer.Length < count)
            buffer = new float[count];
        var values = buffer.AsSpan(0, count);
        tensors.ReadFloat32(name, values);
        if (parameter.dtype == ScalarType.Float32 && parameter.device_type == DeviceType.CPU && parameter.is_contiguous())
        {
            parameter.bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(values);
            return;
        }
        using var source = tensor(values.ToArray(), parameter.shape);
        parameter.copy_(source);
    }

    /// <summary>
    /// Reward forward: input_ids [B, T] (right-padded with any id), reward_positions [B] and gating_positions [B] (int64
    /// indices into T) → score, rewards, gating and the two gathered hidden states (after the final norm).
    /// </summary>
    public RewardForwardOutput Forward(Tensor inputIds, Tensor rewardPositions, Tensor gatingPositions)
    {
        var head = Head ?? throw new InvalidOperationException(
            "This checkpoint has no ArmoRM head (no regression_layer / gating tensors), so it has no reward. Use ForwardBackbone.");
        ValidateIds(inputIds);
        long b = inputIds.shape[0], t = inputIds.shape[1];
        ValidatePositions(rewardPositions, b, t, "reward_positions");
        ValidatePositions(gatingPositions, b, t, "gating_positions");

        using var scope = NewDisposeScope();
        var hidden = Backbone.forward(inputIds);                                   // [B, T, D]
        var batch = arange(b, dtype: ScalarType.Int64);
        var rewardHidden = hidden[batch, rewardPositions];                         // [B, D] = h_r
        var promptHidden = hidden[batch, gatingPositions];                         // [B, D] = h_p
        var o = head.forward(rewardHidden, promptHidden);                          // [B], [B, K], [B, K]
        return new RewardForwardOutput(o.Score.MoveToOuterDisposeScope(), o.Rewards.MoveToOuterDisposeScope(),
            o.Gating.MoveToOuterDisposeScope(), rewardHidden.MoveToOuterDisposeScope(), promptHidden.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// Sequence-classification forward (transformers GenericForSequenceClassification): input_ids [B, T] → logits [B, L]
    /// of <c>score</c> at each row's pooled token and that token's hidden state [B, D]. The pooled token is the rightmost
    /// one that is not pad_token_id: <c>(arange(T) * (input_ids != pad)).argmax(-1)</c>, T − 1 without a pad id.
    /// </summary>
    public (Tensor Logits, Tensor PooledHidden) ForwardClassifier(Tensor inputIds)
    {
        var classifier = Classifier ?? throw new InvalidOperationException(
            "This checkpoint has no sequence-classification head (no score.weight), so it has no logits. Use Forward or ForwardBackbone.");
        ValidateIds(inputIds);
        long b = inputIds.shape[0], t = inputIds.shape[1];
        using var scope = NewDisposeScope();
        var hidden = Backbone.forward(inputIds);                                   // [B, T, D]
        var tokenIndices = arange(t, dtype: ScalarType.Int64);                     // [T]
        var pooledPosition = Config.PadTokenId is { } pad
            ? (tokenIndices * inputIds.ne(pad).to_type(ScalarType.Int64)).argmax(-1)  // [B]
            : full(b, t - 1, dtype: ScalarType.Int64);
        var pooled = hidden[arange(b, dtype: ScalarType.Int64), pooledPosition];  // [B, D]
        var logits = classifier.forward(pooled);                                   // [B, L]
        return (logits.MoveToOuterDisposeScope(), pooled.MoveToOuterDisposeScope());
    }

    /// <summary>Backbone forward: last_hidden_state [B, T, D] and, when <paramref name="withLogits"/> is set and the
    /// checkpoint has a classifier (lm_head or tied embeddings), logits [B, T, V].</summary>
    public BackboneForwardOutput ForwardBackbone(Tensor inputIds, bool withLogits = true)
    {
        ValidateIds(inputIds);
        using var scope = NewDisposeScope();
        var hidden = Backbone.forward(inputIds);                                   // [B, T, D]
        var logits = withLogits && Backbone.HasClassifier ? Backbone.Logits(hidden) : null; // [B, T, V]
        return new BackboneForwardOutput(hidden.MoveToOuterDisposeScope(), logits?.MoveToOuterDisposeScope());
    }

    /// <summary>Every parameter (backbone, then head) as name → shape + float32 values, names as in the checkpoint,
    /// so training can write a checkpoint with <see cref="HuggingFaceCheckpointWriter"/>.</summary>
    public IReadOnlyDictionary<string, ParameterData> ExportParameters()
    {
        var result = new Dictionary<string, ParameterData>(StringComparer.Ordinal);
        IEnumerable<(string, Parameter)> all = Backbone.named_parameters();
        if (Head is not null)
            all = all.Concat(Head.named_parameters());
        if (Classifier is not null)
            all = all.Concat(Classifier.named_parameters());
        foreach (var (name, parameter) in all)
        {
            using var cpu = parameter.detach().cpu().contiguous();
            result.Add(name, new ParameterData(cpu.shape.ToArray(), cpu.data<float>().ToArray()));
        }
        return result;
    }

    public void Dispose()
    {
        Backbone.Dispose();
        Head?.Dispose();
        Classifier?.Dispose();
    }

    private void ValidateIds(Tensor inputIds)
    {
        ArgumentNullException.ThrowIfNull(inputIds);
        if (inputIds.dtype != ScalarType.Int64 || inputIds.dim() != 2 || inputIds.shape[0] == 0 || inputIds.shape[1] == 0)
            throw new ArgumentException(
                $"input_ids must be a non-empty int64 tensor [B, T]; got {inputIds.dtype} {Shape(inputIds.shape)}.", nameof(inputIds));
        using var minT = inputIds.min();
        using var maxT = inputIds.max();
        long min = minT.item<long>(), max = maxT.item<long>();
        if (min < 0 || max >= Config.VocabSize)
            throw new ArgumentException(
                $"input_ids holds ids in [{min}, {max}], outside the vocabulary [0, {Config.VocabSize}). " +
                "Tokenize with this checkpoint's tokenizer.", nameof(inputIds));
    }

    private static void ValidatePositions(Tensor positions, long b, long t, string name)
    {
        ArgumentNullException.ThrowIfNull(positions, name);
        if (positions.dtype != ScalarType.Int64 || positions.dim() != 1 || positions.shape[0] != b)
            throw new ArgumentException(
                $"{name} must be an int64 tensor [{b}] (one index per row of input_ids); got {positions.dtype} {Shape(positions.shape)}.", name);
        using var minT = positions.min();
        using var maxT = positions.max();
        long min = minT.item<long>(), max = maxT.item<long>();
        if (min < 0 || max >= t)
            throw new ArgumentException($"{name} holds indices in [{min}, {max}], outside [0, {t}) of input_ids' sequence axis.", name);
    }

    private static string Shape(long[] shape) => "[" + string.Join(", ", shape) + "]";
}

/// <summary>The <c>*ForSequenceClassification</c> head: <c>score</c> = Linear(D, L, bias=False), named as the HF key.</summary>
internal sealed class SequenceClassifierHead : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field name is the Hugging Face state-dict key
    private readonly Linear score;
#pragma warning restore IDE1006

    public SequenceClassifierHead(int hiddenSize, int numLabels) : base(nameof(SequenceClassifierHead))
    {
        score = nn.Linear(hiddenSize, numLabels, hasBias: false);
        RegisterComponents();
    }

    public override Tensor forward(Tensor pooled) => score.forward(pooled);   // [B, D] → [B, L]
}

/// <summary>One parameter's shape and row-major float32 values.</summary>
internal sealed record ParameterData(long[] Shape, float[] Values);

/// <summary>Reward forward outputs: score [B], rewards [B, K], gating [B, K] (sums to logit_scale), reward_hidden
/// [B, D] = last_hidden_state[b, reward_position], prompt_hidden [B, D] = last_hidden_state[b, gating_position].</summary>
internal sealed record RewardForwardOutput(Tensor Score, Tensor Rewards, Tensor Gating, Tensor RewardHidden, Tensor PromptHidden)
    : IDisposable
{
    public void Dispose()
    {
        Score.Dispose();
        Rewards.Dispose();
        Gating.Dispose();
        RewardHidden.Dispose();
        PromptHidden.Dispose();
    }
}

/// <summary>last_hidden_state [B, T, D] and logits [B, T, V] (null without a classifier or when not asked for).</summary>
internal sealed record BackboneForwardOutput(Tensor LastHiddenState, Tensor? Logits) : IDisposable
{
    public void Dispose()
    {
        LastHiddenState.Dispose();
        Logits?.Dispose();
    }
}
