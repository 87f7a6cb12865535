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
        var model = CommandSupport.ModelOption();
        var ep = CommandSupport.ProviderOption();
        var budget = CommandSupport.BatchTokensOption();
        var padding = CommandSupport.PaddingWasteOption();
        var truncation = CommandSupport.TruncationOption();
        var maxLength = CommandSupport.MaxLengthOption();
        var content = CommandSupport.ContentSpecialTokensOption();
        var json = new Option<bool>("--json") { Description = "Print {\"overall\", \"n\", \"ties\", \"per_source\"} instead of a table." };
        var command = new Command("eval", "Pairwise accuracy of the reward model on preference pairs, per source and overall.")
        {
            files, model, ep, budget, padding, truncation, maxLength, json, content,
        };
        command.SetAction(parse => CommandSupport.Guard(() =>
        {
            using var m = CommandSupport.LoadModel(parse.GetValue(model), parse.GetValue(ep)!, parse.GetValue(budget), parse.GetValue(truncation)!,
                parse.GetValue(maxLength), parse.GetValue(padding), parse.GetValue(content)!);
            var outcomes = new List<PairOutcome>();
            var errors = 0;
            foreach (var file in parse.GetValue(files)!)
                errors += Evaluate(m, file, outcomes);
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
        var number = 0;
        foreach (var line in File.ReadLines(file.FullName))
        {
            number++;
            if (string.IsNullOrWhiteSpace(line))
                continue;
            try
            {
                using var doc = JsonDocument.Parse(line);
                var r = doc.RootElement;
                string Field(string name) => r.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()!
                    : throw new FormatException($"field \"{name}\" is missing or not a string (each line needs prompt, chosen, rejected).");
                var source = r.TryGetProperty("source", out var s) && s.ValueKind == JsonValueKind.String ? s.GetString()! : defaultSource;
                pairs.Add((number, source, Conversation.FromPromptResponse(Field("prompt"), Field("chosen")),
                    Conversation.FromPromptResponse(Field("prompt"), Field("rejected"))));
            }
            catch (Exception e) when (e is JsonException or FormatException)
            {
                Console.Error.WriteLine($"{file.Name} line {number}: {e.Message}");
                errors++;
            }
        }

        // Score chosen and rejected together (one token-budget batch plan per chunk); skip pairs that cannot be scored.
        return errors + LongRun.Run($"eval {file.Name}", advance =>
        {
            var failed = 0;
            foreach (var chunk in pairs.Chunk(256))
            {
                var rows = new List<ScoringRow>();
                var ok = new List<(string Source, int Chosen, int Rejected)>();
                foreach (var p in chunk)
                {
                    try
                    {
                        var c = model.EncodeRow(new(p.Chosen, null, null), p.Line, needGating: true);
                        var rj = model.EncodeRow(new(p.Rejected, null, null), p.Line, needGating: true);
                        rows.Add(c);
                        rows.Add(rj);
                        ok.Add((p.Source, rows.Count - 2, rows.Count - 1));
                    }
                    catch (RewardModelException e)
                    {
                        Console.Error.WriteLine($"{file.Name} line {p.Line}: {e.Message}");
                        failed++;
                    }
                }
                var scores = model.ScoreRows(rows);
                outcomes.AddRange(ok.Select(o => new PairOutcome(o.Source, scores[o.Chosen].Score, scores[o.Rejected].Score)));
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
