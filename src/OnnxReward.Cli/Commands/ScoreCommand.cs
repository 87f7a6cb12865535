using System.CommandLine;
using System.Text.Json;
using OnnxReward.Cli.IO;
using OnnxReward.Text.Conversations;

namespace OnnxReward.Cli.Commands;

/// <summary><c>onnxreward score</c> and <c>onnxreward embed</c>: JSON lines in, one result line per input, in order.</summary>
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
        var model = CommandSupport.ModelOption(required: embed);
        var input = CommandSupport.InputOption();
        var output = CommandSupport.OutputOption();
        var ep = CommandSupport.ProviderOption();
        var budget = CommandSupport.BatchTokensOption();
        var padding = CommandSupport.PaddingWasteOption();
        var truncation = CommandSupport.TruncationOption();
        var maxLength = CommandSupport.MaxLengthOption();
        var content = CommandSupport.ContentSpecialTokensOption();
        var command = new Command(name, description) { model, input, output, ep, budget, padding, truncation, maxLength, content };
        command.SetAction(parse => CommandSupport.Guard(() =>
        {
            using var m = CommandSupport.LoadModel(parse.GetValue(model), parse.GetValue(ep)!, parse.GetValue(budget),
                parse.GetValue(truncation)!, parse.GetValue(maxLength), parse.GetValue(padding), parse.GetValue(content)!);
            using var io = new JsonLines(parse.GetValue(input), parse.GetValue(output));
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
    /// token-budget batch set, and writes results in input order.</summary>
    private static void Process(RewardModel model, JsonLines io, List<InputLine> lines, bool embed)
    {
        var rows = new List<ScoringRow>(lines.Count);
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
                rows.Add(model.EncodeRow(parsed, lines[i].Number, needGating: !embed));
                rowOf[i] = rows.Count - 1;
            }
            catch (Exception e) when (e is FormatException or RewardModelException or ArgumentException)
            {
                errors[i] = e.Message;
            }
        }

        IReadOnlyList<RewardScore>? scores = null;
        IReadOnlyList<float[]>? embeddings = null;
        if (rows.Count > 0)
        {
            if (embed)
                embeddings = model.EmbedRows(rows);
            else
                scores = model.ScoreRows(rows);
        }
        for (var i = 0; i < lines.Count; i++)
        {
            if (errors[i] is { } error)
            {
                io.WriteError(lines[i].Number, error);
                continue;
            }
            var r = rowOf[i];
            if (embed)
                io.Write(w =>
                {
                    w.WriteStartArray("embedding");
                    foreach (var v in embeddings![r])
                        w.WriteNumberValue(v);
                    w.WriteEndArray();
                });
            else
                io.Write(w => WriteScore(w, scores![r]));
        }
    }

    public static void WriteScore(Utf8JsonWriter w, RewardScore s)
    {
        w.WriteNumber("score", s.Score);
        if (s.ScoreStd is { } std)
            w.WriteNumber("score_std", std);
        w.WriteStartObject("objectives");
        for (var k = 0; k < s.ObjectiveNames.Count; k++)
            w.WriteNumber(s.ObjectiveNames[k], s.RewardValues[k]);
        w.WriteEndObject();
        w.WriteStartObject("gating");
        for (var k = 0; k < s.ObjectiveNames.Count; k++)
            w.WriteNumber(s.ObjectiveNames[k], s.GatingValues[k]);
        w.WriteEndObject();
        w.WriteNumber("tokens", s.TokenCount);
    }
}
