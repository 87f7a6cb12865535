using System.Buffers;
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
    private readonly LineSource _reader;
    private readonly Stream _output;
    private readonly bool _ownsOutput;
    private readonly ArrayBufferWriter<byte> _buffer = new(4096);
    private readonly Utf8JsonWriter _writer;
    private readonly long _shardStart;
    private readonly long _shardEnd = long.MaxValue;
    private bool _pastShard;

    /// <param name="input">The input file, or null for stdin.</param>
    /// <param name="output">The output file, or null for stdout.</param>
    /// <param name="shard">Read only this shard's lines of <paramref name="input"/> (see <see cref="Shard"/>); line
    /// numbers stay those of the whole file. Needs a file: stdin is refused.</param>
    public JsonLines(FileInfo? input, FileInfo? output, Shard? shard = null)
    {
        if (input is not null && Directory.Exists(input.FullName))
            throw new CliException($"input {input.FullName} is a directory; pass a JSON Lines file (or leave --input out to read stdin).");
        if (input is not null && !input.Exists)
            throw new CliException($"input file {input.FullName} does not exist.");
        if (shard is { } s && input is null)
            throw new CliException(Shard.NeedsFile(s));
        var stream = input is null ? Console.OpenStandardInput() : File.OpenRead(input.FullName);
        if (shard is { } range)
        {
            if (!stream.CanSeek)
            {
                stream.Dispose();
                throw new CliException($"--shard {range} needs a regular file as --input, and {input!.FullName} has no length (a pipe or " +
                                       "device?): copy the input to a file first.");
            }
            (_shardStart, _shardEnd) = range.ByteRange(stream.Length);
        }
        _reader = new LineSource(stream);
        _ownsOutput = output is not null;
        _output = output is null ? Console.OpenStandardOutput() : File.Create(output.FullName);
        _writer = new Utf8JsonWriter(_buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        InputName = input?.FullName ?? "stdin";
    }

    public string InputName { get; }
    public int Errors { get; private set; }

    /// <summary>Reads the next <paramref name="max"/> non-blank lines (fewer only at the end; empty when the input is
    /// exhausted). A line that is not valid UTF-8, not JSON or holds a lone surrogate comes back with its error (naming
    /// the byte offset).</summary>
    /// <remarks>With a <see cref="Shard"/>, the input is cut into these same chunks of <paramref name="max"/> inputs as an
    /// unsharded run reads it, and this shard gets the whole chunks whose first line starts in its byte range (the
    /// others are skipped unparsed, only counted for line numbers). Every chunk is then batched exactly as in one
    /// process, so the scores are the same bits (batch composition moves float results in the last digit); that needs
    /// every shard and the unsharded run to read with the same <paramref name="max"/>.</remarks>
    public List<InputLine> Read(int max)
    {
        var lines = new List<InputLine>();
        while (!_pastShard && NextInput() is { } first)
        {
            if (first.Offset >= _shardEnd)
            {
                _pastShard = true;
                break;
            }
            if (first.Offset < _shardStart)
            {
                for (var k = 1; k < max && NextInput() is not null; k++) { }     // a chunk before this shard's
                continue;
            }
            lines.Add(Parse(first));
            while (lines.Count < max && NextInput() is { } line)
                lines.Add(Parse(line));
            break;
        }
        return lines;
    }

    private LineSource.Line? NextInput()
    {
        while (_reader.Next() is { } line)
            if (!LineSource.IsBlank(line.Bytes.Span))
                return line;
        return null;
    }

    private static InputLine Parse(LineSource.Line line)
    {
        try
        {
            using var doc = Wire.StrictJson.Parse(line.Bytes);
            return new InputLine(line.Number, doc.RootElement.Clone(), null);
        }
        catch (FormatException e)
        {
            return new InputLine(line.Number, null, e.Message.StartsWith("invalid JSON", StringComparison.Ordinal)
                ? e.Message[..^1] + ". Each line must be one JSON object." : e.Message);
        }
    }

    /// <summary>Writes one result object for input line <paramref name="line"/>. The object is built in memory first, so
    /// a body that fails half-way (a NaN the JSON writer refuses, say) never leaves a partial object on the output:
    /// the line gets its error instead.</summary>
    public void Write(int line, Action<Utf8JsonWriter> body) => WriteValue(line, w =>
    {
        w.WriteStartObject();
        body(w);
        w.WriteEndObject();
    });

    /// <summary>Writes one whole JSON value (a wire record, see <see cref="OnnxReward.Wire.RewardJson"/>) for input line
    /// <paramref name="line"/>, built in memory first as <see cref="Write"/> is.</summary>
    public void WriteValue(int line, Action<Utf8JsonWriter> value)
    {
        try
        {
            value(_writer);
            _writer.Flush();
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            _writer.Reset();
            _buffer.Clear();
            WriteError(line, $"the result could not be written as JSON ({e.Message}).");
            return;
        }
        _buffer.Write("\n"u8);
        _output.Write(_buffer.WrittenSpan);
        _writer.Reset();
        _buffer.Clear();
    }

    /// <summary>Reports a bad line on stderr and in its place on stdout.</summary>
    public void WriteError(int line, string message)
    {
        Errors++;
        Console.Error.WriteLine($"line {line}: {message}");
        WriteValue(line, w => OnnxReward.Wire.RewardJson.WriteError(w, message, line));
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

/// <summary>
/// Lines of raw bytes from a stream, numbered from 1 (blank lines counted), '\n' or "\r\n" ended, a leading UTF-8 BOM
/// dropped. Bytes stay bytes so that invalid UTF-8 can be reported (a StreamReader would turn it into U+FFFD).
/// </summary>
internal sealed class LineSource(Stream stream) : IDisposable
{
    private byte[] _buffer = new byte[64 * 1024];
    private int _start, _end, _number;
    private long _dropped;      // bytes of the stream before _buffer[0]
    private bool _eof;

    /// <summary>One line: its 1-based number, its content (no line ending, no BOM) and the stream offset of its first byte.</summary>
    public readonly record struct Line(int Number, ReadOnlyMemory<byte> Bytes, long Offset);

    /// <summary>The next line (valid until the next call), or null at the end of the input.</summary>
    public Line? Next()
    {
        var scanned = 0;
        while (true)
        {
            var newline = _buffer.AsSpan(_start + scanned, _end - _start - scanned).IndexOf((byte)'\n');
            if (newline >= 0)
            {
                var length = scanned + newline;
                var line = Take(length);
                _start += length + 1;
                return line;
            }
            scanned = _end - _start;
            if (_eof)
            {
                if (scanned == 0)
                    return null;
                var last = Take(scanned);
                _start = _end;
                return last;
            }
            Fill();
        }
    }

    private Line Take(int length)
    {
        var bytes = _buffer.AsMemory(_start, length);
        var offset = _dropped + _start;
        if (bytes.Span.EndsWith((byte)'\r'))
            bytes = bytes[..^1];
        if (++_number == 1 && bytes.Span.StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF]))
            bytes = bytes[3..];
        return new Line(_number, bytes, offset);
    }

    private void Fill()
    {
        if (_start > 0)
        {
            _buffer.AsSpan(_start, _end - _start).CopyTo(_buffer);
            _dropped += _start;
            _end -= _start;
            _start = 0;
        }
        if (_end == _buffer.Length)
            Array.Resize(ref _buffer, checked(_buffer.Length * 2));
        var read = stream.Read(_buffer, _end, _buffer.Length - _end);
        if (read == 0)
            _eof = true;
        _end += read;
    }

    /// <summary>True for a line of only ASCII whitespace (not an input; produces nothing).</summary>
    public static bool IsBlank(ReadOnlySpan<byte> line) => line.IndexOfAnyExcept(" \t\r\f\v"u8) < 0;

    public void Dispose() => stream.Dispose();
}

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
