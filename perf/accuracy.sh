#!/usr/bin/env bash
# Accuracy of the approximate variants (perf/README.md, "Accuracy of the quantized variants"). Not part of CI.
#
#   perf/accuracy.sh CHECKPOINT CONVERSATIONS.jsonl [variant ...]
#
# Exports CHECKPOINT to fp32 and to each variant (dtype[:block size], default: every quantized dtype at every block
# size), scores every line of CONVERSATIONS.jsonl ({"messages": …}; a "score" field, as in armorm-tiny's golden.jsonl,
# is taken as an independent golden) with `onnxreward score`, and prints one markdown row per variant: max |Δscore| vs
# fp32 and vs the golden, Spearman of scores vs fp32, the share of all pairwise orders of fp32 that the variant keeps,
# and the weights file size. Model directories live in a temp folder that is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
ckpt=$1; conv=$2; shift 2
variants=("$@")
[ ${#variants[@]} -eq 0 ] && variants=(fp16 int8 int8-block:16 int8-block:32 int8-block:64 int8-block:128 int4:16 int4:32 int4:64 int4:128)
dotnet build src/OnnxReward.Cli -c Release -v q -nologo >/dev/null
cli=$PWD/src/OnnxReward.Cli/bin/Release/net10.0/linux-x64/onnxreward
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -c 'import json,sys
for l in open(sys.argv[1]):
    if l.strip(): print(json.dumps({"messages": json.loads(l)["messages"]}))' "$conv" > "$work/in.jsonl"

score() {  # variant spec -> $work/<spec>.scores (one score per line), $work/<spec>.bytes
  local spec=$1 dtype block args
  IFS=: read -r dtype block <<< "$spec"
  args=(export "$ckpt" --out "$work/m" --dtype "$dtype" --force)
  [ -n "${block:-}" ] && args+=(--block-size "$block")
  rm -rf "$work/m"
  "$cli" "${args[@]}" > "$work/export.log" 2>&1 || { echo "| $spec | export failed: $(tail -1 "$work/export.log") |"; return 1; }
  stat -c %s "$work/m/model.onnx.data" > "$work/$spec.bytes"
  "$cli" score -m "$work/m" --ep cpu -i "$work/in.jsonl" > "$work/$spec.jsonl" 2> "$work/score.log" \
    || { echo "| $spec | score failed: $(tail -1 "$work/score.log") |"; return 1; }
}

score fp32
echo "| variant | max abs Δscore vs fp32 | max abs Δscore vs golden | Spearman vs fp32 | pairwise orders of fp32 kept | weights MB |"
echo "|---|---:|---:|---:|---:|---:|"
for spec in fp32 "${variants[@]}"; do
  [ "$spec" = fp32 ] || score "$spec" || continue
  python3 - "$conv" "$work/fp32.jsonl" "$work/$spec.jsonl" "$spec" "$(cat "$work/$spec.bytes")" <<'PY'
import json, sys, itertools
golden = [json.loads(l).get("score") for l in open(sys.argv[1]) if l.strip()]
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
pairs = [(i, j) for i, j in itertools.combinations(range(len(ref)), 2) if ref[i] != ref[j]]
kept = sum((ref[i] < ref[j]) == (var[i] < var[j]) for i, j in pairs) / len(pairs)
dg = max(abs(v - g) for v, g in zip(var, golden)) if None not in golden else float("nan")
print(f"| {sys.argv[4]} | {max(abs(v - r) for v, r in zip(var, ref)):.2g} | {dg:.2g} | {pearson(ranks(ref), ranks(var)):.4f} | {100 * kept:.1f} % | {int(sys.argv[5]) / 1e6:.1f} |")
PY
done
python3 -c 'import json,sys; v=[json.loads(l)["score"] for l in open(sys.argv[1])]; print(f"\n{len(v)} conversations, fp32 score range {min(v):.3g} .. {max(v):.3g}")' "$work/fp32.jsonl"
