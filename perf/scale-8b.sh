#!/usr/bin/env bash
# The 8B-shaped scale run (perf/README.md, "ArmoRM-Llama3-8B at its real shape"). Not part of CI: it writes a 15 GB
# checkpoint and up to 30 GB of model files, and takes about half an hour on 2 cores.
#
#   perf/scale-8b.sh [work folder] [variant ...]
#
# work folder: default $TMPDIR/onnxreward-scale-8b (the checkpoint is generated there once and kept; each model directory
# is deleted after its measurements). variant: dtype[:block size[:accuracy level]]; default
#   int8-block:16:0 int8-block int8 int4 int4:64 int4:128 fp32
# For each variant: `onnxreward export` under GNU time (export seconds, peak RSS), then fresh processes of
# `OnnxReward.Benchmarks scale-score` (load seconds, seconds per conversation, tokens/s, peak RSS, the memory check's
# estimate) for one conversation of 512 tokens, one of 2,048, and eight of 256 (their scores compare the variants), and
# for int4 the plain CLI `onnxreward score` on a 512-token conversation under GNU time; then the variant's kernel ceiling
# at the 8B GEMM shapes (`OnnxReward.Benchmarks kernel-ceiling`, N = 512, one layer of the variant's Linear nodes only)
# and the 512-token conversation's throughput as a fraction of it (fp32-equivalent GFLOP/s of the scoring over the
# ceiling's). fp32 is expected to be refused by the memory check (it needs ~30 GB); its refusal is recorded. Every
# measurement is one JSON line in results.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-$(dirname "$(mktemp -u)")/onnxreward-scale-8b}
shift || true
variants=("$@")
[ ${#variants[@]} -eq 0 ] && variants=(int8-block:16:0 int8-block int8 int4 int4:64 int4:128 fp32)

dotnet build src/OnnxReward.Cli -c Release -v q -nologo >/dev/null
dotnet build perf/OnnxReward.Benchmarks -c Release -v q -nologo >/dev/null
cli=$PWD/src/OnnxReward.Cli/bin/Release/net10.0/linux-x64/onnxreward
bench=$PWD/perf/OnnxReward.Benchmarks/bin/Release/net10.0/linux-x64/OnnxReward.Benchmarks
mkdir -p "$work"
results=$work/results.jsonl
gb() { awk "BEGIN { printf \"%.2f\", $1 / 1048576 }"; }        # KiB → GiB

if [ ! -f "$work/checkpoint/config.json" ]; then
  rm -rf "$work/checkpoint"
  /usr/bin/time -f "%e %M" -o "$work/time.txt" "$bench" generate-8b "$work/checkpoint" | tail -1
  read -r s kb < "$work/time.txt"
  echo "{\"step\":\"generate\",\"seconds\":$s,\"peak_rss_gb\":$(gb "$kb"),\"checkpoint_gb\":$(du -sb "$work/checkpoint" | awk '{printf "%.2f", $1/1e9}')}" | tee -a "$results"
fi

# A 512-token conversation as the CLI reads it ({"input_ids": [...]}): chat-shaped (header, gating pattern, eot).
python3 - "$work/conversation-512.jsonl" <<'EOF'
import json, random, sys
random.seed(11)
ids = [random.randrange(1000, 100000) for _ in range(512)]
ids[0:5] = [128000, 128006, 882, 128007, 271]
ids[256:261] = [128009, 128006, 78191, 128007, 271]
ids[-1] = 128009
open(sys.argv[1], "w").write(json.dumps({"input_ids": ids}) + "\n")
EOF

for spec in "${variants[@]}"; do
  IFS=: read -r dtype block level <<< "$spec"
  block=${block:-32}
  name=$dtype
  # --no-validate: measure the streaming export itself; the load-and-score check it skips is what the score steps
  # below measure (with it, export's peak is the loaded model's: 4.4 GB for int4).
  args=(export "$work/checkpoint" --out "$work/model-$spec" --dtype "$dtype" --no-validate)
  if [[ $dtype == int4 || $dtype == int8-block ]]; then
    args+=(--block-size "$block")
    [ -n "${level:-}" ] && args+=(--accuracy-level "$level")
    name="$dtype:$block${level:+:$level}"
  fi
  out=$work/model-$spec
  rm -rf "$out"
  echo "== $name: export"
  /usr/bin/time -f "%e %M" -o "$work/time.txt" "$cli" "${args[@]}" > "$work/export-$spec.log" 2>&1 || { tail -5 "$work/export-$spec.log"; exit 1; }
  read -r s kb < "$work/time.txt"
  echo "{\"step\":\"export\",\"variant\":\"$name\",\"export_s\":$s,\"export_peak_rss_gb\":$(gb "$kb"),\"data_gb\":$(stat -c %s "$out/model.onnx.data" | awk '{printf "%.2f", $1/2^30}')}" | tee -a "$results"
  for run in "512 1" "2048 1" "256 8"; do
    read -r tokens rows <<< "$run"
    echo "== $name: score $rows x $tokens tokens"
    code=0
    line=$("$bench" scale-score "$out" "$tokens" "$rows" 2> "$work/score.err") || code=$?
    if [[ $line != \{* ]]; then   # died without its JSON line: record how, as JSON, and go on
      line=$(python3 -c 'import json, sys; print(json.dumps({"tokens": int(sys.argv[1]), "rows": int(sys.argv[2]), "failed": f"exit {sys.argv[3]}: " + " | ".join(open(sys.argv[4]).read().strip().splitlines()[-3:])}))' "$tokens" "$rows" "$code" "$work/score.err")
    fi
    echo "{\"step\":\"score\",\"variant\":\"$name\",${line#\{}" | tee -a "$results"
    [[ $line == *refused* ]] && break
  done
  if [[ $dtype == int4 ]]; then
    echo "== $name: onnxreward score (CLI defaults) on 512 tokens"
    if /usr/bin/time -f "%e %M" -o "$work/time.txt" "$cli" score -m "$out" --ep cpu -i "$work/conversation-512.jsonl" > "$work/cli-score.jsonl" 2>/dev/null; then
      read -r s kb < "$work/time.txt"
      echo "{\"step\":\"cli-score-512\",\"variant\":\"$name\",\"wall_s\":$s,\"peak_rss_gb\":$(gb "$kb"),\"score\":$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["score"])' "$work/cli-score.jsonl")}" | tee -a "$results"
    fi
  fi
  rm -rf "$out"
  echo "== $name: kernel ceiling at the 8B shapes, N = 512"
  ceiling=$("$bench" kernel-ceiling "$spec" 512 5 2> "$work/ceiling.err") || { tail -3 "$work/ceiling.err"; continue; }
  python3 - "$results" "$name" "$ceiling" <<'EOF'
import json, sys
results, name, ceiling = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
ceiling["precision"] = ceiling.pop("variant")
line = {"step": "kernel-ceiling", "variant": name, **ceiling}
scored = [r for r in map(json.loads, open(results)) if r.get("step") == "score" and r.get("variant") == name and r.get("tokens") == 512 and "score_s" in r]
if scored:  # the last 512-token score of this variant (this run's)
    seconds = scored[-1]["score_s"][0]
    line["model_gflops"] = round(ceiling["model_gflop"] / seconds, 1)
    line["fraction_of_ceiling"] = round(ceiling["model_gflop"] / seconds / ceiling["ceiling_gflops"], 3)
print(json.dumps(line))
open(results, "a").write(json.dumps(line) + "\n")
EOF
done
echo "results: $results"
python3 perf/scale-table.py "$results"
