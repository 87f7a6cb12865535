// Shape legend: K = objectives of the reward vector (19 for ArmoRM; the concatenation when several models are combined).
namespace OnnxReward.Transforms;

/// <summary>
/// Which objectives of a K-long reward vector an aggregation uses, resolved once to indices and validated against K.
/// Build it from indices (<see cref="FromIndices"/>) or from the model's objective names (<see cref="FromNames"/>, names as in
/// <c>reward_model.json</c>'s <c>objectives</c>, e.g. <c>helpsteer-helpfulness</c>). To combine several models, concatenate
/// their reward vectors and name lists in the same order.
/// </summary>
public sealed class ObjectiveSubset
{
    readonly int[] _indices;

    ObjectiveSubset(int objectiveCount, int[] indices)
    {
        ObjectiveCount = objectiveCount;
        _indices = indices;
    }

    /// <summary>K, the length of the reward vectors this subset applies to.</summary>
    public int ObjectiveCount { get; }

    /// <summary>The selected objective indices, in the order given, each in [0, K), no duplicates.</summary>
    public IReadOnlyList<int> Indices => _indices;

    /// <summary>Every objective, 0 … K − 1.</summary>
    /// <exception cref="ArgumentOutOfRangeException">objectiveCount &lt; 1.</exception>
    public static ObjectiveSubset All(int objectiveCount)
    {
        CheckCount(objectiveCount);
        return new ObjectiveSubset(objectiveCount, Enumerable.Range(0, objectiveCount).ToArray());
    }

    /// <summary>The objectives at the given indices.</summary>
    /// <exception cref="ArgumentException">no index, an index outside [0, K), or a repeated index.</exception>
    public static ObjectiveSubset FromIndices(int objectiveCount, IEnumerable<int> indices)
    {
        CheckCount(objectiveCount);
        ArgumentNullException.ThrowIfNull(indices);
        int[] chosen = indices.ToArray();
        if (chosen.Length == 0)
            throw new ArgumentException("no objective selected: pass at least one index, or use ObjectiveSubset.All.", nameof(indices));
        var seen = new HashSet<int>();
        foreach (int i in chosen)
        {
            if (i < 0 || i >= objectiveCount)
                throw new ArgumentException(
                    $"objective index {i} is out of range: the reward vector has {objectiveCount} objectives, so use indices 0 to {objectiveCount - 1}.",
                    nameof(indices));
            if (!seen.Add(i))
                throw new ArgumentException(
                    $"objective index {i} is selected twice: list each objective once (a repeat would count it twice in the aggregate).",
                    nameof(indices));
        }
        return new ObjectiveSubset(objectiveCount, chosen);
    }

    /// <summary>The objectives with the given names (ordinal, case-sensitive match against <paramref name="objectiveNames"/>).</summary>
    /// <param name="objectiveNames">[K] the names in reward-vector order, e.g. <c>RewardModelManifest.Objectives</c>.</param>
    /// <param name="names">the names to select.</param>
    /// <exception cref="ArgumentException">no name, an unknown name (the message lists the known ones), a repeated name, or
    /// duplicate names in <paramref name="objectiveNames"/>.</exception>
    public static ObjectiveSubset FromNames(IReadOnlyList<string> objectiveNames, IEnumerable<string> names)
    {
        ArgumentNullException.ThrowIfNull(objectiveNames);
        ArgumentNullException.ThrowIfNull(names);
        CheckCount(objectiveNames.Count);
        var byName = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < objectiveNames.Count; i++)
            if (!byName.TryAdd(objectiveNames[i] ?? "", i))
                throw new ArgumentException(
                    $"objective name '{objectiveNames[i]}' appears twice in objectiveNames (indices {byName[objectiveNames[i] ?? ""]} and {i}): " +
                    "names must be unique to select by name; when combining models, prefix each model's names (e.g. 'a/helpfulness').",
                    nameof(objectiveNames));

        var chosen = new List<int>();
        foreach (string name in names)
        {
            if (!byName.TryGetValue(name ?? "", out int i))
                throw new ArgumentException(
                    $"unknown objective '{name}': the model's objectives are {string.Join(", ", objectiveNames)}.", nameof(names));
            if (chosen.Contains(i))
                throw new ArgumentException($"objective '{name}' is selected twice: list each objective once.", nameof(names));
            chosen.Add(i);
        }
        if (chosen.Count == 0)
            throw new ArgumentException("no objective selected: pass at least one name, or use ObjectiveSubset.All.", nameof(names));
        return new ObjectiveSubset(objectiveNames.Count, chosen.ToArray());
    }

    internal void CheckApplies(int length, string paramName)
    {
        if (length != ObjectiveCount)
            throw new ArgumentException(
                $"{paramName} has {length} objective rewards but the objective subset was built for {ObjectiveCount}: " +
                "build the subset from the same model's objective list as the rewards.", paramName);
    }

    static void CheckCount(int objectiveCount)
    {
        if (objectiveCount < 1)
            throw new ArgumentOutOfRangeException(nameof(objectiveCount), objectiveCount,
                $"objectiveCount = {objectiveCount}: a reward vector has at least one objective.");
    }
}
