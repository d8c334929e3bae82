#!/usr/bin/env bash
# Run every test: installs the Python reference packages, fetches the real models into
# the cache, then runs the whole cargo test suite with skipping disallowed.
# Usage: bash scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
GGUF_GATE_MODELS="$(bash scripts/fetch-models.sh | tail -n 1)"
export GGUF_GATE_MODELS
export GGUF_GATE_NO_SKIP=1
cargo test --all-targets "$@"
