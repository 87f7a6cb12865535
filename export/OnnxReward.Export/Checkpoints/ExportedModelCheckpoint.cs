using OnnxReward.Export.Onnx;
using OnnxReward.Model;

namespace OnnxReward.Export.Checkpoints;

/// <summary>
/// Recovers the Hugging Face checkpoint an fp32 model directory was exported from, by undoing the exporter's weight
/// layout (LlamaRewardGraph): the packed QKV and gate/up weights are split back into q/k/v_proj and gate/up_proj, the
/// transposed ones (<c>….weight.T</c>) transposed back, the posterior factor permuted back from [D, K·R] to [K, D, R];
/// everything else (embedding, norms, gating, transform) is stored as the checkpoint had it. Every value is copied
/// exactly (a transpose moves bits), so re-exporting the recovered checkpoint gives the same weights file.
/// For re-quantizing a model whose checkpoint is gone (models/default ships without one). The graph does not record the
/// whole config (heads, RoPE θ, gating sizes), so the caller gives it; <see cref="Write"/> checks every tensor's shape
/// against it.
/// <code>
/// ExportedModelCheckpoint.Write("models/default", "out/default-checkpoint", config, head);
/// ModelExporter.Export("out/default-checkpoint", "out/default-int8", new ExportOptions { Precision = ExportPrecision.Parse("int8") });
/// </code>
/// </summary>
public static class ExportedModelCheckpoint
{
    /// <summary>Writes <paramref name="checkpointDirectory"/> (config.json, model.safetensors and the model's tokenizer
    /// files) from the fp32 model directory <paramref name="modelDirectory"/>, whose backbone and head are
    /// <paramref name="config"/> and <paramref name="head"/>. Tensors are written in <see cref="CheckpointLayout.Expected"/>
    /// order, float32 except those the graph stores as float16 (the embedding table), which keep their bytes.</summary>
    /// <exception cref="CheckpointException">the directory is not an fp32 reward model, or a tensor is missing or has
    /// another shape than <paramref name="config"/> / <paramref name="head"/> imply (the message names it).</exception>
    public static string Write(string modelDirectory, string checkpointDirectory, LlamaConfig config, RewardHeadConfig head)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(head);
        RewardModelManifest manifest;
        try
        {
            manifest = RewardModelManifest.Load(modelDirectory);
        }
        catch (RewardModelException e)
        {
            throw new CheckpointException($"{modelDirectory} is not a model directory: {e.Message}", modelDirectory);
        }
        if (manifest.DType != "fp32")
            throw new CheckpointException(
                $"{modelDirectory} is a {manifest.DType} model; only an fp32 model holds the exact weights a checkpoint needs (a quantized one has lost them).", modelDirectory);
        var graphPath = Path.Combine(modelDirectory, manifest.Graph);
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(graphPath));
        var initializers = model.Graph.Initializer.ToDictionary(t => t.Name, StringComparer.Ordinal);

        (float[] Values, long[] Dims, bool Half, byte[] Raw) Read(string name)
        {
            if (!initializers.TryGetValue(name, out var t))
                throw new CheckpointException($"{graphPath} has no initializer '{name}'; was it written by this exporter at fp32?", graphPath, name);
            var type = Enum.GetValues<ElementType>().FirstOrDefault(e => e.OnnxCode() == t.DataType, ElementType.Int64);
            var count = t.Dims.Aggregate(1L, (a, d) => a * d);
            byte[] raw;
            if (t.DataLocation == TensorProto.Types.DataLocation.External)
            {
                var entries = t.ExternalData.ToDictionary(e => e.Key, e => e.Value);
                var file = Path.Combine(modelDirectory, entries["location"]);
                raw = new byte[long.Parse(entries["length"], System.Globalization.CultureInfo.InvariantCulture)];
                using var stream = File.OpenRead(file);
                stream.Position = long.Parse(entries["offset"], System.Globalization.CultureInfo.InvariantCulture);
                stream.ReadExactly(raw);
            }
            else
                raw = t.RawData.ToByteArray();
            if (type is not (ElementType.Float or ElementType.Float16) || raw.Length != count * type.Size())
                throw new CheckpointException($"{graphPath}: initializer '{name}' is {type} with {raw.Length} bytes for [{string.Join(", ", t.Dims)}]; expected float32 or float16 data.", graphPath, name);
            var values = new float[count];
            ElementConversion.ToFloat32(raw, type, values);
            return (values, t.Dims.ToArray(), type == ElementType.Float16, raw);
        }

        // [in, Σ out] packed → rows [start, start + rows) of the HF [out, in] layout.
        static float[] Columns(float[] packed, long inFeatures, long total, long start, long rows)
        {
            var w = new float[rows * inFeatures];
            for (long o = 0; o < rows; o++)
                for (long i = 0; i < inFeatures; i++)
                    w[o * inFeatures + i] = packed[i * total + start + o];
            return w;
        }

        long d = config.HiddenSize, f = config.IntermediateSize, q = config.NumAttentionHeads * config.HeadDim, kv = config.NumKeyValueHeads * config.HeadDim;
        Directory.CreateDirectory(checkpointDirectory);
        using (var writer = new HuggingFaceCheckpointWriter(checkpointDirectory))
        {
            var expected = CheckpointLayout.Expected(config, head).ToList();
            if (head.HasPosterior)
            {
                // Not in Expected (optional there): [K, D, R], R from the graph's [D, K·R] factor.
                var dkr = initializers.TryGetValue(CheckpointLayout.PosteriorFactor + ".DKR", out var t)
                    ? t.Dims.ToArray()
                    : throw new CheckpointException($"{graphPath} has no posterior factor, but the head config says it has one (HasPosterior).", graphPath, CheckpointLayout.PosteriorFactor);
                expected.Add((CheckpointLayout.PosteriorFactor, [head.NumObjectives, d, dkr[1] / head.NumObjectives], "num_objectives × hidden_size × rank"));
            }
            foreach (var (name, shape, because) in expected)
            {
                float[] values;
                var parts = name.Split('.');
                var p = name.StartsWith("model.layers.", StringComparison.Ordinal) ? $"model.layers.{parts[2]}" : "";
                switch (name)
                {
                    case var _ when name.EndsWith("self_attn.q_proj.weight", StringComparison.Ordinal)
                                 || name.EndsWith("self_attn.k_proj.weight", StringComparison.Ordinal)
                                 || name.EndsWith("self_attn.v_proj.weight", StringComparison.Ordinal):
                    {
                        var packed = Read($"{p}.attn.qkv_proj.MatMul.weight").Values;
                        var start = parts[4] switch { "q_proj" => 0, "k_proj" => q, _ => q + kv };
                        values = Columns(packed, d, q + 2 * kv, start, shape[0]);
                        break;
                    }
                    case var _ when name.EndsWith("mlp.gate_proj.weight", StringComparison.Ordinal) || name.EndsWith("mlp.up_proj.weight", StringComparison.Ordinal):
                        values = Columns(Read($"{p}.mlp.gate_up_proj.MatMul.weight").Values, d, 2 * f, parts[4] == "gate_proj" ? 0 : f, f);
                        break;
                    case var _ when name.EndsWith("self_attn.o_proj.weight", StringComparison.Ordinal) || name.EndsWith("mlp.down_proj.weight", StringComparison.Ordinal)
                                 || name == "regression_layer.weight":
                        values = Columns(Read(name + ".T").Values, shape[1], shape[0], 0, shape[0]);
                        break;
                    case CheckpointLayout.PosteriorFactor:
                    {
                        var dkr = Read(name + ".DKR");                                   // [D, K·R]
                        long k = shape[0], r = shape[2];
                        values = new float[k * d * r];
                        for (long kk = 0; kk < k; kk++)
                            for (long dd = 0; dd < d; dd++)
                                Array.Copy(dkr.Values, (dd * k + kk) * r, values, (kk * d + dd) * r, r);
                        break;
                    }
                    default:
                    {
                        var t = Read(name);
                        if (!t.Dims.SequenceEqual(shape))
                            throw new CheckpointException($"{graphPath}: '{name}' is [{string.Join(", ", t.Dims)}], but the config implies [{string.Join(", ", shape)}] ({because}).", graphPath, name);
                        if (t.Half)
                        {
                            writer.AddRaw(name, ElementType.Float16, shape, t.Raw);
                            continue;
                        }
                        values = t.Values;
                        break;
                    }
                }
                if (values.LongLength != shape.Aggregate(1L, (a, b) => a * b))
                    throw new CheckpointException($"{graphPath}: '{name}' recovers {values.LongLength} values, but the config implies [{string.Join(", ", shape)}] ({because}).", graphPath, name);
                writer.Add(name, ElementType.Float, shape, values);
            }
            writer.Complete(config, head);
        }
        foreach (var file in manifest.TokenizerFiles)
            File.Copy(Path.Combine(modelDirectory, file), Path.Combine(checkpointDirectory, file), overwrite: true);
        return checkpointDirectory;
    }
}
