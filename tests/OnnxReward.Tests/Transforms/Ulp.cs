namespace OnnxReward.Tests.Transforms;

/// <summary>Distance in units in the last place between two doubles (0 for +0 vs −0; huge across signs).</summary>
static class Ulp
{
    public static long Distance(double a, double b)
    {
        long ia = BitConverter.DoubleToInt64Bits(a), ib = BitConverter.DoubleToInt64Bits(b);
        if (ia < 0) ia = long.MinValue - ia;          // map the sign-magnitude ordering onto a monotone integer line
        if (ib < 0) ib = long.MinValue - ib;
        return Math.Abs(ia - ib);
    }
}
