using System.Text;

namespace OnnxReward.Text.Tokenization;

/// <summary>
/// Unicode Normalization Form C (UAX #15: full canonical decomposition, canonical ordering, canonical composition),
/// managed and table-driven (<see cref="UnicodeVersion"/> data from <c>make_nfc_tables.py</c>). It exists because the
/// project runs with InvariantGlobalization, where <see cref="string.Normalize()"/> does nothing, while Qwen's
/// tokenizer.json normalizes with NFC: decomposed accents must become the precomposed characters its vocabulary holds,
/// whatever globalization mode the host application uses. Thread-safe.
/// </summary>
internal static partial class UnicodeNfc
{
    private const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7;
    private const int LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;

    private sealed class Tables
    {
        public readonly Dictionary<int, int> Ccc = new();
        public readonly Dictionary<int, (int First, int Second)> Decomposition = new();
        public readonly Dictionary<long, int> Composition = new();

        /// <summary>Every code point NFC can change or combine: decomposable, non-starter, or a composition's second
        /// element (Hangul is handled by range). Text without any is already NFC (most CJK, Cyrillic, emoji, …).</summary>
        public readonly HashSet<int> Affected = new();

        public Tables()
        {
            for (var i = 0; i < CombiningClasses.Length; i += 2) Ccc[CombiningClasses[i]] = CombiningClasses[i + 1];
            for (var i = 0; i < Decompositions.Length; i += 3) Decomposition[Decompositions[i]] = (Decompositions[i + 1], Decompositions[i + 2]);
            for (var i = 0; i < Compositions.Length; i += 3) Composition[(long)Compositions[i] << 21 | (uint)Compositions[i + 1]] = Compositions[i + 2];
            Affected.UnionWith(Ccc.Keys);
            Affected.UnionWith(Decomposition.Keys);
            for (var i = 1; i < Compositions.Length; i += 3) Affected.Add(Compositions[i]);
        }
    }

    private static readonly Lazy<Tables> Data = new(() => new Tables(), LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>True when <paramref name="text"/> is certainly NFC already: nothing at or above U+0300 (the first
    /// combining mark; no character below it changes under NFC or composes with what precedes it).</summary>
    public static bool IsTriviallyNormalized(ReadOnlySpan<char> text) => text.IndexOfAnyInRange('\u0300', '\uFFFF') < 0;

    /// <summary>The NFC form of <paramref name="text"/> (well-formed UTF-16; a lone surrogate is kept as it is).</summary>
    public static string Normalize(ReadOnlySpan<char> text)
    {
        if (IsTriviallyNormalized(text))
            return text.ToString();
        var t = Data.Value;
        if (!NeedsNormalizing(t, text))
            return text.ToString();
        var cps = new List<int>(text.Length);
        for (var i = 0; i < text.Length; i++)
        {
            int cp = text[i];
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
                cp = char.ConvertToUtf32(text[i], text[++i]);
            Decompose(t, cp, cps);
        }
        // Canonical ordering: a stable sort of every run of non-starters by combining class.
        for (var i = 1; i < cps.Count; i++)
        {
            var c = Ccc(t, cps[i]);
            if (c == 0) continue;
            var j = i;
            while (j > 0 && Ccc(t, cps[j - 1]) > c)
            {
                (cps[j - 1], cps[j]) = (cps[j], cps[j - 1]);
                j--;
            }
        }
        // Canonical composition: each character joins the last starter unless a character between them blocks it
        // (combining class 0, or a class ≥ its own).
        var result = new List<int>(cps.Count);
        int starter = -1, lastClass = 0;
        foreach (var cp in cps)
        {
            var c = Ccc(t, cp);
            if (starter >= 0 && (result.Count - 1 == starter || (lastClass != 0 && lastClass < c))
                && Compose(t, result[starter], cp) is { } composite)
            {
                result[starter] = composite;
                continue;
            }
            if (c == 0) starter = result.Count;
            lastClass = c;
            result.Add(cp);
        }
        var sb = new StringBuilder(result.Count);
        foreach (var cp in result)
            if (cp <= 0xFFFF) sb.Append((char)cp);
            else sb.Append(char.ConvertFromUtf32(cp));
        return sb.ToString();
    }

    private static bool NeedsNormalizing(Tables t, ReadOnlySpan<char> text)
    {
        for (var i = 0; i < text.Length; i++)
        {
            int cp = text[i];
            if (cp < 0x300) continue;
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
                cp = char.ConvertToUtf32(text[i], text[++i]);
            if (cp is >= LBase and < 0x1200 or >= SBase and < SBase + SCount || t.Affected.Contains(cp))
                return true;
        }
        return false;
    }

    private static int Ccc(Tables t, int cp) => cp < 0x300 ? 0 : t.Ccc.GetValueOrDefault(cp);

    private static void Decompose(Tables t, int cp, List<int> into)
    {
        if (cp is >= SBase and < SBase + SCount)
        {
            var s = cp - SBase;
            into.Add(LBase + s / NCount);
            into.Add(VBase + s % NCount / TCount);
            if (s % TCount != 0) into.Add(TBase + s % TCount);
            return;
        }
        if (cp >= 0xC0 && t.Decomposition.TryGetValue(cp, out var d))
        {
            Decompose(t, d.First, into);
            if (d.Second >= 0) Decompose(t, d.Second, into);
            return;
        }
        into.Add(cp);
    }

    private static int? Compose(Tables t, int first, int second)
    {
        if (first is >= LBase and < LBase + LCount && second is >= VBase and < VBase + VCount)
            return SBase + ((first - LBase) * VCount + (second - VBase)) * TCount;
        if (first is >= SBase and < SBase + SCount && (first - SBase) % TCount == 0 && second is > TBase and < TBase + TCount)
            return first + (second - TBase);
        return t.Composition.TryGetValue((long)first << 21 | (uint)second, out var c) ? c : null;
    }
}
