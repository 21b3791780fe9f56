#!/usr/bin/env bash
# Installs what building and testing need on a fresh Debian/Ubuntu machine (run as root).
# Idempotent: skips what is already there.
set -euo pipefail
missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }
need cc build-essential
need pkg-config pkg-config
need ip iproute2
need ping iputils-ping
need python3 python3
need nft nftables
need iperf3 iperf3
need ethtool ethtool
need curl curl
need setpriv util-linux
need conntrack conntrack
need chromium chromium
need chromedriver chromium-driver
[ -x /usr/sbin/miniupnpd ] || missing+=(miniupnpd-nftables)
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null 2>&1 || { echo "setup: cargo (Rust) is required: https://rustup.rs" >&2; exit 1; }
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt
