// Shape legend: K = objectives (one model's, or several models' concatenated in one order).
namespace OnnxReward.Transforms;

/// <summary>
/// Combining several rewards of one response into one number: the LSC logical AND (Wang et al. 2024, docs/armorm.md §4) and
/// the plain (weighted) sum, each over all objectives or an <see cref="ObjectiveSubset"/>.
/// </summary>
public static class RewardAggregation
{
    /// <summary>
    /// LSC-AND: <c>u = Σ_{i∈S} log σ(r_i − r_i^ref) = log Π_{i∈S} P(G_i = 1)</c>, the log-probability that the response beats the
    /// reference on every selected objective (assuming conditional independence). Always ≤ 0.
    /// </summary>
    /// <param name="rewards">[K] the response's objective rewards.</param>
    /// <param name="referenceRewards">[K] r_ref per objective (<see cref="ReferenceReward.PerObjective"/>).</param>
    /// <param name="objectives">the objectives S to combine; null = all K.</param>
    /// <exception cref="ArgumentException">empty or mismatched lengths, a NaN/infinite value, or a subset built for another K.</exception>
    public static double LscAnd(ReadOnlySpan<double> rewards, ReadOnlySpan<double> referenceRewards, ObjectiveSubset? objectives = null)
    {
        CheckRewards(rewards, objectives);
        if (referenceRewards.Length != rewards.Length)
            throw new ArgumentException(
                $"referenceRewards has {referenceRewards.Length} values but rewards has {rewards.Length}: pass one reference reward per objective.",
                nameof(referenceRewards));
        RewardChecks.Finite(referenceRewards, nameof(referenceRewards));

        double u = 0.0;
        if (objectives is null)
            for (int i = 0; i < rewards.Length; i++) u += LogSigmoid.Evaluate(rewards[i] - referenceRewards[i]);
        else
            foreach (int i in objectives.Indices) u += LogSigmoid.Evaluate(rewards[i] - referenceRewards[i]);
        return u;
    }

    /// <summary>The plain sum <c>Σ_{i∈S} r_i</c> over the selected objectives (null = all K).</summary>
    /// <exception cref="ArgumentException">empty rewards, a NaN/infinite reward, or a subset built for another K.</exception>
    public static double Sum(ReadOnlySpan<double> rewards, ObjectiveSubset? objectives = null)
    {
        CheckRewards(rewards, objectives);
        double sum = 0.0;
        if (objectives is null)
            foreach (double r in rewards) sum += r;
        else
            foreach (int i in objectives.Indices) sum += rewards[i];
        return sum;
    }

    /// <summary>The weighted sum <c>Σ_{i∈S} w_i · r_i</c> over the selected objectives (null = all K).</summary>
    /// <param name="rewards">[K] the response's objective rewards.</param>
    /// <param name="weights">[K] one finite weight per objective (weights of unselected objectives are ignored).</param>
    /// <param name="objectives">the objectives S to combine; null = all K.</param>
    /// <exception cref="ArgumentException">empty or mismatched lengths, a NaN/infinite value, or a subset built for another K.</exception>
    public static double WeightedSum(ReadOnlySpan<double> rewards, ReadOnlySpan<double> weights, ObjectiveSubset? objectives = null)
    {
        CheckRewards(rewards, objectives);
        if (weights.Length != rewards.Length)
            throw new ArgumentException(
                $"weights has {weights.Length} values but rewards has {rewards.Length}: pass one weight per objective (index by objective, not by subset position).",
                nameof(weights));
        for (int i = 0; i < weights.Length; i++)
            if (!double.IsFinite(weights[i]))
                throw new ArgumentException($"weights[{i}] is {weights[i]}: weights must be finite numbers.", nameof(weights));

        double sum = 0.0;
        if (objectives is null)
            for (int i = 0; i < rewards.Length; i++) sum += weights[i] * rewards[i];
        else
            foreach (int i in objectives.Indices) sum += weights[i] * rewards[i];
        return sum;
    }

    static void CheckRewards(ReadOnlySpan<double> rewards, ObjectiveSubset? objectives)
    {
        RewardChecks.NotEmpty(rewards, nameof(rewards), "objective reward");
        RewardChecks.Finite(rewards, nameof(rewards));
        objectives?.CheckApplies(rewards.Length, nameof(rewards));
    }
}
