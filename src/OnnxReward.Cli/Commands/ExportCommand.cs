using System.CommandLine;
using OnnxReward.Export.Checkpoints;
using OnnxReward.Export.Exporting;
using OnnxReward.Model;
using Spectre.Console;

namespace OnnxReward.Cli.Commands;

/// <summary><c>onnxreward export &lt;checkpoint&gt; --out &lt;dir&gt; [--dtype fp32|fp16|int8|int8-block|int4] [--ep cpu|cuda]
/// [--block-size 16|32|64|128] [--accuracy-level 0-4] [--force]</c>.</summary>
internal static class ExportCommand
{
    public static Command Create()
    {
        var checkpoint = new Argument<string>("checkpoint")
        {
            Description = "A Hugging Face checkpoint folder (config.json + *.safetensors) or a llama2.c .bin file.",
        };
        var output = new Option<string>("--out", "-o") { Description = "Model directory to write (created if missing).", Required = true };
        var dtype = new Option<string>("--dtype")
        {
            Description = "Backbone precision: fp32 (CPU EP), fp16 (CUDA EP), int8 (CPU EP: Linear layers as dynamically " +
                          "quantized int8 MatMuls, fastest on the CPU, approximate), int8-block or int4 (Linear layers as " +
                          "MatMulNBits with 8- or 4-bit block-quantized weights: about 1/4 or 1/7 of the fp32 weight memory; CPU or CUDA). " +
                          "The head is always fp32. perf/README.md says which to pick.",
            DefaultValueFactory = _ => "fp32",
        };
        dtype.AcceptOnlyFromAmong([.. ModelDTypes.Names]);
        var ep = new Option<string?>("--ep") { Description = "Execution provider the graph is for: cpu or cuda (default: cuda for fp16, cpu for the others)." };
        ep.AcceptOnlyFromAmong("cpu", "cuda");
        var blockSize = new Option<int>("--block-size")
        {
            Description = "int4 / int8-block: input features per quantization block (16, 32, 64 or 128; smaller = more accurate, larger = smaller file).",
            DefaultValueFactory = _ => ExportPrecision.DefaultBlockSize,
        };
        blockSize.AcceptOnlyFromAmong([.. ExportPrecision.BlockSizes.Select(b => b.ToString(System.Globalization.CultureInfo.InvariantCulture))]);
        var accuracy = new Option<int?>("--accuracy-level")
        {
            Description = "int4 / int8-block: MatMulNBits accuracy_level (0 unset/fp32, 1 fp32, 2 fp16, 3 bf16, 4 int8 compute). Default on cpu: 1 for int4 (least memory), 4 for int8-block (fastest); 0 on cuda.",
        };
        var force = new Option<bool>("--force")
        {
            Description = "Replace the model in a non-empty --out directory (its other files are kept). The new model is written " +
                          "beside it and validated first, so a failed export leaves the previous one as it was.",
        };

        var noValidate = new Option<bool>("--no-validate")
        {
            Description = "Skip loading and scoring the written model before it is swapped in (it is still written beside --out " +
                          "and swapped in whole; checkpoint and config checks still run). For exporting on a machine too small to " +
                          "load the result: the export itself streams within about 1 GB, while validating an 8B int4 model loads it (~4.4 GB).",
        };

        var command = new Command("export", "Export a checkpoint to a fused ONNX reward model directory (model.onnx + weights + reward_model.json + tokenizer).")
        {
            checkpoint, output, dtype, ep, blockSize, accuracy, force, noValidate,
        };
        command.SetAction(pr => Run(pr.GetValue(checkpoint)!, pr.GetValue(output)!,
            pr.GetValue(dtype)!, pr.GetValue(ep), pr.GetValue(blockSize), pr.GetValue(accuracy), pr.GetValue(force),
            Console.Out, Console.Error, validate: !pr.GetValue(noValidate)));
        return command;
    }

    /// <summary>Runs the export with a progress bar on <paramref name="error"/> and the summary on <paramref name="output"/>;
    /// returns the exit code (1 with a one-line message for a bad checkpoint, options or output directory). The
    /// precision options are checked by <see cref="ExportPrecision.Parse"/>.</summary>
    internal static int Run(string checkpointPath, string outputDirectory, string dtype, string? ep, int blockSize,
        int? accuracyLevel, bool overwrite, TextWriter output, TextWriter error, bool validate = true)
    {
        var stderr = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(error) });
        try
        {
            var options = new ExportOptions { Precision = ExportPrecision.Parse(dtype, ep, blockSize, accuracyLevel), Overwrite = overwrite, Verify = validate };
            ExportSummary? summary = null;
            stderr.Progress()
                .AutoClear(false)
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new TransferSpeedColumn(), new RemainingTimeColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask("opening checkpoint", maxValue: 1);
                    var progress = new SynchronousProgress<ExportProgress>(p =>
                    {
                        task.Description = p.Tensor is null ? p.Stage : $"{p.Stage} {p.TensorsDone}/{p.TensorsTotal}";
                        if (p.BytesTotal > 0)
                        {
                            task.MaxValue = p.BytesTotal;
                            task.Value = Math.Min(p.BytesDone, p.BytesTotal);
                        }
                    });
                    summary = ModelExporter.Export(checkpointPath, outputDirectory, options, progress);
                    task.Value = task.MaxValue;
                });
            var s = summary!;
            var table = new Table().AddColumns("", "");
            table.HideHeaders();
            table.AddRow("model directory", Markup.Escape(s.OutputDirectory));
            table.AddRow("kind / dtype / variant", $"{s.Manifest.Kind} / {s.Manifest.DType} / {s.Manifest.Variant}");
            if (s.Manifest.Quantization is { } q)
                table.AddRow("quantization", Markup.Escape($"{q.Method}, {q.Bits}-bit{(q.BlockSize is { } b ? $", block {b}" : "")}" +
                    $"{(q.AccuracyLevel is { } a ? $", accuracy level {a}" : "")}, {(q.Symmetric ? "symmetric" : "zero points")}, embedding {q.EmbeddingDType}"));
            table.AddRow("tensors written", s.Tensors.ToString("N0"));
            table.AddRow("parameters", s.Parameters.ToString("N0"));
            table.AddRow("weights bytes", $"{s.DataBytes:N0} ({s.DataBytes / 1048576.0:F1} MiB)");
            table.AddRow("graph bytes / nodes", $"{s.GraphBytes:N0} / {s.Nodes:N0}");
            if (s.Manifest.IsClassifier)
                table.AddRow("head", Markup.Escape($"sequence classification ({s.Manifest.Family}), labels {string.Join(", ", s.Manifest.Labels)}"));
            else
                table.AddRow("objectives", s.Manifest.Objectives.Count.ToString());
            if (s.Validation is { } v)
                table.AddRow("validation", Markup.Escape(v));
            table.AddRow("time", $"{s.Elapsed.TotalSeconds:F2} s");
            AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(output) }).Write(table);
            return 0;
        }
        catch (Exception e) when (e is CheckpointException or ExportException or IOException or UnauthorizedAccessException)
        {
            error.WriteLine($"error: {e.Message}");
            return 1;
        }
    }

    /// <summary>IProgress that reports on the caller's thread (System.Progress posts to the thread pool).</summary>
    private sealed class SynchronousProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
