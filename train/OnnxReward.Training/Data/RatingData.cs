using System.Text.Json;

namespace OnnxReward.Training.Data;

/// <summary>
/// One rated text from a UniEval file: <see cref="Output"/> (<c>system_output</c>) answering <see cref="Context"/>
/// (<c>source</c>: the dialogue history, the meaning representation or the article), with human mean ratings per
/// attribute in <see cref="Scores"/> on the file's own scale. <see cref="Dataset"/> is the file name without
/// <c>unieval_</c> and <c>.json</c> (e.g. <c>topical_chat</c>); <see cref="Element"/> is the 0-based array index.
/// </summary>
public sealed record RatingExample(string Dataset, string Context, string Output, long? DocId,
    IReadOnlyDictionary<string, double> Scores, string File, int Element);

/// <summary>Reads <c>ratings/*.json</c>: a JSON array of objects with string <c>source</c> and
/// <c>system_output</c>, an object <c>scores</c> of finite numbers, and an optional integer <c>doc_id</c>.</summary>
public static class RatingData
{
    /// <summary>Files larger than this are refused rather than read into memory (the UniEval files are ≤ 2 MB).</summary>
    public const long MaxFileBytes = 512L << 20;

    /// <exception cref="TrainingDataException">Malformed JSON, not an array, a missing/mistyped field, no scores.</exception>
    public static IReadOnlyList<RatingExample> Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var info = new FileInfo(path);
        if (!info.Exists)
            throw new FileNotFoundException($"Rating file {path} does not exist: pass a ratings/*.json file.", path);
        if (info.Length > MaxFileBytes)
            throw new TrainingDataException(path, $"is {info.Length} bytes, over the {MaxFileBytes}-byte limit for a rating " +
                "file; split it into several files.");
        var name = Path.GetFileName(path);
        var dataset = DatasetOf(name);
        JsonDocument document;
        try
        {
            using var stream = info.OpenRead();
            document = JsonDocument.Parse(stream);
        }
        catch (JsonException e)
        {
            throw new TrainingDataException(path, $"not valid JSON ({e.Message}); expected one JSON array of objects.",
                line: e.LineNumber + 1, inner: e);
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Array)
                throw new TrainingDataException(path, $"holds a JSON {root.ValueKind}, expected an array of rated examples.");
            var examples = new List<RatingExample>(root.GetArrayLength());
            var index = 0;
            foreach (var item in root.EnumerateArray())
            {
                if (item.ValueKind != JsonValueKind.Object)
                    throw new TrainingDataException(path, $"is a JSON {item.ValueKind}, expected an object.", element: index);
                var context = PreferenceData.RequiredString(item, "source", path, null, index);
                var output = PreferenceData.RequiredString(item, "system_output", path, null, index);
                long? docId = null;
                if (item.TryGetProperty("doc_id", out var doc) && doc.ValueKind != JsonValueKind.Null)
                {
                    if (doc.ValueKind != JsonValueKind.Number || !doc.TryGetInt64(out var id))
                        throw new TrainingDataException(path, $"is {doc.GetRawText()}, expected an integer.", element: index, field: "doc_id");
                    docId = id;
                }
                if (!item.TryGetProperty("scores", out var scores) || scores.ValueKind != JsonValueKind.Object)
                    throw new TrainingDataException(path, "is missing or not an object; expected {\"attribute\": number, …}.",
                        element: index, field: "scores");
                var values = new SortedDictionary<string, double>(StringComparer.Ordinal);
                foreach (var score in scores.EnumerateObject())
                {
                    if (score.Value.ValueKind != JsonValueKind.Number || !double.IsFinite(score.Value.GetDouble()))
                        throw new TrainingDataException(path, $"is {score.Value.GetRawText()}, expected a finite number.",
                            element: index, field: "scores." + score.Name);
                    values[score.Name] = score.Value.GetDouble();
                }
                if (values.Count == 0)
                    throw new TrainingDataException(path, "is empty; a rated example needs at least one attribute.",
                        element: index, field: "scores");
                examples.Add(new RatingExample(dataset, context, output, docId, values, name, index));
                index++;
            }
            if (examples.Count == 0)
                throw new TrainingDataException(path, "is an empty array; expected rated examples.");
            return examples;
        }
    }

    /// <summary>Reads every <c>*.json</c> in <paramref name="directory"/>, in ordinal file-name order.</summary>
    public static IReadOnlyList<RatingExample> LoadDirectory(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        if (!Directory.Exists(directory))
            throw new DirectoryNotFoundException($"Rating folder {directory} does not exist: pass the data/ratings folder.");
        var files = Directory.GetFiles(directory, "*.json").OrderBy(f => f, StringComparer.Ordinal).ToArray();
        if (files.Length == 0)
            throw new TrainingDataException(directory, "holds no *.json rating files.");
        return files.SelectMany(Load).ToArray();
    }

    /// <summary><c>unieval_sfres.json</c> → <c>sfres</c>.</summary>
    public static string DatasetOf(string fileName)
    {
        var stem = Path.GetFileNameWithoutExtension(fileName);
        return stem.StartsWith("unieval_", StringComparison.Ordinal) ? stem["unieval_".Length..] : stem;
    }
}
