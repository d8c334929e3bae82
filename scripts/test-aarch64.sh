#!/usr/bin/env bash
# The NEON path and the "same bits on any machine" promise, tested on an x86-64 machine:
# the crate is cross-compiled for aarch64-unknown-linux-gnu and run under qemu-user.
#   1. the library's unit tests (every kernel format on the NEON and scalar paths, bit
#      for bit), then tests/isa.rs (SmolLM2 and Qwen2.5-Coder: NEON logits == scalar);
#   2. `gguf-gate score --logits-out` on SmolLM2 and Qwen2.5-Coder with every path of
#      both architectures (x86-64: scalar, avx2, avx512 where this CPU has them; aarch64:
#      neon, and scalar on SmolLM2): every .npy file must be byte-identical.
# Needs the aarch64 rust-std (rustup), a cross linker and qemu-user; installs them when it
# can (rustup; apt-get as root or through passwordless sudo). When it cannot, it fails
# with the command to run, unless GGUF_GATE_ALLOW_SKIP=1. The models come from scripts/fetch-models.sh (GGUF_GATE_MODELS).
# Usage: bash scripts/test-aarch64.sh [--locked]   (other arguments, e.g. a test filter
# meant for the x86-64 run of scripts/test.sh, are ignored)
set -euo pipefail
cd "$(dirname "$0")/.."
target=aarch64-unknown-linux-gnu
cargo_args=()
for arg in "$@"; do
  if [ "$arg" = --locked ]; then cargo_args+=(--locked); fi
done
packages=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)

skip_or_fail() {
  if [ "${GGUF_GATE_ALLOW_SKIP:-}" = 1 ]; then
    echo "test-aarch64: skipped (GGUF_GATE_ALLOW_SKIP=1): $1" >&2
    exit 0
  fi
  echo "test-aarch64: error: $1" >&2
  exit 1
}

installed_targets="$(rustup target list --installed)"
if ! grep -qx "$target" <<<"$installed_targets"; then
  rustup target add "$target" || skip_or_fail "run: rustup target add $target"
fi
if ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
  apt=()
  if [ "$(id -u)" = 0 ]; then
    apt=(apt-get)
  elif sudo -n true 2>/dev/null; then
    apt=(sudo -n apt-get)
  fi
  if [ ${#apt[@]} -eq 0 ] || ! command -v apt-get >/dev/null; then
    skip_or_fail "run: sudo apt-get install ${packages[*]}"
  fi
  "${apt[@]}" install -y -qq "${packages[@]}" >/dev/null ||
    { "${apt[@]}" update -qq && "${apt[@]}" install -y -qq "${packages[@]}" >/dev/null; }
fi
if [ -z "${GGUF_GATE_MODELS:-}" ]; then
  GGUF_GATE_MODELS="$(bash scripts/fetch-models.sh | tail -n 1)"
  export GGUF_GATE_MODELS
fi

# How an aarch64 program runs here: under qemu-user, with the cross libc's loader.
qemu=(qemu-aarch64 -L /usr/aarch64-linux-gnu)
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="${qemu[*]}"

echo "== aarch64 (qemu): unit tests and tests/isa.rs"
cargo test --release --target "$target" --lib --test isa "${cargo_args[@]}"

echo "== the same logits on x86-64 and aarch64, on every path"
cargo build --release --quiet "${cargo_args[@]}"
cargo build --release --quiet --target "$target" "${cargo_args[@]}"
x86=target/x86_64-unknown-linux-gnu/release/gguf-gate
arm=target/$target/release/gguf-gate
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
printf '%s\n' 'The capital of France is Paris. The Seine flows through the city, past' \
  'islands and bridges; def mean(xs): return sum(xs) / len(xs)' >"$work/text.txt"
models=(SmolLM2-135M-Instruct.Q4_1.gguf qwen2.5-coder-1.5b-instruct-q4_k_m.gguf)
# The x86-64 paths this CPU runs (a forced path it cannot run is a usage error, exit 2).
x86_paths=(scalar)
for isa in avx2 avx512; do
  status=0
  GGUF_GATE_ISA=$isa "$x86" inspect "$GGUF_GATE_MODELS/${models[0]}" >/dev/null 2>&1 || status=$?
  case $status in
    0) x86_paths+=("$isa") ;;
    2) echo "x86_64 $isa: this CPU cannot run it" ;;
    *) echo "error: gguf-gate inspect with GGUF_GATE_ISA=$isa exited $status" >&2; exit 1 ;;
  esac
done
for model in "${models[@]}"; do
  runs=()
  for isa in "${x86_paths[@]}"; do runs+=("x86_64 $isa"); done
  # aarch64's scalar path under emulation takes minutes on Qwen2.5, and tests/isa.rs has
  # just shown it equal to NEON there: Qwen2.5 runs NEON only.
  if [ "$model" = "${models[0]}" ]; then runs+=("aarch64 scalar"); fi
  runs+=("aarch64 neon")
  reference=""
  for run in "${runs[@]}"; do
    read -r arch isa <<<"$run"
    if [ "$arch" = aarch64 ]; then
      cmd=("${qemu[@]}" "$arm")
    else
      cmd=("$x86")
    fi
    out="$work/$arch-$isa.npy"
    GGUF_GATE_ISA=$isa "${cmd[@]}" score "$GGUF_GATE_MODELS/$model" --text "$work/text.txt" \
      --logits-out "$out" --threads 2 >/dev/null
    sum="$(sha256sum "$out" | cut -d' ' -f1)"
    echo "$model $arch $isa: logits sha256 $sum"
    if [ -z "$reference" ]; then
      reference=$sum
    elif [ "$sum" != "$reference" ]; then
      echo "error: $model on $arch $isa gives other logits than on ${runs[0]}" >&2
      exit 1
    fi
  done
done
echo "test-aarch64: ok"
