using System.Globalization;

namespace OnnxReward.Benchmarks;

/// <summary>
/// perf/README's chart from a FusedGraphBenchmarks CSV report (BenchmarkDotNet's csv exporter, with the rate columns):
/// model GFLOP/s of the fused graph and of TorchSharp eager against batch tokens B·T, and the same-run MatMul-only
/// ceiling as a line. Usage: <c>dotnet run -c Release --project perf/OnnxReward.Benchmarks -- chart &lt;report.csv&gt; &lt;out.png&gt;</c>.
/// </summary>
internal static class Chart
{
    public static int Run(string[] args)
    {
        if (args.Length != 3)
        {
            Console.Error.WriteLine("usage: chart <FusedGraphBenchmarks-report.csv> <out.png>");
            return 2;
        }
        if (!File.Exists(args[1]))
        {
            Console.Error.WriteLine($"{args[1]} does not exist: run the FusedGraph benchmarks with --exporters csv first (BenchmarkDotNet.Artifacts/results/).");
            return 2;
        }
        var lines = File.ReadAllLines(args[1]).Select(Split).ToList();
        var header = lines[0];
        int Column(string name) => Array.IndexOf(header, name) is var i and >= 0
            ? i
            : throw new InvalidDataException($"{args[1]} has no '{name}' column (columns: {string.Join(", ", header)}); is it a FusedGraphBenchmarks report?");
        int method = Column("Method"), shape = Column("Shape"), gflops = Column("GFLOP/s");

        var series = new Dictionary<string, List<(double Tokens, double Gflops)>>();
        foreach (var row in lines.Skip(1).Where(r => r.Length == header.Length))
        {
            var parts = row[shape].Split('x');
            if (parts.Length != 2 || !double.TryParse(row[gflops].Replace(",", ""), NumberStyles.Float, CultureInfo.InvariantCulture, out var g))
                continue;
            var tokens = double.Parse(parts[0], CultureInfo.InvariantCulture) * double.Parse(parts[1], CultureInfo.InvariantCulture);
            if (!series.TryGetValue(row[method], out var list))
                series[row[method]] = list = [];
            list.Add((tokens, g));
        }
        if (series.Count == 0)
            throw new InvalidDataException($"{args[1]} has no rows with a shape and a GFLOP/s value.");

        var plt = new ScottPlot.Plot();
        foreach (var (name, points) in series)
        {
            var p = points.OrderBy(x => x.Tokens).ToArray();
            var s = plt.Add.Scatter(p.Select(x => x.Tokens).ToArray(), p.Select(x => x.Gflops).ToArray());
            s.LegendText = name.Trim('\'');
            s.MarkerSize = 8;
            if (name.Contains("ceiling", StringComparison.OrdinalIgnoreCase))
                s.LinePattern = ScottPlot.LinePattern.Dashed;
        }
        plt.Axes.Bottom.Label.Text = "batch tokens B·T";
        plt.Axes.Left.Label.Text = "GFLOP/s (model FLOPs ÷ time)";
        plt.Axes.SetLimitsY(0, series.Values.SelectMany(v => v).Max(v => v.Gflops) * 1.15);
        var ticks = series.Values.SelectMany(v => v).Select(v => v.Tokens).Distinct().Order().ToArray();
        plt.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(ticks, ticks.Select(t => t.ToString("N0", CultureInfo.InvariantCulture)).ToArray());
        plt.Title("Mid-size reward model on the CPU, 2 threads: fused ONNX vs TorchSharp eager vs MatMul ceiling");
        plt.ShowLegend(ScottPlot.Alignment.LowerRight);
        plt.SavePng(args[2], 900, 500);
        Console.WriteLine($"wrote {args[2]} ({series.Count} series)");
        return 0;
    }

    /// <summary>One CSV line (BenchmarkDotNet quotes fields holding the separator).</summary>
    private static string[] Split(string line)
    {
        var fields = new List<string>();
        var sb = new System.Text.StringBuilder();
        var quoted = false;
        for (var i = 0; i < line.Length; i++)
        {
            var c = line[i];
            if (c == '"')
            {
                if (quoted && i + 1 < line.Length && line[i + 1] == '"') { sb.Append('"'); i++; }
                else quoted = !quoted;
            }
            else if (c == ',' && !quoted) { fields.Add(sb.ToString()); sb.Clear(); }
            else sb.Append(c);
        }
        fields.Add(sb.ToString());
        return fields.ToArray();
    }
}
