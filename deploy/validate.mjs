// Validates the deployment files without a cluster or a Docker engine (neither runs here):
//   1. every YAML document under k8s/ parses, is a known Kubernetes kind, and passes the Kubernetes OpenAPI schema of
//      its apiVersion/kind (kubernetes-models: typed model + .validate()); no field is unknown to its type (typos:
//      TypeScript's excess-property check against kubernetes-models' interfaces);
//   2. consistency the schemas cannot see: Services and PDBs select the Deployment's pods, the HPA targets it and
//      scales on a Pods metric, every PVC a pod mounts is defined, probes use a declared port, pods run as non-root,
//      and the Indexed Job's --shard i/N argument matches completions and parallelism;
//   3. the Dockerfile lints clean (dockerfile-utils, the VS Code Docker linter), runs as a numeric non-root USER with
//      an exec-form ENTRYPOINT, and every COPY source exists and is not excluded by ../.dockerignore.
// Usage: node validate.mjs [DEPLOY_DIR]   (default: this folder). Exits 1 with one line per problem.
import { readFileSync, readdirSync, existsSync } from "node:fs";
import { join, resolve, relative, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import { validate as lintDockerfile } from "dockerfile-utils";
import ts from "typescript";
import { mkdirSync, writeFileSync, rmSync } from "node:fs";

const scriptDir = dirname(fileURLToPath(import.meta.url));
const deployDir = resolve(process.argv[2] ?? scriptDir);
const repoRoot = resolve(deployDir, "..");
const problems = [];
const problem = (where, message) => problems.push(`${where}: ${message}`);

// ---- 1. Kubernetes manifests against the OpenAPI schemas ----
const k8sDir = join(deployDir, "k8s");
const objects = [];   // { where, obj }
for (const file of readdirSync(k8sDir).filter((f) => /\.ya?ml$/.test(f)).sort()) {
  const path = join(k8sDir, file);
  const docs = parseAllDocuments(readFileSync(path, "utf8"), { prettyErrors: true, strict: true, uniqueKeys: true });
  docs.forEach((doc, i) => {
    const where = `k8s/${file} document ${i + 1}`;
    for (const e of [...doc.errors, ...doc.warnings]) problem(where, `YAML: ${e.message.split("\n")[0]}`);
    if (doc.errors.length) return;
    const obj = doc.toJS({ maxAliasCount: 100 });
    if (obj === null || obj === undefined) return;   // an empty document (e.g. after a trailing ---)
    objects.push({ where: `${where} (${obj.kind ?? "?"} ${obj.metadata?.name ?? "?"})`, obj });
  });
}
for (const { where, obj } of objects) {
  if (typeof obj !== "object" || Array.isArray(obj) || !obj.apiVersion || !obj.kind) {
    problem(where, "not a Kubernetes object (apiVersion and kind are required)");
    continue;
  }
  let Model;
  try {
    Model = (await import(`kubernetes-models/${obj.apiVersion}`))[obj.kind];
  } catch {
    Model = undefined;
  }
  if (typeof Model !== "function") {
    problem(where, `unknown apiVersion/kind ${obj.apiVersion} ${obj.kind} (kubernetes-models has no such core type)`);
    continue;
  }
  try {
    new Model(obj).validate();
  } catch (e) {
    const details = (e.errors ?? []).map((x) => `${x.instancePath || "/"} ${x.message ?? x.keyword}${x.params?.allowedValues ? ` (${x.params.allowedValues.join(", ")})` : ""}`);
    problem(where, `schema: ${details.length ? details.join("; ") : e.message}`);
  }
}

// ---- 1b. Unknown fields (typos such as readinesProbe) ----
// The OpenAPI schemas allow extra properties, and the API server would drop (or, with strict field validation, refuse)
// them. kubernetes-models ships TypeScript interfaces of the same types: each object becomes a literal typed with its
// kind's interface, and TypeScript's excess-property check names the unknown field (one per object per run).
{
  const cache = join(scriptDir, "node_modules", ".cache", "onnxreward-validate");
  mkdirSync(cache, { recursive: true });
  const file = join(cache, "fields.ts");
  const typed = objects.filter(({ obj }) => obj?.apiVersion && obj?.kind && existsSync(join(scriptDir, "node_modules", "kubernetes-models", obj.apiVersion, `${obj.kind}.d.ts`)));
  const source = typed.map(({ obj }, i) => `import type { I${obj.kind} as T${i} } from "kubernetes-models/${obj.apiVersion}/${obj.kind}";`)
    .concat(typed.map(({ obj }, i) => `export const o${i}: T${i} = ${JSON.stringify(obj)};`)).join("\n");
  writeFileSync(file, source);
  const program = ts.createProgram([file], { noEmit: true, strict: true, skipLibCheck: true, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext });
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const line = d.file ? d.file.getLineAndCharacterOfPosition(d.start ?? 0).line - typed.length : -1;
    const message = ts.flattenDiagnosticMessageText(d.messageText, " ").replace(/'"([^"']*)"'/g, "'$1'");   // keys are JSON-quoted
    problem(typed[line]?.where ?? "field check", `fields: ${message}`);
  }
  rmSync(file);
}

// ---- 2. Cross-object consistency ----
const byKind = (kind) => objects.filter((o) => o.obj.kind === kind);
const matches = (selector, labels) => Object.entries(selector ?? {}).every(([k, v]) => labels?.[k] === v);
const claims = new Set(byKind("PersistentVolumeClaim").map((o) => o.obj.metadata?.name));
const deployments = byKind("Deployment");
const podTemplates = [...deployments, ...byKind("Job")];
for (const { where, obj } of podTemplates) {
  const pod = obj.spec?.template?.spec ?? {};
  const podLabels = obj.spec?.template?.metadata?.labels;
  if (obj.kind === "Deployment" && !matches(obj.spec?.selector?.matchLabels, podLabels))
    problem(where, "spec.selector.matchLabels does not match the pod template's labels");
  for (const v of pod.volumes ?? [])
    if (v.persistentVolumeClaim && !claims.has(v.persistentVolumeClaim.claimName))
      problem(where, `volume ${v.name} mounts PersistentVolumeClaim ${v.persistentVolumeClaim.claimName}, which no manifest defines`);
  const volumeNames = new Set((pod.volumes ?? []).map((v) => v.name));
  for (const c of [...(pod.initContainers ?? []), ...(pod.containers ?? [])]) {
    for (const m of c.volumeMounts ?? [])
      if (!volumeNames.has(m.name)) problem(where, `container ${c.name} mounts volume ${m.name}, which the pod does not declare`);
    const runAsNonRoot = c.securityContext?.runAsNonRoot ?? pod.securityContext?.runAsNonRoot;
    const uid = c.securityContext?.runAsUser ?? pod.securityContext?.runAsUser;
    if (runAsNonRoot !== true || !(uid > 0)) problem(where, `container ${c.name} must run as non-root (runAsNonRoot: true and a non-zero runAsUser)`);
    const ports = new Set((c.ports ?? []).flatMap((p) => [p.name, p.containerPort]));
    for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"]) {
      const port = c[probe]?.httpGet?.port;
      if (port !== undefined && !ports.has(port)) problem(where, `container ${c.name} ${probe} uses port ${port}, which it does not declare`);
    }
  }
  if (obj.kind === "Deployment") {
    const c = pod.containers?.[0];
    if (!c?.readinessProbe?.httpGet || c.readinessProbe.httpGet.path !== "/health") problem(where, "the server needs a readinessProbe on GET /health");
    if (!c?.livenessProbe) problem(where, "the server needs a livenessProbe");
    if (!c?.resources?.requests || !c?.resources?.limits) problem(where, "the server needs resource requests and limits");
  }
  if (obj.kind === "Job" && obj.spec?.completionMode === "Indexed") {
    const n = obj.spec.completions;
    if (obj.spec.parallelism !== undefined && obj.spec.parallelism > n) problem(where, `parallelism ${obj.spec.parallelism} exceeds completions ${n}`);
    for (const c of pod.containers ?? []) {
      const args = [...(c.command ?? []), ...(c.args ?? [])];
      const i = args.indexOf("--shard");
      if (i < 0) { problem(where, `container ${c.name} of an Indexed Job has no --shard i/N argument`); continue; }
      const m = /^\$\((\w+)\)\/(\d+)$/.exec(args[i + 1] ?? "");
      if (!m) { problem(where, `--shard ${args[i + 1]} is not $(INDEX_VARIABLE)/N`); continue; }
      if (Number(m[2]) !== n) problem(where, `--shard ${args[i + 1]}: N = ${m[2]} but completions = ${n}; they must be equal, or shards are lost or empty`);
      const env = (c.env ?? []).find((e) => e.name === m[1]);
      const fromIndex = env?.valueFrom?.fieldRef?.fieldPath === "metadata.annotations['batch.kubernetes.io/job-completion-index']";
      if (m[1] !== "JOB_COMPLETION_INDEX" && !fromIndex) problem(where, `$(${m[1]}) is not the completion index (JOB_COMPLETION_INDEX or the job-completion-index annotation)`);
      const out = args[args.indexOf("--output") + 1] ?? "";
      if (!out.includes(`$(${m[1]})`)) problem(where, `--output ${out} does not name the shard index: every pod would write the same file`);
    }
  }
}
for (const { where, obj } of [...byKind("Service"), ...byKind("PodDisruptionBudget")]) {
  const selector = obj.kind === "Service" ? obj.spec?.selector : obj.spec?.selector?.matchLabels;
  if (!deployments.some((d) => matches(selector, d.obj.spec?.template?.metadata?.labels)))
    problem(where, "its selector matches no Deployment's pods");
}
for (const { where, obj } of byKind("HorizontalPodAutoscaler")) {
  const ref = obj.spec?.scaleTargetRef;
  if (!deployments.some((d) => ref?.kind === "Deployment" && d.obj.metadata?.name === ref.name))
    problem(where, `scaleTargetRef ${ref?.kind} ${ref?.name} is not a Deployment defined here`);
  if (!(obj.spec?.metrics ?? []).some((m) => m.type === "Pods" && m.pods?.metric?.name === "onnxreward_scorer_queued_rows"))
    problem(where, "no Pods metric onnxreward_scorer_queued_rows (the queue-depth autoscaling signal)");
}

// ---- 3. Dockerfile ----
const dockerfilePath = join(deployDir, "Dockerfile");
const dockerfile = readFileSync(dockerfilePath, "utf8");
for (const d of lintDockerfile(dockerfile))
  problem(`Dockerfile:${d.range.start.line + 1}`, `lint (${d.severity === 1 ? "error" : "warning"}): ${d.message}`);
const instructions = dockerfile.replace(/\\\n/g, " ").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
const finalStage = instructions.slice(instructions.findLastIndex((l) => /^FROM\s/i.test(l)));
const user = finalStage.filter((l) => /^USER\s/i.test(l)).at(-1)?.split(/\s+/)[1];
if (!user || !/^[1-9]\d*(:\d+)?$/.test(user)) problem("Dockerfile", `the final stage must end as a numeric non-root USER (found ${user ?? "none"}) so that runAsNonRoot can verify it`);
const entrypoint = finalStage.filter((l) => /^ENTRYPOINT\s/i.test(l)).at(-1);
if (!entrypoint || !/^ENTRYPOINT\s+\[/i.test(entrypoint)) problem("Dockerfile", "the final stage needs an exec-form ENTRYPOINT [\"onnxreward\", …] (signals reach the server)");

// COPY sources (not --from) must exist in the build context (the repository root) and survive .dockerignore.
const ignoreRules = existsSync(join(repoRoot, ".dockerignore"))
  ? readFileSync(join(repoRoot, ".dockerignore"), "utf8").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"))
      .map((l) => {
        const negate = l.startsWith("!");
        const glob = (negate ? l.slice(1) : l).replace(/^\/+|\/+$/g, "");
        const source = glob.split("**").map((part) => part.split("*").map((s) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join("[^/]*")).join(".*");
        return { negate, re: new RegExp(`^${source}(/.*)?$`) };
      })
  : [];
const ignored = (path) => ignoreRules.reduce((state, rule) => (rule.re.test(path) ? !rule.negate : state), false);
const args = Object.fromEntries(instructions.filter((l) => /^ARG\s/i.test(l)).map((l) => l.slice(4).trim().split("=")).filter((kv) => kv.length === 2));
for (const line of instructions.filter((l) => /^COPY\s/i.test(l) && !/--from=/i.test(l))) {
  const parts = line.split(/\s+/).slice(1).filter((p) => !p.startsWith("--"));
  for (const raw of parts.slice(0, -1)) {
    const src = raw.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a, b) => args[a ?? b] ?? `<unset ${a ?? b}>`).replace(/^\.?\/+|\/+$/g, "");
    if (!existsSync(join(repoRoot, src))) problem("Dockerfile", `COPY ${raw}: ${src} does not exist in the build context (the repository root)`);
    else if (ignored(src)) problem("Dockerfile", `COPY ${raw}: ${src} is excluded by .dockerignore`);
  }
}

if (problems.length) {
  for (const p of problems) console.error(`invalid: ${p}`);
  console.error(`${problems.length} problem(s) in ${relative(process.cwd(), deployDir) || "."}`);
  process.exit(1);
}
console.log(`ok: ${objects.length} Kubernetes objects valid (${[...new Set(objects.map((o) => o.obj.kind))].join(", ")}); Dockerfile lints clean`);
