"""The statistics of perf/accuracy.sh and perf/accuracy-8b.sh (one copy): how far a variant's scores are from a
baseline's (the fp32 graph, or the layer-streaming fp32 reference) and how much of the baseline's ranking they keep.
Plain Python (no numpy on these machines' system Python)."""
import itertools
import random


def ranks(v):
    """Average ranks (ties share the mean of their positions), as Spearman's rho needs."""
    order = sorted(range(len(v)), key=lambda i: v[i])
    r = [0.0] * len(v)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2
        i = j + 1
    return r


def pearson(a, b):
    n = len(a)
    ma, mb = sum(a) / n, sum(b) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    return cov / (sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b)) ** 0.5


def spearman(ref, var):
    return pearson(ranks(ref), ranks(var))


def orders_kept(ref, var):
    """Share of the baseline's strict pairwise orders the variant keeps: every pair up to 2,000 rows, above that a
    seeded sample of 2M pairs instead of all n²/2."""
    n = len(ref)
    if n <= 2000:
        pairs = itertools.combinations(range(n), 2)
    else:
        rnd = random.Random(0)
        pairs = (tuple(rnd.sample(range(n), 2)) for _ in range(2_000_000))
    ps = [(i, j) for i, j in pairs if ref[i] != ref[j]]
    return sum((ref[i] < ref[j]) == (var[i] < var[j]) for i, j in ps) / len(ps)


def max_abs_diff(a, b):
    return max(abs(x - y) for x, y in zip(a, b))


def pair_accuracy(s):
    """Scores laid out chosen, rejected, chosen, …: the share of pairs whose chosen scores strictly higher (ties are wrong)."""
    return sum(s[2 * i] > s[2 * i + 1] for i in range(len(s) // 2)) / (len(s) // 2)
