using System.Diagnostics;
using System.Globalization;
using System.Text;
using OnnxReward.Evaluation;
using OnnxReward.Export;
using OnnxReward.Export.Checkpoints;
using OnnxReward.Export.Exporting;
using OnnxReward.Text;
using OnnxReward.Training.Data;
using OnnxReward.Training.Stages;

namespace OnnxReward.Training.Pipeline;

/// <summary>What a pipeline run produced.</summary>
public sealed record TrainingResult(string CheckpointDirectory, string ModelDirectory, string ReportPath,
    IReadOnlyDictionary<string, PreferenceAccuracy> TestAccuracy, TimeSpan Elapsed);

/// <summary>
/// ArmoRM's recipe (armorm.md §2) end to end at this machine's scale:
/// data + seeded split → small Llama BT backbone → embeddings (cached) → stage 1 ridge per objective (+ exact
/// posterior) → verbosity debiasing (Spearman λ search) → stage 2 gating (BT loss, softmax over objectives, T applied)
/// → Hugging Face checkpoint → fused ONNX export → held-out test evaluation → model card and training report.
/// </summary>
public static class TrainingPipeline
{
    public const string PadToken = "[PAD]";

    /// <summary>Runs the pipeline reporting progress on the calling thread (a console has no synchronization context,
    /// so Progress&lt;T&gt; would report on the thread pool, out of order).</summary>
    public static TrainingResult RunSynchronously(TrainingOptions o, Action<string> report) => Run(o, new InlineProgress(report));

    private sealed class InlineProgress(Action<string> report) : IProgress<string>
    {
        public void Report(string value) => report(value);
    }

    /// <summary>
    /// The preference pairs of one split part that the pipeline uses: loaded and split exactly as <see cref="Run"/> does,
    /// keeping the pairs whose chosen and rejected conversations both tokenize within <see cref="TrainingOptions.MaxTrainLength"/>.
    /// The model card's test figures are computed on exactly these pairs, so <c>onnxreward eval</c> on them reproduces it.
    /// </summary>
    public static IReadOnlyList<PreferencePair> UsablePairs(TrainingOptions o, SplitPart part)
    {
        var pairs = PreferenceData.LoadDirectory(Path.Combine(o.DataDirectory, "preferences"), new List<TrainingDataException>());
        var ratings = RatingData.LoadDirectory(Path.Combine(o.DataDirectory, "ratings"));
        var encoder = InputEncoder.Load(o.TokenizerDirectory);
        var labels = ObjectiveLabels.Build(pairs, ratings, new DataSplit(), s => encoder.Tokenizer.Encode(s).Length);
        var data = EncodedDataset.Build(labels, encoder, o.MaxTrainLength);
        return labels.Examples.Select((e, i) => (e, i)).Where(t => t.e.Pair >= 0 && t.e.Split == part).GroupBy(t => t.e.Pair)
            .Where(g => g.All(t => data.IsUsable(t.i)) && g.Count() == 2)
            .Select(g => pairs[g.Key]).ToList();
    }

    public static TrainingResult Run(TrainingOptions o, IProgress<string>? progress = null)
    {
        var clock = Stopwatch.StartNew();
        Directory.CreateDirectory(o.OutputDirectory);
        void Log(string m) => progress?.Report(m);

        // ---- data and split ----
        var skipped = new List<TrainingDataException>();
        var pairs = PreferenceData.LoadDirectory(Path.Combine(o.DataDirectory, "preferences"), skipped);
        var ratings = RatingData.LoadDirectory(Path.Combine(o.DataDirectory, "ratings"));
        if (o.MaxExamplesPerDataset is { } cap)
        {
            pairs = pairs.GroupBy(p => p.Dataset).SelectMany(g => g.Take(cap)).ToList();
            ratings = ratings.GroupBy(r => r.Dataset).SelectMany(g => g.Take(cap)).ToList();
        }
        var split = new DataSplit();
        var encoder = InputEncoder.Load(o.TokenizerDirectory);
        var labels = ObjectiveLabels.Build(pairs, ratings, split, s => encoder.Tokenizer.Encode(s).Length);
        Log($"data: {pairs.Count} pairs, {ratings.Count} ratings, {labels.Objectives.Count} objectives; {skipped.Count} unusable rows skipped");
        var data = EncodedDataset.Build(labels, encoder, o.MaxTrainLength);
        Log($"tokenized: {data.Encoded.Count(e => e is not null)}/{data.Encoded.Length} usable ({data.Shortened} shortened, {data.TooLong} too long, {data.Unencodable} unencodable)" +
            (data.FirstError is { } first ? $"; first error: {first}" : ""));

        var pairRows = labels.Examples.Select((e, i) => (e, i)).Where(t => t.e.Pair >= 0).GroupBy(t => t.e.Pair)
            .Select(g => (Chosen: g.First(t => t.e.IsChosen == true).i, Rejected: g.First(t => t.e.IsChosen == false).i, g.First().e.Split, g.First().e.Dataset))
            .Where(p => data.IsUsable(p.Chosen) && data.IsUsable(p.Rejected)).ToList();
        List<(int Chosen, int Rejected)> PairsOf(SplitPart part) => pairRows.Where(p => p.Split == part).Select(p => (p.Chosen, p.Rejected)).ToList();

        // ---- backbone: BT reward model from scratch ----
        var config = new LlamaConfig
        {
            HiddenSize = o.HiddenSize, IntermediateSize = o.IntermediateSize, NumHiddenLayers = o.Layers, NumAttentionHeads = o.Heads,
            NumKeyValueHeads = o.KeyValueHeads, VocabSize = encoder.Tokenizer.VocabularySize, RmsNormEps = 1e-5, RopeTheta = o.RopeTheta,
            MaxPositionEmbeddings = o.MaxPositionEmbeddings, PadTokenId = encoder.Tokenizer.AddedTokenId(PadToken),
            BosTokenId = encoder.Tokenizer.AddedTokenId("<|begin_of_text|>"), EosTokenId = encoder.Tokenizer.AddedTokenId("<|end_of_text|>"),
        };
        if (config.PadTokenId is null)
            throw new ArgumentException($"{o.TokenizerDirectory}/tokenizer.json has no {PadToken} token; use an ArmoRM-style tokenizer with [PAD] = 128256.");
        var threads = TorchSharp.torch.get_num_threads();
        TorchSharp.torch.set_num_threads(Math.Max(1, Math.Min(2, Environment.ProcessorCount)));
        using var backbone = new BackboneTrainer(config, o.Seed);
        backbone.Train(data, PairsOf(SplitPart.Train), PairsOf(SplitPart.Validation), o.BackboneEpochs, o.BackbonePairsPerBatch,
            o.BackboneLearningRate, o.Seed, progress);
        backbone.RoundEmbeddingsToHalf();
        var btValidation = backbone.Accuracy(data, PairsOf(SplitPart.Validation));
        Log($"backbone trained: validation accuracy {btValidation:P1}");

        // ---- embeddings (cached) ----
        var (rewardHidden, gatingHidden) = EmbeddingCache.GetOrCompute(Path.Combine(o.OutputDirectory, "embeddings.bin"),
            CacheKey(o, backbone), () => backbone.Extract(data, progress));
        TorchSharp.torch.set_num_threads(threads);

        // ---- stage 1: ridge per objective on usable rows, exact posterior ----
        // An objective needs labelled usable rows in train (to fit) and validation (to choose α); one without them
        // (e.g. long news articles over the training length in a quick run) is left out and reported.
        int[] Usable(int[] rows) => rows.Where(data.IsUsable).ToArray();
        var trainRows = Usable(labels.RowsOf(SplitPart.Train));
        var validationRows = Usable(labels.RowsOf(SplitPart.Validation));
        var kept = Enumerable.Range(0, labels.Objectives.Count).Where(k => k == labels.VerbosityIndex
            || (trainRows.Count(r => !float.IsNaN(labels.Labels[r, k])) >= 2 && validationRows.Any(r => !float.IsNaN(labels.Labels[r, k])))).ToArray();
        var droppedObjectives = Enumerable.Range(0, labels.Objectives.Count).Except(kept).Select(k => labels.ObjectiveNames[k]).ToList();
        if (droppedObjectives.Count > 0)
            Log($"objectives without usable train/validation labels, left out: {string.Join(", ", droppedObjectives)}");
        var names = kept.Select(k => labels.ObjectiveNames[k]).ToArray();
        var verbosityIndex = Array.IndexOf(kept, labels.VerbosityIndex);
        var labelMatrix = new float[labels.Labels.GetLength(0), kept.Length];
        for (var r = 0; r < labelMatrix.GetLength(0); r++)
            for (var k = 0; k < kept.Length; k++)
                labelMatrix[r, k] = labels.Labels[r, kept[k]];
        var ridge = RidgeStage.Fit(rewardHidden, labelMatrix, trainRows, validationRows, names, posteriorRank: 0);
        Log("stage 1 ridge done");

        // ---- verbosity debiasing on the reference set (preference training responses, chosen and rejected) ----
        var referenceRows = PairsOf(SplitPart.Train).SelectMany(p => new[] { p.Chosen, p.Rejected }).ToArray();
        var debias = VerbosityDebias.Fit(Rewards(rewardHidden, ridge.Weight, referenceRows), names, verbosityIndex,
            grid: VerbosityDebias.ExtendedLambdaGrid);

        // ---- stage 2: gating with the BT loss on preference pairs ----
        var allPairs = pairRows.Select(p => (p.Chosen, p.Rejected)).ToList();
        var prompts = Rows(gatingHidden, allPairs.Select(p => p.Chosen).ToArray());
        var chosenRewards = Rewards(rewardHidden, ridge.Weight, allPairs.Select(p => p.Chosen).ToArray());
        var rejectedRewards = Rewards(rewardHidden, ridge.Weight, allPairs.Select(p => p.Rejected).ToArray());
        int[] PairIndices(SplitPart part) => pairRows.Select((p, i) => (p, i)).Where(t => t.p.Split == part).Select(t => t.i).ToArray();
        using var gating = GatingStage.Train(prompts, chosenRewards, rejectedRewards, debias.Transform,
            PairIndices(SplitPart.Train), PairIndices(SplitPart.Validation), o.Gating with { Seed = o.Seed });
        Log($"stage 2 gating done: validation accuracy {gating.ValidationAccuracy.LastOrDefault():P1}");

        // ---- BT linear probe with its Laplace posterior (armorm.md §5), a baseline on the same embeddings ----
        var probe = BradleyTerryStage.Fit(Rows(rewardHidden, allPairs.Select(p => p.Chosen).ToArray()),
            Rows(rewardHidden, allPairs.Select(p => p.Rejected).ToArray()), PairIndices(SplitPart.Train), PairIndices(SplitPart.Validation));

        // ---- checkpoint (Hugging Face layout) and export ----
        var head = new RewardHeadConfig
        {
            NumObjectives = names.Length, GatingHiddenDim = o.Gating.HiddenSize, GatingNHidden = o.Gating.NHidden,
            GatingTemperature = o.Gating.Temperature, ObjectiveNames = names, HasPosterior = ridge.PosteriorFactor is not null,
        };
        var checkpointDir = Path.Combine(o.OutputDirectory, "checkpoint");
        if (Directory.Exists(checkpointDir))
            Directory.Delete(checkpointDir, true);
        using (var w = new HuggingFaceCheckpointWriter(checkpointDir))
        {
            foreach (var (name, shape, values) in backbone.BackboneParameters())
                w.Add(name, name == "model.embed_tokens.weight" ? ElementType.Float16 : ElementType.Float, shape, values);
            w.Add("regression_layer.weight", ElementType.Float, [names.Length, o.HiddenSize], Flatten(ridge.Weight));
            w.Add("reward_transform_matrix", ElementType.Float, [names.Length, names.Length], Flatten(debias.Transform));
            foreach (var (name, (shape, values)) in gating.Parameters())
                w.Add(name, ElementType.Float, shape, values);
            if (ridge.PosteriorFactor is { } f)
                w.Add(CheckpointLayout.PosteriorFactor, ElementType.Float, [f.GetLength(0), f.GetLength(1), f.GetLength(2)], Flatten(f));
            w.Complete(config, head);
        }
        foreach (var file in new[] { "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json" })
            if (File.Exists(Path.Combine(o.TokenizerDirectory, file)))
                File.Copy(Path.Combine(o.TokenizerDirectory, file), Path.Combine(checkpointDir, file), overwrite: true);
        var modelDir = Path.Combine(o.OutputDirectory, "model");
        var export = ModelExporter.Export(checkpointDir, modelDir, new ExportOptions { Precision = ExportPrecision.Fp32, Overwrite = true });
        Log($"exported {export.Parameters:N0} parameters to {modelDir}");

        // ---- held-out evaluation through the exported model ----
        var test = pairRows.Where(p => p.Split == SplitPart.Test).ToList();
        var evaluation = TestEvaluation.Run(modelDir, labels, verbosityIndex, test.Select(p => (p.Chosen, p.Rejected, p.Dataset)).ToList(),
            backbone.ScoreWeights(), probe, o.MaxPositionEmbeddings);
        Log($"test: gating {evaluation.Methods[TestEvaluation.Gating].Overall.Accuracy:P1}, BT head {evaluation.Methods[TestEvaluation.BtHead].Overall.Accuracy:P1} ({evaluation.Excluded} of {evaluation.Pairs} pairs excluded)");

        // ---- report, card, plots ----
        var report = TrainingReport.Write(o, new TrainingReport.Inputs(labels, split, pairs, ratings, skipped, data, backbone, btValidation,
            ridge, debias, gating, probe, evaluation, export, droppedObjectives, clock.Elapsed));
        return new TrainingResult(checkpointDir, modelDir, report, evaluation.Methods, clock.Elapsed);
    }

    private static string CacheKey(TrainingOptions o, BackboneTrainer backbone)
    {
        var sb = new StringBuilder();
        sb.Append(o with { Gating = new GatingOptions() });
        foreach (var (name, _, values) in backbone.BackboneParameters())
            sb.Append(name).Append(values.Take(64).Sum(v => (double)v).ToString("R", CultureInfo.InvariantCulture));
        return Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(sb.ToString())));
    }

    internal static float[,] Rows(float[,] x, int[] rows)
    {
        var d = x.GetLength(1);
        var r = new float[rows.Length, d];
        for (var i = 0; i < rows.Length; i++)
            for (var k = 0; k < d; k++)
                r[i, k] = x[rows[i], k];
        return r;
    }

    /// <summary>R = X[rows] Wᵀ: [rows, K].</summary>
    internal static float[,] Rewards(float[,] x, float[,] w, int[] rows)
    {
        int k = w.GetLength(0), d = w.GetLength(1);
        var r = new float[rows.Length, k];
        for (var i = 0; i < rows.Length; i++)
            for (var j = 0; j < k; j++)
            {
                double s = 0;
                for (var m = 0; m < d; m++)
                    s += (double)x[rows[i], m] * w[j, m];
                r[i, j] = (float)s;
            }
        return r;
    }

    internal static float[] Flatten(Array a)
    {
        var r = new float[a.Length];
        Buffer.BlockCopy(a, 0, r, 0, a.Length * sizeof(float));
        return r;
    }
}
