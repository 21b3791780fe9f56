#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 30). Installs cargo-fuzz if needed.
# Runs on the stable toolchain with `-s none` (no sanitizer); the decoders are safe Rust.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECONDS_PER_TARGET="${1:-30}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
cargo fuzz build -s none
for target in $(cargo fuzz list); do
    echo "== fuzz $target for ${SECONDS_PER_TARGET}s"
    cargo fuzz run -s none "$target" -- -max_total_time="$SECONDS_PER_TARGET"
done
