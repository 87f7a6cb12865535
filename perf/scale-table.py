#!/usr/bin/env python3
"""perf/scale-8b.sh's results.jsonl as perf/README.md's markdown table (one row per variant, in run order).

    python3 perf/scale-table.py WORK/results.jsonl     (WORK: the scale run's work folder, default $TMPDIR/onnxreward-scale-8b)
"""
import json
import sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
variants = list(dict.fromkeys(r["variant"] for r in rows if "variant" in r))


def last(step, variant, **match):
    found = [r for r in rows if r.get("step") == step and r.get("variant") == variant
             and all(r.get(k) == v for k, v in match.items())]
    return found[-1] if found else None


def score(variant, tokens, n):
    r = last("score", variant, tokens=tokens, rows=n) or last("score", variant, tokens=tokens)
    if r is None:
        return "—"
    if "refused" in r:
        return "refused at load: " + r["refused"].split(":")[0]
    if "failed" in r:
        return "failed: " + r["failed"]
    return f"{r['tokens_per_s']}, {r['peak_rss_gb']} (est. {r['estimate_gb']})"


print("| variant | export s | export peak RSS GB | weights GB | load s | 512 tokens: tokens/s, peak RSS GB | 2,048 tokens: "
      "tokens/s, peak RSS GB | 8 × 256: tokens/s, peak RSS GB | `onnxreward score` 512: peak RSS GB | kernel ceiling "
      "GFLOP/s | 512 tokens: GFLOP/s, fraction of ceiling |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for v in variants:
    e = last("export", v) or {}
    first = last("score", v, tokens=512)
    load = first.get("load_s", "—") if first else "—"
    cli = last("cli-score-512", v)
    k = last("kernel-ceiling", v)
    fraction = f"{k['model_gflops']}, **{k['fraction_of_ceiling']}**" if k and "fraction_of_ceiling" in k else "—"
    print(f"| {v} | {e.get('export_s', '—')} | {e.get('export_peak_rss_gb', '—')} | {e.get('data_gb', '—')} | {load} | "
          f"{score(v, 512, 1)} | {score(v, 2048, 1)} | {score(v, 256, 8)} | {cli['peak_rss_gb'] if cli else '—'} | "
          f"{k['ceiling_gflops'] if k else '—'} | {fraction} |")
