using System.Text;
using System.Text.Json;
using BenchmarkDotNet.Attributes;
using OnnxReward.Text;
using OnnxReward.Text.Tokenization;

namespace OnnxReward.Benchmarks;

/// <summary>
/// Single-thread Llama-3 encode throughput on the shared preference texts (every prompt, chosen and rejected string of
/// ../shared/data/preferences/*.jsonl), and the full front end (chat template + encode + positions) per conversation.
/// MB/s = UTF-8 megabytes of input per second: divide <see cref="Megabytes"/> by the Mean column.
/// </summary>
[MemoryDiagnoser]
public class TokenizerBenchmarks
{
    private Llama3Tokenizer _tokenizer = null!;
    private InputEncoder _encoder = null!;
    private string[] _texts = [];
    private Conversation[] _conversations = [];

    /// <summary>Input size in MB, printed once so the Mean column converts to MB/s.</summary>
    public static double Megabytes { get; private set; }

    [GlobalSetup]
    public void Setup()
    {
        var shared = SharedPaths.Shared();
        _tokenizer = Llama3Tokenizer.FromDirectory(Path.Combine(shared, "reference", "armorm-tiny"));
        _encoder = InputEncoder.Load(Path.Combine(shared, "reference", "armorm-tiny"));
        var texts = new List<string>();
        var conversations = new List<Conversation>();
        foreach (var file in Directory.GetFiles(Path.Combine(shared, "data", "preferences"), "*.jsonl"))
            foreach (var line in File.ReadLines(file))
            {
                using var d = JsonDocument.Parse(line);
                var r = d.RootElement;
                foreach (var field in new[] { "prompt", "chosen", "rejected" })
                    if (r.GetProperty(field).ValueKind == JsonValueKind.String)
                        texts.Add(r.GetProperty(field).GetString()!);
                if (r.GetProperty("chosen").ValueKind == JsonValueKind.String)
                    conversations.Add(Conversation.FromPromptResponse(r.GetProperty("prompt").GetString()!, r.GetProperty("chosen").GetString()!));
            }
        _texts = texts.ToArray();
        _conversations = conversations.ToArray();
        Megabytes = _texts.Sum(t => (double)Encoding.UTF8.GetByteCount(t)) / 1e6;
        Console.WriteLine($"// tokenizer corpus: {_texts.Length} texts, {Megabytes:F2} MB UTF-8; {_conversations.Length} conversations");
    }

    [Benchmark(Description = "encode all preference texts (single thread)")]
    public long EncodeAll()
    {
        long tokens = 0;
        foreach (var t in _texts)
            tokens += _tokenizer.Encode(t).Length;
        return tokens;
    }

    [Benchmark(Description = "template + encode + positions, all conversations")]
    public long FrontEnd()
    {
        long tokens = 0;
        for (var i = 0; i < _conversations.Length; i++)
            tokens += _encoder.Encode(_conversations[i], i).TokenCount;
        return tokens;
    }
}

/// <summary>
/// Issue 16's work bound: per-byte encode time of 1 MB without whitespace ('a' × 1 MB, a seeded random A/C/G/T string)
/// against 1 MB of ordinary text (the shared preference texts in file order, joined by blank lines). All three are
/// exactly <see cref="Bytes"/> UTF-8 bytes, so the Ratio column (baseline: ordinary text) is the per-byte time ratio;
/// issue 16's target is ≤ 3. Same call the scorer makes after rendering: <see cref="Llama3Tokenizer.Encode(string,
/// CancellationToken)"/> with a live cancellation token (serve's per-request deadline), added tokens split first.
/// </summary>
[MemoryDiagnoser]
public class TokenizerWorstCaseBenchmarks
{
    /// <summary>UTF-8 bytes of every input.</summary>
    public const int Bytes = 1_000_000;

    private Llama3Tokenizer _tokenizer = null!;
    private string _ordinary = "", _letters = "", _dna = "";
    private readonly CancellationTokenSource _deadline = new();

    [GlobalSetup]
    public void Setup()
    {
        var shared = SharedPaths.Shared();
        _tokenizer = Llama3Tokenizer.FromDirectory(Path.Combine(shared, "reference", "armorm-tiny"));
        var sb = new StringBuilder(Bytes + 100_000);
        var bytes = 0;
        foreach (var file in Directory.GetFiles(Path.Combine(shared, "data", "preferences"), "*.jsonl").Order(StringComparer.Ordinal))
            foreach (var line in File.ReadLines(file))
            {
                using var d = JsonDocument.Parse(line);
                foreach (var field in new[] { "prompt", "chosen", "rejected" })
                    if (d.RootElement.GetProperty(field).ValueKind == JsonValueKind.String)
                    {
                        foreach (var rune in (d.RootElement.GetProperty(field).GetString()! + "\n\n").EnumerateRunes())
                        {
                            if (bytes + rune.Utf8SequenceLength > Bytes)
                                goto full;
                            sb.Append(rune.ToString());
                            bytes += rune.Utf8SequenceLength;
                        }
                    }
            }
        full:
        sb.Append(' ', Bytes - bytes);      // at most 3 bytes short of a whole character: pad with spaces
        _ordinary = sb.ToString();
        _letters = new string('a', Bytes);
        var random = new Random(16);
        _dna = string.Create(Bytes, random, (span, r) =>
        {
            for (var i = 0; i < span.Length; i++)
                span[i] = "ACGT"[r.Next(4)];
        });
        foreach (var t in new[] { _ordinary, _letters, _dna })
            if (Encoding.UTF8.GetByteCount(t) != Bytes)
                throw new InvalidOperationException($"an input is {Encoding.UTF8.GetByteCount(t)} bytes, not {Bytes}");
        Console.WriteLine($"// worst-case inputs: {Bytes:N0} UTF-8 bytes each; tokens: ordinary {_tokenizer.Encode(_ordinary).Length:N0}, " +
            $"'a' {_tokenizer.Encode(_letters).Length:N0}, DNA {_tokenizer.Encode(_dna).Length:N0}");
    }

    [Benchmark(Baseline = true, Description = "1 MB ordinary text (preference data)")]
    public int Ordinary() => _tokenizer.Encode(_ordinary, _deadline.Token).Length;

    [Benchmark(Description = "1 MB of 'a' (no whitespace)")]
    public int Letters() => _tokenizer.Encode(_letters, _deadline.Token).Length;

    [Benchmark(Description = "1 MB random ACGT (no whitespace)")]
    public int Dna() => _tokenizer.Encode(_dna, _deadline.Token).Length;
}

/// <summary>Finds ../shared beside the repository root (the folder holding OnnxReward.sln).</summary>
internal static class SharedPaths
{
    public static string Shared()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "OnnxReward.sln")))
                return Path.GetFullPath(Path.Combine(dir.FullName, "..", "shared"));
        for (var dir = new DirectoryInfo(Environment.CurrentDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "OnnxReward.sln")))
                return Path.GetFullPath(Path.Combine(dir.FullName, "..", "shared"));
        throw new InvalidOperationException("OnnxReward.sln not found above the benchmark: run it from the repository.");
    }
}
