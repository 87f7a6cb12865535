using System.Security.Cryptography;
using OnnxReward.Export.Checkpoints;
using OnnxReward.Export.Exporting;
using OnnxReward.Model;
using OnnxReward.Training.Pipeline;

namespace OnnxReward.Benchmarks;

/// <summary>
/// <c>default-checkpoint MODEL_DIR OUT_DIR</c>: recovers the Hugging Face checkpoint of a model that
/// <c>onnxreward train run</c> trained (models/default ships only its fp32 model directory), so perf/accuracy.sh can
/// export it to the quantized variants. The config is the training pipeline's (TrainingOptions' defaults, the manifest's
/// objectives and token ids, as TrainingPipeline builds it); the tensors are read back from the graph
/// (<see cref="ExportedModelCheckpoint"/>). Two checks, and a non-zero exit when either fails: config.json must hash
/// to the SHA-256 the manifest recorded for the source checkpoint's config.json, and re-exporting the recovered
/// checkpoint at fp32 must give a weights file byte-identical to MODEL_DIR's.
/// </summary>
internal static class DefaultCheckpoint
{
    public static int Run(string[] args)
    {
        if (args.Length != 3)
        {
            Console.Error.WriteLine("usage: default-checkpoint <trained model directory, e.g. models/default> <output checkpoint directory>");
            return 2;
        }
        var (model, output) = (Path.GetFullPath(args[1]), Path.GetFullPath(args[2]));
        var manifest = RewardModelManifest.Load(model);
        var o = new TrainingOptions { DataDirectory = "", TokenizerDirectory = "", OutputDirectory = "" };
        var tokenizer = OnnxReward.Text.InputEncoder.Load(model).Tokenizer;
        var config = new LlamaConfig
        {
            HiddenSize = o.HiddenSize, IntermediateSize = o.IntermediateSize, NumHiddenLayers = o.Layers, NumAttentionHeads = o.Heads,
            NumKeyValueHeads = o.KeyValueHeads, VocabSize = manifest.VocabSize, RmsNormEps = 1e-5, RopeTheta = o.RopeTheta,
            MaxPositionEmbeddings = o.MaxPositionEmbeddings, PadTokenId = manifest.PadTokenId, BosTokenId = manifest.BosTokenId,
            EosTokenId = tokenizer.AddedTokenId("<|end_of_text|>"),
        };
        var head = new RewardHeadConfig
        {
            NumObjectives = manifest.Objectives.Count, GatingHiddenDim = o.Gating.HiddenSize, GatingNHidden = o.Gating.NHidden,
            GatingTemperature = o.Gating.Temperature, ObjectiveNames = manifest.Objectives, HasPosterior = manifest.HasPosterior,
        };
        if (Directory.Exists(output))
            Directory.Delete(output, true);
        ExportedModelCheckpoint.Write(model, output, config, head);

        var ok = true;
        var recorded = manifest.Source?.Files.FirstOrDefault(f => f.Name == "config.json")?.Sha256;
        var configHash = Sha256(Path.Combine(output, "config.json"));
        Console.WriteLine($"config.json: {configHash} ({(recorded is null ? "no recorded hash to compare" : recorded == configHash ? "equals the source checkpoint's" : $"DIFFERS from the source checkpoint's {recorded}")})");
        ok &= recorded is null || recorded == configHash;

        var check = Path.Combine(Path.GetTempPath(), $"onnxreward-default-checkpoint-check-{Environment.ProcessId}");
        try
        {
            ModelExporter.Export(output, check, new ExportOptions { Precision = ExportPrecision.Fp32, Overwrite = true, Verify = false });
            var (a, b) = (Sha256(Path.Combine(model, manifest.Graph + ".data")), Sha256(Path.Combine(check, manifest.Graph + ".data")));
            Console.WriteLine($"re-exported fp32 weights: {b} ({(a == b ? "byte-identical to" : "DIFFER from")} {model}'s)");
            ok &= a == b;
        }
        finally
        {
            if (Directory.Exists(check))
                Directory.Delete(check, true);
        }
        Console.WriteLine(ok ? $"recovered checkpoint: {output}" : "the recovered checkpoint is not the model's source; do not use it.");
        return ok ? 0 : 1;
    }

    private static string Sha256(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }
}
