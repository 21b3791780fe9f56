#!/usr/bin/env bash
# Runs every check and test of the project: formatting, clippy with warnings as errors, the
# whole test suite, a short smoke of every fuzz target, and the local demo in --check mode.
# Installs what the tests need first (scripts/setup.sh). Needs root: the integration tests
# build network namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings
echo "== cargo test"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --workspace --all-features 2>&1 | tee "$log"
for shot in "${CARGO_TARGET_DIR:-target}"/tmp/webui-*.png; do
    [ -f "$shot" ] && echo "web UI screenshot (CI artifact): $(realpath "$shot")"
done
echo "== fuzz smoke (every target 10 s; the long runs: scripts/fuzz.sh --runs 10000000)"
./scripts/fuzz.sh 10
echo "== demo (release build, namespaces, real NAT routers)"
./scripts/demo.sh --check
passed=$(awk '/^test result:/ {s += $4} END {print s + 0}' "$log")
failed=$(awk '/^test result:/ {s += $6} END {print s + 0}' "$log")
echo "tests: ${passed} passed, ${failed} failed"
