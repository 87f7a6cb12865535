using OnnxReward.Evaluation;
using OnnxReward.Text.Conversations;
using OnnxReward.Training.Data;
using OnnxReward.Training.Stages;

namespace OnnxReward.Training.Pipeline;

/// <summary>
/// Held-out test accuracy per dataset, every method on the same backbone, the same split and the same encodings: the
/// exported model (RewardModel, DropOldestTurns within the model's limit) gives scores, rewards, embeddings and token
/// counts; the baselines are computed from those. Pairs the model cannot score are excluded and counted.
/// </summary>
internal static class TestEvaluation
{
    public const string Gating = "ArmoRM gating score";
    public const string BtHead = "BT head alone";
    public const string Probe = "BT linear probe (Laplace)";
    public const string Mean = "plain mean of objectives";
    public const string Length = "response length";

    public sealed record Results(IReadOnlyDictionary<string, PreferenceAccuracy> Methods, int Pairs, int Excluded);

    public static Results Run(string modelDir, ObjectiveLabels labels, int verbosity,
        IReadOnlyList<(int Chosen, int Rejected, string Dataset)> pairs, float[] btWeights, BradleyTerryHead probe, int maxLength)
    {
        using var model = RewardModel.Load(modelDir, new RewardModelOptions
        {
            ExecutionProvider = ExecutionProviderKind.Cpu, Truncation = TruncationPolicy.DropOldestTurns, MaxSequenceLength = maxLength,
        });
        var rows = new List<EncodedInput>();
        var kept = new List<(int Chosen, int Rejected, string Dataset)>();
        foreach (var p in pairs)
        {
            try
            {
                var c = model.Encode(Input(labels.Examples[p.Chosen]), p.Chosen);
                var r = model.Encode(Input(labels.Examples[p.Rejected]), p.Rejected);
                rows.Add(c);
                rows.Add(r);
                kept.Add(p);
            }
            catch (RewardModelException)
            {
                // counted below through kept.Count
            }
        }
        var scores = model.Score(rows);
        var embeddings = model.Embed(rows);

        double Bt(float[] e) => e.Select((v, k) => (double)v * btWeights[k]).Sum();
        double MeanOf(RewardScore s) => s.RewardValues.Where((_, k) => k != verbosity).Average(v => (double)v);
        var methods = new Dictionary<string, Func<int, double>>
        {
            [Gating] = i => scores[i].Score,
            [BtHead] = i => Bt(embeddings[i]),
            [Probe] = i => probe.Reward(embeddings[i]),
            [Mean] = i => MeanOf(scores[i]),
            [Length] = i => scores[i].TokenCount,
        };
        var result = methods.ToDictionary(m => m.Key, m => PreferenceAccuracy.Summarize(
            kept.Select((p, j) => new PairOutcome(p.Dataset, m.Value(2 * j), m.Value(2 * j + 1)))));
        return new Results(result, pairs.Count, pairs.Count - kept.Count);
    }

    private static Conversation Input(LabelledExample e) => Conversation.FromPromptResponse(e.Prompt, e.Response);
}
