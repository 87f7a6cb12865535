namespace OnnxReward.Transforms;

/// <summary>Input checks shared by the transforms and the selection rules.</summary>
internal static class RewardChecks
{
    internal static void Finite(double value, string paramName)
    {
        if (!double.IsFinite(value))
            throw new ArgumentException(
                $"{paramName} is {value}: rewards must be finite; check the model output (NaN usually means a broken or fp16-overflowed graph).",
                paramName);
    }

    internal static void Finite(ReadOnlySpan<double> values, string paramName)
    {
        for (int i = 0; i < values.Length; i++)
            if (!double.IsFinite(values[i]))
                throw new ArgumentException(
                    $"{paramName}[{i}] is {values[i]}: rewards must be finite; check the model output for that item " +
                    "(NaN usually means a broken or fp16-overflowed graph) or leave it out.", paramName);
    }

    internal static void NotEmpty(ReadOnlySpan<double> values, string paramName, string what)
    {
        if (values.IsEmpty)
            throw new ArgumentException($"{paramName} is empty: pass at least one {what}.", paramName);
    }
}
