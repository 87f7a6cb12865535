using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace OnnxReward.Training.Data;

/// <summary>The three parts of a split.</summary>
public enum SplitPart { Train, Validation, Test }

/// <summary>
/// A deterministic train / validation / test split BY PROMPT: every row whose prompt (a preference <c>prompt</c>,
/// a rating's <c>source</c> context) is the same text lands in the same part, in every dataset, so no prompt is seen
/// in training and evaluated in test. Counts are reported per dataset (<see cref="Describe"/>).
///
/// Method (the same on every run and machine; no <see cref="Random"/>): u = the first 8 bytes, big-endian, of
/// SHA-256(UTF-8 of "{seed}\n{prompt}") divided by 2⁶⁴, a uniform number in [0, 1);
/// train when u &lt; train fraction, validation when u &lt; train + validation fraction, test otherwise.
/// The dataset is deliberately not hashed: 12 prompts of the shared data occur in two datasets (pandalm with autoj
/// or rm-bench), and hashing (dataset, prompt) would put such a prompt in two parts. Rating groups use the context, not <c>doc_id</c>: sfres and sfhot
/// repeat one meaning representation under several doc ids (580 distinct contexts in 1,181 sfres rows), and topical_chat
/// rates 6 responses per dialogue, so a doc-id split would put the same prompt in two parts.
/// Part sizes are therefore close to, not exactly, the fractions; <see cref="Describe"/> writes the real counts.
/// </summary>
public sealed record DataSplit
{
    public DataSplit(string seed = "onnxreward-split-v1", double trainFraction = 0.8, double validationFraction = 0.1)
    {
        ArgumentException.ThrowIfNullOrEmpty(seed);
        if (!(trainFraction > 0 && validationFraction >= 0 && trainFraction + validationFraction <= 1))
            throw new ArgumentException($"Split fractions train {trainFraction} and validation {validationFraction} must be train > 0, validation ≥ 0 and train + validation ≤ 1 (test gets the rest).", nameof(trainFraction));
        Seed = seed;
        TrainFraction = trainFraction;
        ValidationFraction = validationFraction;
    }

    public string Seed { get; }
    public double TrainFraction { get; }
    public double ValidationFraction { get; }

    /// <summary>The part of every row whose prompt (or rated context) is <paramref name="group"/>.</summary>
    public SplitPart Assign(string group)
    {
        ArgumentNullException.ThrowIfNull(group);
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes($"{Seed}\n{group}"), hash);
        var u = BinaryPrimitives.ReadUInt64BigEndian(hash) / 18446744073709551616.0;   // / 2^64 → [0, 1)
        return u < TrainFraction ? SplitPart.Train : u < TrainFraction + ValidationFraction ? SplitPart.Validation : SplitPart.Test;
    }

    public SplitPart Assign(PreferencePair pair) => Assign(pair.Prompt);

    public SplitPart Assign(RatingExample example) => Assign(example.Context);

    /// <summary>Manifest rows for pairs and ratings, in input order.</summary>
    public IReadOnlyList<SplitManifestEntry> Manifest(IEnumerable<PreferencePair> pairs, IEnumerable<RatingExample> ratings)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        ArgumentNullException.ThrowIfNull(ratings);
        var rows = pairs.Select(p => new SplitManifestEntry("preference", p.File, p.Line, p.Source, p.Dataset,
            GroupId(p.Prompt), Assign(p))).ToList();
        rows.AddRange(ratings.Select(r => new SplitManifestEntry("rating", r.File, r.Element, r.Dataset, r.Dataset,
            GroupId(r.Context), Assign(r))));
        return rows;
    }

    /// <summary>
    /// The split for a model card: method, seed, fractions, and rows / groups per dataset and part (markdown).
    /// </summary>
    public string Describe(IReadOnlyList<SplitManifestEntry> manifest)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        var ci = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine("## Data split").AppendLine();
        sb.AppendLine(ci, $"Deterministic split by prompt (preferences) or rated context (ratings), shared by all datasets: each distinct prompt goes to train if u < {TrainFraction}, validation if u < {TrainFraction + ValidationFraction}, test otherwise, with u = first 8 bytes (big-endian) of SHA-256(\"{Seed}\\n{{prompt or context}}\") / 2^64. No random generator is involved, so every run and machine gets the same split; all rows sharing a prompt share a part.");
        sb.AppendLine();
        sb.AppendLine("| kind | dataset | train rows | validation rows | test rows | train groups | validation groups | test groups |");
        sb.AppendLine("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var g in manifest.GroupBy(e => (e.Kind, e.Dataset)).OrderBy(g => g.Key.Kind, StringComparer.Ordinal)
                     .ThenBy(g => g.Key.Dataset, StringComparer.Ordinal))
        {
            int Rows(SplitPart p) => g.Count(e => e.Split == p);
            int Groups(SplitPart p) => g.Where(e => e.Split == p).Select(e => e.Group).Distinct().Count();
            sb.AppendLine(ci, $"| {g.Key.Kind} | {g.Key.Dataset} | {Rows(SplitPart.Train)} | {Rows(SplitPart.Validation)} | {Rows(SplitPart.Test)} | {Groups(SplitPart.Train)} | {Groups(SplitPart.Validation)} | {Groups(SplitPart.Test)} |");
        }
        return sb.ToString();
    }

    /// <summary>The first 16 hex digits of SHA-256(prompt) (seed-free), the group's id in manifests.</summary>
    public static string GroupId(string group) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(group)))[..16];
}

/// <summary>One row of a split manifest: which part the row at <see cref="File"/>:<see cref="Row"/> (JSONL line, 1-based,
/// or JSON array element, 0-based) belongs to. <see cref="Group"/> is a 64-bit hex id of the prompt/context.</summary>
public sealed record SplitManifestEntry(
    [property: JsonPropertyName("kind")] string Kind,
    [property: JsonPropertyName("file")] string File,
    [property: JsonPropertyName("row")] int Row,
    [property: JsonPropertyName("source")] string Source,
    [property: JsonPropertyName("dataset")] string Dataset,
    [property: JsonPropertyName("group")] string Group,
    [property: JsonPropertyName("split"), JsonConverter(typeof(JsonStringEnumConverter<SplitPart>))] SplitPart Split);

/// <summary>Writes and reads split manifests as JSONL, one <see cref="SplitManifestEntry"/> per line.</summary>
public static class SplitManifest
{
    private static readonly JsonSerializerOptions Options = new() { WriteIndented = false };

    public static void Write(string path, IEnumerable<SplitManifestEntry> entries)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(entries);
        using var writer = new StreamWriter(path, append: false, new UTF8Encoding(false));
        writer.NewLine = "\n";
        foreach (var e in entries)
            writer.WriteLine(JsonSerializer.Serialize(e, Options));
    }

    /// <exception cref="TrainingDataException">A line that is not a complete manifest entry.</exception>
    public static IReadOnlyList<SplitManifestEntry> Read(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!System.IO.File.Exists(path))
            throw new FileNotFoundException($"Split manifest {path} does not exist: write it with SplitManifest.Write.", path);
        var entries = new List<SplitManifestEntry>();
        var lineNumber = 0;
        foreach (var line in System.IO.File.ReadLines(path))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line))
                continue;
            SplitManifestEntry? entry;
            try
            {
                entry = JsonSerializer.Deserialize<SplitManifestEntry>(line, Options);
            }
            catch (JsonException e)
            {
                throw new TrainingDataException(path, $"is not a manifest entry ({e.Message}).", line: lineNumber, inner: e);
            }
            if (entry is null || entry.Kind is null || entry.File is null || entry.Source is null || entry.Dataset is null ||
                entry.Group is null)
                throw new TrainingDataException(path, "lacks one of kind, file, row, source, dataset, group, split.", line: lineNumber);
            entries.Add(entry);
        }
        return entries;
    }
}
