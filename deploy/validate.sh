#!/usr/bin/env bash
# Validates deploy/ without a cluster or a Docker engine: every Kubernetes manifest in deploy/k8s against the Kubernetes
# OpenAPI schemas (and unknown fields, and cross-object consistency), and deploy/Dockerfile with its .dockerignore
# (validate.mjs says what is checked). The pinned validators (package-lock.json) are installed into deploy/node_modules
# (git-ignored) on first use; the npm registry must be reachable then.
#   deploy/validate.sh              validate this checkout's deploy/ (exit 1 with one line per problem)
#   deploy/validate.sh DIR          validate another deploy folder (DIR/k8s, DIR/Dockerfile, DIR/../.dockerignore)
#   deploy/validate.sh --self-test  break a copy in several ways and check that each break is reported
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -f "$here/node_modules/.package-lock.json" ] || [ "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]; then
  # --loglevel=error: kubernetes-models declares node >= 22; it runs on node 20 too (npm would warn EBADENGINE).
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi

if [ "${1:-}" != "--self-test" ]; then
  exec node "$here/validate.mjs" "$@"
fi

# --self-test: each case edits a fresh copy (the build context is linked, not copied) and must fail with its message.
node "$here/validate.mjs" "$here"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
repo=$(cd "$here/.." && pwd)
failed=0
check() {   # check NAME EXPECTED-MESSAGE EDIT-COMMAND (run inside the copy's root)
  local name=$1 expected=$2 edit=$3 copy="$work/$RANDOM$RANDOM"
  mkdir -p "$copy/deploy"
  cp -r "$here/k8s" "$here/Dockerfile" "$copy/deploy/"
  cp "$repo/.dockerignore" "$copy/"
  for f in global.json Directory.Build.props Directory.Build.targets Directory.Packages.props src export models; do ln -s "$repo/$f" "$copy/$f"; done
  (cd "$copy" && eval "$edit")
  local out rc=0
  out=$(node "$here/validate.mjs" "$copy/deploy" 2>&1) || rc=$?
  if [ "$rc" -ne 0 ] && grep -qF -- "$expected" <<<"$out"; then
    echo "caught  $name: $(grep -F -- "$expected" <<<"$out" | head -1)"
  else
    echo "MISSED  $name (exit $rc, expected \"$expected\"):"; echo "$out" | sed 's/^/    /'; failed=1
  fi
}
check "port as a string"        "containerPort must be integer"   "sed -i 's/containerPort: 8000/containerPort: \"8000\"/' deploy/k8s/server.yaml"
check "typo in a field name"    "'readinesProbe' does not exist"  "sed -i 's/readinessProbe:/readinesProbe:/' deploy/k8s/server.yaml"
check "bad enum value"          "must be equal to one of"         "sed -i 's/completionMode: Indexed/completionMode: Indexd/' deploy/k8s/score-job.yaml"
check "YAML syntax"             "YAML:"                           "sed -i 's/^  replicas: 2/  replicas: [2/' deploy/k8s/server.yaml"
check "unknown kind"            "unknown apiVersion/kind"         "sed -i 's/^kind: Service$/kind: Servicе/' deploy/k8s/server.yaml"
check "shards != completions"   "N = 4 but completions = 3"       "sed -i 's/completions: 4/completions: 3/; s/parallelism: 4/parallelism: 3/' deploy/k8s/score-job.yaml"
check "one output for all pods" "does not name the shard index"   "sed -i 's|/data/out/shard-\$(SHARD_INDEX).jsonl|/data/out/shard.jsonl|' deploy/k8s/score-job.yaml"
check "missing claim"           "which no manifest defines"       "sed -i 's/claimName: onnxreward-models/claimName: onnxreward-model/' deploy/k8s/server.yaml"
check "service selects nothing" "matches no Deployment's pods"    "python3 - <<'PY'
p='deploy/k8s/server.yaml'; s=open(p).read(); i=s.index('kind: Service'); j=s.index('component: server', s.index('selector:', i))
open(p,'w').write(s[:j] + 'component: serve' + s[j + len('component: server'):])
PY"
check "HPA without queue depth" "no Pods metric onnxreward_scorer_queued_rows" "sed -i 's/name: onnxreward_scorer_queued_rows/name: onnxreward_queue_rows/' deploy/k8s/server.yaml"
check "root user in Dockerfile" "numeric non-root USER"           "sed -i 's/^USER 1654/USER root/' deploy/Dockerfile"
check "Dockerfile instruction"  "lint (error)"                    "sed -i 's/^EXPOSE 8000/EXPOSE 8000\/tcpp/' deploy/Dockerfile"
check "model left out of build" "is excluded by .dockerignore"    "sed -i '/^!models\/default\/$/d' .dockerignore"
check "COPY of a missing path"  "does not exist in the build context" "sed -i 's|^COPY export/ export/|COPY exports/ export/|' deploy/Dockerfile"
if [ "$failed" -ne 0 ]; then echo "self-test: some breaks were not caught"; exit 1; fi
echo "self-test: every break was caught"
