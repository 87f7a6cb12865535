namespace OnnxReward.Transforms;

/// <summary>
/// The LSC (log-sigmoid-centered) reward transform of Wang et al. 2024 (arXiv 2402.00742; docs/armorm.md §4):
/// <c>u(x, y) = log σ(r(x, y) − r_ref(x))</c> = log P(y is better than the reference response | BT model). Bounded above by 0,
/// saturating for r ≫ r_ref (less reward hacking), ≈ r − r_ref for r ≪ r_ref. Get r_ref from <see cref="ReferenceReward"/>
/// or pass it directly; combine objectives with <see cref="RewardAggregation.LscAnd"/>.
/// </summary>
public static class LogSigmoidCentered
{
    /// <summary><c>log σ(reward − referenceReward)</c>, computed with the stable <see cref="LogSigmoid"/>.</summary>
    /// <exception cref="ArgumentException">either value is NaN or infinite.</exception>
    public static double Transform(double reward, double referenceReward)
    {
        RewardChecks.Finite(reward, nameof(reward));
        RewardChecks.Finite(referenceReward, nameof(referenceReward));
        return LogSigmoid.Evaluate(reward - referenceReward);
    }
}
