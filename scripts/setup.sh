#!/usr/bin/env bash
# Installs what building and testing need on a fresh Debian/Ubuntu machine (run as root).
# Idempotent: skips what is already there.
set -euo pipefail
need=()
for cmd in cc pkg-config; do command -v "$cmd" >/dev/null 2>&1 || need+=("$cmd"); done
if [ ${#need[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends build-essential pkg-config >/dev/null
fi
command -v cargo >/dev/null 2>&1 || { echo "setup: cargo (Rust) is required: https://rustup.rs" >&2; exit 1; }
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt
