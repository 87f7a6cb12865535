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
import json, sys
sys.path.insert(0, "perf")
from accuracy_stats import max_abs_diff, orders_kept, pair_accuracy, spearman
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
pairs = "chosen" in rows[0]
golden = [None] * (2 * len(rows)) if pairs else [r.get("score") for r in rows]
ref = [json.loads(l)["score"] for l in open(sys.argv[2])]
var = [json.loads(l)["score"] for l in open(sys.argv[3])]
assert len(ref) == len(var) == len(golden), "every line must score"
dg = f"{max_abs_diff(var, golden):.2g}" if None not in golden else "-"
acc = f"{100 * pair_accuracy(var):.1f} %" if pairs else "-"
dacc = f"{100 * (pair_accuracy(var) - pair_accuracy(ref)):+.1f} pt" if pairs else "-"
print(f"| {sys.argv[4]} | {max_abs_diff(var, ref):.2g} | {dg} | {spearman(ref, var):.4f} | {100 * orders_kept(ref, var):.1f} % | {int(sys.argv[5]) / 1e6:.1f} | {acc} | {dacc} |")
PY
done
python3 -c 'import json,sys; v=[json.loads(l)["score"] for l in open(sys.argv[1])]; print(f"\n{len(v)} conversations, fp32 score range {min(v):.3g} .. {max(v):.3g}")' "$work/fp32.jsonl"
