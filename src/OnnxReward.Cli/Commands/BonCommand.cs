using System.CommandLine;
using System.Text.Json;
using OnnxReward.Cli.IO;
using OnnxReward.Selection;
using OnnxReward.Transforms;
using OnnxReward.Wire;

namespace OnnxReward.Cli.Commands;

/// <summary><c>onnxreward bon</c>: best-of-n selection per prompt by score, LSC-AND or μ − kσ.</summary>
internal static class BonCommand
{
    public static Command Create()
    {
        var modelOptions = new ModelOptions();
        var input = CommandSupport.InputOption();
        var output = CommandSupport.OutputOption();
        var rule = new Option<string>("--rule")
        {
            Description = "score | lsc-and (needs reference_responses) | mean-minus-k-std | mean-minus-k-var (need a posterior).",
            DefaultValueFactory = _ => "score",
        };
        var k = new Option<double>("--k") { Description = "Penalty weight k of the μ − kσ rules.", DefaultValueFactory = _ => 1.0 };
        var objectives = new Option<string?>("--objectives") { Description = "Comma-separated objectives for lsc-and (default: all)." };
        var quantile = new Option<double>("--quantile") { Description = "Quantile q of the reference reward r_ref.", DefaultValueFactory = _ => 0.85 };
        var reference = new Option<string>("--reference") { Description = "How r_ref is fitted: normal (μ + z_q σ) or empirical.", DefaultValueFactory = _ => "normal" };
        var command = new Command("bon",
            "Best-of-n: lines {\"prompt\", \"candidates\": [...], \"reference_rewards\"?, \"reference_responses\"?} -> " +
            "{\"chosen\", \"scores\", \"transformed\", \"score_std\"?, \"reference_reward\"?}.")
        {
            input, output, rule, k, objectives, quantile, reference,
        };
        modelOptions.AddTo(command);
        command.SetAction(parse => CommandSupport.Guard(() =>
        {
            var options = new BestOfNOptions
            {
                Rule = parse.GetValue(rule)!.ToLowerInvariant() switch
                {
                    "score" => SelectionRule.Score,
                    "lsc-and" => SelectionRule.LscAnd,
                    "mean-minus-k-std" => SelectionRule.MeanMinusKStd,
                    "mean-minus-k-var" => SelectionRule.MeanMinusKVariance,
                    var r => throw new CliException($"--rule '{r}' is not one of score, lsc-and, mean-minus-k-std, mean-minus-k-var."),
                },
                K = parse.GetValue(k),
                Objectives = parse.GetValue(objectives)?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
                Quantile = parse.GetValue(quantile),
                ReferenceMethod = parse.GetValue(reference)!.ToLowerInvariant() switch
                {
                    "normal" => ReferenceRewardMethod.NormalFit,
                    "empirical" => ReferenceRewardMethod.EmpiricalQuantile,
                    var r => throw new CliException($"--reference '{r}' is not one of normal, empirical."),
                },
            };
            using var m = modelOptions.Load(parse);
            if (options.Rule is SelectionRule.MeanMinusKStd or SelectionRule.MeanMinusKVariance && !m.HasPosterior)
                throw new CliException($"--rule {parse.GetValue(rule)} needs a score standard deviation, but {m.Directory} has no posterior. " +
                                       "Use --rule score or lsc-and, or a model trained with a posterior (onnxreward-train).");
            if (options.Rule == SelectionRule.LscAnd && m.ObjectiveNames.Count == 0)
                throw new CliException($"--rule lsc-and combines per-objective rewards, but {m.Directory} has no objectives (a " +
                                       "sequence-classification model has one logit). Use --rule score, or a multi-objective (ArmoRM) model.");
            if (options.Objectives is { } names)
                _ = ObjectiveSubset.FromNames(m.ObjectiveNames, names);      // unknown names fail before any scoring
            using var io = new JsonLines(parse.GetValue(input), parse.GetValue(output));
            for (var lines = io.Read(64); lines.Count > 0; lines = io.Read(64))
                foreach (var line in lines)
                {
                    if (line.Error is not null)
                    {
                        io.WriteError(line.Number, line.Error);
                        continue;
                    }
                    try
                    {
                        var result = BestOfNSelector.Select(m, RewardJson.ReadBestOfNRequest(line.Json!.Value), options);
                        if (RewardJson.NonFinite(result) is { } bad)
                            io.WriteError(line.Number, bad);
                        else
                            io.WriteValue(line.Number, w => RewardJson.Write(w, result, parse.GetValue(rule)!.ToLowerInvariant()));
                    }
                    catch (Exception e) when (CommandSupport.IsLineError(e))
                    {
                        io.WriteError(line.Number, CommandSupport.LineError(e));
                    }
                }
            return io.Errors == 0 ? 0 : 1;
        }));
        return command;
    }
}
