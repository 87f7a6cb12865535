using System.Globalization;
using System.Text;
using OnnxReward.Evaluation;
using OnnxReward.Export.Exporting;
using OnnxReward.Training.Data;
using OnnxReward.Training.Stages;

namespace OnnxReward.Training.Pipeline;

/// <summary>The training report (report.md + PNG curves in the work folder) and the model card (MODEL_CARD.md in the model directory).</summary>
internal static class TrainingReport
{
    internal sealed record Inputs(ObjectiveLabels Labels, DataSplit Split, IReadOnlyList<PreferencePair> Pairs, IReadOnlyList<RatingExample> Ratings,
        IReadOnlyList<TrainingDataException> Skipped, EncodedDataset Data, BackboneTrainer Backbone, float BackboneValidation, RidgeHeads Ridge,
        DebiasResult Debias, GatingHead Gating, BradleyTerryHead Probe, TestEvaluation.Results Test, ExportSummary Export, IReadOnlyList<string> DroppedObjectives, TimeSpan Elapsed);

    public static string Write(TrainingOptions o, Inputs x)
    {
        var plots = new List<string>();
        plots.Add(Plot(Path.Combine(o.OutputDirectory, "backbone-loss.png"), "Backbone BT training loss (moving average of 25 steps)", "step", "loss",
            Smooth(x.Backbone.TrainLoss, 25), null));
        plots.Add(Plot(Path.Combine(o.OutputDirectory, "backbone-validation-accuracy.png"), "Backbone validation accuracy", "step", "accuracy",
            x.Backbone.ValidationAccuracy.Select(p => ((double)p.Step, (double)p.Accuracy)).ToList(), null));
        plots.Add(Plot(Path.Combine(o.OutputDirectory, "gating-curves.png"), "Stage 2 gating: training loss and validation accuracy", "step", "value",
            Smooth(x.Gating.TrainLoss, 25), ("validation accuracy", x.Gating.EvaluationSteps.Zip(x.Gating.ValidationAccuracy, (s, a) => ((double)s, (double)a)).ToList())));

        var results = Results(x.Test);
        var manifest = x.Split.Manifest(x.Pairs, x.Ratings);
        var card = new StringBuilder();
        card.AppendLine("# OnnxReward default model: a small ArmoRM-style reward model");
        card.AppendLine();
        card.AppendLine("Trained by `onnxreward-train` on the shared preference and rating data (armorm.md §2 at this machine's scale). " +
                        "It is small and trained from scratch: its scores show that the pipeline works end to end, not state-of-the-art judgement.");
        card.AppendLine();
        card.AppendLine("## Architecture");
        card.AppendLine($"- Backbone: Llama (RMSNorm, rotate-half RoPE θ={o.RopeTheta}, GQA, SwiGLU), d={o.HiddenSize}, {o.Layers} layers, {o.Heads} heads / {o.KeyValueHeads} KV heads, FFN {o.IntermediateSize}, " +
                        $"vocabulary 128,257 (Llama-3 + [PAD] = 128256), max {o.MaxPositionEmbeddings} positions; embedding table stored as fp16 (exact in the graph).");
        card.AppendLine($"- Head: {x.Labels.Objectives.Count} objectives (regression layer, no bias), gating MLP {o.Gating.NHidden}×{o.Gating.HiddenSize} ReLU, τ = {o.Gating.Temperature}, learned logit_scale, verbosity transform T; exact Gaussian posterior of each ridge objective → `score_std`.");
        card.AppendLine($"- Exported: {x.Export.Parameters:N0} parameters, {x.Export.DataBytes / 1e6:F1} MB weights + {x.Export.GraphBytes / 1e3:F0} KB graph, fp32 CPU variant.");
        card.AppendLine();
        card.AppendLine("## Data");
        card.AppendLine($"{x.Pairs.Count} preference pairs (`data/preferences/*.jsonl`) and {x.Ratings.Count} rated responses (`data/ratings/*.json`). " +
                        $"{x.Skipped.Count} unusable rows were skipped:");
        foreach (var s in x.Skipped)
            card.AppendLine($"- {Path.GetFileName(s.File)}:{s.Line}: {s.Message.Split(": ", 2).Last().Split(". ")[0]}");
        card.AppendLine();
        card.AppendLine(x.Split.Describe(manifest));
        card.AppendLine();
        card.AppendLine($"Tokenized with the chat template of `tokenizer_config.json`; training sequences are at most {o.MaxTrainLength} tokens " +
                        $"({x.Data.Shortened} examples lost their oldest turns to fit, {x.Data.TooLong} were still too long and {x.Data.Unencodable} could not be encoded; those are not trained on).");
        card.AppendLine("Materialise the test pairs with `onnxreward-train split --part test --data ../shared/data --out test.jsonl` (the split is a pure function of the seed and the prompt text).");
        card.AppendLine();
        card.AppendLine(x.Labels.ProvenanceMarkdown());
        if (x.DroppedObjectives.Count > 0)
            card.AppendLine($"\nLeft out of this model (no usable labelled rows in train and validation at this training length): {string.Join(", ", x.DroppedObjectives)}.");
        card.AppendLine();
        card.AppendLine("## Results on the held-out test split");
        card.AppendLine($"Accuracy = fraction of test pairs where the chosen response scores strictly higher (ties count as wrong), with 95 % Wilson intervals. " +
                        $"All methods use the same backbone and the same {x.Test.Pairs - x.Test.Excluded} test pairs ({x.Test.Excluded} excluded: over {o.MaxPositionEmbeddings} tokens even after dropping turns).");
        card.AppendLine();
        card.AppendLine(results);
        card.AppendLine();
        card.AppendLine(Reading(x.Test));
        card.AppendLine();
        card.AppendLine("Reproduce the gating row: `onnxreward eval test.jsonl --model models/default --truncation drop-oldest-turns --max-length " + o.MaxPositionEmbeddings + "`.");
        card.AppendLine();
        card.AppendLine("## Hyperparameters");
        card.AppendLine($"- Backbone: AdamW lr {o.BackboneLearningRate} (cosine to 10 %), {o.BackboneEpochs} epochs, {o.BackbonePairsPerBatch} pairs per batch, gradient clipping 1.0, seed {o.Seed}; validation accuracy at the end {x.BackboneValidation:P1}.");
        card.AppendLine($"- Stage 1: ridge per objective, α ∈ {{1e-4 … 1e4}} chosen by validation MSE, refit on train only; posterior Σ_k = s_k²(XᵀX+α_kI)⁻¹.");
        card.AppendLine($"- Debiasing: Spearman λ search over armorm.md's grid, continued past 0.95 up to 5 for objectives the original grid " +
                        $"cannot bring under the threshold (ArmoRM would leave those at λ = 1 above it), threshold {x.Debias.Threshold}, on the training responses.");
        card.AppendLine($"- Stage 2: AdamW lr {o.Gating.LearningRate}, cosine, {o.Gating.Steps} steps, batch {o.Gating.BatchSize} sampled with replacement, dropout {o.Gating.Dropout}; final validation accuracy {x.Gating.ValidationAccuracy.LastOrDefault():P1}.");
        card.AppendLine($"- BT linear probe: L2 logistic regression, λ = {x.Probe.Lambda} by validation NLL, Laplace precision H = λI + Σπ(1−π)ddᵀ.");
        card.AppendLine($"- Training took {x.Elapsed.TotalMinutes:F1} minutes on {Environment.ProcessorCount} cores.");
        var cardText = card.ToString();
        File.WriteAllText(Path.Combine(o.OutputDirectory, "model", "MODEL_CARD.md"), cardText);

        var report = new StringBuilder(cardText.Replace("# OnnxReward default model", "# Training report"));
        report.AppendLine();
        report.AppendLine("## Stage 1: ridge fits");
        report.AppendLine(x.Ridge.Markdown());
        report.AppendLine();
        report.AppendLine("## Verbosity debiasing (Spearman with verbosity on the reference set)");
        report.AppendLine(x.Debias.Markdown());
        report.AppendLine();
        report.AppendLine("## Curves");
        foreach (var p in plots)
            report.AppendLine($"![{Path.GetFileNameWithoutExtension(p)}]({Path.GetFileName(p)})");
        var path = Path.Combine(o.OutputDirectory, "report.md");
        File.WriteAllText(path, report.ToString());
        return path;
    }

    private static string Results(TestEvaluation.Results test)
    {
        var datasets = test.Methods.Values.SelectMany(m => m.PerSource.Keys).Distinct().Order(StringComparer.Ordinal).ToList();
        var sb = new StringBuilder();
        sb.AppendLine("| method | " + string.Join(" | ", datasets) + " | overall |");
        sb.AppendLine("|---|" + string.Concat(Enumerable.Repeat("---|", datasets.Count + 1)));
        foreach (var (method, acc) in test.Methods)
        {
            string Cell(AccuracyFigure? a) => a is null ? "–" : $"{a.Accuracy:P1} [{a.Interval95.Low:P0}–{a.Interval95.High:P0}] (n={a.Pairs})";
            sb.AppendLine($"| {method} | " + string.Join(" | ", datasets.Select(d => Cell(acc.PerSource.GetValueOrDefault(d)))) + $" | **{Cell(acc.Overall)}** |");
        }
        return sb.ToString();
    }

    private static string Reading(TestEvaluation.Results test)
    {
        var g = test.Methods[TestEvaluation.Gating].Overall;
        var bt = test.Methods[TestEvaluation.BtHead].Overall;
        var diff = g.Accuracy - bt.Accuracy;
        // Paired difference on the same pairs; the intervals above are per method, so this is a rough reading.
        return diff > 0
            ? $"The gating score beats the BT head alone by {diff * 100:F1} points overall (ArmoRM's claim holds here; the intervals overlap, so the margin is not significant at this test size)." +
              (g.Interval95.Low > bt.Interval95.High ? " The intervals do not overlap." : "")
            : $"The gating score does not beat the BT head alone here: {diff * 100:F1} points overall. With a backbone this small, the ridge objectives are " +
              "linear probes of the same embedding the BT head reads, trained on far fewer and noisier labels (UniEval ratings of other tasks, and preference labels of single datasets), " +
              "so the gated mixture has little the BT head does not already have; ArmoRM's gain comes from 19 objectives with ~600k absolute ratings on an 8B backbone.";
    }

    private static List<(double X, double Y)> Smooth(IReadOnlyList<float> values, int window)
    {
        var r = new List<(double, double)>();
        double sum = 0;
        for (var i = 0; i < values.Count; i++)
        {
            sum += values[i];
            if (i >= window) sum -= values[i - window];
            r.Add((i + 1, sum / Math.Min(i + 1, window)));
        }
        return r;
    }

    private static string Plot(string path, string title, string xLabel, string yLabel, List<(double X, double Y)> series,
        (string Label, List<(double X, double Y)> Points)? second)
    {
        var plt = new ScottPlot.Plot();
        if (series.Count > 0)
        {
            var s = plt.Add.Scatter(series.Select(p => p.X).ToArray(), series.Select(p => p.Y).ToArray());
            s.MarkerSize = series.Count > 50 ? 0 : 5;
            s.LegendText = yLabel == "value" ? "training loss" : yLabel;
        }
        if (second is { } extra && extra.Points.Count > 0)
        {
            var s2 = plt.Add.Scatter(extra.Points.Select(p => p.X).ToArray(), extra.Points.Select(p => p.Y).ToArray());
            s2.LegendText = extra.Label;
            plt.ShowLegend();
        }
        plt.Title(title);
        plt.XLabel(xLabel);
        plt.YLabel(yLabel);
        plt.SavePng(path, 800, 450);
        return path;
    }
}
