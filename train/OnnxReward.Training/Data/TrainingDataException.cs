namespace OnnxReward.Training.Data;

/// <summary>
/// A training-data file that cannot be used as it is: malformed JSON, a missing or mistyped field, an empty text.
/// The message names the file, the line (JSONL, 1-based) or array element (JSON arrays, 0-based), the field and the fix.
/// </summary>
public sealed class TrainingDataException : Exception
{
    public TrainingDataException(string file, string problem, long? line = null, long? element = null, string? field = null,
        Exception? inner = null)
        : base(Format(file, line, element, field, problem), inner)
    {
        File = file;
        Line = line;
        Element = element;
        Field = field;
    }

    /// <summary>The file that holds the problem.</summary>
    public string File { get; }

    /// <summary>1-based line of a JSONL file; null otherwise.</summary>
    public long? Line { get; }

    /// <summary>0-based element of a JSON array file; null otherwise.</summary>
    public long? Element { get; }

    /// <summary>The JSON field at fault, when there is one.</summary>
    public string? Field { get; }

    private static string Format(string file, long? line, long? element, string? field, string problem) =>
        file + (line is null ? "" : $":{line}") + (element is null ? "" : $" element {element}") +
        (field is null ? "" : $" field '{field}'") + ": " + problem;
}
