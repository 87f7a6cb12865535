using Microsoft.ML.OnnxRuntime;

namespace OnnxReward.Export.Tests.Graph;

/// <summary>Runs an exported model directory's graph on the ORT CPU EP with right-padded int64 inputs.</summary>
internal sealed class OrtRunner : IDisposable
{
    private readonly InferenceSession _session;

    public OrtRunner(string modelDirectory, string? optimizedModelPath = null)
    {
        var options = new SessionOptions();
        if (optimizedModelPath is not null) options.OptimizedModelFilePath = optimizedModelPath;
        _session = new InferenceSession(Path.Combine(modelDirectory, "model.onnx"), options);
    }

    public IReadOnlyList<string> OutputNames => _session.OutputMetadata.Keys.ToList();
    public IReadOnlyList<string> InputNames => _session.InputMetadata.Keys.ToList();

    /// <summary>Outputs by name, flattened row-major. <paramref name="rows"/> are right-padded with <paramref name="pad"/>.</summary>
    public Dictionary<string, float[]> Run(IReadOnlyList<long[]> rows, long[] rewardPositions, long[]? gatingPositions, long pad = 0)
    {
        var b = rows.Count;
        var t = rows.Max(r => r.Length);
        var ids = new long[b * t];
        for (var i = 0; i < b; i++)
            for (var j = 0; j < t; j++) ids[i * t + j] = j < rows[i].Length ? rows[i][j] : pad;
        var inputs = new Dictionary<string, OrtValue>
        {
            ["input_ids"] = OrtValue.CreateTensorValueFromMemory(ids, [b, t]),
            ["reward_positions"] = OrtValue.CreateTensorValueFromMemory(rewardPositions, [b]),
        };
        if (gatingPositions is not null)
            inputs["gating_positions"] = OrtValue.CreateTensorValueFromMemory(gatingPositions, [b]);
        try
        {
            using var results = _session.Run(new RunOptions(), inputs, _session.OutputNames);
            var outputs = new Dictionary<string, float[]>();
            var names = _session.OutputNames;
            for (var i = 0; i < names.Count; i++) outputs[names[i]] = results[i].GetTensorDataAsSpan<float>().ToArray();
            return outputs;
        }
        finally
        {
            foreach (var v in inputs.Values) v.Dispose();
        }
    }

    public void Dispose() => _session.Dispose();
}
