#!/usr/bin/env bash
# Runs every benchmark once in BenchmarkDotNet's dry mode (one invocation per case, in-process, no warm-up), so CI
# notices a benchmark that no longer builds or throws (each GlobalSetup also checks its paths agree before timing).
# No timings are asserted. Exit status: non-zero when the run fails or BenchmarkDotNet reports benchmarks with issues.
# Usage: perf/quick.sh [extra BenchmarkDotNet arguments, e.g. --filter '*IoBinding*']
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
filter=("--filter" "*")
for a in "$@"; do [ "$a" = "--filter" ] && filter=(); done
if ! dotnet run -c Release --project perf/OnnxReward.Benchmarks -- "${filter[@]}" --job dry --inProcess "$@" >"$log" 2>&1; then
  echo "perf/quick.sh: benchmark dry run failed:"; tail -60 "$log"; exit 1
fi
if grep -q -E "Benchmarks with issues|ExecuteError|Exception" "$log"; then
  echo "perf/quick.sh: benchmark dry run reported problems:"; grep -n -E -A12 "Benchmarks with issues|ExecuteError|Exception" "$log" | head -80; exit 1
fi
cases=$(grep -c -E "^// Benchmark: " "$log" || true)
echo "perf/quick.sh: $cases benchmark cases ran once in dry mode, no errors"
