using OnnxReward.Testing;
using OnnxReward.Training.Data;

namespace OnnxReward.Training.Tests.Data;

/// <summary>Loaders, the split and the labels on the real shared data (../shared/data) and on small broken files.</summary>
[TestFixture]
public sealed class DataTests
{
    private static IReadOnlyList<PreferencePair> pairs = null!;
    private static IReadOnlyList<RatingExample> ratings = null!;
    private static readonly List<TrainingDataException> Skipped = [];

    [OneTimeSetUp]
    public void Load()
    {
        Skipped.Clear();
        pairs = PreferenceData.LoadDirectory(SharedData.PathOf("data", "preferences"), Skipped);
        ratings = RatingData.LoadDirectory(SharedData.PathOf("data", "ratings"));
    }

    [Test]
    public void LoadsEveryRowOfTheSharedData()
    {
        // Counts from ../shared/data/README.md (and `wc -l` / JSON array lengths for the qags files), less the 7 rows
        // found by a Python scan of the files: pandalm lines 140, 141, 142, 144, 145, 147 have "chosen": true (a JSON
        // boolean), and autoj has one pair with chosen == rejected.
        Assert.That(Skipped.Select(e => (Path.GetFileName(e.File), e.Field)).OrderBy(t => t.Item1).ToArray(), Is.EqualTo(new[]
        {
            ("autoj_pairwise_test.jsonl", "rejected"), ("pandalm_test.jsonl", "chosen"), ("pandalm_test.jsonl", "chosen"),
            ("pandalm_test.jsonl", "chosen"), ("pandalm_test.jsonl", "chosen"), ("pandalm_test.jsonl", "chosen"), ("pandalm_test.jsonl", "chosen"),
        }));
        Assert.That(Skipped.Where(e => e.File.EndsWith("pandalm_test.jsonl")).Select(e => e.Line), Is.EqualTo(new long?[] { 140, 141, 142, 144, 145, 147 }));
        Assert.That(pairs, Has.Count.EqualTo(2312 + 894 + 1019 + 2394 + 300 - 7));
        Assert.That(pairs.Count(p => p.Chosen.Length == 0), Is.EqualTo(4 + 1), "empty answers are kept (4 hh-rlhf, 1 pandalm chosen)");
        Assert.That(ratings, Has.Count.EqualTo(360 + 1181 + 875 + 235 + 239));
        Assert.That(pairs.Select(p => p.Dataset).Distinct().Order(),
            Is.EqualTo(new[] { "autoj", "hh-rlhf", "llamafactory", "pandalm", "rm-bench" }));
        Assert.That(ratings.Count(r => r.Dataset == "topical_chat" && r.Scores.Count == 6), Is.EqualTo(360));
    }

    [Test]
    public void SplitIsDeterministicByPromptAndCoversEveryRow()
    {
        var split = new DataSplit();
        var first = split.Manifest(pairs, ratings);
        var again = new DataSplit().Manifest(PreferenceData.LoadDirectory(SharedData.PathOf("data", "preferences"), []), ratings);
        Assert.That(again, Is.EqualTo(first), "same seed → same assignment on a fresh load");
        Assert.That(first, Has.Count.EqualTo(pairs.Count + ratings.Count), "every row has a part");

        // No group (prompt / rated context) in two parts, checked on the ids and on the prompt texts themselves.
        Assert.That(first.GroupBy(e => e.Group).Count(g => g.Select(e => e.Split).Distinct().Count() > 1), Is.Zero);
        var promptParts = pairs.GroupBy(p => p.Prompt).Count(g => g.Select(split.Assign).Distinct().Count() > 1);
        Assert.That(promptParts, Is.Zero);

        // Hash assignment gives roughly 80/10/10 over ~5,000 groups: each fraction within 3 points (≈ 5 binomial sd).
        var groups = first.GroupBy(e => e.Group).Select(g => g.First().Split).ToArray();
        Assert.That(groups.Count(s => s == SplitPart.Train) / (double)groups.Length, Is.EqualTo(0.8).Within(0.03));
        Assert.That(groups.Count(s => s == SplitPart.Validation) / (double)groups.Length, Is.EqualTo(0.1).Within(0.03));

        // A different seed moves groups (the seed matters) but keeps the grouping.
        var other = new DataSplit("another-seed").Manifest(pairs, ratings);
        Assert.That(other.Zip(first).Count(t => t.First.Split != t.Second.Split), Is.GreaterThan(first.Count / 10));

        // The assignment is the documented function of (seed, prompt), recomputed here by another code path.
        foreach (var p in pairs.Take(200))
            Assert.That(split.Assign(p), Is.EqualTo(ExpectedPart("onnxreward-split-v1", p.Prompt)));
        var markdown = split.Describe(first);
        TestContext.Out.WriteLine(markdown);
        Assert.That(markdown, Does.Contain("| preference | hh-rlhf |").And.Contain("SHA-256"));
    }

    // Independent recomputation of the documented rule with a different code path (hex string parse, decimal compare).
    private static SplitPart ExpectedPart(string seed, string group)
    {
        var hex = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(seed + "\n" + group)));
        var u = (decimal)ulong.Parse(hex[..16], System.Globalization.NumberStyles.HexNumber) / 18446744073709551616m;
        return u < 0.8m ? SplitPart.Train : u < 0.9m ? SplitPart.Validation : SplitPart.Test;
    }

    [Test]
    public void ManifestRoundTripsThroughJsonl()
    {
        var manifest = new DataSplit().Manifest(pairs, ratings);
        var dir = SharedData.NewTempDirectory();
        try
        {
            var path = Path.Combine(dir, "split.jsonl");
            SplitManifest.Write(path, manifest);
            Assert.That(SplitManifest.Read(path), Is.EqualTo(manifest));
            Assert.That(File.ReadLines(path).First(), Does.Contain("\"split\":\"").And.Contain("\"group\":\""));
            File.AppendAllText(path, "{\"kind\": 3\n");
            var e = Assert.Throws<TrainingDataException>(() => SplitManifest.Read(path))!;
            Assert.That(e.Line, Is.EqualTo(manifest.Count + 1));
        }
        finally { Directory.Delete(dir, true); }
    }

    [TestCase("{\"source\":\"x\",\"prompt\":\"p\",\"chosen\":\"a\"}", 2, "rejected", "is missing")]
    [TestCase("{\"source\":\"x\",\"prompt\":5,\"chosen\":\"a\",\"rejected\":\"b\"}", 2, "prompt", "expected a string")]
    [TestCase("{\"source\":\"x\",\"prompt\":\"\",\"chosen\":\"\",\"rejected\":\"b\"}", 2, "prompt", "is empty")]
    [TestCase("{\"source\":\"x\",\"prompt\":\"p\",\"chosen\":true,\"rejected\":\"b\"}", 2, "chosen", "not a text")]
    [TestCase("{\"source\":\"x\",\"prompt\":\"p\",\"chosen\":\"a\",\"rejected\":\"a\"}", 2, "rejected", "same text")]
    [TestCase("{\"source\":\"x\",", 2, null, "not valid JSON")]
    [TestCase("[1, 2]", 2, null, "expected an object")]
    public void BadPreferenceLineNamesFileLineAndField(string badLine, int line, string? field, string problem)
    {
        var dir = SharedData.NewTempDirectory();
        try
        {
            var path = Path.Combine(dir, "bad.jsonl");
            File.WriteAllText(path, "{\"source\":\"x/y\",\"prompt\":\"p\",\"chosen\":\"a\",\"rejected\":\"b\"}\n" + badLine + "\n");
            var e = Assert.Throws<TrainingDataException>(() => PreferenceData.Load(path))!;
            Assert.That(e.Line, Is.EqualTo(line));
            Assert.That(e.Field, Is.EqualTo(field));
            Assert.That(e.Message, Does.StartWith(path + ":" + line).And.Contain(problem));
        }
        finally { Directory.Delete(dir, true); }
    }

    [TestCase("{\"x\": 1}", null, "expected an array")]
    [TestCase("[{\"source\":\"c\",\"system_output\":\"o\",\"scores\":{\"a\":1}}, {\"source\":\"c\",\"system_output\":\"o\",\"scores\":{\"a\":\"high\"}}]", "scores.a", "finite number")]
    [TestCase("[{\"source\":\"c\",\"system_output\":\"o\",\"scores\":{\"a\":1}}, {\"source\":\"c\",\"scores\":{\"a\":1}}]", "system_output", "is missing")]
    [TestCase("[{\"source\":\"c\",\"system_output\":\"o\",\"scores\":{\"a\":1}}, {\"source\":\"c\",\"system_output\":\"o\",\"doc_id\":1.5,\"scores\":{\"a\":1}}]", "doc_id", "integer")]
    public void BadRatingElementNamesFileElementAndField(string json, string? field, string problem)
    {
        var dir = SharedData.NewTempDirectory();
        try
        {
            var path = Path.Combine(dir, "unieval_bad.json");
            File.WriteAllText(path, json);
            var e = Assert.Throws<TrainingDataException>(() => RatingData.Load(path))!;
            Assert.That(e.Field, Is.EqualTo(field));
            Assert.That(e.Message, Does.Contain(problem).And.StartWith(path));
            if (field is not null)
                Assert.That(e.Element, Is.EqualTo(1));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Test]
    public void LabelsAreNanAwareAndRescaledFromTheObservedScale()
    {
        var labels = ObjectiveLabels.Build(pairs, ratings, new DataSplit());
        TestContext.Out.WriteLine(labels.ProvenanceMarkdown());
        var names = labels.ObjectiveNames;
        Assert.That(names, Has.Count.GreaterThanOrEqualTo(8));
        Assert.That(names[^1], Is.EqualTo(ObjectiveLabels.Verbosity));
        Assert.That(labels.UnlabelledDatasets, Is.EqualTo(new[] { "llamafactory" }));
        int n = labels.Examples.Count, k = names.Count;
        Assert.That(labels.Labels.GetLength(0), Is.EqualTo(ratings.Count + 2 * pairs.Count));
        Assert.That(labels.Labels.GetLength(1), Is.EqualTo(k));

        // Every label is NaN or in [0, 1]; verbosity is never NaN; each example has at most one non-verbosity
        // preference label and a rating example never has a preference label.
        var prefObjectives = ObjectiveLabels.PreferenceObjectives.Values.Select(v => names.ToList().IndexOf(v.Name)).ToArray();
        for (var i = 0; i < n; i++)
        {
            for (var j = 0; j < k; j++)
                Assert.That(float.IsNaN(labels.Labels[i, j]) || labels.Labels[i, j] is >= 0 and <= 1, $"row {i} col {j}");
            Assert.That(float.IsNaN(labels.Labels[i, k - 1]), Is.False);
            var e = labels.Examples[i];
            var present = prefObjectives.Count(j => !float.IsNaN(labels.Labels[i, j]));
            Assert.That(present, Is.EqualTo(e.Kind == "preference" && e.Dataset != "llamafactory" ? 1 : 0), $"row {i} ({e.Dataset})");
        }

        // topical_chat naturalness is observed on [1, 3]: the first row (naturalness from the file) maps to (s − 1) / 2.
        var tc = names.ToList().IndexOf("topical_chat-naturalness");
        var row = labels.Examples.Select((e, i) => (e, i)).First(t => t.e.Dataset == "topical_chat").i;
        var raw = ratings.First(r => r.Dataset == "topical_chat").Scores["naturalness"];
        Assert.That(labels.Labels[row, tc], Is.EqualTo((raw - 1) / 2).Within(1e-6));
        // A topical_chat row has no sf label; an sfres row has no topical_chat label.
        var sf = names.ToList().IndexOf("sf-overall");
        Assert.That(float.IsNaN(labels.Labels[row, sf]));
        // Chosen → 1, rejected → 0 for a labelled preference source.
        var hh = names.ToList().IndexOf("hh-rlhf-harmless-preferred");
        var chosenRow = labels.Examples.Select((e, i) => (e, i)).First(t => t.e.Dataset == "hh-rlhf").i;
        Assert.That(labels.Labels[chosenRow, hh], Is.EqualTo(1f));
        Assert.That(labels.Labels[chosenRow + 1, hh], Is.EqualTo(0f));
        Assert.That(labels.Examples[chosenRow].Split, Is.EqualTo(labels.Examples[chosenRow + 1].Split), "a pair stays together");
    }

    [Test]
    public void ConstantAttributeCannotBeRescaled()
    {
        var flat = new[] { new RatingExample("x", "c1", "o", null, new Dictionary<string, double> { ["a"] = 2 }, "f", 0),
                           new RatingExample("x", "c2", "o", null, new Dictionary<string, double> { ["a"] = 2 }, "f", 1) };
        var e = Assert.Throws<ArgumentException>(() => ObjectiveLabels.Build([], flat, new DataSplit()))!;
        Assert.That(e.Message, Does.Contain("x-a").And.Contain("single observed value"));
    }
}
