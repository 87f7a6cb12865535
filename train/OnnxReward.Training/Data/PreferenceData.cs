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

/// <summary>
/// Reads <c>preferences/*.jsonl</c>: one JSON object per line with string fields <c>source</c>, <c>prompt</c>
/// (non-empty), <c>chosen</c>, <c>rejected</c> (may be empty: an empty answer is a real, rateable response, e.g. 4
/// hh-rlhf pairs prefer silence); other fields are ignored.
///
/// Policy for rows that are well-formed JSON but unusable as a pair (the shared data has 7: 6 pandalm rows whose
/// <c>chosen</c> is the JSON boolean <c>true</c> instead of a text, an upstream conversion artifact, and 1 autoj row
/// with chosen == rejected): with a <c>skipped</c> list they are left out and recorded there; without one they throw.
/// Malformed JSON and a missing field always throw.
/// </summary>
public static class PreferenceData
{
    /// <summary>Reads one JSONL file. Blank lines are skipped.</summary>
    /// <param name="path">The JSONL file.</param>
    /// <param name="skipped">Receives the rows left out (see the class policy); null to throw on them instead.</param>
    /// <exception cref="TrainingDataException">Malformed JSON, a missing/mistyped field, an empty source or prompt,
    /// or (without <paramref name="skipped"/>) chosen == rejected or a non-text answer.</exception>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    public static IReadOnlyList<PreferencePair> Load(string path, ICollection<TrainingDataException>? skipped = null)
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
                var source = Field("source");
                var prompt = Field("prompt");
                TrainingDataException? issue = null;
                string? Answer(string field)
                {
                    if (root.TryGetProperty(field, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False or JsonValueKind.Number)
                    {
                        issue ??= new TrainingDataException(path, $"is the JSON value {v.GetRawText()}, not a text; the answer's text was lost upstream, so the pair is unusable.", line: lineNumber, field: field);
                        return null;
                    }
                    return RequiredString(root, field, path, lineNumber, null, allowEmpty: true);
                }
                var chosen = Answer("chosen");
                var rejected = Answer("rejected");
                if (issue is null && chosen == rejected)
                    issue = new TrainingDataException(path, "chosen and rejected are the same text, so the pair carries no preference; remove the line.", line: lineNumber, field: "rejected");
                if (issue is not null)
                {
                    if (skipped is null)
                        throw issue;
                    skipped.Add(issue);
                    continue;
                }
                pairs.Add(new PreferencePair(source, prompt, chosen!, rejected!, name, lineNumber));
            }
        }
        if (pairs.Count == 0)
            throw new TrainingDataException(path, "holds no preference pairs; expected one JSON object per line.");
        return pairs;
    }

    /// <summary>Reads every <c>*.jsonl</c> in <paramref name="directory"/>, in ordinal file-name order.</summary>
    public static IReadOnlyList<PreferencePair> LoadDirectory(string directory, ICollection<TrainingDataException>? skipped = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        if (!Directory.Exists(directory))
            throw new DirectoryNotFoundException($"Preference folder {directory} does not exist: pass the data/preferences folder.");
        var files = Directory.GetFiles(directory, "*.jsonl").OrderBy(f => f, StringComparer.Ordinal).ToArray();
        if (files.Length == 0)
            throw new TrainingDataException(directory, "holds no *.jsonl preference files.");
        return files.SelectMany(f => Load(f, skipped)).ToArray();
    }

    /// <summary>The dataset family of a <c>source</c> value: the text before the first '/'.</summary>
    public static string DatasetOf(string source)
    {
        var slash = source.IndexOf('/');
        return slash < 0 ? source : source[..slash];
    }

    internal static string RequiredString(JsonElement obj, string field, string path, long? line, long? element, bool allowEmpty = false)
    {
        if (!obj.TryGetProperty(field, out var value))
            throw new TrainingDataException(path, "is missing; add it (a string).", line, element, field);
        if (value.ValueKind != JsonValueKind.String)
            throw new TrainingDataException(path, $"is a JSON {value.ValueKind}, expected a string.", line, element, field);
        var text = value.GetString()!;
        if (text.Length == 0 && !allowEmpty)
            throw new TrainingDataException(path, "is empty; every text field needs content.", line, element, field);
        return text;
    }
}
