using System.CommandLine;
using System.Text.Json;
using OnnxReward.Cli.IO;
using OnnxReward.Text.Conversations;
using OnnxReward.Wire;

namespace OnnxReward.Cli.Commands;

/// <summary><c>onnxreward score</c> and <c>onnxreward embed</c>: JSON lines in, one result line per input, in order;
/// <c>--shard i/N</c> takes one contiguous part of the input file (<see cref="Shard"/>).</summary>
internal static class ScoreCommand
{
    private const int Chunk = 512;

    public static Command Create() => Build("score",
        "Score JSON lines ({\"messages\"}, {\"prompt\",\"response\"}, {\"text\"} or {\"input_ids\"}) -> " +
        "{\"score\", \"objectives\", \"gating\", \"score_std\"?, \"tokens\"}.", embed: false);

    public static Command CreateEmbed() => Build("embed",
        "Embed JSON lines ({\"input_ids\"} or {\"messages\"}) -> {\"embedding\"}: the final hidden state at the reward position " +
        "(works for backbone-only models too).", embed: true);

    private static Command Build(string name, string description, bool embed)
    {
        var modelOptions = new ModelOptions(modelRequired: embed);
        var input = CommandSupport.InputOption();
        var output = CommandSupport.OutputOption();
        var shard = CommandSupport.ShardOption();
        var command = new Command(name, description) { input, output, shard };
        modelOptions.AddTo(command);
        command.SetAction(parse => CommandSupport.Guard(() =>
        {
            var part = CommandSupport.ParseShard(parse.GetValue(shard), parse.GetValue(input));   // fails before the model loads
            using var m = modelOptions.Load(parse);
            using var io = new JsonLines(parse.GetValue(input), parse.GetValue(output), part);
            LongRun.Run(embed ? "embedding" : "scoring", advance =>
            {
                for (var lines = io.Read(Chunk); lines.Count > 0; lines = io.Read(Chunk))
                {
                    Process(m, io, lines, embed);
                    advance(lines.Count);
                }
                return 0;
            });
            return io.Errors == 0 ? 0 : 1;
        }));
        return command;
    }

    /// <summary>Encodes each line on its own (so one bad line cannot sink the others), then scores the good ones as one
    /// token-budget batch set, and writes results in input order. When the batched run fails as a whole, each row is
    /// run alone so the failure lands on the line that caused it and the rest of the chunk is still scored.</summary>
    private static void Process(RewardModel model, JsonLines io, List<InputLine> lines, bool embed)
    {
        var rows = new List<EncodedInput>(lines.Count);
        var errors = new string?[lines.Count];
        var rowOf = new int[lines.Count];
        for (var i = 0; i < lines.Count; i++)
        {
            rowOf[i] = -1;
            if (lines[i].Error is { } parseError)
            {
                errors[i] = parseError;
                continue;
            }
            try
            {
                var parsed = ScoringInput.FromJson(lines[i].Json!.Value);
                rows.Add(embed ? model.EncodeForEmbedding(parsed, lines[i].Number) : model.Encode(parsed, lines[i].Number));
                rowOf[i] = rows.Count - 1;
            }
            catch (Exception e) when (CommandSupport.IsLineError(e))
            {
                errors[i] = CommandSupport.LineError(e);
            }
        }

        var results = RunRows(rows, embed ? r => model.Embed(r).Cast<object>().ToArray() : r => model.Score(r).Cast<object>().ToArray());
        for (var i = 0; i < lines.Count; i++)
        {
            var error = errors[i] ?? (rowOf[i] >= 0 ? results[rowOf[i]].Error : null);
            if (error is null && rowOf[i] >= 0)
                error = results[rowOf[i]].Value is RewardScore s ? RewardJson.NonFinite(s) : RewardJson.NonFinite((float[])results[rowOf[i]].Value!);
            if (error is not null)
            {
                io.WriteError(lines[i].Number, error);
                continue;
            }
            var value = results[rowOf[i]].Value;
            if (embed)
                io.Write(lines[i].Number, w =>
                {
                    w.WriteStartArray("embedding");
                    foreach (var v in (float[])value!)
                        w.WriteNumberValue(v);
                    w.WriteEndArray();
                });
            else
                io.WriteValue(lines[i].Number, w => RewardJson.Write(w, (RewardScore)value!));
        }
    }

    /// <summary>Runs all rows as one call; when that fails, each row alone, so one row's failure is that row's error.</summary>
    internal static (object? Value, string? Error)[] RunRows(List<EncodedInput> rows, Func<IReadOnlyList<EncodedInput>, IReadOnlyList<object>> run)
    {
        var results = new (object?, string?)[rows.Count];
        if (rows.Count == 0)
            return results;
        try
        {
            var all = run(rows);
            for (var i = 0; i < all.Count; i++)
                results[i] = (all[i], null);
            return results;
        }
        catch (Exception e) when (CommandSupport.IsLineError(e) && rows.Count > 1)
        {
            // fall through: find the row(s) that fail
        }
        catch (Exception e) when (CommandSupport.IsLineError(e))
        {
            results[0] = (null, CommandSupport.LineError(e));
            return results;
        }
        for (var i = 0; i < rows.Count; i++)
        {
            try
            {
                results[i] = (run([rows[i]])[0], null);
            }
            catch (Exception e) when (CommandSupport.IsLineError(e))
            {
                results[i] = (null, CommandSupport.LineError(e));
            }
        }
        return results;
    }
}
