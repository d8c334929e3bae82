#!/usr/bin/env bash
# The shell logic of the composite GitHub Action (action.yml): install gguf-gate — the
# release binary for this runner, verified against the release's SHA256SUMS, or a build
# from the action's own checkout — then run `gguf-gate check` with the inputs.
#
# It lives in a file, not in action.yml, so that it can be tested (scripts/action/test.sh)
# and so that no `${{ }}` expression is ever expanded inside shell code: every input
# arrives as an environment variable set by action.yml's `env:` block.
#
# Inputs (environment):
#   GGUF_GATE_MODEL        required; the GGUF file(s) to check: one per line, and a line
#                          may be a pattern (`models/*.gguf`) that gguf-gate expands
#   GGUF_GATE_POLICY       optional policy file
#   GGUF_GATE_TOKENIZER    optional tokenizer.json
#   GGUF_GATE_STRICT       "true" | "false" (default "false")
#   GGUF_GATE_FAIL_LEVEL   "error" | "warning" (default "error")
#   GGUF_GATE_SARIF, GGUF_GATE_JUNIT, GGUF_GATE_JSON, GGUF_GATE_HTML   optional report paths
#   GGUF_GATE_VERSION      "vX.Y.Z", "source", or empty (= derived from the action's ref)
#   GGUF_GATE_ATTESTATION  "auto" (default) | "required" | "off": verify the release
#                          binary's build provenance with `gh attestation verify` (signed
#                          by this repository's release workflow) on top of its sha256.
#                          auto = required inside GitHub Actions; outside, verified when
#                          `gh` is installed and GH_TOKEN is set
#   GGUF_GATE_ACTION_REF, GGUF_GATE_ACTION_REPOSITORY, GGUF_GATE_ACTION_PATH
#                          github.action_ref / action_repository / action_path (passed
#                          explicitly: the GITHUB_ACTION_* variables are empty in
#                          composite actions); fall back to GITHUB_ACTION_*
#   GH_TOKEN               token for `gh attestation verify` (action.yml passes github.token)
#   GITHUB_ACTIONS         "true" on a GitHub runner (GitHub sets it; a step cannot
#                          change it through $GITHUB_ENV)
#
# Test hooks, honoured only OUTSIDE GitHub Actions (GITHUB_ACTIONS != true): inside, an
# earlier step could set them through $GITHUB_ENV and point the download at a binary and
# SHA256SUMS of its own, so there they are ignored (and action.yml blanks them as well):
#   GGUF_GATE_RELEASE_BASE where the release assets are: an https:// or file:// URL or a
#                          plain directory (default
#                          https://github.com/<action repository>/releases/download/<tag>)
#   GGUF_GATE_INSTALL_DIR  where to put the binary (default $RUNNER_TEMP/gguf-gate-<version>)
#   RUNNER_OS, RUNNER_ARCH set by GitHub; uname is used when they are missing
#
# Exit codes: those of `gguf-gate check` (0 pass, 1 policy failed, 2 usage or input
# error); 2 also for an invalid action input; 3 when no trustworthy binary could be
# installed (unsupported runner, download failure, checksum mismatch or missing entry,
# attestation missing or not from this repository's release workflow, failed source
# build).
set -euo pipefail

# One line of text as GitHub's workflow commands escape it (%, CR, LF), so that no value
# from an input (a file name with a newline) can start a line of its own, and with it a
# workflow command.
one_line() {
  local s="$*"
  s="${s//%/%25}"
  s="${s//$'\r'/%0D}"
  s="${s//$'\n'/%0A}"
  printf '%s' "$s"
}

log() { printf 'gguf-gate action: %s\n' "$(one_line "$@")" >&2; }

# fail CODE MESSAGE: an error annotation on the step, then exit CODE.
fail() {
  local code="$1"
  shift
  printf '::error title=gguf-gate action::%s\n' "$(one_line "$@")" >&2
  exit "$code"
}

# Print the sha256 of a file as lowercase hex (sha256sum on Linux and Git Bash,
# shasum on macOS, openssl as a last resort). The file goes in on stdin so that no
# path quoting (sha256sum escapes names with a backslash) reaches the output.
sha256_of() {
  local out
  if command -v sha256sum >/dev/null 2>&1; then
    out=$(sha256sum -b <"$1")
  elif command -v shasum >/dev/null 2>&1; then
    out=$(shasum -a 256 -b <"$1")
  elif command -v openssl >/dev/null 2>&1; then
    out=$(openssl dgst -sha256 -r <"$1")
  else
    fail 3 "no sha256 tool (sha256sum, shasum or openssl) on this runner"
  fi
  out="${out%% *}"
  printf '%s\n' "$out" | tr 'A-F' 'a-f'
}

# Validate the inputs and give them their defaults (sets MODEL, STRICT, FAIL_LEVEL, ...).
read_inputs() {
  MODEL="${GGUF_GATE_MODEL:-}"
  POLICY="${GGUF_GATE_POLICY:-}"
  TOKENIZER="${GGUF_GATE_TOKENIZER:-}"
  STRICT="${GGUF_GATE_STRICT:-false}"
  FAIL_LEVEL="${GGUF_GATE_FAIL_LEVEL:-error}"
  ATTESTATION="${GGUF_GATE_ATTESTATION:-auto}"
  SARIF="${GGUF_GATE_SARIF:-}"
  JUNIT="${GGUF_GATE_JUNIT:-}"
  HTML="${GGUF_GATE_HTML:-}"
  JSON="${GGUF_GATE_JSON:-}"
  ACTION_PATH="${GGUF_GATE_ACTION_PATH:-${GITHUB_ACTION_PATH:-}}"
  if [ -z "$ACTION_PATH" ]; then
    ACTION_PATH="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  fi

  # One model per line; blank lines and surrounding blanks ignored.
  MODELS=()
  local line
  while IFS= read -r line || [ -n "$line" ]; do
    line="${line#"${line%%[![:space:]]*}"}"
    line="${line%"${line##*[![:space:]]}"}"
    [ -n "$line" ] || continue
    # A path that starts with '-' would be read as an option.
    case "$line" in -*) line="./$line" ;; esac
    MODELS+=("$line")
  done <<<"$MODEL"
  [ "${#MODELS[@]}" -gt 0 ] || fail 2 "input 'model' is required"
  case "$STRICT" in
    true | false) ;;
    *) fail 2 "input 'strict' must be \"true\" or \"false\", not \"$STRICT\"" ;;
  esac
  case "$FAIL_LEVEL" in
    error | warning) ;;
    *) fail 2 "input 'fail-level' must be \"error\" or \"warning\", not \"$FAIL_LEVEL\"" ;;
  esac
  case "$ATTESTATION" in
    auto | required | off) ;;
    *) fail 2 "input 'attestation' must be \"auto\", \"required\" or \"off\", not \"$ATTESTATION\"" ;;
  esac
  read_test_hooks
}

# On a GitHub runner nothing but the action's inputs may change where the binary comes
# from: the test hooks are dropped there (sets RELEASE_BASE_HOOK, INSTALL_DIR_HOOK, PROTOCOLS).
read_test_hooks() {
  RELEASE_BASE_HOOK="${GGUF_GATE_RELEASE_BASE:-}"
  INSTALL_DIR_HOOK="${GGUF_GATE_INSTALL_DIR:-}"
  PROTOCOLS="=https,file"
  if [ "${GITHUB_ACTIONS:-}" = true ]; then
    PROTOCOLS="=https"
    local hook
    for hook in GGUF_GATE_RELEASE_BASE GGUF_GATE_INSTALL_DIR; do
      if [ -n "${!hook:-}" ]; then
        log "ignoring $hook inside GitHub Actions: it is a test hook, honoured only outside"
      fi
    done
    RELEASE_BASE_HOOK=""
    INSTALL_DIR_HOOK=""
  fi
}

# The version in the [package] section of a Cargo.toml.
cargo_version() {
  awk '
    /^\[/ { in_pkg = ($0 == "[package]") }
    in_pkg && /^version[ \t]*=/ { sub(/^version[ \t]*=[ \t]*"/, ""); sub(/".*$/, ""); print; exit }
  ' "$1"
}

# Which release to install (sets VERSION): the `version` input, else the action's own
# ref when it is a release tag. A moving tag (v1, v1.2) or a commit SHA has the
# release's Cargo.toml in the action's checkout, and the release workflow refuses a
# tag that differs from it, so the version is read from there.
resolve_version() {
  VERSION="${GGUF_GATE_VERSION:-}"
  if [ -z "$VERSION" ]; then
    local ref="${GGUF_GATE_ACTION_REF:-${GITHUB_ACTION_REF:-}}"
    if [[ $ref =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
      VERSION="$ref"
    elif [[ $ref =~ ^v[0-9]+(\.[0-9]+)?$ || $ref =~ ^[0-9a-f]{40}$ ]]; then
      local v=""
      if [ -f "$ACTION_PATH/Cargo.toml" ]; then
        v="$(cargo_version "$ACTION_PATH/Cargo.toml")"
      fi
      [ -n "$v" ] || fail 2 "cannot read the version from $ACTION_PATH/Cargo.toml for ref '$ref'; set the 'version' input"
      VERSION="v$v"
    else
      fail 2 "cannot tell which release to install: the action ref '${ref:-<none>}' is not a release tag or commit; set 'version: vX.Y.Z' or 'version: source'"
    fi
  fi
  if [ "$VERSION" != source ] && ! [[ $VERSION =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]]; then
    fail 2 "input 'version' must be a release tag like v1.2.3 or \"source\", not \"$VERSION\""
  fi
}

# The release asset for this runner (sets TARGET, EXE, ASSET).
detect_target() {
  local os="${RUNNER_OS:-$(uname -s)}" arch="${RUNNER_ARCH:-$(uname -m)}"
  case "$os" in
    Linux) os=linux ;;
    macOS | Darwin) os=macos ;;
    Windows | MINGW* | MSYS* | CYGWIN*) os=windows ;;
    *) fail 3 "unsupported runner OS '$os': release binaries exist for Linux, macOS and Windows (or use 'version: source')" ;;
  esac
  case "$arch" in
    X64 | x86_64 | amd64 | AMD64) arch=x86_64 ;;
    ARM64 | aarch64 | arm64) arch=aarch64 ;;
    *) fail 3 "unsupported runner architecture '$arch': release binaries exist for x86_64 and arm64 (or use 'version: source')" ;;
  esac
  EXE=""
  case "$os/$arch" in
    linux/x86_64) TARGET=x86_64-unknown-linux-gnu ;;
    linux/aarch64) TARGET=aarch64-unknown-linux-gnu ;;
    macos/x86_64) TARGET=x86_64-apple-darwin ;;
    macos/aarch64) TARGET=aarch64-apple-darwin ;;
    windows/x86_64)
      TARGET=x86_64-pc-windows-msvc
      EXE=.exe
      ;;
    *) fail 3 "unsupported runner '$os/$arch': no release binary for it (or use 'version: source')" ;;
  esac
  ASSET="gguf-gate-$TARGET$EXE"
}

# The folder (URL or directory) that holds the release's assets.
release_base() {
  if [ -n "${RELEASE_BASE_HOOK:-}" ]; then
    printf '%s\n' "${RELEASE_BASE_HOOK%/}"
    return
  fi
  local repo
  repo="$(action_repository)"
  [ -n "$repo" ] || fail 2 "the action's repository is unknown; set 'version: source' (or, outside GitHub Actions, GGUF_GATE_RELEASE_BASE)"
  printf 'https://github.com/%s/releases/download/%s\n' "$repo" "$VERSION"
}

action_repository() { printf '%s\n' "${GGUF_GATE_ACTION_REPOSITORY:-${GITHUB_ACTION_REPOSITORY:-}}"; }

# fetch SOURCE DEST: https:// (and, outside GitHub Actions, file://) through curl, plain
# http refused; a plain path (a test hook, so outside GitHub Actions only) is copied.
fetch() {
  case "$1" in
    *://*) curl -fsSL --retry 3 --proto "${PROTOCOLS:-=https}" --proto-redir '=https' -o "$2" "$1" ;;
    *)
      [ -n "${RELEASE_BASE_HOOK:-}" ] || fail 3 "refusing to copy a release from a local path inside GitHub Actions"
      cp -- "$1" "$2"
      ;;
  esac
}

# Whether this run verifies the attestation: "yes", or "no" with the reason logged.
attestation_wanted() {
  case "$ATTESTATION" in
    off)
      log "attestation: not verified ('attestation: off'): the binary is trusted on its sha256 alone"
      echo no
      ;;
    required) echo yes ;;
    auto)
      if [ "${GITHUB_ACTIONS:-}" = true ]; then
        echo yes
      elif command -v gh >/dev/null 2>&1 && [ -n "${GH_TOKEN:-}" ]; then
        echo yes
      else
        log "attestation: not verified (outside GitHub Actions without gh and GH_TOKEN)"
        echo no
      fi
      ;;
  esac
}

# verify_attestation FILE: the release workflow of the action's repository built FILE
# (a Sigstore-signed SLSA provenance statement for its sha256, checked by the GitHub CLI).
# On any failure FILE is deleted before the action fails.
verify_attestation() {
  local repo
  repo="$(action_repository)"
  if [ -z "$repo" ]; then
    rm -f "$1"
    fail 3 "cannot verify the attestation: the action's repository is unknown"
  fi
  if ! command -v gh >/dev/null 2>&1; then
    rm -f "$1"
    fail 3 "cannot verify the attestation: the GitHub CLI (gh) is not on this runner; install it, or set 'attestation: off' to trust the sha256 alone"
  fi
  if ! gh attestation verify "$1" --repo "$repo" \
    --signer-workflow "$repo/.github/workflows/release.yml" >&2; then
    rm -f "$1"
    fail 3 "$ASSET has no valid build provenance attestation from $repo's release workflow: refusing to run it"
  fi
  log "verified build provenance: $ASSET was built by $repo/.github/workflows/release.yml"
}

# A temporary directory for this run, as a POSIX path (Git Bash on Windows).
scratch_dir() {
  local d="${RUNNER_TEMP:-${TMPDIR:-/tmp}}"
  if command -v cygpath >/dev/null 2>&1; then d="$(cygpath -u "$d")"; fi
  printf '%s\n' "$d"
}

# Download the release binary and its SHA256SUMS; install it only when the binary's
# sha256 equals the one entry for it (sets BIN). Fails closed on anything else.
install_release() {
  detect_target
  local base dir sums want got n
  base="$(release_base)"
  dir="${INSTALL_DIR_HOOK:-$(scratch_dir)/gguf-gate-$VERSION}"
  mkdir -p "$dir"
  BIN="$dir/gguf-gate$EXE"
  rm -f "$BIN" "$dir/$ASSET.download" "$dir/SHA256SUMS"
  log "installing release $VERSION ($ASSET) from $base"

  fetch "$base/SHA256SUMS" "$dir/SHA256SUMS" || fail 3 "cannot download $base/SHA256SUMS"
  sums="$dir/SHA256SUMS"
  # sha256sum format: "<hex>  <name>" (text) or "<hex> *<name>" (binary); exactly one entry.
  n=$(awk -v a="$ASSET" '$2 == a || $2 == "*" a' "$sums" | wc -l | tr -d ' ')
  [ "$n" = 1 ] || fail 3 "SHA256SUMS of $VERSION has $n entries for $ASSET (want exactly 1): refusing to install"
  want=$(awk -v a="$ASSET" '$2 == a || $2 == "*" a { print tolower($1) }' "$sums")
  [[ $want =~ ^[0-9a-f]{64}$ ]] || fail 3 "SHA256SUMS entry for $ASSET is not a sha256: '$want'"

  fetch "$base/$ASSET" "$dir/$ASSET.download" || fail 3 "cannot download $base/$ASSET"
  got=$(sha256_of "$dir/$ASSET.download")
  if [ "$got" != "$want" ]; then
    rm -f "$dir/$ASSET.download"
    fail 3 "checksum mismatch for $ASSET: SHA256SUMS says $want, the download is $got: refusing to run it"
  fi
  log "verified sha256 $got"
  if [ "$(attestation_wanted)" = yes ]; then
    verify_attestation "$dir/$ASSET.download"
  fi
  chmod +x "$dir/$ASSET.download"
  mv -f "$dir/$ASSET.download" "$BIN"
}

# Build and install from the action's checkout (sets BIN). The explicit --target is the
# host: .cargo/config.toml pins x86_64-unknown-linux-gnu, which is wrong elsewhere.
install_source() {
  command -v cargo >/dev/null 2>&1 || fail 3 "'version: source' needs a Rust toolchain (cargo) on the runner"
  local host root
  host="$(rustc -vV | sed -n 's/^host: //p')"
  [ -n "$host" ] || fail 3 "cannot read the host target from 'rustc -vV'"
  root="${INSTALL_DIR_HOOK:-$(scratch_dir)/gguf-gate-source}"
  log "building from source in $ACTION_PATH for $host (cargo install --locked)"
  # From inside the checkout so that its .cargo/config.toml (static Linux binary) applies.
  (cd "$ACTION_PATH" && cargo install --locked --force --quiet --path "$ACTION_PATH" \
    --root "$root" --target "$host") || fail 3 "cargo install from $ACTION_PATH failed"
  BIN="$root/bin/gguf-gate"
  case "$host" in *windows*) BIN="$BIN.exe" ;; esac
  [ -x "$BIN" ] || fail 3 "cargo install did not produce $BIN"
}

# Run the gate. The binary itself writes annotations, the job summary and the step
# outputs (passed, fingerprint, report paths); its exit code is the action's.
run_check() {
  local args=(check "${MODELS[@]}")
  if [ -n "$POLICY" ]; then args+=(--policy "$POLICY"); fi
  if [ -n "$TOKENIZER" ]; then args+=(--tokenizer "$TOKENIZER"); fi
  if [ "$STRICT" = true ]; then args+=(--strict); fi
  args+=(--fail-level "$FAIL_LEVEL")
  if [ -n "$SARIF" ]; then args+=(--sarif "$SARIF"); fi
  if [ -n "$JUNIT" ]; then args+=(--junit "$JUNIT"); fi
  if [ -n "$JSON" ]; then args+=(--json "$JSON"); fi
  if [ -n "$HTML" ]; then args+=(--html "$HTML"); fi
  args+=(--format github)
  log "$BIN ${args[*]}"
  local rc=0
  "$BIN" "${args[@]}" || rc=$?
  if [ "$rc" != 0 ]; then log "gguf-gate check exited with $rc"; fi
  return "$rc"
}

main() {
  read_inputs
  resolve_version
  if [ "$VERSION" = source ]; then install_source; else install_release; fi
  run_check
}

# Sourcing the file (the tests do) defines the functions without running anything.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
