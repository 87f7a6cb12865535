using System.Text.Json;

namespace OnnxReward.Training.Data;

/// <summary>
/// One human (or checked) preference: <see cref="Chosen"/> is preferred to <see cref="Rejected"/> as the answer to
/// <see cref="Prompt"/>. <see cref="Source"/> is the row's <c>source</c> field (e.g. <c>autoj/chitchat</c>);
/// <see cref="Dataset"/> is its part before the first '/' (<c>autoj</c>), the unit that splits and objectives use.
/// <see cref="File"/> and <see cref="Line"/> (1-based) locate the row for manifests and error messages.
/// </summary>
public sealed record PreferencePair(string Source, string Prompt, string Chosen, string Rejected, string File, int Line)
{
    /// <summary>The dataset family: <see cref="Source"/> up to its first '/'.</summary>
    public string Dataset => PreferenceData.DatasetOf(Source);
}

/// <summary>Reads <c>preferences/*.jsonl</c>: one JSON object per line with string fields
/// <c>source</c>, <c>prompt</c>, <c>chosen</c>, <c>rejected</c> (other fields are ignored).</summary>
public static class PreferenceData
{
    /// <summary>Reads one JSONL file. Blank lines are skipped; every other line must be a valid pair.</summary>
    /// <exception cref="TrainingDataException">Malformed JSON, a missing/non-string/empty field, chosen == rejected.</exception>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    public static IReadOnlyList<PreferencePair> Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!System.IO.File.Exists(path))
            throw new FileNotFoundException($"Preference file {path} does not exist: pass a preferences/*.jsonl file.", path);
        var name = Path.GetFileName(path);
        var pairs = new List<PreferencePair>();
        using var reader = new StreamReader(path);
        var lineNumber = 0;
        while (reader.ReadLine() is { } line)
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line))
                continue;
            JsonDocument document;
            try
            {
                document = JsonDocument.Parse(line);
            }
            catch (JsonException e)
            {
                throw new TrainingDataException(path, $"not valid JSON ({e.Message}); each line must be one JSON object.",
                    line: lineNumber, inner: e);
            }
            using (document)
            {
                var root = document.RootElement;
                if (root.ValueKind != JsonValueKind.Object)
                    throw new TrainingDataException(path, $"is a JSON {root.ValueKind}, expected an object " +
                        "{\"source\", \"prompt\", \"chosen\", \"rejected\"}.", line: lineNumber);
                string Field(string field) => RequiredString(root, field, path, lineNumber, null);
                var pair = new PreferencePair(Field("source"), Field("prompt"), Field("chosen"), Field("rejected"), name, lineNumber);
                if (pair.Chosen == pair.Rejected)
                    throw new TrainingDataException(path, "chosen and rejected are the same text, so the pair carries no " +
                        "preference; remove the line.", line: lineNumber, field: "rejected");
                pairs.Add(pair);
            }
        }
        if (pairs.Count == 0)
            throw new TrainingDataException(path, "holds no preference pairs; expected one JSON object per line.");
        return pairs;
    }

    /// <summary>Reads every <c>*.jsonl</c> in <paramref name="directory"/>, in ordinal file-name order.</summary>
    public static IReadOnlyList<PreferencePair> LoadDirectory(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        if (!Directory.Exists(directory))
            throw new DirectoryNotFoundException($"Preference folder {directory} does not exist: pass the data/preferences folder.");
        var files = Directory.GetFiles(directory, "*.jsonl").OrderBy(f => f, StringComparer.Ordinal).ToArray();
        if (files.Length == 0)
            throw new TrainingDataException(directory, "holds no *.jsonl preference files.");
        return files.SelectMany(Load).ToArray();
    }

    /// <summary>The dataset family of a <c>source</c> value: the text before the first '/'.</summary>
    public static string DatasetOf(string source)
    {
        var slash = source.IndexOf('/');
        return slash < 0 ? source : source[..slash];
    }

    internal static string RequiredString(JsonElement obj, string field, string path, long? line, long? element)
    {
        if (!obj.TryGetProperty(field, out var value))
            throw new TrainingDataException(path, "is missing; add it (a string).", line, element, field);
        if (value.ValueKind != JsonValueKind.String)
            throw new TrainingDataException(path, $"is a JSON {value.ValueKind}, expected a string.", line, element, field);
        var text = value.GetString()!;
        if (text.Length == 0)
            throw new TrainingDataException(path, "is empty; every text field needs content.", line, element, field);
        return text;
    }
}
