using System.CommandLine;
using OnnxReward.Cli.IO;
using OnnxReward.Text;
using OnnxReward.Text.Conversations;

namespace OnnxReward.Cli.Commands;

/// <summary><c>onnxreward tokenize --tokenizer &lt;dir&gt;</c>: text → ids (raw), messages → ids + positions (template applied).</summary>
internal static class TokenizeCommand
{
    public static Command Create()
    {
        var tokenizer = new Option<DirectoryInfo>("--tokenizer", "-t")
        {
            Description = "Folder with tokenizer.json (and tokenizer_config.json for the chat template).",
            Required = true,
        };
        var input = CommandSupport.InputOption();
        var output = CommandSupport.OutputOption();
        var content = CommandSupport.ContentSpecialTokensOption();
        var command = new Command("tokenize",
            "Tokenize JSON lines: {\"text\"} -> {\"input_ids\"} (special tokens recognised, no BOS added); " +
            "{\"messages\"} -> {\"input_ids\", \"reward_position\", \"gating_position\"} (chat template applied; a " +
            "sequence-classification model's folder: the pooled token as reward_position, no gating_position).")
        {
            tokenizer, input, output, content,
        };
        command.SetAction(parse => CommandSupport.Guard(() =>
            Run(parse.GetValue(tokenizer)!, parse.GetValue(input), parse.GetValue(output), parse.GetValue(content)!)));
        return command;
    }

    private static int Run(DirectoryInfo tokenizerDir, FileInfo? input, FileInfo? output, string content)
    {
        var contentSpecialTokens = CommandSupport.ParseContentSpecialTokens(content);
        if (!tokenizerDir.Exists)
            throw new CliException($"--tokenizer {tokenizerDir.FullName} does not exist.");
        // Positions as the Python reference computes them: HF's first-pad rule for ArmoRM (so tokenize output compares
        // with its goldens), the rightmost non-pad token and no gating position for a sequence classifier.
        var (classifier, classifierPad) = SequenceClassifierPooling(tokenizerDir.FullName);
        var encoder = InputEncoder.Load(tokenizerDir.FullName, new InputEncoderOptions
        {
            ContentSpecialTokens = contentSpecialTokens,
            PadTokens = classifier ? PadTokenRule.PoolRightmostNonPad : PadTokenRule.PoolBeforeFirstPad,
            PadTokenId = classifier ? classifierPad : null,
        });
        using var io = new JsonLines(input, output);
        for (var lines = io.Read(256); lines.Count > 0; lines = io.Read(256))
            foreach (var line in lines)
            {
                if (line.Error is not null)
                {
                    io.WriteError(line.Number, line.Error);
                    continue;
                }
                try
                {
                    var json = line.Json!.Value;
                    if (json.ValueKind == System.Text.Json.JsonValueKind.Object && json.TryGetProperty("text", out var text)
                        && text.ValueKind == System.Text.Json.JsonValueKind.String && !json.TryGetProperty("messages", out _))
                    {
                        var ids = encoder.TokenizeText(text.GetString()!, line.Number);
                        io.Write(line.Number, w => WriteIds(w, ids));
                        continue;
                    }
                    var parsed = ScoringInput.FromJson(json);
                    if (parsed.Conversation is null)
                        throw new FormatException("tokenize takes {\"text\": …} or {\"messages\": […]} (or prompt/response).");
                    var encoded = encoder.Encode(parsed.Conversation, line.Number, findGating: !classifier);
                    io.Write(line.Number, w =>
                    {
                        WriteIds(w, encoded.InputIds.Span);
                        w.WriteNumber("reward_position", encoded.RewardPosition);
                        if (encoded.HasGatingPosition)
                            w.WriteNumber("gating_position", encoded.GatingPosition);
                    });
                }
                catch (Exception e) when (CommandSupport.IsLineError(e))
                {
                    io.WriteError(line.Number, CommandSupport.LineError(e));
                }
            }
        return io.Errors == 0 ? 0 : 1;
    }

    /// <summary>Whether the folder holds a sequence-classification model (an exported model directory whose manifest says
    /// so, or a checkpoint whose config.json names a *ForSequenceClassification architecture), and its pad id.</summary>
    private static (bool Classifier, int? Pad) SequenceClassifierPooling(string dir)
    {
        if (File.Exists(Path.Combine(dir, Model.RewardModelManifest.FileName)))
        {
            var m = Model.RewardModelManifest.Load(dir);
            return (m.IsClassifier, m.PadTokenId);
        }
        var config = Path.Combine(dir, "config.json");
        if (!File.Exists(config) || new FileInfo(config).Length > 4 << 20) return (false, null);
        try
        {
            using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllBytes(config));
            var root = doc.RootElement;
            var classifier = root.ValueKind == System.Text.Json.JsonValueKind.Object && root.TryGetProperty("architectures", out var a)
                && a.ValueKind == System.Text.Json.JsonValueKind.Array
                && a.EnumerateArray().Any(x => x.ValueKind == System.Text.Json.JsonValueKind.String && x.GetString()!.EndsWith("ForSequenceClassification", StringComparison.Ordinal));
            int? pad = classifier && root.TryGetProperty("pad_token_id", out var p) && p.TryGetInt32(out var id) ? id : null;
            return (classifier, pad);
        }
        catch (System.Text.Json.JsonException)
        {
            return (false, null);                         // not this command's file to judge: export reports it
        }
    }

    private static void WriteIds(System.Text.Json.Utf8JsonWriter w, ReadOnlySpan<int> ids)
    {
        w.WriteStartArray("input_ids");
        foreach (var id in ids)
            w.WriteNumberValue(id);
        w.WriteEndArray();
    }
}
