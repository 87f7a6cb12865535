using System.CommandLine;
using System.Text.Json;
using OnnxReward.Cli.Commands;
using OnnxReward.Cli.IO;
using OnnxReward.Training.Data;
using OnnxReward.Training.Pipeline;
using Spectre.Console;

namespace OnnxReward.Train.Cli;

/// <summary><c>onnxreward-train run|split</c>: the ArmoRM-style training pipeline and its data split.</summary>
internal static class TrainCommand
{
    private static Option<DirectoryInfo> DataOption() => new("--data")
    {
        Description = "Folder with preferences/ and ratings/ (the shared data).",
        DefaultValueFactory = _ => new DirectoryInfo(Path.Combine("..", "shared", "data")),
    };

    public static Command Run()
    {
        var data = DataOption();
        var tokenizer = TokenizerOption();
        var output = new Option<DirectoryInfo>("--out", "-o") { Description = "Work folder (checkpoint/, model/, report.md, plots).", Required = true };
        var install = new Option<DirectoryInfo?>("--install") { Description = "Copy the exported model, its card and the report here (e.g. models/default)." };
        var quick = new Option<bool>("--quick") { Description = "Test scale: tiny backbone, 60 examples per dataset, few steps." };
        var seed = new Option<long>("--seed") { Description = "Seed for torch and every sampler.", DefaultValueFactory = _ => 0 };
        var epochs = new Option<int?>("--epochs") { Description = "Backbone epochs (default 2)." };
        var command = new Command("run", "Run every stage: backbone, embeddings, ridge + posterior, debiasing, gating, checkpoint, export, test evaluation.")
        {
            data, tokenizer, output, install, quick, seed, epochs,
        };
        command.SetAction(parse => CommandSupport.Guard(() =>
        {
            var dataDir = parse.GetValue(data)!;
            var tokDir = parse.GetValue(tokenizer)!;
            if (!dataDir.Exists) throw new CliException($"--data {dataDir.FullName} does not exist.");
            if (!tokDir.Exists) throw new CliException($"--tokenizer {tokDir.FullName} does not exist.");
            var outDir = parse.GetValue(output)!.FullName;
            var options = parse.GetValue(quick)
                ? TrainingOptions.Quick(dataDir.FullName, tokDir.FullName, outDir)
                : new TrainingOptions { DataDirectory = dataDir.FullName, TokenizerDirectory = tokDir.FullName, OutputDirectory = outDir };
            options = options with { Seed = parse.GetValue(seed) };
            if (parse.GetValue(epochs) is { } e)
                options = options with { BackboneEpochs = e };
            var result = TrainingPipeline.RunSynchronously(options, m => Console.Error.WriteLine($"[{DateTime.Now:HH:mm:ss}] {m}"));
            var table = new Table().AddColumns("method", "test accuracy", "pairs");
            foreach (var (method, acc) in result.TestAccuracy)
                table.AddRow(Markup.Escape(method), $"{acc.Overall.Accuracy:P1}", acc.Overall.Pairs.ToString());
            AnsiConsole.Write(table);
            Console.WriteLine($"model: {result.ModelDirectory}\nreport: {result.ReportPath}\ntime: {result.Elapsed.TotalMinutes:F1} min");
            if (parse.GetValue(install) is { } target)
                Install(result, options.OutputDirectory, target.FullName);
            return 0;
        }));
        return command;
    }

    private static void Install(TrainingResult result, string work, string target)
    {
        if (Directory.Exists(target))
            Directory.Delete(target, true);
        Directory.CreateDirectory(target);
        foreach (var f in Directory.GetFiles(result.ModelDirectory))
            File.Copy(f, Path.Combine(target, Path.GetFileName(f)));
        var training = Path.Combine(target, "training");
        Directory.CreateDirectory(training);
        foreach (var f in Directory.GetFiles(work).Where(f => f.EndsWith(".md") || f.EndsWith(".png")))
            File.Copy(f, Path.Combine(training, Path.GetFileName(f)));
        Console.WriteLine($"installed: {target}");
    }

    private static Option<DirectoryInfo> TokenizerOption() => new("--tokenizer")
    {
        Description = "Folder with tokenizer.json (with [PAD]) and tokenizer_config.json (chat template).",
        DefaultValueFactory = _ => new DirectoryInfo(Path.Combine("..", "shared", "reference", "armorm-tiny")),
    };

    public static Command Split()
    {
        var data = DataOption();
        var tokenizer = TokenizerOption();
        var part = new Option<string>("--part") { Description = "train, validation or test.", DefaultValueFactory = _ => "test" };
        var maxLength = new Option<int>("--max-train-length")
        {
            Description = "Keep the pairs whose chosen and rejected conversations both fit in this many tokens, as training does.",
            DefaultValueFactory = _ => 1024,
        };
        var output = new Option<FileInfo>("--out", "-o") { Description = "JSON lines {prompt, chosen, rejected, source}.", Required = true };
        var command = new Command("split",
            "Write the preference pairs of one part of the training split, exactly those the pipeline used (the split is a pure " +
            "function of the seed and the prompt; pairs over --max-train-length tokens are left out as in training).")
        {
            data, tokenizer, part, maxLength, output,
        };
        command.SetAction(parse => CommandSupport.Guard(() =>
        {
            var wanted = parse.GetValue(part)!.ToLowerInvariant() switch
            {
                "train" => SplitPart.Train,
                "validation" => SplitPart.Validation,
                "test" => SplitPart.Test,
                var p => throw new CliException($"--part '{p}' is not one of train, validation, test."),
            };
            var dataDir = parse.GetValue(data)!;
            var tokDir = parse.GetValue(tokenizer)!;
            if (!dataDir.Exists) throw new CliException($"--data {dataDir.FullName} does not exist.");
            if (!tokDir.Exists) throw new CliException($"--tokenizer {tokDir.FullName} does not exist.");
            var options = new TrainingOptions
            {
                DataDirectory = dataDir.FullName, TokenizerDirectory = tokDir.FullName, OutputDirectory = Path.GetTempPath(),
                MaxTrainLength = parse.GetValue(maxLength),
            };
            var pairs = TrainingPipeline.UsablePairs(options, wanted);
            using (var w = new StreamWriter(parse.GetValue(output)!.FullName))
                foreach (var p in pairs)
                    w.WriteLine(JsonSerializer.Serialize(new { prompt = p.Prompt, chosen = p.Chosen, rejected = p.Rejected, source = p.Dataset }));
            Console.Error.WriteLine($"{pairs.Count} {wanted.ToString().ToLowerInvariant()} pairs written");
            return 0;
        }));
        return command;
    }
}
