using OnnxReward.Model;

namespace OnnxReward.Export.Exporting;

/// <summary>
/// The transactional half of an export (issue 16 items 2, 10, 14): everything is written into a hidden temporary
/// sibling of <c>--out</c> (same parent, so same file system and every move is a rename), validated there, and only
/// then swapped in. Without a previous model: rename temp → out. Over a previous model (<c>--force</c>): the entries of
/// out that an export does not write (user files) move into temp, out is renamed aside, temp is renamed to out, and the
/// aside copy is deleted; any failure before the last rename moves everything back. A failed or cancelled export
/// therefore leaves --out as it was (absent, empty, or the previous model) and deletes the temp folder and any parent
/// folders it created. At every instant each file exists in out, temp or aside, so even a killed process loses nothing
/// (a stray hidden <c>.NAME.export-*</c> folder is then all that remains).
/// </summary>
internal sealed class OutputStaging : IDisposable
{
    private readonly List<string> _createdAncestors = [];
    private bool _committed;

    private OutputStaging(string target, string temp)
    {
        Target = target;
        Temp = temp;
    }

    /// <summary>The output directory as a full path.</summary>
    public string Target { get; }

    /// <summary>The hidden sibling the export writes into.</summary>
    public string Temp { get; }

    /// <summary>Names an export writes: replaced by --force; every other entry of a previous output is carried over.</summary>
    public static bool IsExportFile(string name) =>
        name is ModelExporter.GraphFile or ModelExporter.DataFile or RewardModelManifest.FileName
            or "tokenizer.json" or "tokenizer_config.json" or "special_tokens_map.json"
        || name.EndsWith(".tiktoken", StringComparison.Ordinal);

    public static OutputStaging Begin(string outputDirectory)
    {
        var target = Path.TrimEndingDirectorySeparator(Path.GetFullPath(outputDirectory));
        var parent = Path.GetDirectoryName(target)
            ?? throw new ExportException($"--out {outputDirectory} is a file system root; pass a folder to create or replace.");
        var missing = new List<string>();
        for (var p = parent; p is not null && !Directory.Exists(p); p = Path.GetDirectoryName(p))
        {
            if (File.Exists(p))
                throw new ExportException($"--out {outputDirectory}: {p} is a file, so the folder cannot be created there.");
            missing.Add(p);
        }
        var staging = new OutputStaging(target, Path.Combine(parent, $".{Path.GetFileName(target)}.export-{Guid.NewGuid().ToString("N")[..8]}"));
        try
        {
            for (var i = missing.Count - 1; i >= 0; i--)
            {
                Directory.CreateDirectory(missing[i]);
                staging._createdAncestors.Add(missing[i]);
            }
            Directory.CreateDirectory(staging.Temp);
            return staging;
        }
        catch
        {
            staging.Dispose();
            throw;
        }
    }

    /// <summary>Swaps the validated temp folder in as <see cref="Target"/>.</summary>
    public void Commit(bool overwrite)
    {
        if (!Directory.Exists(Target))
            Directory.Move(Temp, Target);
        else if (!Directory.EnumerateFileSystemEntries(Target).Any())
        {
            Directory.Delete(Target);                            // an empty folder: replace it
            try { Directory.Move(Temp, Target); }
            catch { Directory.CreateDirectory(Target); throw; }
        }
        else
        {
            if (!overwrite)
                throw new ExportException(
                    $"output directory {Target} is not empty (it was filled while the export ran); choose an empty or new directory, or pass --force.");
            ReplacePrevious();
        }
        _committed = true;
    }

    private void ReplacePrevious()
    {
        var carried = new List<(string From, string To)>();
        var aside = Path.Combine(Path.GetDirectoryName(Target)!, $".{Path.GetFileName(Target)}.previous-{Guid.NewGuid().ToString("N")[..8]}");
        var movedAside = false;
        try
        {
            foreach (var entry in Directory.EnumerateFileSystemEntries(Target).ToList())
            {
                var name = Path.GetFileName(entry);
                if (IsExportFile(name)) continue;
                var to = Path.Combine(Temp, name);
                Move(entry, to);
                carried.Add((entry, to));
            }
            Directory.Move(Target, aside);
            movedAside = true;
            Directory.Move(Temp, Target);
        }
        catch
        {
            if (movedAside)
                try { Directory.Move(aside, Target); } catch (IOException) { /* reported below: the previous model is at aside */ }
            foreach (var (from, to) in carried)
                try { Move(to, from); } catch (IOException) { /* the file stays in the temp folder, which is then kept */ }
            if (movedAside && !Directory.Exists(Target))
                throw new ExportException($"the export failed and the previous model could not be moved back: it is in {aside}.");
            if (carried.Any(c => !Path.Exists(c.From)))
                _committed = true;                               // keep temp: it holds user files that could not move back
            throw;
        }
        try
        {
            Directory.Delete(aside, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The new model is in place; the old one stays in the hidden folder rather than failing a finished export.
        }
    }

    private static void Move(string from, string to)
    {
        if (Directory.Exists(from)) Directory.Move(from, to);
        else File.Move(from, to);
    }

    /// <summary>Without <see cref="Commit"/>: deletes the temp folder and the parents <see cref="Begin"/> created.</summary>
    public void Dispose()
    {
        if (_committed) return;
        try
        {
            if (Directory.Exists(Temp)) Directory.Delete(Temp, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // best effort: the export's own error matters more
        }
        for (var i = _createdAncestors.Count - 1; i >= 0; i--)
            try { Directory.Delete(_createdAncestors[i]); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { break; }
    }
}
