using System.Globalization;
using System.Text;

namespace OnnxReward.Training.Data;

// Shape legend: N = labelled examples (one per rated text, two per preference pair), K = objectives.

/// <summary>A named objective: where its labels come from and how they were put on [0, 1].</summary>
public sealed record ObjectiveDefinition(string Name, string Provenance, string Scale, int LabelCount);

/// <summary>
/// One response with its labels' row in <see cref="ObjectiveLabels.Labels"/>. <see cref="Prompt"/> is the preference
/// prompt (hh-rlhf: the raw "\n\nHuman: … \n\nAssistant:" transcript) or the rated context; <see cref="Response"/> the
/// chosen / rejected answer or the rated output. <see cref="Pair"/> is the preference pair's index (chosen and rejected
/// share it) or −1 for ratings; <see cref="IsChosen"/> is null for ratings.
/// </summary>
public sealed record LabelledExample(string Kind, string Dataset, string Source, string Prompt, string Response,
    SplitPart Split, string File, int Row, int Pair, bool? IsChosen);

/// <summary>
/// The objectives the shared data can honestly label, and the NaN-aware label matrix [N, K] (ArmoRM stage 1's
/// <c>labels</c>, armorm.md §2.1: a missing label is NaN and that row is dropped for that objective only).
///
/// Objectives, in this order:
/// <list type="bullet">
/// <item>one per rating attribute: "{group}-{attribute}", group = topical_chat, sf (sfres + sfhot, the same protocol),
/// qags (qags_cnndm + qags_xsum); label = (s − min) / (max − min) with min/max observed over all rows of the group
/// (a linear rescaling to [0, 1], like ArmoRM's; the observed scale is in the provenance table);</item>
/// <item>one per preference dataset whose labels mean something stated: hh-rlhf → "hh-rlhf-harmless-preferred"
/// (humans picked the less harmful answer), pandalm → "pandalm-preferred", autoj → "autoj-preferred" (human
/// preference), rm-bench → "rm-bench-correct" (correctness-checked); chosen → 1, rejected → 0. Datasets without a
/// documented labelling (llamafactory) get no objective and are listed as such;</item>
/// <item>"verbosity" (last), for every example: ln(1 + length(response)) rescaled by its observed min/max to [0, 1];
/// length = UTF-16 characters unless a token counter is given. It is the debiasing objective (armorm.md §2.2).</item>
/// </list>
/// </summary>
public sealed class ObjectiveLabels
{
    /// <summary>Name of the verbosity objective.</summary>
    public const string Verbosity = "verbosity";

    /// <summary>Preference datasets with an honest label: (objective name, provenance).</summary>
    public static readonly IReadOnlyDictionary<string, (string Name, string Provenance)> PreferenceObjectives =
        new Dictionary<string, (string, string)>(StringComparer.Ordinal)
        {
            ["hh-rlhf"] = ("hh-rlhf-harmless-preferred",
                "Anthropic hh-rlhf harmless-base test: crowdworkers chose the less harmful assistant turn; chosen → 1, rejected → 0"),
            ["pandalm"] = ("pandalm-preferred", "PandaLM test v1: 3 human annotators, ties removed; chosen → 1, rejected → 0"),
            ["autoj"] = ("autoj-preferred", "Auto-J pairwise test: human preference over 58 scenarios, ties removed; chosen → 1, rejected → 0"),
            ["rm-bench"] = ("rm-bench-correct", "RM-Bench same-style: correctness-checked answers; correct (chosen) → 1, incorrect → 0"),
        };

    private ObjectiveLabels(IReadOnlyList<ObjectiveDefinition> objectives, IReadOnlyList<LabelledExample> examples,
        float[,] labels, IReadOnlyList<string> unlabelled)
    {
        Objectives = objectives;
        Examples = examples;
        Labels = labels;
        UnlabelledDatasets = unlabelled;
    }

    public IReadOnlyList<ObjectiveDefinition> Objectives { get; }
    public IReadOnlyList<LabelledExample> Examples { get; }

    /// <summary>Labels [N, K] in [0, 1], NaN where example n has no label for objective k.</summary>
    public float[,] Labels { get; }

    /// <summary>Preference datasets that were loaded but carry no objective (their examples still have verbosity).</summary>
    public IReadOnlyList<string> UnlabelledDatasets { get; }

    public IReadOnlyList<string> ObjectiveNames => Objectives.Select(o => o.Name).ToArray();
    public int VerbosityIndex => Objectives.Count - 1;

    /// <summary>Builds examples and labels. <paramref name="lengthOf"/> counts a response's length for the verbosity
    /// objective (e.g. Llama-3 token count); default: UTF-16 characters.</summary>
    /// <exception cref="ArgumentException">No data, or a rating attribute with a single observed value (no scale).</exception>
    public static ObjectiveLabels Build(IReadOnlyList<PreferencePair> pairs, IReadOnlyList<RatingExample> ratings, DataSplit split,
        Func<string, int>? lengthOf = null)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        ArgumentNullException.ThrowIfNull(ratings);
        ArgumentNullException.ThrowIfNull(split);
        var unit = lengthOf is null ? "UTF-16 characters" : "caller-counted units (e.g. tokens)";
        lengthOf ??= s => s.Length;
        if (pairs.Count + ratings.Count == 0)
            throw new ArgumentException("No preference pairs and no ratings: load data/preferences and/or data/ratings first.", nameof(pairs));
        var ci = CultureInfo.InvariantCulture;

        // Rating objectives: group → attribute → observed range.
        var ratingKeys = ratings.SelectMany(r => r.Scores.Keys.Select(a => $"{RatingGroupOf(r.Dataset)}-{a}"))
            .Distinct().OrderBy(k => k, StringComparer.Ordinal).ToArray();
        var objectives = new List<ObjectiveDefinition>();
        var ranges = new Dictionary<string, (double Min, double Max)>();
        foreach (var key in ratingKeys)
        {
            var rows = ratings.Where(r => r.Scores.Keys.Any(a => $"{RatingGroupOf(r.Dataset)}-{a}" == key)).ToArray();
            var attribute = key[(RatingGroupOf(rows[0].Dataset).Length + 1)..];
            var values = rows.Select(r => r.Scores[attribute]).ToArray();
            double min = values.Min(), max = values.Max();
            if (!(max > min))
                throw new ArgumentException($"Rating attribute {key} has a single observed value {min} over {values.Length} rows, so it cannot be rescaled to [0, 1]: drop it or add rows with other ratings.", nameof(ratings));
            ranges[key] = (min, max);
            var datasets = string.Join(" + ", rows.Select(r => r.File).Distinct().OrderBy(f => f, StringComparer.Ordinal));
            objectives.Add(new ObjectiveDefinition(key, $"UniEval human mean rating '{attribute}' ({datasets})",
                string.Format(ci, "observed [{0:0.###}, {1:0.###}] → (s − {0:0.###}) / {2:0.###}", min, max, max - min), values.Length));
        }
        var ratingIndex = objectives.Select((o, i) => (o.Name, i)).ToDictionary(t => t.Name, t => t.i);

        var families = pairs.Select(p => p.Dataset).Distinct().OrderBy(d => d, StringComparer.Ordinal).ToArray();
        var preferenceIndex = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var family in families.Where(PreferenceObjectives.ContainsKey))
        {
            var (name, provenance) = PreferenceObjectives[family];
            preferenceIndex[family] = objectives.Count;
            objectives.Add(new ObjectiveDefinition(name, provenance, "binary {0, 1}", 2 * pairs.Count(p => p.Dataset == family)));
        }
        var unlabelled = families.Where(f => !PreferenceObjectives.ContainsKey(f)).ToArray();

        // Examples: ratings first, then pairs (chosen, rejected).
        var examples = new List<LabelledExample>(ratings.Count + 2 * pairs.Count);
        foreach (var r in ratings)
            examples.Add(new LabelledExample("rating", r.Dataset, r.Dataset, r.Context, r.Output, split.Assign(r), r.File, r.Element, -1, null));
        for (var i = 0; i < pairs.Count; i++)
        {
            var p = pairs[i];
            var part = split.Assign(p);
            examples.Add(new LabelledExample("preference", p.Dataset, p.Source, p.Prompt, p.Chosen, part, p.File, p.Line, i, true));
            examples.Add(new LabelledExample("preference", p.Dataset, p.Source, p.Prompt, p.Rejected, part, p.File, p.Line, i, false));
        }

        var logLengths = examples.Select(e => Math.Log(1.0 + lengthOf(e.Response))).ToArray();
        double vMin = logLengths.Min(), vMax = logLengths.Max();
        var vSpan = vMax > vMin ? vMax - vMin : 1.0;
        var v = objectives.Count;
        objectives.Add(new ObjectiveDefinition(Verbosity,
            "every response: ln(1 + length), length in " + unit + "; used only for debiasing",
            string.Format(ci, "observed ln-length [{0:0.###}, {1:0.###}] → min-max to [0, 1]", vMin, vMax), examples.Count));

        var labels = new float[examples.Count, objectives.Count];                  // [N, K]
        for (var n = 0; n < examples.Count; n++)
            for (var k = 0; k < objectives.Count; k++)
                labels[n, k] = float.NaN;
        for (var n = 0; n < ratings.Count; n++)
            foreach (var (attribute, s) in ratings[n].Scores)
            {
                var key = $"{RatingGroupOf(ratings[n].Dataset)}-{attribute}";
                var (min, max) = ranges[key];
                labels[n, ratingIndex[key]] = (float)((s - min) / (max - min));
            }
        for (var n = ratings.Count; n < examples.Count; n++)
        {
            var e = examples[n];
            if (e.IsChosen is { } chosen && preferenceIndex.TryGetValue(e.Dataset, out var k))
                labels[n, k] = chosen ? 1f : 0f;
        }
        for (var n = 0; n < examples.Count; n++)
            labels[n, v] = (float)((logLengths[n] - vMin) / vSpan);
        return new ObjectiveLabels(objectives, examples, labels, unlabelled);
    }

    /// <summary>sfres/sfhot → sf, qags_cnndm/qags_xsum → qags, otherwise the dataset itself.</summary>
    public static string RatingGroupOf(string dataset) => dataset switch
    {
        "sfres" or "sfhot" => "sf",
        "qags_cnndm" or "qags_xsum" => "qags",
        _ => dataset,
    };

    /// <summary>Row indices of the examples in <paramref name="part"/>.</summary>
    public int[] RowsOf(SplitPart part) => Examples.Select((e, i) => (e, i)).Where(t => t.e.Split == part).Select(t => t.i).ToArray();

    /// <summary>Objective names, provenance, scale and label counts per split, as a markdown table for the model card.</summary>
    public string ProvenanceMarkdown()
    {
        var ci = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine("## Objectives").AppendLine();
        sb.AppendLine("| # | objective | provenance | scale → [0, 1] | train labels | validation labels | test labels |");
        sb.AppendLine("| ---: | --- | --- | --- | ---: | ---: | ---: |");
        for (var k = 0; k < Objectives.Count; k++)
        {
            int Count(SplitPart p) => Enumerable.Range(0, Examples.Count).Count(n => Examples[n].Split == p && !float.IsNaN(Labels[n, k]));
            var o = Objectives[k];
            sb.AppendLine(ci, $"| {k} | {o.Name} | {o.Provenance} | {o.Scale} | {Count(SplitPart.Train)} | {Count(SplitPart.Validation)} | {Count(SplitPart.Test)} |");
        }
        if (UnlabelledDatasets.Count > 0)
            sb.AppendLine().AppendLine(ci, $"Not used as an objective (labelling not documented): {string.Join(", ", UnlabelledDatasets)}; their responses carry only the verbosity label.");
        return sb.ToString();
    }
}
