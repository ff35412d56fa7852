package loader

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Forwarding fixtures. The forwarding tests run in a namespace of their
// own, where ifindex 1 is its lo (standing in for the ports: test runs do
// not perform redirects, and the devmap only needs a device), up0 is the
// uplink and up1 another interface, with routes and neighbours that make
// every FIB result reproducible.
var (
	bridgeMAC = net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x00, 0x0b}
	epAMAC    = net.HardwareAddr{0x02, 0x42, 0xac, 0x11, 0x00, 0x0a}
	epBMAC    = net.HardwareAddr{0x02, 0x42, 0xac, 0x11, 0x00, 0x0b}
	// epA sends (its port is skb->ifindex, 1); epB and epSmall receive.
	epA     = netip.MustParseAddr("2001:db8:1::a")
	epB     = netip.MustParseAddr("2001:db8:1::b")
	epSmall = netip.MustParseAddr("2001:db8:1::d")
	// epOther sits on another port (9): a source A must not use.
	epOther = netip.MustParseAddr("2001:db8:1::c")
	epALL   = netip.MustParseAddr("fe80::42:acff:fe11:a")
	// Off-host: via the router with a neighbour entry, via one without,
	// unreachable, through another interface, and the host's own address.
	remote      = netip.MustParseAddr("2001:db8:2::1")
	remoteNoNb  = netip.MustParseAddr("2001:db8:3::1")
	unreachable = netip.MustParseAddr("2001:db8:dead::1")
	elsewhere   = netip.MustParseAddr("2001:db8:77::1")
	hostOwn     = netip.MustParseAddr("2001:db8::c001")
)

// fwdUplinkIndex is up0's ifindex in fwdNetns.
var fwdUplinkIndex = 2

// suiteUplinkIndex is the uplink ifindex the running suite needs in the
// config: the interface a test run's frame comes in on (lo, 1) for the
// uplink programs, up0 (the FIB's output interface) for the port program.
var suiteUplinkIndex = 2

const (
	xdpDrop     = 1
	xdpRedirect = 4
	tcShot      = 2
	protoUDP    = 17
	protoTCP    = 6
	protoFrag   = 44
)

// fwdNetns makes the namespace described above and returns its handle.
func fwdNetns(t testing.TB) netns.NsHandle {
	t.Helper()
	name := addNetns(t, "v6dpt-f-")
	run := func(args ...string) { ipCmd(t, append([]string{"-n", name}, args...)...) }
	ipCmd(t, "netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	ipCmd(t, "netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0")
	run("link", "set", "lo", "up")
	// veths, as this kernel may lack the dummy driver.
	run("link", "add", "up0", "address", uplinkMAC.String(), "type", "veth", "peer", "name", "up0p")
	run("link", "add", "up1", "type", "veth", "peer", "name", "up1p")
	for _, l := range []string{"up0", "up0p", "up1", "up1p"} {
		run("link", "set", l, "up")
	}
	run("addr", "add", hostOwn.String()+"/64", "dev", "up0", "nodad")
	// Forwarding heeds a route MTU only when it is locked, the kernel's
	// ip6_forward like bpf_fib_lookup.
	run("-6", "route", "add", "2001:db8:2::/48", "via", peerAddr.String(), "dev", "up0", "mtu", "lock", "1400")
	run("-6", "route", "add", "2001:db8:3::/48", "via", "2001:db8::2", "dev", "up0")
	run("-6", "route", "add", "unreachable", "2001:db8:dead::/48")
	run("-6", "route", "add", "2001:db8:77::/48", "dev", "up1")
	run("-6", "neigh", "replace", peerAddr.String(), "lladdr", peerMAC.String(), "dev", "up0", "nud", "permanent")
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	up, err := nl.LinkByName("up0")
	if err != nil {
		t.Fatal(err)
	}
	fwdUplinkIndex = up.Attrs().Index
	// The FIB's answers (local, routed, which interface) hold once the
	// links are operationally up.
	for _, l := range []string{"up0", "up0p", "up1", "up1p"} {
		waitOperUp(t, nl, l)
	}
	return h
}

// newForwardDataplane is newTestDataplane with forwarding endpoints and the
// bridge set, for fwdNetns.
func newForwardDataplane(t testing.TB) *Dataplane {
	t.Helper()
	d := newTestDataplane(t)
	if err := d.SetUplink(forwardUplink()); err != nil {
		t.Fatal(err)
	}
	fwd := EndpointProxy | EndpointForward
	for _, e := range []Endpoint{
		{Addr: epA, Ifindex: 1, MAC: epAMAC, HostMAC: uplinkMAC, MTU: 1500, Flags: fwd},
		{Addr: epB, Ifindex: 1, MAC: epBMAC, HostMAC: uplinkMAC, MTU: 1500, Flags: fwd},
		{Addr: epSmall, Ifindex: 1, MAC: epBMAC, HostMAC: uplinkMAC, MTU: 1280, Flags: fwd},
		{Addr: epOther, Ifindex: 9, MAC: epBMAC, HostMAC: uplinkMAC, MTU: 1500, Flags: EndpointProxy},
	} {
		if err := d.PutEndpoint(e); err != nil {
			t.Fatal(err)
		}
	}
	// A's port: its MAC and link-local are all it may send from.
	if err := d.SyncPorts(map[uint32]Port{1: {MAC: epAMAC, LinkLocal: epALL}}); err != nil {
		t.Fatal(err)
	}
	if err := d.SetNetwork(0, testNetwork()); err != nil {
		t.Fatal(err)
	}
	return d
}

// testNetwork is network 0 of the forwarding fixtures: its bridge is lo,
// where the FIB sees routed endpoint traffic arrive.
func testNetwork() Network { return Network{BridgeIndex: 1, BridgeMAC: bridgeMAC} }

func forwardUplink() UplinkConfig {
	c := testUplink()
	c.Ifindex = suiteUplinkIndex
	return c
}

// frame is an Ethernet frame carrying an IPv6 packet.
type frame struct {
	ethDst, ethSrc net.HardwareAddr
	src, dst       netip.Addr
	nextHdr, hop   uint8
	payload        []byte
}

func (f frame) bytes() []byte {
	b := ethHeader(f.ethDst, f.ethSrc, ethTypeIPv6)
	b = append(b, ipv6Header(f.src, f.dst, f.nextHdr, f.hop, len(f.payload))...)
	return append(b, f.payload...)
}

// routed is the frame a router makes of f for the next hop.
func (f frame) routed(dst, src net.HardwareAddr) []byte {
	f.ethDst, f.ethSrc, f.hop = dst, src, f.hop-1
	return f.bytes()
}

func udp(n int) []byte {
	b := make([]byte, 8+n)
	binary.BigEndian.PutUint16(b[0:], 40000)
	binary.BigEndian.PutUint16(b[2:], 5201)
	binary.BigEndian.PutUint16(b[4:], uint16(8+n))
	return b
}

func tcpSYN() []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b[0:], 40000)
	binary.BigEndian.PutUint16(b[2:], 5201)
	b[12], b[13] = 5<<4, 0x02
	return b
}

func icmpMsg(src, dst netip.Addr, typ uint8, body []byte) []byte {
	msg := append([]byte{typ, 0, 0, 0}, body...)
	setICMPChecksum(src, dst, msg)
	return msg
}

// fwdCase is one forwarding fixture: input, verdict, output (nil: the
// input unchanged) and the counter that must move by one.
type fwdCase struct {
	name    string
	in      []byte
	verdict uint32
	want    []byte
	counter string
	// setup runs before the case, undo after it.
	setup, undo func(*Dataplane) error
	// nets, if not nil, are the per-network counts the case must add.
	nets map[uint32]NetStats
}

// fromRouter is what arrives on the uplink for dst.
func fromRouter(dst netip.Addr, next uint8, hop uint8, payload []byte) frame {
	return frame{ethDst: uplinkMAC, ethSrc: peerMAC, src: peerAddr, dst: dst, nextHdr: next, hop: hop, payload: payload}
}

func ingressCases(redirect, pass uint32, xdp bool) []fwdCase {
	echo := icmpMsg(peerAddr, epA, 128, []byte{0, 1, 0, 1, 'v', '6'})
	frag := append([]byte{protoUDP, 0, 0, 1, 0, 0, 0, 7}, udp(16)...)
	cases := []fwdCase{
		{name: "UDP to endpoint", in: fromRouter(epA, protoUDP, 64, udp(32)).bytes(), verdict: redirect,
			want: fromRouter(epA, protoUDP, 64, udp(32)).routed(epAMAC, bridgeMAC), counter: "fwd_redirected"},
		{name: "TCP to endpoint", in: fromRouter(epA, protoTCP, 64, tcpSYN()).bytes(), verdict: redirect,
			want: fromRouter(epA, protoTCP, 64, tcpSYN()).routed(epAMAC, bridgeMAC), counter: "fwd_redirected"},
		{name: "echo request to endpoint", in: fromRouter(epA, protoICMPv6, 64, echo).bytes(), verdict: redirect,
			want: fromRouter(epA, protoICMPv6, 64, echo).routed(epAMAC, bridgeMAC), counter: "fwd_redirected"},
		{name: "fragment forwarded as is", in: fromRouter(epA, protoFrag, 64, frag).bytes(), verdict: redirect,
			want: fromRouter(epA, protoFrag, 64, frag).routed(epAMAC, bridgeMAC), counter: "fwd_redirected"},
		{name: "hop limit 2 leaves with 1", in: fromRouter(epA, protoUDP, 2, udp(8)).bytes(), verdict: redirect,
			want: fromRouter(epA, protoUDP, 2, udp(8)).routed(epAMAC, bridgeMAC), counter: "fwd_redirected"},
		{name: "exactly the endpoint MTU", in: fromRouter(epSmall, protoUDP, 64, udp(1280-48)).bytes(), verdict: redirect,
			want: fromRouter(epSmall, protoUDP, 64, udp(1280-48)).routed(epBMAC, bridgeMAC), counter: "fwd_redirected"},
		{name: "hop limit 1", in: fromRouter(epA, protoUDP, 1, udp(8)).bytes(), verdict: pass, counter: "fwd_pass_hoplimit"},
		{name: "hop limit 0", in: fromRouter(epA, protoUDP, 0, udp(8)).bytes(), verdict: pass, counter: "fwd_pass_hoplimit"},
		{name: "over the endpoint MTU", in: fromRouter(epSmall, protoUDP, 64, udp(1280-47)).bytes(), verdict: pass, counter: "fwd_pass_mtu"},
		{name: "not an endpoint", in: fromRouter(deadAddr, protoUDP, 64, udp(8)).bytes(), verdict: pass, counter: "fwd_pass_not_local"},
		{name: "endpoint only proxied", in: fromRouter(epOther, protoUDP, 64, udp(8)).bytes(), verdict: pass, counter: "pass_not_ns"},
		{name: "multicast", in: fromRouter(allNodes, protoUDP, 64, udp(8)).bytes(), verdict: pass, counter: "fwd_pass_not_local"},
		{name: "NA to endpoint", verdict: pass, counter: "fwd_pass_ndp",
			in: fromRouter(epA, protoICMPv6, 255, icmpMsg(peerAddr, epA, 136, make([]byte, 20))).bytes()},
		{name: "hop-by-hop to endpoint", verdict: pass, counter: "pass_exthdr",
			in: fromRouter(epA, protoHopOpt, 64, append([]byte{protoUDP, 0, 1, 4, 0, 0, 0, 0}, udp(8)...)).bytes()},
	}
	if xdp {
		cases = append(cases, fwdCase{
			name: "port not in the devmap", in: fromRouter(epA, protoUDP, 64, udp(8)).bytes(), verdict: pass,
			counter: "fwd_pass_not_local",
			setup:   func(d *Dataplane) error { return d.objs.V6dpDevmap.Delete(uint32(1)) },
			undo:    func(d *Dataplane) error { return d.objs.V6dpDevmap.Put(uint32(1), uint32(1)) },
		})
	}
	return cases
}

// fromA is what endpoint A sends to its gateway (the bridge's MAC).
func fromA(dst netip.Addr, next, hop uint8, payload []byte) frame {
	return frame{ethDst: bridgeMAC, ethSrc: epAMAC, src: epA, dst: dst, nextHdr: next, hop: hop, payload: payload}
}

func egressCases() []fwdCase {
	switched := fromA(epB, protoUDP, 64, udp(8))
	switched.ethDst = epBMAC
	unknownMAC := switched
	unknownMAC.ethDst = peerMAC
	spoofed := fromA(remote, protoUDP, 64, udp(8))
	spoofed.src = epOther
	stranger := spoofed
	stranger.src = deadAddr
	ll := fromA(netip.MustParseAddr("fe80::1"), protoUDP, 64, udp(8))
	ll.src = epALL
	unspecUDP := fromA(remote, protoUDP, 64, udp(8))
	unspecUDP.src = unspecified
	// NAs from A's link-local address, for itself and for a neighbour.
	na := func(target netip.Addr) []byte {
		f := frame{ethDst: allNodesMAC, ethSrc: epAMAC, src: epALL, dst: allNodes, nextHdr: protoICMPv6, hop: 255}
		f.payload = icmpMsg(f.src, f.dst, 136, append([]byte{0x20, 0, 0, 0}, target.AsSlice()...))
		return f.bytes()
	}
	dad := dadNS(epA).frame()
	copy(dad[6:12], epAMAC)
	ipv4 := append(ethHeader(bridgeMAC, epAMAC, ethTypeIPv4), 0x45, 0, 0, 20, 0, 0, 0, 0, 64, 1, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2)

	return []fwdCase{
		{name: "off-host via the router", in: fromA(remote, protoUDP, 64, udp(32)).bytes(), verdict: tcRedirect,
			// The neighbour layer writes the MACs when it transmits.
			want: fromA(remote, protoUDP, 64, udp(32)).routed(bridgeMAC, epAMAC), counter: "egress_fib"},
		{name: "off-host TCP", in: fromA(remote, protoTCP, 64, tcpSYN()).bytes(), verdict: tcRedirect,
			want: fromA(remote, protoTCP, 64, tcpSYN()).routed(bridgeMAC, epAMAC), counter: "egress_fib"},
		{name: "off-host, neighbour unresolved", in: fromA(remoteNoNb, protoUDP, 64, udp(8)).bytes(), verdict: tcRedirect,
			want: fromA(remoteNoNb, protoUDP, 64, udp(8)).routed(bridgeMAC, epAMAC), counter: "egress_fib"},
		{name: "off-host over the route MTU", in: fromA(remote, protoUDP, 64, udp(1400-47)).bytes(), verdict: tcNext, counter: "egress_pass_fib"},
		{name: "unreachable", in: fromA(unreachable, protoUDP, 64, udp(8)).bytes(), verdict: tcNext, counter: "egress_pass_fib"},
		{name: "route through another interface", in: fromA(elsewhere, protoUDP, 64, udp(8)).bytes(), verdict: tcNext, counter: "egress_pass_fib"},
		{name: "the host itself", in: fromA(hostOwn, protoUDP, 64, udp(8)).bytes(), verdict: tcNext, counter: "egress_pass_fib"},
		{name: "routed hop limit 1", in: fromA(remote, protoUDP, 1, udp(8)).bytes(), verdict: tcNext, counter: "fwd_pass_hoplimit"},
		{name: "routed to a local endpoint", in: fromA(epB, protoUDP, 64, udp(8)).bytes(), verdict: tcRedirect,
			want: fromA(epB, protoUDP, 64, udp(8)).routed(epBMAC, bridgeMAC), counter: "egress_local"},
		{name: "switched to a local endpoint", in: switched.bytes(), verdict: tcRedirect, counter: "egress_local"},
		{name: "routed over the local endpoint's MTU", in: fromA(epSmall, protoUDP, 64, udp(1280-47)).bytes(), verdict: tcNext, counter: "fwd_pass_mtu"},
		{name: "switched to an unknown MAC", in: unknownMAC.bytes(), verdict: tcNext, counter: "egress_pass"},
		{name: "to a proxied-only endpoint", in: fromA(epOther, protoUDP, 64, udp(8)).bytes(), verdict: tcNext, counter: "egress_pass"},
		{name: "from another endpoint's address", in: spoofed.bytes(), verdict: tcShot, counter: "egress_spoof_drop"},
		{name: "from a foreign address", in: stranger.bytes(), verdict: tcShot, counter: "egress_spoof_drop"},
		{name: "UDP from ::", in: unspecUDP.bytes(), verdict: tcShot, counter: "egress_drop_unspec"},
		{name: "link-local to the gateway", in: ll.bytes(), verdict: tcNext, counter: "egress_pass"},
		// To the host (the bridge's own receive path), not to the other ports.
		{name: "DAD NS from ::", in: dad, verdict: tcRedirect, counter: "egress_dad_confined"},
		{name: "NA for itself", in: na(epA), verdict: tcNext, counter: "egress_pass"},
		{name: "NA for a neighbour's address", in: na(epOther), verdict: tcShot, counter: "egress_drop_na_target"},
		{name: "multicast", in: fromA(netip.MustParseAddr("ff02::2"), protoUDP, 64, udp(8)).bytes(), verdict: tcNext, counter: "egress_pass"},
		{name: "IPv4", in: ipv4, verdict: tcNext, counter: "pass_not_ipv6"},
	}
}

// runIn runs prog over in on the calling thread and returns the verdict
// and output, without testing.TB: it runs inside fwdNetns.
func runIn(prog *ebpf.Program, in []byte) (uint32, []byte, error) {
	opts := &ebpf.RunOptions{Data: append([]byte{}, in...), DataOut: make([]byte, len(in)+outputExtra), Repeat: 1}
	ret, err := prog.Run(opts)
	return ret, opts.DataOut, err
}

// head is the start of a frame, enough to tell headers apart in a message.
func head(b []byte) []byte { return b[:min(len(b), 80)] }

// checkCase runs one case and describes what went wrong, if anything.
func checkCase(d *Dataplane, prog *ebpf.Program, c fwdCase) error {
	if c.setup != nil {
		if err := c.setup(d); err != nil {
			return err
		}
		defer c.undo(d)
	}
	before, err := d.Counters()
	if err != nil {
		return err
	}
	netsBefore, err := d.NetStats()
	if err != nil {
		return err
	}
	ret, out, err := runIn(prog, c.in)
	if err != nil {
		return err
	}
	after, err := d.Counters()
	if err != nil {
		return err
	}
	netsAfter, err := d.NetStats()
	if err != nil {
		return err
	}
	var errs []string
	if c.nets != nil {
		if diff := cmp.Diff(c.nets, netStatsDelta(netsBefore, netsAfter)); diff != "" {
			errs = append(errs, "per-network counts (-want +got):\n"+diff)
		}
	}
	// No counter: the frame is another hook's job, which counts it.
	wantCounters := map[string]uint64{}
	if c.counter != "" {
		wantCounters[c.counter] = 1
	}
	if diff := cmp.Diff(wantCounters, counterDelta(before, after)); diff != "" {
		errs = append(errs, "counters (-want +got):\n"+diff)
	}
	if ret != c.verdict {
		errs = append(errs, fmt.Sprintf("verdict %d, want %d", int32(ret), int32(c.verdict)))
	}
	want := c.want
	if want == nil {
		want = c.in
	}
	if !bytes.Equal(out, want) {
		errs = append(errs, fmt.Sprintf("output frame:\n got % x\nwant % x", head(out), head(want)))
	}
	if errs != nil {
		return fmt.Errorf("%v", errs)
	}
	return nil
}

func TestForwardPackets(t *testing.T) {
	ns := fwdNetns(t)
	d := newForwardDataplane(t)
	runSuites(t, ns, d, []caseSuite{
		{"xdp_uplink", d.objs.XdpUplink, ingressCases(xdpRedirect, xdpPass, true)},
		{"tc_uplink", d.objs.TcUplink, ingressCases(tcRedirect, tcNext, false)},
		{"tc_endpoint", d.egress.TcEndpoint, egressCases()},
	})
}

// caseSuite is a program and the fixtures it must pass.
type caseSuite struct {
	name  string
	prog  *ebpf.Program
	cases []fwdCase
}

// runSuites checks every case of every suite inside fwdNetns. The FIB and
// ctx ifindexes are those of the thread's namespace, so the cases run on
// one thread in it, not as subtests.
func runSuites(t *testing.T, ns netns.NsHandle, d *Dataplane, suites []caseSuite) {
	t.Helper()
	err := in(t, ns, func() error {
		for _, s := range suites {
			suiteUplinkIndex = fwdUplinkIndex
			if s.prog.Type() == ebpf.XDP || s.prog == d.objs.TcUplink {
				suiteUplinkIndex = 1
			}
			if err := d.SetUplink(forwardUplink()); err != nil {
				return err
			}
			for _, c := range s.cases {
				if err := checkCase(d, s.prog, c); err != nil {
					t.Errorf("%s/%s: %v", s.name, c.name, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Until the control plane has written a config, the endpoint program
// forwards nothing (the kernel does) but its guards hold: the ports map
// is the control plane's word on each port (review item M5: it used to
// pass everything then).
func TestEndpointDisabled(t *testing.T) {
	d := newForwardDataplane(t)
	if err := d.objs.V6dpUplinkCfg.Put(uint32(0), &uplinkUplinkConfig{}); err != nil {
		t.Fatal(err)
	}
	spoofed := fromA(remote, protoUDP, 64, udp(8))
	spoofed.src = epOther
	otherMAC := fromA(remote, protoUDP, 64, udp(8))
	otherMAC.ethSrc = epBMAC
	noPort := func(d *Dataplane) error { return d.objs.V6dpPorts.Delete(uint32(1)) }
	restorePort := func(d *Dataplane) error {
		d.Reread()
		return d.SyncPorts(map[uint32]Port{1: {MAC: epAMAC, LinkLocal: epALL}})
	}
	for _, c := range []fwdCase{
		{name: "its own address, off-host", in: fromA(remote, protoUDP, 64, udp(8)).bytes(), verdict: tcNext, counter: "egress_disabled"},
		{name: "another endpoint's address", in: spoofed.bytes(), verdict: tcShot, counter: "egress_spoof_drop"},
		{name: "another MAC", in: otherMAC.bytes(), verdict: tcShot, counter: "egress_drop_mac"},
		{name: "a port without an entry", in: fromA(remote, protoUDP, 64, udp(8)).bytes(), verdict: tcShot,
			counter: "egress_drop_no_port", setup: noPort, undo: restorePort},
	} {
		if err := checkCase(d, d.egress.TcEndpoint, c); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

// The devmap follows the endpoints: a port is in it while one address
// uses it, forwarding or only proxied, and leaves with the last one.
func TestDevmapFollowsEndpoints(t *testing.T) {
	d := newForwardDataplane(t)
	// The responder fixtures' proxy-only endpoints share ifindex 1.
	for _, a := range []netip.Addr{liveAddr, noProxyAddr} {
		if err := d.DeleteEndpoint(a); err != nil {
			t.Fatal(err)
		}
	}
	ports := func() []uint32 {
		t.Helper()
		p, err := d.ForwardPorts()
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if diff := cmp.Diff([]uint32{1}, ports()); diff != "" {
		t.Fatalf("devmap with forwarding endpoints on ifindex 1 (-want +got):\n%s", diff)
	}
	for _, a := range []netip.Addr{epA, epB} {
		if err := d.DeleteEndpoint(a); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]uint32{1}, ports()); diff != "" {
			t.Fatalf("after deleting %s, epSmall still uses ifindex 1 (-want +got):\n%s", a, diff)
		}
	}
	if err := d.DeleteEndpoint(epSmall); err != nil {
		t.Fatal(err)
	}
	if p := ports(); len(p) != 0 {
		t.Fatalf("devmap after the last forwarding address went: %v, want empty", p)
	}
	// SyncEndpoints adds and prunes the same way.
	want := map[netip.Addr]Endpoint{
		epA: {Ifindex: 1, MAC: epAMAC, MTU: 1500, Flags: EndpointProxy | EndpointForward},
	}
	if err := d.SyncEndpoints(want); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]uint32{1}, ports()); diff != "" {
		t.Fatalf("devmap after sync (-want +got):\n%s", diff)
	}
	if err := d.SyncEndpoints(nil); err != nil {
		t.Fatal(err)
	}
	if p := ports(); len(p) != 0 {
		t.Fatalf("devmap after syncing to nothing: %v, want empty", p)
	}
}
