#!/usr/bin/env bash
# Measures edge-to-edge TCP throughput and ping RTT through the overlay in network
# namespaces, next to the native veth path measured in the same run. Run as root after
# `cargo build --release`. Usage: scripts/measure-netns.sh [SECONDS]   (default 10)
# Topology: namespaces m-sw (bridge), m-sn 192.0.2.1, m-a 192.0.2.11, m-b 192.0.2.12;
# veth offloads off, so native is the per-packet ceiling (like ../shared/lab's
# native-nooffload). Everything is removed at exit.
set -euo pipefail
DUR="${1:-10}"
BIN="${CARGO_TARGET_DIR:-$(cd "$(dirname "$0")/.." && pwd)/target}/release"
RUN="$(mktemp -d)"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.3
    for n in m-a m-b m-sn m-sw; do ip netns del "$n" 2>/dev/null || true; done
    rm -rf "$RUN"
}
trap cleanup EXIT
command -v iperf3 >/dev/null || { echo "install iperf3 first (apt-get install iperf3)" >&2; exit 1; }
ip netns add m-sw
ip -n m-sw link add br0 type bridge
ip -n m-sw link set br0 up
i=0
for h in sn a b; do
    ip netns add "m-$h"
    ip -n "m-$h" link set lo up
    ip link add "p$i" netns m-sw type veth peer name eth0 netns "m-$h"
    ip -n m-sw link set "p$i" master br0 up
    ip -n "m-$h" addr add "192.0.2.$([ $h = sn ] && echo 1 || ([ $h = a ] && echo 11 || echo 12))/24" dev eth0
    ip -n "m-$h" link set eth0 up
    ip netns exec "m-$h" ethtool -K eth0 tso off gso off gro off >/dev/null 2>&1 || true
    i=$((i + 1))
done
measure() { # label server-ip
    ip netns exec m-b iperf3 -s -1 -D -p 5201 >/dev/null
    sleep 0.5
    local tcp
    tcp=$(ip netns exec m-a iperf3 -c "$2" -p 5201 -t "$DUR" -J | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e6))')
    local rtt
    rtt=$(ip netns exec m-a ping -q -c 50 -i 0.02 -s 56 "$2" | awk -F/ '/rtt|round-trip/ {print $5}')
    printf '%-8s TCP 1 stream %6s Mbit/s   ping avg %s ms\n' "$1" "$tcp" "$rtt"
}
measure native 192.0.2.12
ip netns exec m-sn "$BIN/supernode" -listen :7777 -state-dir "$RUN/sn" -api-listen "" -log-level warn & PIDS+=($!)
for h in a b; do
    ip netns exec "m-$h" "$BIN/edge" -community bench -supernode 192.0.2.1:7777 -passphrase bench-secret \
        -state-dir "$RUN/$h" -log-level warn & PIDS+=($!)
done
for _ in $(seq 1 100); do
    ipb=$(ip -n m-b -4 -o addr show dev n2n0 2>/dev/null | awk '{print $4}' | cut -d/ -f1 || true)
    [ -n "$ipb" ] && ip netns exec m-a ping -c1 -W1 "$ipb" >/dev/null 2>&1 && break
    sleep 0.2
done
sleep 2 # let punching settle on the direct path
measure overlay "$ipb"
ip netns exec m-a "$BIN/edge" peers
