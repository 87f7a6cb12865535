#!/usr/bin/env bash
# Accuracy of the approximate variants (perf/README.md, "Accuracy of the quantized variants"). Not part of CI.
# This is accuracy.sh with the layer-streaming fp32 reference instead of the fp32 graph as the baseline (for models
# whose fp32 graph cannot load, e.g. the 8B shape). Both take their statistics from perf/accuracy_stats.py.
#
#   perf/accuracy-8b.sh CHECKPOINT CONVERSATIONS.jsonl [variant ...]
#
# 1. Reference: `OnnxReward.Benchmarks reference-score` encodes every line of CONVERSATIONS.jsonl ({"messages": …} or
#    any `onnxreward score` input; a "score" field, as in armorm-tiny's golden.jsonl, is taken as an independent golden)
#    with the checkpoint's tokenizer and chat template, and scores it with the layer-streaming TorchSharp fp32
#    reference (one decoder layer resident at a time, so this works where the fp32 graph cannot load, e.g. the 8B
#    shape in 24 GB).
# 2. Each variant (dtype[:block size]; default: fp32 and every quantized dtype at every block size) is exported with
#    `onnxreward export --no-validate` (the export streams one tensor at a time; its load-and-score check would repeat
#    step 3) and scored on exactly the reference's token ids by `OnnxReward.Benchmarks scale-score --inputs` (the
#    library, CPU EP, one conversation at a time): one process per variant, run one after another.
# Prints one markdown row per variant: max |Δscore| vs the reference and vs the golden, Spearman of scores vs the
# reference, the share of the reference's pairwise orders the variant keeps, the weights file size, tokens/s and the
# scoring process's peak RSS. The fp32 row is the ONNX graph against the reference: their agreement validates both.
# Model directories live in a temp folder (TMPDIR) that is removed at the end; each is deleted after its variant.
set -euo pipefail
cd "$(dirname "$0")/.."
ckpt=$1; conv=$2; shift 2
variants=("$@")
[ ${#variants[@]} -eq 0 ] && variants=(fp32 fp16 int8 int8-block:16 int8-block:32 int8-block:64 int8-block:128 int4:16 int4:32 int4:64 int4:128)
dotnet build src/OnnxReward.Cli -c Release -v q -nologo >/dev/null
dotnet build perf/OnnxReward.Benchmarks -c Release -v q -nologo >/dev/null
cli=$PWD/src/OnnxReward.Cli/bin/Release/net10.0/linux-x64/onnxreward
bench=$PWD/perf/OnnxReward.Benchmarks/bin/Release/net10.0/linux-x64/OnnxReward.Benchmarks
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The input form only (golden.jsonl also carries its input_ids and outputs): messages where present.
python3 -c 'import json,sys
for l in open(sys.argv[1]):
    if l.strip():
        o = json.loads(l)
        print(json.dumps({"messages": o["messages"]} if "messages" in o else {k: v for k, v in o.items() if k != "score"}))' "$conv" > "$work/in.jsonl"
echo "== reference: layer-streaming TorchSharp fp32" >&2
"$bench" reference-score "$ckpt" "$work/in.jsonl" "$work/reference.jsonl" 2> "$work/reference.log" \
  || { tail -5 "$work/reference.log" >&2; exit 1; }
grep '^reference: ' "$work/reference.log" | tail -3 >&2
grep '^{' "$work/reference.log" | tail -1 > "$work/reference.summary"
cat "$work/reference.summary" >&2

score() {  # variant spec -> $work/<spec>.json (scale-score's line: scores, tokens/s, peak RSS), $work/<spec>.bytes
  local spec=$1 dtype block args
  IFS=: read -r dtype block <<< "$spec"
  args=(export "$ckpt" --out "$work/m" --dtype "$dtype" --force --no-validate)
  [ -n "${block:-}" ] && args+=(--block-size "$block")
  rm -rf "$work/m"
  echo "== $spec: export, score" >&2
  "$cli" "${args[@]}" > "$work/export.log" 2>&1 || { echo "| $spec | export failed: $(tail -1 "$work/export.log") |"; return 1; }
  stat -c %s "$work/m/model.onnx.data" > "$work/$spec.bytes"
  "$bench" scale-score "$work/m" --inputs "$work/reference.jsonl" > "$work/$spec.json" 2> "$work/score.log" || true
  rm -rf "$work/m"
  grep -q '"scores"' "$work/$spec.json" 2>/dev/null \
    || { echo "| $spec | score failed: $(cat "$work/$spec.json" 2>/dev/null | head -c 300; tail -1 "$work/score.log") |"; return 1; }
}

echo "| variant | max abs Δscore vs reference | max abs Δscore vs golden | Spearman vs reference | pairwise orders of reference kept | weights MB | tokens/s | peak RSS GB |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for spec in "${variants[@]}"; do
  score "$spec" || continue
  python3 - "$conv" "$work/reference.jsonl" "$work/$spec.json" "$spec" "$(cat "$work/$spec.bytes")" <<'PY'
import json, sys
sys.path.insert(0, "perf")
from accuracy_stats import max_abs_diff, orders_kept, spearman
golden = [json.loads(l).get("score") for l in open(sys.argv[1]) if l.strip()]
ref = [json.loads(l)["score"] for l in open(sys.argv[2]) if l.strip()]
run = json.load(open(sys.argv[3]))
var = run["scores"]
assert len(ref) == len(var) == len(golden), "every line must score"
dg = max_abs_diff(var, golden) if None not in golden else float("nan")
print(f"| {sys.argv[4]} | {max_abs_diff(var, ref):.2g} | {dg:.2g} | {spearman(ref, var):.4f} | "
      f"{100 * orders_kept(ref, var):.1f} % | {int(sys.argv[5]) / 1e6:.1f} | {run['tokens_per_s']} | {run['peak_rss_gb']} |")
PY
done
python3 - "$conv" "$work/reference.jsonl" "$work/reference.summary" <<'PY'
import json, sys
golden = [json.loads(l).get("score") for l in open(sys.argv[1]) if l.strip()]
ref = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
s = json.load(open(sys.argv[3]))
lengths = sorted(r["tokens"] for r in ref)
scores = [r["score"] for r in ref]
print(f"\n{len(ref)} conversations, {sum(lengths)} tokens ({lengths[0]} .. {lengths[-1]}, median {lengths[len(lengths) // 2]}); "
      f"reference score range {min(scores):.3g} .. {max(scores):.3g}; reference: {s['layers']} layers in {s['seconds']} s "
      f"({s['tokens_per_s']} tokens/s), peak RSS {s['peak_rss_gb']} GB")
if None not in golden:
    print(f"reference vs golden: max abs Δscore {max(abs(r - g) for r, g in zip(scores, golden)):.2g}")
PY
