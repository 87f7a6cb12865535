using System.CommandLine;
using System.Text.Json;
using OnnxReward.Cli.IO;
using OnnxReward.Evaluation;
using Spectre.Console;

namespace OnnxReward.Cli.Commands;

/// <summary><c>onnxreward eval &lt;pairs.jsonl&gt;…</c>: pairwise accuracy per source and overall (ties count as wrong).</summary>
internal static class EvalCommand
{
    public static Command Create()
    {
        var files = new Argument<FileInfo[]>("pairs") { Description = "JSON lines {prompt, chosen, rejected, source?}.", Arity = ArgumentArity.OneOrMore };
        var modelOptions = new ModelOptions();
        var json = new Option<bool>("--json") { Description = "Print {\"overall\", \"n\", \"ties\", \"per_source\"} instead of a table." };
        var command = new Command("eval", "Pairwise accuracy of the reward model on preference pairs, per source and overall.")
        {
            files, json,
        };
        modelOptions.AddTo(command);
        command.SetAction(parse => CommandSupport.Guard(() =>
        {
            using var m = modelOptions.Load(parse);
            var outcomes = new List<PairOutcome>();
            var errors = 0;
            foreach (var file in parse.GetValue(files)!)
                errors += Evaluate(m, file, outcomes);
            if (outcomes.Count == 0)
                throw new CliException(
                    $"no valid pairs to evaluate in {string.Join(", ", parse.GetValue(files)!.Select(f => f.Name))}" +
                    (errors > 0 ? $" ({errors} line(s) could not be evaluated, see above)" : " (the files hold no pairs)") +
                    ": give JSON lines {\"prompt\", \"chosen\", \"rejected\"}.");
            var report = PreferenceAccuracy.Summarize(outcomes);
            if (parse.GetValue(json))
                PrintJson(report);
            else
                PrintTable(report);
            if (errors > 0)
                Console.Error.WriteLine($"{errors} line(s) could not be evaluated (see above); they are not counted.");
            return errors == 0 ? 0 : 1;
        }));
        return command;
    }

    private static int Evaluate(RewardModel model, FileInfo file, List<PairOutcome> outcomes)
    {
        if (!file.Exists)
            throw new CliException($"pairs file {file.FullName} does not exist.");
        var defaultSource = Path.GetFileNameWithoutExtension(file.Name);
        var pairs = new List<(int Line, string Source, Conversation Chosen, Conversation Rejected)>();
        var errors = 0;
        using var source = new LineSource(File.OpenRead(file.FullName));
        while (source.Next() is { } line)
        {
            if (LineSource.IsBlank(line.Bytes.Span))
                continue;
            try
            {
                using var doc = Wire.StrictJson.Parse(line.Bytes);
                var r = doc.RootElement;
                if (r.ValueKind != JsonValueKind.Object)
                    throw new FormatException("expected a JSON object {\"prompt\", \"chosen\", \"rejected\"}.");
                string Field(string name) => r.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()!
                    : throw new FormatException($"field \"{name}\" is missing or not a string (each line needs prompt, chosen, rejected).");
                var sourceName = r.TryGetProperty("source", out var s) && s.ValueKind == JsonValueKind.String ? s.GetString()! : defaultSource;
                pairs.Add((line.Number, sourceName, Conversation.FromPromptResponse(Field("prompt"), Field("chosen")),
                    Conversation.FromPromptResponse(Field("prompt"), Field("rejected"))));
            }
            catch (Exception e) when (CommandSupport.IsLineError(e))
            {
                Console.Error.WriteLine($"{file.Name} line {line.Number}: {CommandSupport.LineError(e)}");
                errors++;
            }
        }

        // Score chosen and rejected together (one token-budget batch plan per chunk); skip pairs that cannot be scored.
        return errors + LongRun.Run($"eval {file.Name}", advance =>
        {
            var failed = 0;
            foreach (var chunk in pairs.Chunk(256))
            {
                var rows = new List<EncodedInput>();
                var ok = new List<(string Source, int Chosen, int Rejected, int Line)>();
                foreach (var p in chunk)
                {
                    try
                    {
                        var c = model.Encode(p.Chosen, p.Line);
                        var rj = model.Encode(p.Rejected, p.Line);
                        rows.Add(c);
                        rows.Add(rj);
                        ok.Add((p.Source, rows.Count - 2, rows.Count - 1, p.Line));
                    }
                    catch (Exception e) when (CommandSupport.IsLineError(e))
                    {
                        Console.Error.WriteLine($"{file.Name} line {p.Line}: {CommandSupport.LineError(e)}");
                        failed++;
                    }
                }
                var scores = ScoreCommand.RunRows(rows, r => model.Score(r).Cast<object>().ToArray());
                foreach (var (src, chosen, rejected, number) in ok)
                {
                    var (c, rj) = (scores[chosen], scores[rejected]);
                    var error = c.Error ?? rj.Error ?? OnnxReward.Wire.RewardJson.NonFinite((RewardScore)c.Value!) ?? OnnxReward.Wire.RewardJson.NonFinite((RewardScore)rj.Value!);
                    if (error is not null)
                    {
                        Console.Error.WriteLine($"{file.Name} line {number}: {error}");
                        failed++;
                        continue;
                    }
                    outcomes.Add(new PairOutcome(src, ((RewardScore)c.Value!).Score, ((RewardScore)rj.Value!).Score));
                }
                advance(chunk.Length);
            }
            return failed;
        });
    }

    private static void PrintJson(PreferenceAccuracy report)
    {
        using var w = new Utf8JsonWriter(Console.OpenStandardOutput(), new JsonWriterOptions { Indented = true });
        w.WriteStartObject();
        w.WriteNumber("overall", report.Overall.Accuracy);
        w.WriteNumber("n", report.Overall.Pairs);
        w.WriteNumber("ties", report.Overall.Ties);
        w.WriteStartObject("per_source");
        foreach (var (source, a) in report.PerSource)
        {
            w.WriteStartObject(source);
            w.WriteNumber("accuracy", a.Accuracy);
            w.WriteNumber("n", a.Pairs);
            w.WriteNumber("ties", a.Ties);
            var (lo, hi) = a.Interval95;
            w.WriteStartArray("ci95");
            w.WriteNumberValue(lo);
            w.WriteNumberValue(hi);
            w.WriteEndArray();
            w.WriteEndObject();
        }
        w.WriteEndObject();
        w.WriteEndObject();
        w.Flush();
        Console.Out.WriteLine();
    }

    private static void PrintTable(PreferenceAccuracy report)
    {
        var table = new Table().AddColumns("source", "pairs", "accuracy", "95% CI", "ties");
        void Row(string name, AccuracyFigure a)
        {
            var (lo, hi) = a.Interval95;
            table.AddRow(Markup.Escape(name), a.Pairs.ToString(), $"{a.Accuracy:P1}", $"{lo:P1} – {hi:P1}", a.Ties.ToString());
        }
        foreach (var (source, a) in report.PerSource)
            Row(source, a);
        Row("overall", report.Overall);
        AnsiConsole.Write(table);
    }
}
