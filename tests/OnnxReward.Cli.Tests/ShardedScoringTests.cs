using System.Text;
using System.Text.Json;
using OnnxReward.Testing;

namespace OnnxReward.Cli.Tests;

/// <summary>`score --shard i/N` (and `embed`, the same code): N processes over one file write outputs that concatenate,
/// in index order, to the unsharded output byte for byte — bad lines included, with their global line numbers.</summary>
[NonParallelizable]
public class ShardedScoringTests
{
    private static string _dir = null!;
    private static string _input = null!;
    private const int BadLine = 701, NotJsonLine = 1205;

    [OneTimeSetUp]
    public void WriteInput()
    {
        _dir = SharedData.NewTempDirectory("cli-shard");
        _input = Path.Combine(_dir, "in.jsonl");
        // 1,300 lines: three read chunks of 512 inputs (the unit of a shard), so 5 shards leave some empty. Responses of
        // varied length so the chunks batch into several token-budget batches; one empty conversation (a line error),
        // one line that is not JSON, a blank line (not an input) and a CRLF ending.
        var random = new Random(14);
        var text = new StringBuilder();
        for (var k = 1; k <= 1300; k++)
            text.Append(k switch
            {
                BadLine => "{\"messages\": []}",
                NotJsonLine => "{not json",
                900 => "   ",
                _ => JsonSerializer.Serialize(new { prompt = $"What is {k} + {k % 7}?", response = string.Join(' ', Enumerable.Repeat("word", random.Next(1, 60))) }),
            }).Append(k == 10 ? "\r\n" : "\n");
        File.WriteAllText(_input, text.ToString());
    }

    [OneTimeTearDown]
    public void Clean() => Directory.Delete(_dir, true);

    private static (int Code, byte[] Output) Run(string command, string? shard)
    {
        var output = Path.Combine(_dir, $"{command}-{shard?.Replace("/", "of") ?? "all"}.jsonl");
        var args = new List<string> { command, "--model", CliRunner.ArmormTiny, "--ep", "cpu", "--input", _input, "--output", output };
        if (shard is not null)
            args.AddRange(["--shard", shard]);
        var (code, stdout, stderr) = CliRunner.Run(null, [.. args]);
        Assert.That(stdout, Is.Empty, "results go to --output");
        Assert.That(code, Is.EqualTo(0).Or.EqualTo(1), stderr);
        return (code, File.ReadAllBytes(output));
    }

    [Test]
    public void ShardsConcatenateToTheUnshardedOutput()
    {
        var (allCode, all) = Run("score", null);
        Assert.That(allCode, Is.EqualTo(1), "two bad lines");
        var lines = Encoding.UTF8.GetString(all).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Has.Length.EqualTo(1299), "one result per non-blank line");
        Assert.That(JsonDocument.Parse(lines[BadLine - 1]).RootElement.GetProperty("line").GetInt32(), Is.EqualTo(BadLine));

        foreach (var n in new[] { 1, 2, 3, 5 })
        {
            var parts = Enumerable.Range(0, n).Select(i => Run("score", $"{i}/{n}")).ToList();
            Assert.That(parts.SelectMany(p => p.Output).ToArray(), Is.EqualTo(all), $"N = {n}: cat shard-0 … shard-{n - 1} is the unsharded output");
            // Each shard fails exactly when it holds a bad line; the error records keep the file's line numbers.
            for (var i = 0; i < n; i++)
            {
                var text = Encoding.UTF8.GetString(parts[i].Output);
                var holdsBad = text.Contains($"\"line\":{BadLine},") || text.Contains($"\"line\":{NotJsonLine},");
                Assert.That(parts[i].Code, Is.EqualTo(holdsBad ? 1 : 0), $"shard {i}/{n}");
            }
            if (n == 5)
                Assert.That(parts.Count(p => p.Output.Length == 0), Is.EqualTo(2), "3 chunks over 5 shards: two empty shards, which succeed");
            if (n > 1)
                Assert.That(parts.Count(p => p.Output.Length > 0), Is.GreaterThan(1), $"N = {n}: the work is split, not all in one shard");
        }
    }

    [Test]
    public void EmbedShardsTheSameWay()
    {
        var (_, all) = Run("embed", null);
        var parts = Enumerable.Range(0, 3).Select(i => Run("embed", $"{i}/3").Output).ToList();
        Assert.That(parts.SelectMany(p => p).ToArray(), Is.EqualTo(all));
        Assert.That(parts.Count(p => p.Length > 0), Is.EqualTo(3));
    }

    [TestCase("2/2", "--shard '2/2': the index i must be from 0 to 1")]
    [TestCase("5/3", "--shard '5/3': the index i must be from 0 to 2")]
    [TestCase("0/0", "--shard '0/0': the number of shards N must be at least 1.")]
    [TestCase("-1/2", "--shard '-1/2' is not of the form i/N")]
    [TestCase("1/", "--shard '1/' is not of the form i/N")]
    [TestCase("1", "--shard '1' is not of the form i/N")]
    [TestCase("a/b", "--shard 'a/b' is not of the form i/N")]
    [TestCase("0/2/3", "--shard '0/2/3' is not of the form i/N")]
    [TestCase(" 0/2", "--shard ' 0/2' is not of the form i/N")]
    [TestCase("0/2\n", "--shard '0/2\\n' is not of the form i/N")]
    [TestCase("+0/2", "--shard '+0/2' is not of the form i/N")]
    [TestCase("0/99999999999", "--shard '0/99999999999': i and N must be at most 2147483647.")]
    public void BadShardValuesAreOneLineErrors(string shard, string expected)
    {
        // Checked before the model loads: a model path that does not exist must not be what fails.
        var (code, stdout, stderr) = CliRunner.Run(null, "score", "--model", "/nonexistent-model", "--input", _input, "--shard", shard);
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stdout, Is.Empty);
        Assert.That(stderr, Does.StartWith("error: ").And.Contain(expected));
        Assert.That(stderr.TrimEnd().Split('\n'), Has.Length.EqualTo(1), "one line");
    }

    [Test]
    public void StdinIsRefusedWithTheReason()
    {
        var (code, stdout, stderr) = CliRunner.Run("{\"prompt\": \"a\", \"response\": \"b\"}\n", "score", "--model", "/nonexistent-model", "--shard", "0/2");
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stdout, Is.Empty);
        Assert.That(stderr.Trim(), Does.StartWith("error: --shard 0/2 needs --input FILE").And.Contain("stdin cannot be split"));
    }
}
