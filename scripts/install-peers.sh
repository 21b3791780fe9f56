#!/usr/bin/env bash
# Installs the peer VPNs `benchmark compare` measures next to n2n-rs (run as root):
# tinc 1.0 and nebula from Debian, wg(8) for boringtun's UAPI, ntop's n2n v1 from Debian
# (unpacked under /opt/n2n-rs-peers), vpncloud 2.3.0 and boringtun-cli 0.7.1 from crates.io
# (about 3 minutes each on 2 cores). Idempotent.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
missing=()
command -v tincd >/dev/null 2>&1 || [ -x /usr/sbin/tincd ] || missing+=(tinc)
command -v nebula >/dev/null 2>&1 || missing+=(nebula)
command -v wg >/dev/null 2>&1 || missing+=(wireguard-tools)
command -v ethtool >/dev/null 2>&1 || missing+=(ethtool)
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-peers: apt-get install ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v ifconfig >/dev/null 2>&1 || apt-get install -y -qq --no-install-recommends net-tools >/dev/null
# ntop's n2n v1 from Debian, unpacked off the PATH rather than installed: its `edge` and
# `supernode` would otherwise shadow n2n-rs's.
n2n_dir=/opt/n2n-rs-peers/n2n
if [ ! -x "$n2n_dir/usr/sbin/edge" ]; then
    echo "install-peers: unpacking Debian's n2n (v1) into $n2n_dir"
    tmp=$(mktemp -d)
    chmod 755 "$tmp"
    (cd "$tmp" && apt-get download -qq n2n)
    mkdir -p "$n2n_dir"
    dpkg-deb -x "$tmp"/n2n_*.deb "$n2n_dir"
    rm -rf "$tmp"
fi
# Their own target dir, so they never mix with (or invalidate) this workspace's build.
export CARGO_TARGET_DIR="${PEERS_TARGET_DIR:-/tmp/n2n-rs-peers-target}"
command -v vpncloud >/dev/null 2>&1 || cargo install --locked vpncloud --version 2.3.0
command -v boringtun-cli >/dev/null 2>&1 || cargo install --locked boringtun-cli --version 0.7.1
echo "install-peers: tinc nebula vpncloud boringtun n2n ready"
