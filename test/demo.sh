#!/usr/bin/env bash
# The seed's NDP proxy example in network namespaces:
#   router (2001:db8::1/64, on-link for 2001:db8::/64)
#     | eth0 -- eth0
#   host (2001:db8::c001/64) -- docker0 (fe80::1) -- containers in 2001:db8::c008/125
# v6dp runs on the host and answers the router's Neighbor Solicitations for
# the live container addresses. Everything is removed on exit.
set -euo pipefail
BIN=$(readlink -f "${1:-bin/v6dp}")
PASS_OBJ=$(dirname "$(readlink -f "$0")")/../loader/pass_bpfel.o
DP=${DATAPLANE:-auto}
TAG=demo$$
R=v6dp-router-$TAG H=v6dp-host-$TAG
STATE=$(mktemp -d /tmp/v6dp-demo-XXXX)
PIN=/sys/fs/bpf/v6dp-$TAG
LOG=$STATE/daemon.log
DPID=

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
inhost() { nsenter --net=/run/netns/$H -- "$@"; }
v6dp() { inhost "$BIN" "$@" --state-dir "$STATE"; }

cleanup() {
	set +e
	[ -n "$DPID" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
	v6dp cleanup >/dev/null 2>&1
	for c in c1 c2 c3; do ip netns del "$c-$TAG" 2>/dev/null; done
	ip netns del $R 2>/dev/null; ip netns del $H 2>/dev/null
	rm -rf "$STATE" "$PIN"
	echo; echo "demo: cleaned up"
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || { echo "demo: needs root (sudo make demo)"; exit 1; }

say "topology: router and host namespaces, a veth between them"
ip netns add $R; ip netns add $H
ip link add r-$TAG type veth peer name h-$TAG
ip link set r-$TAG netns $R; ip link set h-$TAG netns $H
ip -n $R link set r-$TAG name eth0; ip -n $H link set h-$TAG name eth0
# No DAD on the fresh links: a real uplink has long finished it.
for ns in $R $H; do
	ip netns exec $ns sysctl -qw net.ipv6.conf.eth0.accept_dad=0
	ip -n $ns link set lo up; ip -n $ns link set eth0 up
done
ip -n $R addr add 2001:db8::1/64 dev eth0 nodad
ip -n $H addr add 2001:db8::c001/64 dev eth0 nodad
ip -n $H -6 route add default via 2001:db8::1 dev eth0
echo "router: 2001:db8::1/64   host: 2001:db8::c001/64   containers: 2001:db8::c008/125"
# A veth delivers native XDP_TX frames only if its far end runs XDP too; a
# physical NIC has no such condition. An XDP_PASS program on the router's
# end makes the veth behave like one, so the daemon can pick native XDP.
# (NO_PEER_XDP=1 leaves it off: the daemon then says why it takes TC.)
if [ -z "${NO_PEER_XDP:-}" ]; then
	ip -n $R link set dev eth0 xdp obj "$PASS_OBJ" sec xdp
	echo "router eth0: XDP_PASS program attached (behaves like a physical NIC for XDP_TX)"
fi

say "v6dp daemon --ipv6 --fixed-cidr-v6 2001:db8::c008/125 --uplink eth0 --ndp-proxy --dataplane $DP"
# nsenter execs the daemon, so $! is the daemon itself.
nsenter --net=/run/netns/$H -- "$BIN" daemon --ipv6 --fixed-cidr-v6 2001:db8::c008/125 --uplink eth0 --ndp-proxy \
	--dataplane "$DP" --state-dir "$STATE" --pin-dir "$PIN" >"$LOG" 2>&1 &
DPID=$!
for i in $(seq 50); do grep -q "daemon running" "$LOG" && break; sleep 0.1; done
sed 's/^/  /' "$LOG"

say "three containers: v6dp container add c1 c2 c3"
for c in c1 c2 c3; do v6dp container add "$c-$TAG"; done
sleep 0.5
echo "inside c1:"
ip netns exec c1-$TAG ip -6 addr show dev eth0 | sed 's/^/  /'
ip netns exec c1-$TAG ip -6 route | sed 's/^/  /'

say "BPF counters before the router resolves anything"
v6dp stats 2>/dev/null | grep -E "ns_answered|ns_not_live" || echo "  (kernel dataplane: no BPF counters)"

say "from the router: resolve and ping each container"
for a in 2001:db8::c009 2001:db8::c00a 2001:db8::c00b; do
	ip netns exec $R ping -c 2 -i 0.2 -W 2 $a | grep -E "packet loss"
done
ip netns exec $R ip -6 neigh show dev eth0 | grep 2001:db8::c0 | sed 's/^/  router neighbour: /'
echo "  host eth0 MAC: $(ip -n $H link show eth0 | awk '/ether/ {print $2}')"

say "TCP from the router into c1 (iperf3, 2 s, offloads at their defaults)"
ip netns exec c1-$TAG iperf3 -s -1 -B 2001:db8::c009 >/dev/null 2>&1 &
SRV=$!
sleep 0.3
ip netns exec $R iperf3 -c 2001:db8::c009 -t 2 -f g 2>&1 | grep -E "sender|receiver" | sed 's/^/  /' ||
	echo "  TCP transfer failed"
wait $SRV 2>/dev/null || true
v6dp stats 2>/dev/null | grep -E "^ *fwd_redirected|^ *fwd_pass_l4csum" | sed 's/^/  /' || true

say "ndisc6 from the router (shows answers sourced from the target: BPF dataplanes)"
for a in 2001:db8::c009 2001:db8::c00d; do
	echo "  ndisc6 $a:"; ip netns exec $R ndisc6 -1 -r 1 -w 500 $a eth0 2>&1 | sed 's/^/    /' || true
done
echo "  (2001:db8::c00d is unused: no answer is the right answer)"

say "BPF counters after: the answers came from the BPF responder"
v6dp stats 2>/dev/null | grep -E "ns_answered|ns_not_live" || echo "  (kernel dataplane: no BPF counters)"

say "v6dp status"
v6dp status

say "remove c2: its address stops answering"
v6dp container del c2-$TAG
sleep 0.3
ip netns exec $R ip -6 neigh flush dev eth0
ip netns exec $R ping -c 1 -W 1 2001:db8::c00a >/dev/null 2>&1 && echo "  c2 still answers (unexpected)" || echo "  2001:db8::c00a: no answer, as it should be"
ip netns exec $R ping -c 1 -W 1 2001:db8::c009 >/dev/null && echo "  2001:db8::c009: still reachable"
