using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using OnnxReward.Runtime;

namespace OnnxReward.Benchmarks;

/// <summary>
/// <c>scale-score &lt;model dir&gt; &lt;tokens&gt; [rows]</c>: one process that loads an exported model through the library
/// (CPU EP, ORT's default threads, MaxBatchTokens = MaxSequenceLength = tokens, so the memory check budgets for this
/// conversation length) and scores <c>rows</c> chat-shaped conversations of exactly <c>tokens</c> tokens one at a time.
/// Prints one JSON line: load seconds, seconds per conversation, tokens/s, the process's peak RSS (VmHWM) after load
/// and after scoring, the memory check's estimate, and the scores (for comparing variants). perf/scale-8b.sh runs it once
/// per dtype and length, each in a fresh process so each peak is its own.
/// <c>scale-score &lt;model dir&gt; --inputs &lt;ids.jsonl&gt;</c> scores given rows instead ({"input_ids"} lines, e.g.
/// reference-score's output; budgets for the longest), one at a time: perf/accuracy.sh's variant scores and tokens/s.
/// </summary>
internal static class ScaleScore
{
    public static int Run(string[] args)
    {
        if (args.Length is < 3 or > 4)
        {
            Console.Error.WriteLine("usage: scale-score <model dir> <tokens> [rows = 1]\n       scale-score <model dir> --inputs <ids.jsonl>");
            return 2;
        }
        var dir = args[1];
        int[][] inputs;
        if (args[2] == "--inputs")
        {
            if (args.Length != 4)
            {
                Console.Error.WriteLine("usage: scale-score <model dir> --inputs <ids.jsonl>");
                return 2;
            }
            inputs = ReadIds(args[3]);
        }
        else
        {
            var length = int.Parse(args[2], CultureInfo.InvariantCulture);
            inputs = MidSizeModel.Rows(args.Length == 4 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 1, length, seed: 11);
        }
        var tokens = inputs.Max(r => r.Length);
        var rows = inputs.Length;
        var totalTokens = inputs.Sum(r => r.Length);
        var options = new RewardModelOptions
        {
            ExecutionProvider = ExecutionProviderKind.Cpu, MaxBatchTokens = tokens, MaxBatchSize = 1, MaxSequenceLength = tokens,
            LoggerFactory = new StderrLoggerFactory(),
        };
        var clock = Stopwatch.StartNew();
        RewardModel model;
        try
        {
            model = RewardModel.Load(dir, options);
        }
        catch (RewardModelException e)
        {
            Console.WriteLine(JsonSerializer.Serialize(new { model = dir, tokens, refused = e.Message, peak_rss_gb = PeakRssGb() }));
            return 3;
        }
        using (model)
        {
            var load = clock.Elapsed.TotalSeconds;
            var rssLoad = PeakRssGb();
            var (anon, file) = ResidentSplitGb();
            var estimate = MemoryFit.Estimate(model.Manifest, 0, model.Options, model.Manifest.DType);
            var scores = new List<float>();
            var times = new List<double>();
            foreach (var row in inputs)
            {
                clock.Restart();
                scores.Add(model.ScoreTokens([row])[0].Score);
                times.Add(clock.Elapsed.TotalSeconds);
            }
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                model = dir,
                dtype = model.Manifest.DType,
                block_size = model.Manifest.Quantization?.BlockSize,
                tokens,
                rows,
                load_s = Math.Round(load, 2),
                score_s = times.Select(t => Math.Round(t, 2)).ToArray(),
                total_tokens = totalTokens,
                tokens_per_s = Math.Round(totalTokens / times.Sum(), 1),
                peak_rss_after_load_gb = rssLoad,
                resident_after_load_anon_gb = anon,
                resident_after_load_file_gb = file,
                peak_rss_gb = PeakRssGb(),
                estimate_gb = Math.Round(estimate.Total / (double)(1L << 30), 2),
                scores,
            }));
        }
        return 0;
    }

    /// <summary>Resident memory now, split into anonymous (heap: ORT's prepacked weights, arenas) and file-backed pages
    /// (the memory-mapped weights file, libraries), from /proc/self/smaps_rollup, in GiB.</summary>
    private static (double Anon, double File) ResidentSplitGb()
    {
        long anon = 0, file = 0;
        foreach (var line in File.ReadLines("/proc/self/smaps_rollup"))
        {
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length < 2) continue;
            if (parts[0] == "Pss_Anon:") anon = long.Parse(parts[1], CultureInfo.InvariantCulture);
            if (parts[0] == "Pss_File:") file = long.Parse(parts[1], CultureInfo.InvariantCulture);
        }
        return (Math.Round(anon / (double)(1 << 20), 2), Math.Round(file / (double)(1 << 20), 2));
    }

    /// <summary>The rows of an {"input_ids": [...]} JSON-lines file (other fields ignored).</summary>
    private static int[][] ReadIds(string path)
    {
        var rows = File.ReadLines(path).Where(l => !string.IsNullOrWhiteSpace(l)).Select(l =>
        {
            using var doc = JsonDocument.Parse(l);
            return doc.RootElement.GetProperty("input_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        }).ToArray();
        return rows.Length > 0 ? rows : throw new InvalidDataException($"{path} has no {{\"input_ids\"}} lines.");
    }

    /// <summary>VmHWM of this process (the kernel's peak resident set), in GiB.</summary>
    internal static double PeakRssGb()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                // "VmHWM:\t    2176 kB", but "VmHWM:\t10650848 kB" from 10 GB on: the tab is the only separator then.
                return Math.Round(long.Parse(line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / (double)(1 << 20), 2);
        return double.NaN;
    }
}

/// <summary>The library's log lines on stderr, one per message.</summary>
internal sealed class StderrLoggerFactory : Microsoft.Extensions.Logging.ILoggerFactory, Microsoft.Extensions.Logging.ILogger
{
    public Microsoft.Extensions.Logging.ILogger CreateLogger(string categoryName) => this;
    public void AddProvider(Microsoft.Extensions.Logging.ILoggerProvider provider) { }
    public void Dispose() { }
    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
    public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => true;
    public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state,
        Exception? exception, Func<TState, Exception?, string> formatter) => Console.Error.WriteLine(formatter(state, exception));
}
