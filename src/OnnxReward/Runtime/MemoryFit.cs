using OnnxReward.Diagnostics;
using System.Globalization;
using OnnxReward.Model;

namespace OnnxReward.Runtime;

/// <summary>What loading a model on the CPU is estimated to need, in bytes (see <see cref="MemoryFit"/>).</summary>
public readonly record struct MemoryEstimate(string DType, long Weights, long Activations, long Runtime)
{
    public long Total => Weights + Activations + Runtime;
}

/// <summary>
/// Fit or fail: before an ONNX Runtime session is created, estimate the memory the graph will hold on the CPU and compare
/// it with what the machine has, so a model that cannot fit fails at once with both numbers (and the dtype that would
/// fit) instead of being killed by the kernel half-way through session creation.
/// <para>The estimate (calibrated on perf/scale-8b.sh's 8B-shaped run, perf/README.md):</para>
/// <list type="bullet">
/// <item>weights: the backbone Linear weights as ORT holds them after prepacking — fp32 4 bytes per weight (MLAS's packed
/// SGEMM copy); int8 1 byte (+ 4 bytes per column); int8-block / int4 1 or ½ byte plus, per block of the block size, a
/// float scale and (accuracy level 4) a float block sum, plus int4's zero points. The external data file itself is
/// memory-mapped and read once for prepacking; its pages are file-backed and reclaimable, and the embedding table is
/// only touched at the gathered rows, so neither counts beyond one table row per budgeted token. The head and norms are
/// counted in float32.</item>
/// <item>activations, for the largest batch the options allow (B·T ≤ MaxBatchTokens, B ≤ MaxBatchSize, T ≤ MaxSequenceLength, one longer
/// row alone): the per-token intermediates of one layer, (6·D + 2·Dkv + 4·F) floats, live at once, plus
/// GroupQueryAttention's CPU score matrix B·H·T·T floats.</item>
/// <item>runtime: the .NET runtime, ONNX Runtime's code and arenas, the tokenizer: 0.5 GB; for the MatMulNBits
/// variants (int4, int8-block) 0.15 byte more per Linear weight — their kernels' per-run workspaces and the arena growth
/// they cause were measured 0.19–0.84 GiB above the rest of this estimate at the 8B shape, i.e. up to 0.13 byte per
/// Linear weight (perf/README.md, the 12-03 scale run: 512 and 2,048 tokens, 8 conversations of 256; calibrated at that
/// one shape), so without it the check would pass models the kernel then kills.</item>
/// </list>
/// It is an estimate for a yes/no answer with a margin, not an accounting: perf/README.md lists it next to measured peaks.
/// </summary>
public static class MemoryFit
{
    public const string LimitVariable = "ONNXREWARD_MEMORY_LIMIT";
    private const long RuntimeBytes = 512L << 20;

    /// <summary>Fails with <see cref="RewardModelException"/> when <paramref name="manifest"/>'s model cannot fit.</summary>
    public static void Check(string modelDirectory, RewardModelManifest manifest, RewardModelOptions options)
    {
        if (!options.CheckMemoryFit) return;
        var (available, source) = Available(options);
        if (available is null) return;
        var need = Estimate(manifest, DataBytes(modelDirectory, manifest), options, manifest.DType);
        Log.MemoryEstimate(options.CreateLogger("OnnxReward.Runtime.MemoryFit"), Gb(need.Total), Gb(need.Weights), Gb(need.Activations), Gb(need.Runtime), Gb(available.Value), source);
        if (need.Total <= available) return;

        string? fits = null;
        MemoryEstimate? alternative = null;
        if (manifest.LinearParameters is > 0)
            foreach (var dtype in new[] { "fp32", "int8-block", "int8", "int4" })   // most accurate first
            {
                if (dtype == manifest.DType) continue;
                var e = Estimate(manifest, 0, options, dtype);
                if (e.Total > available) continue;
                fits = dtype;
                alternative = e;
                break;
            }
        var budgetHint = need.Activations > need.Total / 4
            ? $" Activations for MaxBatchTokens {options.MaxBatchTokens} and sequences of up to {EffectiveMaxLength(manifest, options)} tokens are {Gb(need.Activations)}: lowering MaxBatchTokens / MaxSequenceLength (`--max-batch-tokens`, `--max-length`) also helps."
            : "";
        throw new RewardModelException(
            $"{Path.GetFullPath(modelDirectory)} ({manifest.DType}) needs about {Gb(need.Total)} of memory on the CPU (weights {Gb(need.Weights)} " +
            $"once ONNX Runtime prepacks them, activations {Gb(need.Activations)}, runtime {Gb(need.Runtime)}), but {Gb(available.Value)} is available ({source}). " +
            (fits is not null
                ? $"It would fit as {fits} (about {Gb(alternative!.Value.Total)}): re-export with `onnxreward export <checkpoint> --dtype {fits}`."
                : "No CPU dtype of this model fits; use a machine with more memory or a GPU.") +
            budgetHint + $" To override the check set {LimitVariable} (e.g. 64GB) or RewardModelOptions.CheckMemoryFit = false.");
    }

    /// <summary>The estimate for <paramref name="dtype"/>. Needs the manifest's parameter counts; a manifest written
    /// before they were recorded falls back to the data file's size as the weights.</summary>
    public static MemoryEstimate Estimate(RewardModelManifest m, long dataBytes, RewardModelOptions options, string dtype)
    {
        long d = m.HiddenSize;
        long heads = m.NumAttentionHeads ?? Math.Max(1, d / 128);
        long kvHeads = m.NumKeyValueHeads ?? heads;
        long ffn = m.IntermediateSize ?? (long)(3.5 * d);
        long kv = kvHeads * (d / heads);

        long weights;
        if (m.LinearParameters is { } linear and > 0)
        {
            var blockSize = m.DType == dtype && m.Quantization?.BlockSize is { } b ? b : 32;
            var level4 = m.DType != dtype || (m.Quantization?.AccuracyLevel ?? 4) == 4;
            double perWeight = dtype switch
            {
                "fp32" => 4,
                "fp16" => 2,
                "int8" => 1,
                "int8-block" => 1 + (4.0 + (level4 ? 4 : 0)) / blockSize,
                "int4" => 0.5 + (4.0 + (level4 ? 4 : 0) + 0.5) / blockSize,
                _ => 4,
            };
            var columns = m.NumLayers * (d + 2 * kv + d + 2 * ffn + d);          // int8's per-column scales
            var embeddingRow = d * (dtype is "fp32" ? 4 : 2);
            var other = (m.OtherParameters ?? 0) * 4;
            weights = (long)(linear * perWeight) + (dtype == "int8" ? columns * 4 : 0)
                      + Math.Min(m.EmbeddingParameters ?? 0, (long)options.MaxBatchTokens * d) / d * embeddingRow + other;
        }
        else
            weights = dataBytes;

        // The largest batch the options allow: B·T ≤ budget with T ≤ max length; a single longer row runs alone.
        long maxT = EffectiveMaxLength(m, options);
        // Scores B·H·T·T = H·T·(B·T) ≤ H·maxT·tokens.
        // B ≤ MaxBatchSize, so a batch never holds more than MaxBatchSize·maxT tokens even when the token budget is
        // unbounded (fixed-size batches set MaxBatchTokens = int.MaxValue).
        long tokens = Math.Max(Math.Min(options.MaxBatchTokens, (long)options.MaxBatchSize * maxT), maxT);
        var perToken = (6 * d + 2 * kv + 4 * ffn) * 4;
        var scores = heads * 4 * maxT * tokens;
        var runtime = RuntimeBytes + (dtype is "int4" or "int8-block" ? (m.LinearParameters ?? 0) * 3 / 20 : 0);   // see the summary
        return new MemoryEstimate(dtype, weights, tokens * perToken + scores, runtime);
    }

    private static long EffectiveMaxLength(RewardModelManifest m, RewardModelOptions o) =>
        Math.Min(o.MaxSequenceLength ?? m.MaxSequenceLength, m.MaxSequenceLength);

    private static long DataBytes(string dir, RewardModelManifest m)
    {
        var data = Path.Combine(dir, m.Graph + ".data");
        var graph = Path.Combine(dir, m.Graph);
        return (File.Exists(data) ? new FileInfo(data).Length : 0) + (File.Exists(graph) ? new FileInfo(graph).Length : 0);
    }

    /// <summary>Memory the model may use: RewardModelOptions.MemoryLimitBytes, else ONNXREWARD_MEMORY_LIMIT, else the
    /// smaller of the cgroup's remaining limit and /proc/meminfo's MemAvailable; null when none can be read.</summary>
    internal static (long? Bytes, string Source) Available(RewardModelOptions options)
    {
        if (options.MemoryLimitBytes is { } set) return (set, "RewardModelOptions.MemoryLimitBytes");
        if (Environment.GetEnvironmentVariable(LimitVariable) is { Length: > 0 } text)
            return (ParseSize(text) ?? throw new RewardModelException(
                $"{LimitVariable}='{text}' is not a size; give bytes or a number with KB, MB, GB or TB (e.g. 6GB)."), LimitVariable);
        long? best = null;
        var source = "";
        if (MemAvailable() is { } avail) (best, source) = (avail, "MemAvailable in /proc/meminfo");
        if (CgroupRemaining() is { } cg && (best is null || cg < best)) (best, source) = (cg, "the cgroup's memory limit less its usage");
        return (best, source);
    }

    /// <summary>"6GB", "512 MB", "1.5GiB", "123456" (bytes) → bytes; GB and GiB both mean 2³⁰.</summary>
    internal static long? ParseSize(string text)
    {
        var s = text.Trim().ToUpperInvariant().Replace("IB", "B", StringComparison.Ordinal).Replace(" ", "", StringComparison.Ordinal);
        long unit = 1;
        foreach (var (suffix, u) in new[] { ("TB", 1L << 40), ("GB", 1L << 30), ("MB", 1L << 20), ("KB", 1L << 10), ("B", 1L) })
            if (s.EndsWith(suffix, StringComparison.Ordinal)) { unit = u; s = s[..^suffix.Length]; break; }
        return double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && v > 0 && v * unit < long.MaxValue
            ? (long)(v * unit) : null;
    }

    private static long? MemAvailable()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/meminfo"))
                if (line.StartsWith("MemAvailable:", StringComparison.Ordinal))
                    return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
        }
        catch (IOException) { } catch (UnauthorizedAccessException) { }
        return null;
    }

    private static long? CgroupRemaining()
    {
        try
        {
            if (!File.Exists("/proc/self/cgroup")) return null;
            foreach (var line in File.ReadLines("/proc/self/cgroup"))
            {
                if (line.StartsWith("0::", StringComparison.Ordinal))                       // cgroup v2
                {
                    var dir = "/sys/fs/cgroup" + line[3..];
                    var max = ReadLong(Path.Combine(dir, "memory.max"));
                    var current = ReadLong(Path.Combine(dir, "memory.current"));
                    if (max is not null && current is not null) return Math.Max(0, max.Value - current.Value);
                }
            }
            var limit = ReadLong("/sys/fs/cgroup/memory/memory.limit_in_bytes");              // cgroup v1
            var usage = ReadLong("/sys/fs/cgroup/memory/memory.usage_in_bytes");
            if (limit is not null && usage is not null && limit < 1L << 60) return Math.Max(0, limit.Value - usage.Value);
        }
        catch (IOException) { } catch (UnauthorizedAccessException) { }
        return null;
    }

    private static long? ReadLong(string path) =>
        File.Exists(path) && long.TryParse(File.ReadAllText(path).Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : null;

    private static string Gb(long bytes) => bytes >= 1L << 30
        ? (bytes / (double)(1L << 30)).ToString("F1", CultureInfo.InvariantCulture) + " GB"
        : (bytes / (double)(1L << 20)).ToString("F0", CultureInfo.InvariantCulture) + " MB";
}
