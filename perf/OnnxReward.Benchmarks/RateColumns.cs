using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace OnnxReward.Benchmarks;

/// <summary>
/// Work per operation for a benchmark case: tokens and FLOPs (null when the case does no counted work). A benchmark
/// class opts in by implementing this on an instance the column can build (parameterless) and reading the case's
/// method name and parameters.
/// </summary>
internal interface IWorkCounter
{
    (double Tokens, double Flops)? Work(string method, IReadOnlyDictionary<string, object> parameters);

    /// <summary>The method whose GFLOP/s is <paramref name="method"/>'s ceiling (the case with the same parameters), or
    /// null when it has none.</summary>
    string? CeilingOf(string method);
}

/// <summary>tokens/s, GFLOP/s and "÷ ceiling" columns computed from the Median of each case (llm.c's MFU, with the
/// kernel-only ceilings measured in the same run instead of a vendor peak).</summary>
internal sealed class RateColumn(string name, string legend, Func<Summary, BenchmarkCase, double?> value, string format) : IColumn
{
    public string Id => "OnnxReward." + name;
    public string ColumnName => name;
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 0;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => legend;
    public bool IsAvailable(Summary summary) => true;
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style) =>
        value(summary, benchmarkCase) is { } v ? v.ToString(format, System.Globalization.CultureInfo.InvariantCulture) : "-";

    public override string ToString() => ColumnName;

    private static IWorkCounter? Counter(BenchmarkCase c) =>
        Activator.CreateInstance(c.Descriptor.Type) as IWorkCounter;

    private static IReadOnlyDictionary<string, object> Params(BenchmarkCase c) =>
        c.Parameters.Items.ToDictionary(p => p.Name, p => p.Value);

    // The median, not the mean: with --job short's 3 iterations on a shared machine one stalled iteration moves the mean
    // by more than the differences measured (Error > Mean in some rows), and the median of 3 ignores it.
    private static double? Seconds(Summary s, BenchmarkCase c) => s[c]?.ResultStatistics?.Median / 1e9;

    private static double? Rate(Summary s, BenchmarkCase c, bool flops)
    {
        if (Counter(c)?.Work(c.Descriptor.WorkloadMethod.Name, Params(c)) is not { } work || Seconds(s, c) is not { } sec || sec <= 0)
            return null;
        return (flops ? work.Flops / 1e9 : work.Tokens) / sec;
    }

    public static readonly RateColumn TokensPerSecond = new("tokens/s", "tokens per second (B·T, padding included), from the median time",
        (s, c) => Rate(s, c, flops: false), "N0");

    public static readonly RateColumn GflopsPerSecond = new("GFLOP/s", "counted fp32-equivalent FLOPs per second (MidSizeModel.ModelFlops / KernelCeiling.FlopsFor), whatever the precision",
        (s, c) => Rate(s, c, flops: true), "N0");

    public static readonly RateColumn OfCeiling = new("of ceiling", "GFLOP/s ÷ the case's own kernel ceiling's GFLOP/s at the same parameters, same run",
        (s, c) =>
        {
            if (Counter(c)?.CeilingOf(c.Descriptor.WorkloadMethod.Name) is not { } ceilingMethod || Rate(s, c, flops: true) is not { } rate)
                return null;
            var ceiling = s.BenchmarksCases.FirstOrDefault(o => o.Descriptor.WorkloadMethod.Name == ceilingMethod
                && o.Descriptor.Type == c.Descriptor.Type && o.Parameters.DisplayInfo == c.Parameters.DisplayInfo);
            return ceiling is not null && Rate(s, ceiling, flops: true) is { } top ? rate / top : null;
        }, "P0");
}

/// <summary>Adds the three rate columns.</summary>
internal sealed class RateColumnsConfig : ManualConfig
{
    public RateColumnsConfig() => AddColumn(RateColumn.TokensPerSecond, RateColumn.GflopsPerSecond, RateColumn.OfCeiling);
}
