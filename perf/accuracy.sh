#!/usr/bin/env bash
# Accuracy of the approximate variants (perf/README.md, "Accuracy of the quantized variants"). Not part of CI.
#
#   perf/accuracy.sh SOURCE INPUT.jsonl [variant ...]
#
# SOURCE is a Hugging Face checkpoint, or a model directory trained by `onnxreward train run` (e.g. models/default,
# which ships without its checkpoint): its checkpoint is then recovered from the fp32 graph first (the benchmarks'
# `default-checkpoint`, which checks that it re-exports to the same weights). Exports the checkpoint to fp32 and to
# each variant (dtype[:block size], default: every quantized dtype at every block size) and scores INPUT with
# `onnxreward score` (CPU EP, over-long conversations drop their oldest turns as the training evaluation does).
# INPUT is either conversations ({"messages": …}; a "score" field, as in armorm-tiny's golden.jsonl, is taken as an
# independent golden) or preference pairs ({"prompt", "chosen", "rejected"}, e.g. `onnxreward train split --part
# test`), each scored as its two prompt + response conversations. One markdown row per variant: max |Δscore| vs fp32
# (and vs the golden), Spearman of scores vs fp32, the share of all pairwise orders of fp32 that the variant keeps, the
# weights file size, and for pairs the accuracy (chosen scores strictly higher; ties count as wrong) and its change
# from fp32. Model directories live in a temp folder that is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$1; input=$2; shift 2
variants=("$@")
[ ${#variants[@]} -eq 0 ] && variants=(fp16 int8 int8-block:16 int8-block:32 int8-block:64 int8-block:128 int4:16 int4:32 int4:64 int4:128)
dotnet build src/OnnxReward.Cli -c Release -v q -nologo >/dev/null
cli=$PWD/src/OnnxReward.Cli/bin/Release/net10.0/linux-x64/onnxreward
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ckpt=$src
if [ -f "$src/reward_model.json" ] && [ ! -f "$src/config.json" ]; then
  dotnet build perf/OnnxReward.Benchmarks -c Release -v q -nologo >/dev/null
  perf/OnnxReward.Benchmarks/bin/Release/net10.0/linux-x64/OnnxReward.Benchmarks default-checkpoint "$src" "$work/checkpoint" >&2
  ckpt=$work/checkpoint
fi
python3 -c 'import json,sys
for l in open(sys.argv[1]):
    if not l.strip(): continue
    o = json.loads(l)
    if "chosen" in o:
        for r in (o["chosen"], o["rejected"]): print(json.dumps({"prompt": o["prompt"], "response": r}))
    else: print(json.dumps({"messages": o["messages"]}))' "$input" > "$work/in.jsonl"

score() {  # variant spec -> $work/<spec>.jsonl (one score per line), $work/<spec>.bytes
  local spec=$1 dtype block args
  IFS=: read -r dtype block <<< "$spec"
  args=(export "$ckpt" --out "$work/m" --dtype "$dtype" --force)
  [ -n "${block:-}" ] && args+=(--block-size "$block")
  rm -rf "$work/m"
  "$cli" "${args[@]}" > "$work/export.log" 2>&1 || { echo "| $spec | export failed: $(tail -1 "$work/export.log") |"; return 1; }
  stat -c %s "$work/m/model.onnx.data" > "$work/$spec.bytes"
  "$cli" score -m "$work/m" --ep cpu --truncation drop-oldest-turns -i "$work/in.jsonl" > "$work/$spec.jsonl" 2> "$work/score.log" \
    || { echo "| $spec | score failed: $(tail -1 "$work/score.log") |"; return 1; }
}

score fp32
echo "| variant | max abs Δscore vs fp32 | max abs Δscore vs golden | Spearman vs fp32 | pairwise orders of fp32 kept | weights MB | pair accuracy | Δ accuracy vs fp32 |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for spec in fp32 "${variants[@]}"; do
  [ "$spec" = fp32 ] || score "$spec" || continue
  python3 - "$input" "$work/fp32.jsonl" "$work/$spec.jsonl" "$spec" "$(cat "$work/$spec.bytes")" <<'PY'
import json, sys, itertools
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
pairs = "chosen" in rows[0]
golden = [None] * (2 * len(rows)) if pairs else [r.get("score") for r in rows]
ref = [json.loads(l)["score"] for l in open(sys.argv[2])]
var = [json.loads(l)["score"] for l in open(sys.argv[3])]
assert len(ref) == len(var) == len(golden), "every line must score"
def ranks(v):
    order = sorted(range(len(v)), key=lambda i: v[i]); r = [0.0] * len(v); i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]: j += 1
        for k in range(i, j + 1): r[order[k]] = (i + j) / 2
        i = j + 1
    return r
def pearson(a, b):
    n = len(a); ma = sum(a) / n; mb = sum(b) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    return cov / (sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b)) ** 0.5
def accuracy(s): return sum(s[2 * i] > s[2 * i + 1] for i in range(len(s) // 2)) / (len(s) // 2)
n = len(ref)
if n <= 2000:
    ps = [(i, j) for i, j in itertools.combinations(range(n), 2) if ref[i] != ref[j]]
    kept = sum((ref[i] < ref[j]) == (var[i] < var[j]) for i, j in ps) / len(ps)
else:  # over 2,000 rows: a seeded sample of 2M pairs instead of all n²/2
    import random; rnd = random.Random(0); ps = [tuple(rnd.sample(range(n), 2)) for _ in range(2_000_000)]
    ps = [(i, j) for i, j in ps if ref[i] != ref[j]]; kept = sum((ref[i] < ref[j]) == (var[i] < var[j]) for i, j in ps) / len(ps)
dg = f"{max(abs(v - g) for v, g in zip(var, golden)):.2g}" if None not in golden else "-"
acc = f"{100 * accuracy(var):.1f} %" if pairs else "-"
dacc = f"{100 * (accuracy(var) - accuracy(ref)):+.1f} pt" if pairs else "-"
print(f"| {sys.argv[4]} | {max(abs(v - r) for v, r in zip(var, ref)):.2g} | {dg} | {pearson(ranks(ref), ranks(var)):.4f} | {100 * kept:.1f} % | {int(sys.argv[5]) / 1e6:.1f} | {acc} | {dacc} |")
PY
done
python3 -c 'import json,sys; v=[json.loads(l)["score"] for l in open(sys.argv[1])]; print(f"\n{len(v)} conversations, fp32 score range {min(v):.3g} .. {max(v):.3g}")' "$work/fp32.jsonl"
