#!/usr/bin/env bash
# Run every test: installs the pinned Python reference packages, fetches the real models
# into the cache (checksum-verified), runs the whole cargo test suite, then the aarch64
# leg (scripts/test-aarch64.sh: NEON under qemu-user, the same logits on both
# architectures). A test whose model, reference package or tool is missing fails (it
# never skips unless GGUF_GATE_ALLOW_SKIP=1 is set, which this script does not do).
# Usage: bash scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
GGUF_GATE_MODELS="$(bash scripts/fetch-models.sh | tail -n 1)"
export GGUF_GATE_MODELS
unset GGUF_GATE_ALLOW_SKIP
cargo test --all-targets "$@"
bash scripts/test-aarch64.sh "$@"
