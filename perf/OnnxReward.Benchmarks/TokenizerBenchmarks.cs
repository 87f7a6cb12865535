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
    private ConversationEncoder _encoder = null!;
    private string[] _texts = [];
    private Conversation[] _conversations = [];

    /// <summary>Input size in MB, printed once so the Mean column converts to MB/s.</summary>
    public static double Megabytes { get; private set; }

    [GlobalSetup]
    public void Setup()
    {
        var shared = SharedPaths.Shared();
        _tokenizer = Llama3Tokenizer.FromDirectory(Path.Combine(shared, "reference", "armorm-tiny"));
        _encoder = ConversationEncoder.Load(Path.Combine(shared, "reference", "armorm-tiny"));
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
            tokens += _encoder.Encode(_conversations[i], i).InputIds.Length;
        return tokens;
    }
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
