package ctrl

import (
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/v6dp/v6dp/loader"
)

// The port guard's ownership rules, without root: the first port holding a
// MAC or a link-local address keeps it, a second claimant and claims on
// the host's or the gateway's addresses get nothing.
func TestPortEntries(t *testing.T) {
	mac := func(last byte) net.HardwareAddr { return net.HardwareAddr{0x02, 0x42, 0xac, 0x11, 0, last} }
	ll := netip.MustParseAddr
	gw := netip.MustParseAddr("fe80::1")
	hostLL := netip.MustParseAddr("fe80::aa")
	hostMAC := net.HardwareAddr{0x02, 0, 0x5e, 0, 0, 1}
	zero := make(net.HardwareAddr, 6)
	for _, tc := range []struct {
		name      string
		eps       map[int]*Endpoint
		prev      map[uint32]loader.Port
		want      map[uint32]loader.Port
		conflicts int
	}{
		{
			name: "each its own",
			eps: map[int]*Endpoint{
				5: {HostIf: "a", MAC: mac(2), LinkLocal: ll("fe80::2")},
				6: {HostIf: "b", MAC: mac(3), LinkLocal: ll("fe80::3")},
			},
			want: map[uint32]loader.Port{5: {MAC: mac(2), LinkLocal: ll("fe80::2")}, 6: {MAC: mac(3), LinkLocal: ll("fe80::3")}},
		},
		{
			name: "the gateway's fe80::1 claimed",
			eps:  map[int]*Endpoint{5: {HostIf: "a", MAC: mac(2), LinkLocal: gw}},
			want: map[uint32]loader.Port{5: {MAC: mac(2)}}, conflicts: 1,
		},
		{
			name: "the host's link-local claimed",
			eps:  map[int]*Endpoint{5: {HostIf: "a", MAC: mac(2), LinkLocal: hostLL}},
			want: map[uint32]loader.Port{5: {MAC: mac(2)}}, conflicts: 1,
		},
		{
			name: "a neighbour's link-local claimed: the older port keeps it",
			eps: map[int]*Endpoint{
				9: {HostIf: "late", MAC: mac(3), LinkLocal: ll("fe80::2")},
				5: {HostIf: "first", MAC: mac(2), LinkLocal: ll("fe80::2")},
			},
			want:      map[uint32]loader.Port{5: {MAC: mac(2), LinkLocal: ll("fe80::2")}, 9: {MAC: mac(3)}},
			conflicts: 1,
		},
		{
			name: "a neighbour's MAC: the zero MAC, so nothing is sent",
			eps: map[int]*Endpoint{
				5: {HostIf: "first", MAC: mac(2), LinkLocal: ll("fe80::2")},
				9: {HostIf: "late", MAC: mac(2), LinkLocal: ll("fe80::9")},
			},
			want:      map[uint32]loader.Port{5: {MAC: mac(2), LinkLocal: ll("fe80::2")}, 9: {MAC: zero}},
			conflicts: 1,
		},
		{
			name: "an older port takes over a newer one's MAC: the holder keeps it",
			eps: map[int]*Endpoint{
				5: {HostIf: "attacker", MAC: mac(9), LinkLocal: ll("fe80::5")},
				9: {HostIf: "victim", MAC: mac(9), LinkLocal: ll("fe80::9")},
			},
			prev:      map[uint32]loader.Port{5: {MAC: mac(5)}, 9: {MAC: mac(9), LinkLocal: ll("fe80::9")}},
			want:      map[uint32]loader.Port{5: {MAC: zero}, 9: {MAC: mac(9), LinkLocal: ll("fe80::9")}},
			conflicts: 1,
		},
		{
			name:      "the host's MAC",
			eps:       map[int]*Endpoint{5: {HostIf: "a", MAC: hostMAC}},
			want:      map[uint32]loader.Port{5: {MAC: zero}},
			conflicts: 1,
		},
		{
			name: "no MAC known yet",
			eps:  map[int]*Endpoint{5: {HostIf: "a"}},
			want: map[uint32]loader.Port{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, conflicts := portEntries(tc.eps, tc.prev, map[netip.Addr]bool{gw: true, hostLL: true}, map[string]bool{hostMAC.String(): true})
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("entries (-want +got):\n%s", diff)
			}
			if len(conflicts) != tc.conflicts {
				t.Errorf("conflicts %q, want %d", conflicts, tc.conflicts)
			}
		})
	}
}
