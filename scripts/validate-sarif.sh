#!/usr/bin/env bash
# Validate gguf-gate's SARIF with Microsoft's SARIF multitool (npm @microsoft/sarif-multitool,
# the reference implementation of the standard), with its GitHub code-scanning ingestion
# rules (--rule-kind Gh) and the spec's own (--rule-kind Sarif), on a passing model
# (SmolLM2) and a damaged copy of it (output_norm zeroed: norm, tensor and probe findings).
# Fails on any error-level result, and on any warning: what code scanning would reject or
# mis-place. Notes (style advice) are counted and printed, not fatal.
# Usage: bash scripts/validate-sarif.sh [path/to/gguf-gate]   (default: the release build)
set -euo pipefail
cd "$(dirname "$0")/.."
MULTITOOL_VERSION=5.7.0
bin="${1:-target/x86_64-unknown-linux-gnu/release/gguf-gate}"
[ -x "$bin" ] || { echo "validate-sarif: no binary at $bin (cargo build --release)" >&2; exit 2; }
cache="${GGUF_GATE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/gguf-gate/tools}"
prefix="$cache/npm-sarif-multitool-$MULTITOOL_VERSION"
tool="$prefix/node_modules/@microsoft/sarif-multitool-linux/Sarif.Multitool"
if [ ! -x "$tool" ]; then
  echo "installing @microsoft/sarif-multitool@$MULTITOOL_VERSION into $prefix" >&2
  mkdir -p "$prefix"
  npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error --save-exact \
    "@microsoft/sarif-multitool@$MULTITOOL_VERSION" >&2
  chmod u+x "$tool" # its postinstall step, which npm may not run
fi

models="$(bash scripts/fetch-models.sh smollm2 | tail -n 1)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cp "$models/SmolLM2-135M-Instruct.Q4_1.gguf" "$tmp/smollm2.gguf"
cp "$tmp/smollm2.gguf" "$tmp/damaged.gguf"
# Zero output_norm.weight in place (its absolute data offset from `inspect`).
"$bin" inspect "$tmp/damaged.gguf" --format json | python3 -c '
import json, sys
path = sys.argv[1]
t = next(t for t in json.load(sys.stdin)["tensors"] if t["name"] == "output_norm.weight")
with open(path, "r+b") as f:
    f.seek(t["offset"]); f.write(bytes(t["bytes"]))
' "$tmp/damaged.gguf"

status=0
for case in smollm2:0 damaged:1; do
  name="${case%%:*}" want="${case##*:}"
  rc=0
  (cd "$tmp" && "$OLDPWD/$bin" check "$name.gguf" --policy none --sarif "$name.sarif" >/dev/null) || rc=$?
  if [ "$rc" != "$want" ]; then
    echo "validate-sarif: check $name.gguf exited $rc, expected $want" >&2; status=1; continue
  fi
  "$tool" validate "$tmp/$name.sarif" --rule-kind "Gh;Sarif" --level "Error;Warning;Note" \
    --output "$tmp/$name.validation.sarif" --log ForceOverwrite --quiet >/dev/null 2>&1 || true
  python3 - "$tmp/$name.validation.sarif" "$name" <<'PY' || status=1
import json, sys
path, name = sys.argv[1], sys.argv[2]
results = json.load(open(path))["runs"][0].get("results", [])
def text(r):
    m = r.get("message", {})
    return m.get("text") or " ".join(m.get("arguments", [])) or m.get("id", "")
bad = [r for r in results if r.get("level", "warning") in ("error", "warning")]
notes = [r for r in results if r.get("level") == "note"]
for r in bad:
    print(f"  {name}: {r.get('level', 'warning')} {r['ruleId']}: {text(r)}")
print(f"validate-sarif: {name}.sarif: {len(bad)} error(s)/warning(s), {len(notes)} note(s) "
      f"({', '.join(sorted({r['ruleId'] for r in notes})) or 'none'})")
sys.exit(1 if bad else 0)
PY
done
exit "$status"
