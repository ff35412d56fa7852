package loader

import (
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Endpoints of several networks in one table: each network has its own
// bridge (router MAC) and uplink. Network 0 is the fixtures' usual one;
// network 1 has a bridge of its own; network 2 was never written; network
// 3 leaves by the uplink in slot 1.
var (
	bridge1MAC = net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x01, 0x0b}
	epN1MAC    = net.HardwareAddr{0x02, 0x42, 0xac, 0x12, 0x00, 0x0a}
	epN1       = netip.MustParseAddr("2001:db8:2::a")
	epN2       = netip.MustParseAddr("2001:db8:3::a")
	epN3       = netip.MustParseAddr("2001:db8:4::a")
)

func newNetworksDataplane(t *testing.T) *Dataplane {
	t.Helper()
	d := newForwardDataplane(t)
	fwd := EndpointProxy | EndpointForward
	for _, e := range []Endpoint{
		{Addr: epN1, Ifindex: 1, MAC: epN1MAC, MTU: 1500, Flags: fwd, Net: 1},
		{Addr: epN2, Ifindex: 1, MAC: epN1MAC, MTU: 1500, Flags: fwd, Net: 2},
		{Addr: epN3, Ifindex: 1, MAC: epN1MAC, MTU: 1500, Flags: fwd, Net: 3},
	} {
		if err := d.PutEndpoint(e); err != nil {
			t.Fatal(err)
		}
	}
	want := map[uint32]Network{
		0: testNetwork(),
		1: {BridgeIndex: 1, BridgeMAC: bridge1MAC},
		3: {BridgeIndex: 1, BridgeMAC: bridge1MAC, Uplink: 1},
	}
	if err := d.SyncNetworks(want); err != nil {
		t.Fatal(err)
	}
	got, err := d.Networks()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("networks map (-want +got):\n%s", diff)
	}
	return d
}

// onPort moves A's port to network net for one case.
func onPort(p Port) func(*Dataplane) error {
	return func(d *Dataplane) error { return d.SyncPorts(map[uint32]Port{1: p}) }
}

func restoreAPort(d *Dataplane) error {
	return d.SyncPorts(map[uint32]Port{1: {MAC: epAMAC, LinkLocal: epALL}})
}

// otherSlot puts the frame's interface (lo) in uplink slot 1 and another
// in slot 0, as on a host with two uplinks where the frame came in on the
// second.
func otherSlot(d *Dataplane) error {
	c := forwardUplink()
	c.Ifindex = 99
	if err := d.SetUplinkAt(0, c); err != nil {
		return err
	}
	return d.SetUplinkAt(1, forwardUplink())
}

func oneSlot(d *Dataplane) error {
	if err := d.ClearUplinksFrom(1); err != nil {
		return err
	}
	return d.SetUplink(forwardUplink())
}

func networkIngressCases(redirect, answer, pass uint32) []fwdCase {
	onlyOther := func(d *Dataplane) error {
		c := forwardUplink()
		c.Ifindex = 99
		return d.SetUplink(c)
	}
	return []fwdCase{
		{name: "UDP to an endpoint of network 1: its bridge's MAC as source", in: fromRouter(epN1, protoUDP, 64, udp(16)).bytes(),
			verdict: redirect, want: fromRouter(epN1, protoUDP, 64, udp(16)).routed(epN1MAC, bridge1MAC), counter: "fwd_redirected",
			nets: map[uint32]NetStats{1: {FwdRedirected: 1}}},
		{name: "UDP to an endpoint of network 0", in: fromRouter(epA, protoUDP, 64, udp(16)).bytes(),
			verdict: redirect, want: fromRouter(epA, protoUDP, 64, udp(16)).routed(epAMAC, bridgeMAC), counter: "fwd_redirected",
			nets: map[uint32]NetStats{0: {FwdRedirected: 1}}},
		{name: "to an endpoint of a network never written", in: fromRouter(epN2, protoUDP, 64, udp(16)).bytes(),
			verdict: pass, counter: "fwd_pass_not_local", nets: map[uint32]NetStats{}},
		{name: "to an endpoint of a network on another uplink", in: fromRouter(epN3, protoUDP, 64, udp(16)).bytes(),
			verdict: pass, counter: "fwd_pass_other_uplink", nets: map[uint32]NetStats{}},
		{name: "NS for an endpoint of network 1", in: multicastNS(epN1).frame(), verdict: answer, counter: "ns_answered",
			want: na{ethDst: peerMAC, src: epN1, dst: peerAddr, target: epN1, router: true, solicited: true}.frame(),
			nets: map[uint32]NetStats{1: {NSAnswered: 1}}},
		{name: "NS for an endpoint of a network on another uplink", in: multicastNS(epN3).frame(), verdict: pass,
			counter: "ns_other_uplink", nets: map[uint32]NetStats{}},
		{name: "frame in on the second uplink for network 3", in: fromRouter(epN3, protoUDP, 64, udp(16)).bytes(),
			verdict: redirect, want: fromRouter(epN3, protoUDP, 64, udp(16)).routed(epN1MAC, bridge1MAC), counter: "fwd_redirected",
			setup: otherSlot, undo: oneSlot, nets: map[uint32]NetStats{3: {FwdRedirected: 1}}},
		{name: "NS in on the second uplink for network 3", in: multicastNS(epN3).frame(), verdict: answer, counter: "ns_answered",
			want:  na{ethDst: peerMAC, src: epN3, dst: peerAddr, target: epN3, router: true, solicited: true}.frame(),
			setup: otherSlot, undo: oneSlot, nets: map[uint32]NetStats{3: {NSAnswered: 1}}},
		{name: "NS in on the second uplink for network 0", in: multicastNS(epA).frame(), verdict: pass, counter: "ns_other_uplink",
			setup: otherSlot, undo: oneSlot, nets: map[uint32]NetStats{}},
		{name: "frame on an interface with no uplink slot", in: fromRouter(epA, protoUDP, 64, udp(16)).bytes(), verdict: pass,
			counter: "pass_not_uplink", setup: onlyOther, undo: oneSlot, nets: map[uint32]NetStats{}},
	}
}

func networkEgressCases() []fwdCase {
	// A on network 1 sends to its router, network 1's bridge.
	n1 := func(dst netip.Addr) frame {
		f := fromA(dst, protoUDP, 64, udp(8))
		f.ethDst = bridge1MAC
		return f
	}
	switchedN1 := fromA(epN1, protoUDP, 64, udp(8))
	switchedN1.ethDst = epN1MAC
	switchedB := fromA(epB, protoUDP, 64, udp(8))
	switchedB.ethDst = epBMAC
	aOn := func(net uint32) func(*Dataplane) error {
		return onPort(Port{MAC: epAMAC, LinkLocal: epALL, Net: net})
	}
	return []fwdCase{
		{name: "routed from network 0 to network 1: network 1's router MAC", in: fromA(epN1, protoUDP, 64, udp(8)).bytes(),
			verdict: tcRedirect, want: fromA(epN1, protoUDP, 64, udp(8)).routed(epN1MAC, bridge1MAC), counter: "egress_local",
			nets: map[uint32]NetStats{0: {EgressLocal: 1}}},
		{name: "switched from network 0 to an endpoint of network 1: the bridges are apart", in: switchedN1.bytes(),
			verdict: tcNext, counter: "egress_pass", nets: map[uint32]NetStats{}},
		{name: "switched within network 0", in: switchedB.bytes(), verdict: tcRedirect, counter: "egress_local",
			nets: map[uint32]NetStats{0: {EgressLocal: 1}}},
		{name: "switched within network 0 from a port the bridge isolates", in: switchedB.bytes(), verdict: tcNext,
			counter: "egress_pass", setup: onPort(Port{MAC: epAMAC, LinkLocal: epALL, NoSwitch: true}), undo: restoreAPort,
			nets: map[uint32]NetStats{}},
		{name: "routed from an isolated port still routed", in: fromA(epB, protoUDP, 64, udp(8)).bytes(), verdict: tcRedirect,
			want: fromA(epB, protoUDP, 64, udp(8)).routed(epBMAC, bridgeMAC), counter: "egress_local",
			setup: onPort(Port{MAC: epAMAC, LinkLocal: epALL, NoSwitch: true}), undo: restoreAPort,
			nets: map[uint32]NetStats{0: {EgressLocal: 1}}},
		{name: "on network 1, a frame for network 0's router MAC is not routed", in: fromA(remote, protoUDP, 64, udp(8)).bytes(),
			verdict: tcNext, counter: "egress_pass", setup: aOn(1), undo: restoreAPort, nets: map[uint32]NetStats{}},
		{name: "on network 1, off-host through network 1's router", in: n1(remote).bytes(), verdict: tcRedirect,
			want: n1(remote).routed(bridge1MAC, epAMAC), counter: "egress_fib", setup: aOn(1), undo: restoreAPort,
			nets: map[uint32]NetStats{1: {EgressFIB: 1}}},
		{name: "on a network never written: the kernel delivers", in: fromA(remote, protoUDP, 64, udp(8)).bytes(),
			verdict: tcNext, counter: "egress_pass", setup: aOn(2), undo: restoreAPort, nets: map[uint32]NetStats{}},
		{name: "a spoofed source counts as network 1's drop", in: func() []byte {
			f := n1(remote)
			f.src = deadAddr
			return f.bytes()
		}(), verdict: tcShot, counter: "egress_spoof_drop", setup: aOn(1), undo: restoreAPort,
			nets: map[uint32]NetStats{1: {EgressDrop: 1}}},
	}
}

func TestNetworkPackets(t *testing.T) {
	ns := fwdNetns(t)
	d := newNetworksDataplane(t)
	runSuites(t, ns, d, []caseSuite{
		{"xdp_uplink", d.objs.XdpUplink, networkIngressCases(xdpRedirect, xdpTX, xdpPass)},
		{"tc_uplink", d.objs.TcUplink, networkIngressCases(tcRedirect, tcRedirect, tcNext)},
		{"tc_endpoint", d.egress.TcEndpoint, networkEgressCases()},
	})
}

// A network that goes is emptied and its counts zeroed, so that the next
// network given its id starts from nothing.
func TestSyncNetworksClears(t *testing.T) {
	d := newNetworksDataplane(t)
	var vals []uplinkNetStats
	if err := d.objs.V6dpNetStats.Lookup(uint32(1), &vals); err != nil {
		t.Fatal(err)
	}
	vals[0].NsAnswered = 5
	if err := d.objs.V6dpNetStats.Put(uint32(1), vals); err != nil {
		t.Fatal(err)
	}
	if err := d.SyncNetworks(map[uint32]Network{0: testNetwork()}); err != nil {
		t.Fatal(err)
	}
	got, err := d.Networks()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[uint32]Network{0: testNetwork()}, got); diff != "" {
		t.Errorf("networks after sync (-want +got):\n%s", diff)
	}
	stats, err := d.NetStats()
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := stats[1]; ok {
		t.Errorf("network 1's counts after it went: %+v, want none", s)
	}
	for _, bad := range []struct {
		id uint32
		n  Network
	}{
		{uint32(MaxNetworks), testNetwork()},
		{1, Network{BridgeIndex: 1}},
		{1, Network{BridgeMAC: bridge1MAC}},
		{1, Network{BridgeIndex: 1, BridgeMAC: bridge1MAC, Uplink: uint32(MaxUplinks)}},
	} {
		if err := d.SetNetwork(bad.id, bad.n); err == nil {
			t.Errorf("SetNetwork(%d, %+v) = nil, want an error", bad.id, bad.n)
		}
	}
	if err := d.PutEndpoint(Endpoint{Addr: epN1, Ifindex: 1, MAC: epN1MAC, Net: uint32(MaxNetworks)}); err == nil {
		t.Error("an endpoint on network MaxNetworks was accepted")
	}
	if err := d.SetUplinkAt(uint32(MaxUplinks), testUplink()); err == nil {
		t.Error("uplink slot MaxUplinks was accepted")
	}
}

func netStatsDelta(before, after map[uint32]NetStats) map[uint32]NetStats {
	out := map[uint32]NetStats{}
	for id, a := range after {
		b := before[id]
		d := NetStats{NSAnswered: a.NSAnswered - b.NSAnswered, FwdRedirected: a.FwdRedirected - b.FwdRedirected,
			EgressLocal: a.EgressLocal - b.EgressLocal, EgressFIB: a.EgressFIB - b.EgressFIB, EgressDrop: a.EgressDrop - b.EgressDrop}
		if d != (NetStats{}) {
			out[id] = d
		}
	}
	return out
}
