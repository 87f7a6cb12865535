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
            "{\"messages\"} -> {\"input_ids\", \"reward_position\", \"gating_position\"} (chat template applied).")
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
        // Positions as the Python reference computes them (HF's first-pad rule), so tokenize output compares with its goldens.
        var encoder = InputEncoder.Load(tokenizerDir.FullName, new InputEncoderOptions
        {
            ContentSpecialTokens = contentSpecialTokens,
            PadTokens = PadTokenRule.PoolBeforeFirstPad,
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
                    var encoded = encoder.Encode(parsed.Conversation, line.Number);
                    io.Write(line.Number, w =>
                    {
                        WriteIds(w, encoded.InputIds.Span);
                        w.WriteNumber("reward_position", encoded.RewardPosition);
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

    private static void WriteIds(System.Text.Json.Utf8JsonWriter w, ReadOnlySpan<int> ids)
    {
        w.WriteStartArray("input_ids");
        foreach (var id in ids)
            w.WriteNumberValue(id);
        w.WriteEndArray();
    }
}
