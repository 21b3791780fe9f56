#!/usr/bin/env bash
# n2n-rs local demo: a supernode and three edges in network namespaces, two of them behind
# NAT routers built with nftables, talking to each other across the overlay.
#
#   sudo ./scripts/demo.sh           # run, show, and keep running until Ctrl-C
#   sudo ./scripts/demo.sh --check   # run, show, verify, clean up, exit (used by the tests)
#
# Topology (everything lives in namespaces named demo-*; nothing is routed off this machine):
#
#   demo-sw: bridge "inet" = a fake Internet, 203.0.113.0/24 (TEST-NET-3)
#     demo-sn  203.0.113.1   supernode
#     demo-r1  203.0.113.21  NAT router, port-restricted cone (nft masquerade), drops
#              unsolicited inbound; LAN 10.1.0.0/24 with demo-n1 (edge "alice", 10.1.0.2)
#     demo-r2  203.0.113.22  NAT router, symmetric (nft masquerade random); LAN 10.2.0.0/24
#              with demo-n2 (edge "bob", 10.2.0.2)
#     demo-h3  203.0.113.13  public host (edge "carol")
#
# NAT theory: alice<->carol and bob<->carol punch through (direct); alice<->bob cannot (a
# symmetric NAT facing a port-restricted one), so their frames go through the supernode.
set -euo pipefail
CHECK=0
[ "${1:-}" = "--check" ] && CHECK=1
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RUN="$(mktemp -d /tmp/n2n-demo.XXXXXX)"
PIDS=()
NS=(demo-sw demo-sn demo-r1 demo-r2 demo-h3 demo-n1 demo-n2)

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    for n in "${NS[@]}"; do ip netns del "$n" 2>/dev/null || true; done
    rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (it creates network namespaces and TAP devices)" >&2; exit 1; }
"$ROOT/scripts/setup.sh"
say "building (release)"
(cd "$ROOT" && cargo build --release --quiet -p n2n-supernode -p n2n-edge)
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"

for n in "${NS[@]}"; do ip netns del "$n" 2>/dev/null || true; done
mkns() { ip netns add "$1"; ip -n "$1" link set lo up; }
attach() { # ns ifname switch-port address
    ip link add "$3" netns demo-sw type veth peer name "$2" netns "$1"
    ip -n demo-sw link set "$3" master inet up
    ip -n "$1" addr add "$4" dev "$2"
    ip -n "$1" link set "$2" up
}
say "building the network"
mkns demo-sw
ip -n demo-sw link add inet type bridge
ip -n demo-sw link set inet up
mkns demo-sn; attach demo-sn eth0 p-sn 203.0.113.1/24
mkns demo-h3; attach demo-h3 eth0 p-h3 203.0.113.13/24
router() { # router host wan lan-prefix masquerade-flags
    mkns "$1"; mkns "$2"
    attach "$1" eth0 "p-$1" "$3/24"
    ip link add lan0 netns "$1" type veth peer name eth0 netns "$2"
    ip -n "$1" addr add "$4.1/24" dev lan0
    ip -n "$1" link set lan0 up
    ip -n "$2" addr add "$4.2/24" dev eth0
    ip -n "$2" link set eth0 up
    ip -n "$2" route add default via "$4.1"
    ip netns exec "$1" sysctl -qw net.ipv4.ip_forward=1
    ip netns exec "$1" nft -f - <<EOF
table ip demo {
    chain postrouting { type nat hook postrouting priority srcnat; policy accept; oifname "eth0" masquerade $5; }
    chain input { type filter hook input priority filter; policy accept; iifname "eth0" ct state new drop; }
}
EOF
}
router demo-r1 demo-n1 203.0.113.21 10.1.0 ""
router demo-r2 demo-n2 203.0.113.22 10.2.0 "random"
echo "supernode 203.0.113.1; alice 10.1.0.2 behind port-restricted NAT 203.0.113.21;"
echo "bob 10.2.0.2 behind symmetric NAT 203.0.113.22; carol 203.0.113.13 (public)"

say "starting the supernode and three edges"
ip netns exec demo-sn "$BIN/supernode" -listen :7777 -state-dir "$RUN/sn" -api-listen 127.0.0.1:7779 \
    -log-level warn 2>"$RUN/sn.log" & PIDS+=($!)
edge() { # ns name [api address]
    ip netns exec "$1" "$BIN/edge" -community demo -supernode 203.0.113.1:7777 -passphrase demo-secret \
        -edge-id "$2" -state-dir "$RUN/$2" -port-mapping false -api-listen "${3:-127.0.0.1:7778}" \
        2>"$RUN/$2.log" & PIDS+=($!)
}
# Let this host's browser reach alice's page: a point-to-point link 198.18.0.1 <-> 198.18.0.2
# (benchmarking range; removed with alice's namespace).
ip link add demo-ui type veth peer name ui0 netns demo-n1
ip addr add 198.18.0.1/30 dev demo-ui
ip link set demo-ui up
ip -n demo-n1 addr add 198.18.0.2/30 dev ui0
ip -n demo-n1 link set ui0 up
edge demo-n1 alice 0.0.0.0:7778
edge demo-n2 bob
edge demo-h3 carol

peers_json() { ip netns exec "$1" "$BIN/edge" peers --json 2>/dev/null || true; }
paths_ready() { # every edge knows two peers and the expected paths are settled
    python3 - "$(peers_json demo-n1)" "$(peers_json demo-n2)" "$(peers_json demo-h3)" <<'EOF'
import json, sys
try:
    views = [json.loads(a) for a in sys.argv[1:]]
except ValueError:
    sys.exit(1)
names = {}
for v in views:
    names[v["self"]["desc"]] = {p["desc"]: p["path"] for p in v["peers"]}
want = {("alice", "carol"): "direct", ("bob", "carol"): "direct", ("alice", "bob"): "relayed"}
ok = all(names.get(a, {}).get(b) == w and names.get(b, {}).get(a) == w for (a, b), w in want.items())
sys.exit(0 if ok else 1)
EOF
}
say "waiting for registration and hole punching"
for _ in $(seq 1 150); do paths_ready && break; sleep 0.2; done
for pair in "demo-n1 alice" "demo-n2 bob" "demo-h3 carol"; do
    set -- $pair
    echo "--- $2 sees:"
    ip netns exec "$1" "$BIN/edge" peers
done
paths_ready || { echo "demo: paths did not settle as expected"; tail -5 "$RUN"/*.log; exit 1; }

ip_of() { ip -n "$1" -4 -o addr show dev n2n0 | awk '{print $4}' | cut -d/ -f1; }
IP_BOB=$(ip_of demo-n2); IP_CAROL=$(ip_of demo-h3)
curl -sf http://198.18.0.2:7778/peers >/dev/null || { echo "demo: alice's page is not served"; exit 1; }
say "ping alice -> carol (direct) and alice -> bob (relayed)"
ip netns exec demo-n1 ping -c 3 -i 0.2 "$IP_CAROL"
ip netns exec demo-n1 ping -c 3 -i 0.2 "$IP_BOB"

say "throughput alice -> carol over the overlay (3 s)"
if command -v iperf3 >/dev/null; then
    ip netns exec demo-h3 iperf3 -s -1 -D >/dev/null
    sleep 0.5
    ip netns exec demo-n1 iperf3 -c "$IP_CAROL" -t 3 | tail -4
else
    echo "(install iperf3 for a throughput test)"
fi

say "where to look"
echo "alice's live peer graph: open http://198.18.0.2:7778/peers in a browser on this machine"
echo "peers as JSON:      curl -s http://198.18.0.2:7778/peers.json"
echo "supernode status:   ip netns exec demo-sn curl -s http://127.0.0.1:7779/status"
echo "peer table:         ip netns exec demo-n1 $BIN/edge peers"
if [ "$CHECK" -eq 1 ]; then
    say "demo check passed"
    exit 0
fi
say "running; press Ctrl-C to stop and clean up"
while true; do sleep 3600; done
