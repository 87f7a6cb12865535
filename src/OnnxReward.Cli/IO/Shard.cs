using System.Globalization;
using System.Text.RegularExpressions;

namespace OnnxReward.Cli.IO;

/// <summary>
/// <c>--shard i/N</c>: this process is shard <see cref="Index"/> (0-based) of <see cref="Count"/> over one input file, and
/// the shards' outputs concatenated in index order are byte for byte the output of one unsharded run.
/// </summary>
/// <remarks>
/// <para>The unit is the command's read chunk (<see cref="JsonLines.Read"/>: the next 512 non-blank lines for score and
/// embed), not the line: each chunk is batched on its own, and a row's score depends in its last bits on the batch it
/// ran in (rows and padded length change the kernels' rounding), so only whole chunks, batched exactly as in one
/// process, give byte-identical output. The shards take contiguous runs of chunks by bytes: shard i owns the chunks
/// whose first line starts in [⌊i·L/N⌋, ⌊(i+1)·L/N⌋), L the file's length. Those ranges partition the file in order, so
/// every chunk lands in exactly one shard and the shards' outputs, bad-line records (global line numbers) included,
/// concatenate to the unsharded output.</para>
/// <para>Why bytes and not "line k goes to shard ⌊k·N/lines⌋": the length comes from the file system, so no process
/// needs a counting pass over the whole file first, and bytes share out tokens (the work) more evenly than line counts
/// when lines differ in length. A shard still reads the lines before its range (without parsing them) to number its
/// lines as the whole file does. With fewer chunks than shards (fewer than N·512 lines), some shards are empty: they
/// write nothing and succeed.</para>
/// <para>Every shard must read the same bytes (a shared volume, not a stream), so stdin is refused; and the same model,
/// execution provider and --max-batch-tokens / --max-padding-waste, which decide the batches.</para>
/// </remarks>
internal readonly partial record struct Shard(int Index, int Count)
{
    /// <summary>Parses <c>i/N</c> strictly: two unsigned decimal integers, N ≥ 1, 0 ≤ i &lt; N.</summary>
    /// <exception cref="CliException">The value is not of that form or out of range (the message says how to fix it).</exception>
    public static Shard Parse(string value)
    {
        var m = Form().Match(value);
        var shown = value.Replace("\r", "\\r").Replace("\n", "\\n");     // the message stays one line
        if (!m.Success)
            throw new CliException($"--shard '{shown}' is not of the form i/N: this process's shard index i (0 to N-1) and the number " +
                                   "of shards N, e.g. --shard 0/4 … --shard 3/4.");
        if (!int.TryParse(m.Groups[1].ValueSpan, NumberStyles.None, CultureInfo.InvariantCulture, out var index)
            || !int.TryParse(m.Groups[2].ValueSpan, NumberStyles.None, CultureInfo.InvariantCulture, out var count))
            throw new CliException($"--shard '{shown}': i and N must be at most {int.MaxValue}.");
        if (count < 1)
            throw new CliException($"--shard '{shown}': the number of shards N must be at least 1.");
        if (index >= count)
            throw new CliException($"--shard '{shown}': the index i must be from 0 to {count - 1} (shards are numbered from 0, as a " +
                                   "Kubernetes Indexed Job's JOB_COMPLETION_INDEX is).");
        return new Shard(index, count);
    }

    /// <summary>Why a shard cannot read stdin (the message for --shard without --input).</summary>
    public static string NeedsFile(Shard shard) =>
        $"--shard {shard} needs --input FILE: a shard is a byte range of one file that every shard reads (e.g. on a shared " +
        "volume), and stdin cannot be split that way. Write the input to a file first.";

    /// <summary>The byte range [Start, End) of a <paramref name="length"/>-byte file whose lines (by first byte) are this shard's.</summary>
    public (long Start, long End) ByteRange(long length) => (Bound(length, Index), Bound(length, Index + 1));

    private long Bound(long length, int k) => (long)((Int128)length * k / Count);

    public override string ToString() => $"{Index}/{Count}";

    [GeneratedRegex(@"\A([0-9]+)/([0-9]+)\z", RegexOptions.CultureInvariant)]
    private static partial Regex Form();
}
