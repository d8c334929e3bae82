#!/usr/bin/env bash
# Run gguf-gate's template rules (`gguf-gate template --check`) on every template file in
# a folder (*.jinja, or tokenizer_config.json files) and summarise which produce a
# finding. Used by hand to hunt false positives on real public templates; the folder is
# third-party data and stays outside the repository.
#
#   bash scripts/template-corpus.sh DIR [GGUF_GATE_BINARY]
set -euo pipefail
dir=${1:?usage: template-corpus.sh DIR [gguf-gate binary]}
bin=${2:-}
if [[ -z $bin ]]; then
  cargo build -q
  bin=$(find "${CARGO_TARGET_DIR:-target}" -path '*/debug/gguf-gate' -type f | head -n1)
fi
total=0; flagged=0; errors=0
shopt -s nullglob
for f in "$dir"/*.jinja "$dir"/*.json; do
  total=$((total + 1))
  out=$("$bin" template --check "$f" 2>&1) && rc=0 || rc=$?
  findings=$(grep -E '^(error|warning|note) \[' <<<"$out" || true)
  if [[ -n $findings ]]; then
    flagged=$((flagged + 1))
    [[ $rc -ne 0 ]] && errors=$((errors + 1))
    echo "== $(basename "$f") (exit $rc)"
    grep -E '^(error|warning|note) \[|^    at ' <<<"$out" | cut -c1-240
  fi
done
echo "templates: $total, with any finding: $flagged, failing at error level: $errors"
