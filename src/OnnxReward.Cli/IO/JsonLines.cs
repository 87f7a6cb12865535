using System.Text;
using System.Text.Json;
using Spectre.Console;

namespace OnnxReward.Cli.IO;

/// <summary>One non-blank input line: its 1-based number and parsed JSON (or the parse error).</summary>
internal sealed record InputLine(int Number, JsonElement? Json, string? Error);

/// <summary>
/// JSON lines in (stdin or --input) and out (stdout or --output), in order, one result per input line. A bad line gets
/// <c>{"line": N, "error": "…"}</c> in its place on stdout and <c>line N: …</c> on stderr; processing goes on and the
/// command exits non-zero at the end. Blank lines are not inputs and produce nothing.
/// </summary>
internal sealed class JsonLines : IDisposable
{
    private readonly TextReader _reader;
    private readonly Stream _output;
    private readonly bool _ownsOutput;
    private readonly Utf8JsonWriter _writer;
    private int _lineNumber;

    public JsonLines(FileInfo? input, FileInfo? output)
    {
        if (input is not null && Directory.Exists(input.FullName))
            throw new CliException($"input {input.FullName} is a directory; pass a JSON Lines file (or leave --input out to read stdin).");
        if (input is not null && !input.Exists)
            throw new CliException($"input file {input.FullName} does not exist.");
        _reader = input is null ? new StreamReader(Console.OpenStandardInput(), Encoding.UTF8) : new StreamReader(input.FullName, Encoding.UTF8);
        _ownsOutput = output is not null;
        _output = output is null ? Console.OpenStandardOutput() : File.Create(output.FullName);
        _writer = new Utf8JsonWriter(_output, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        InputName = input?.FullName ?? "stdin";
    }

    public string InputName { get; }
    public int Errors { get; private set; }

    /// <summary>Reads up to <paramref name="max"/> non-blank lines (empty when the input is exhausted).</summary>
    public List<InputLine> Read(int max)
    {
        var lines = new List<InputLine>();
        while (lines.Count < max && _reader.ReadLine() is { } line)
        {
            _lineNumber++;
            if (string.IsNullOrWhiteSpace(line))
                continue;
            try
            {
                using var doc = JsonDocument.Parse(line);
                lines.Add(new InputLine(_lineNumber, doc.RootElement.Clone(), null));
            }
            catch (JsonException e)
            {
                lines.Add(new InputLine(_lineNumber, null, $"invalid JSON ({e.Message.Split(" Path:")[0]}). Each line must be one JSON object."));
            }
        }
        return lines;
    }

    /// <summary>Writes one result object.</summary>
    public void Write(Action<Utf8JsonWriter> body)
    {
        _writer.WriteStartObject();
        body(_writer);
        _writer.WriteEndObject();
        _writer.Flush();
        _writer.Reset();
        _output.WriteByte((byte)'\n');
    }

    /// <summary>Reports a bad line on stderr and in its place on stdout.</summary>
    public void WriteError(int line, string message)
    {
        Errors++;
        Console.Error.WriteLine($"line {line}: {message}");
        Write(w =>
        {
            w.WriteNumber("line", line);
            w.WriteString("error", message);
        });
    }

    public void Flush() => _output.Flush();

    public void Dispose()
    {
        _writer.Dispose();
        _output.Flush();
        if (_ownsOutput)
            _output.Dispose();
        _reader.Dispose();
    }
}

/// <summary>A usage problem the command reports as one line (<c>error: …</c>) with exit code 1, no stack trace.</summary>
internal sealed class CliException(string message) : Exception(message);

/// <summary>Progress on stderr for long inputs, only when stderr is a terminal (pipes and CI logs stay clean).</summary>
internal static class LongRun
{
    public static T Run<T>(string description, Func<Action<int>, T> work)
    {
        if (Console.IsErrorRedirected)
            return work(_ => { });
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        return console.Progress().AutoClear(true).Start(ctx =>
        {
            var task = ctx.AddTask(description, maxValue: double.MaxValue);
            task.IsIndeterminate = true;
            var done = 0;
            return work(n =>
            {
                done += n;
                task.Description = $"{description}: {done} lines";
            });
        });
    }
}
