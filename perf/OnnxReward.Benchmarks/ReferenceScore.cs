using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using OnnxReward.Export.Checkpoints;
using OnnxReward.Text;
using OnnxReward.Text.Conversations;
using OnnxReward.Training.Reference;

namespace OnnxReward.Benchmarks;

/// <summary>
/// <c>reference-score &lt;checkpoint&gt; &lt;conversations.jsonl&gt; &lt;out.jsonl&gt;</c>: the fp32 reference scores of
/// perf/accuracy.sh. Encodes each line ({"messages"}, {"prompt","response"}, {"text"} or {"input_ids"}) with the
/// checkpoint's tokenizer and chat template (the library's <see cref="InputEncoder"/>, as <c>onnxreward score</c> does),
/// scores every conversation with the layer-streaming TorchSharp fp32 reference (<see cref="LayerStreamingReference"/>:
/// one decoder layer resident at a time, so it runs on checkpoints whose fp32 graph does not fit, e.g. the 8B shape)
/// and writes one line per input: {"input_ids", "tokens", "score"} (the ids feed the variants, so all score the same
/// tokens). Progress (one line per layer) and a summary JSON line (seconds, tokens/s, peak RSS) go to stderr.
/// </summary>
internal static class ReferenceScore
{
    public static int Run(string[] args)
    {
        if (args.Length != 4)
        {
            Console.Error.WriteLine("usage: reference-score <checkpoint folder> <conversations.jsonl> <out.jsonl>");
            return 2;
        }
        var (checkpointDir, inputPath, outputPath) = (args[1], args[2], args[3]);
        var encoder = InputEncoder.Load(checkpointDir);
        var encoded = new List<EncodedInput>();
        var number = 0;
        foreach (var line in File.ReadLines(inputPath))
        {
            number++;
            if (string.IsNullOrWhiteSpace(line))
                continue;
            try
            {
                using var doc = JsonDocument.Parse(line);
                encoded.Add(encoder.Encode(ScoringInput.FromJson(doc.RootElement), number));
            }
            catch (Exception e) when (e is JsonException or FormatException or RewardModelException)
            {
                Console.Error.WriteLine($"error: {inputPath} line {number}: {e.Message}");
                return 1;
            }
        }
        if (encoded.Count == 0)
        {
            Console.Error.WriteLine($"error: {inputPath} has no input lines.");
            return 2;
        }

        var ids = encoded.Select(e => e.ToArray().Select(i => (long)i).ToArray()).ToArray();
        var clock = Stopwatch.StartNew();
        using var checkpoint = Checkpoint.Open(checkpointDir);
        var results = LayerStreamingReference.Score(checkpoint, ids,
            encoded.Select(e => (long)e.RewardPosition).ToArray(), encoded.Select(e => (long)e.GatingPosition).ToArray(),
            progress: m => Console.Error.WriteLine($"reference: {m}"));
        var seconds = clock.Elapsed.TotalSeconds;

        using (var output = new StreamWriter(outputPath))
            for (var i = 0; i < encoded.Count; i++)
                output.WriteLine(JsonSerializer.Serialize(new { input_ids = encoded[i].ToArray(), tokens = encoded[i].TokenCount, score = results[i].Score }));
        var tokens = encoded.Sum(e => e.TokenCount);
        Console.Error.WriteLine(JsonSerializer.Serialize(new
        {
            reference = "layer-streaming TorchSharp fp32",
            checkpoint = checkpointDir,
            layers = checkpoint.Config.NumHiddenLayers,
            conversations = encoded.Count,
            tokens,
            min_tokens = encoded.Min(e => e.TokenCount),
            max_tokens = encoded.Max(e => e.TokenCount),
            seconds = Math.Round(seconds, 1),
            tokens_per_s = Math.Round(tokens / seconds, 1),
            peak_rss_gb = ScaleScore.PeakRssGb(),
        }));
        return 0;
    }
}
