package bench

import (
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
)

// The peers are configured as an operator of a host with N containers
// would: the neighbour table raised for N, proxy_delay 0, IPv6 off on the
// bridge ports (see ctrl.preparePort for what it costs when on).

// raiseNeighTable raises the IPv6 neighbour table's limits for n
// containers and restores them when b ends. The table is one for all
// namespaces (gc_thresh* show the same values everywhere), so the host, the
// router and whatever else runs share it: room for the host's entry for
// each container and the router's for each address, twice over. Values
// already higher stay.
func raiseNeighTable(b *testing.B, n int) string {
	b.Helper()
	var got []string
	for i, want := range []int{2 * n, 4 * n, 8 * n} {
		key := fmt.Sprintf("/proc/sys/net/ipv6/neigh/default/gc_thresh%d", i+1)
		old, err := os.ReadFile(key)
		if err != nil {
			b.Fatal(err)
		}
		v, _ := strconv.Atoi(strings.TrimSpace(string(old)))
		if v < want {
			if err := os.WriteFile(key, []byte(strconv.Itoa(want)), 0o644); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = os.WriteFile(key, old, 0o644) })
			v = want
		}
		got = append(got, strconv.Itoa(v))
	}
	return "gc_thresh1/2/3 " + strings.Join(got, "/")
}

// portsIPv6 turns IPv6 on or off on every bridge port in the host
// namespace (the daemon turns it off itself, and its cleanup back on).
func (bt *benchTopo) portsIPv6(on bool) {
	bt.b.Helper()
	v := "1"
	if on {
		v = "0"
	}
	bt.MustRun(bt.Host, "sh", "-c", "for p in /proc/sys/net/ipv6/conf/vb*/disable_ipv6; do echo "+v+" > $p; done")
}

// proxyEntryCount is the number of kernel proxy entries on the host's eth0.
func (bt *benchTopo) proxyEntryCount() int {
	bt.b.Helper()
	out := bt.MustRun(bt.Host, "ip", "-6", "neigh", "show", "proxy", "dev", "eth0")
	return strings.Count(out, "\n")
}

func routerAddr6() netip.Addr { return netip.MustParseAddr(routerAddr) }

// portAddrs are the containers' addresses.
func portAddrs(bt *benchTopo) []netip.Addr {
	var out []netip.Addr
	for _, p := range bt.Ports {
		out = append(out, p.Addr)
	}
	return out
}
