package loader

import (
	"net"
	"net/netip"
	"testing"
)

// Frames a hostile endpoint (A) sends from its eth0, each against the rule
// of the port guard that stops it, and the legitimate frame beside it that
// must still pass. Every drop moves its own counter.
func guardEgressCases() []fwdCase {
	gw := netip.MustParseAddr("fe80::1")
	fromLL := func(dst netip.Addr, dstMAC net.HardwareAddr, typ uint8, body []byte) frame {
		f := frame{ethDst: dstMAC, ethSrc: epAMAC, src: epALL, dst: dst, nextHdr: protoICMPv6, hop: 255}
		f.payload = icmpMsg(f.src, f.dst, typ, body)
		return f
	}
	lla := func(typ uint8, mac net.HardwareAddr) []byte { return append([]byte{typ, 1}, mac...) }
	nonce := []byte{14, 1, 0xde, 0xad, 0xbe, 0xef, 0, 1}
	naBody := func(target netip.Addr, opts ...[]byte) []byte {
		b := append([]byte{0x20, 0, 0, 0}, target.AsSlice()...)
		for _, o := range opts {
			b = append(b, o...)
		}
		return b
	}
	nsBody := func(target netip.Addr, opts ...[]byte) []byte {
		b := append([]byte{0, 0, 0, 0}, target.AsSlice()...)
		for _, o := range opts {
			b = append(b, o...)
		}
		return b
	}
	// An RA: hop limit, flags, lifetime 1800 s, reachable, retrans.
	ra := []byte{64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0}
	redirect := append(append([]byte{0, 0, 0, 0}, gw.AsSlice()...), epB.AsSlice()...)

	// behind wraps an ICMPv6 message in one extension header of type next.
	behind := func(ext uint8, typ uint8, body []byte, dst netip.Addr) frame {
		f := frame{ethDst: allNodesMAC, ethSrc: epAMAC, src: epALL, dst: dst, hop: 255, nextHdr: ext}
		msg := icmpMsg(f.src, f.dst, typ, body)
		var hdr []byte
		switch ext {
		case protoFrag: // first and only fragment: offset 0, M clear
			hdr = []byte{protoICMPv6, 0, 0, 0, 0, 0, 0, 9}
		default: // hop-by-hop or destination options, PadN to 8 bytes
			hdr = []byte{protoICMPv6, 0, 1, 4, 0, 0, 0, 0}
		}
		f.payload = append(hdr, msg...)
		return f
	}
	const protoDstOpts = 60

	wrongMAC := fromA(remote, protoUDP, 64, udp(8))
	wrongMAC.ethSrc = epBMAC
	vlan := func() []byte {
		b := fromA(remote, protoUDP, 64, udp(8)).bytes()
		tagged := append([]byte{}, b[:12]...)
		tagged = append(tagged, 0x81, 0x00, 0x00, 0x64)
		return append(tagged, b[12:]...)
	}()
	gwSrc := fromA(remote, protoUDP, 64, udp(8))
	gwSrc.src = gw
	otherLL := fromA(remote, protoUDP, 64, udp(8))
	otherLL.src = netip.MustParseAddr("fe80::42:acff:fe11:b")
	allNodes := netip.MustParseAddr("ff02::1")
	gwGroup, gwGroupMAC := solicitedNode(gw)

	// Deleted behind the syncs' back, as another hand would: Reread
	// makes the sync that restores it look at the map again.
	noPort := func(d *Dataplane) error { return d.objs.V6dpPorts.Delete(uint32(1)) }
	restorePort := func(d *Dataplane) error {
		d.Reread()
		return d.SyncPorts(map[uint32]Port{1: {MAC: epAMAC, LinkLocal: epALL}})
	}
	dadNoPort := dadNS(epA).frame()
	copy(dadNoPort[6:12], epAMAC)

	unspec := func(next uint8, payload []byte, dst netip.Addr, dstMAC net.HardwareAddr) []byte {
		f := frame{ethDst: dstMAC, ethSrc: epAMAC, src: unspecified, dst: dst, nextHdr: next, hop: 255, payload: payload}
		return f.bytes()
	}
	mdns := netip.MustParseAddr("ff02::fb")
	mdnsMAC := net.HardwareAddr{0x33, 0x33, 0, 0, 0, 0xfb}
	mld := netip.MustParseAddr("ff02::16")
	mldMAC := net.HardwareAddr{0x33, 0x33, 0, 0, 0, 0x16}
	epGroup, epGroupMAC := solicitedNode(epA)
	hbh := func(inner []byte) []byte { return append([]byte{protoICMPv6, 0, 5, 2, 0, 0, 1, 0}, inner...) }
	arpSpoof := append(ethHeader(bridgeMAC, epBMAC, ethTypeARP), make([]byte, 28)...)
	llOff := fromA(remote, protoUDP, 64, udp(8))
	llOff.src = epALL

	return []fwdCase{
		// From ::, only DAD, RS and MLD reports.
		{name: ":: UDP to mDNS behind hop-by-hop", in: unspec(protoHopOpt, append([]byte{protoUDP, 0, 1, 4, 0, 0, 0, 0}, udp(8)...), mdns, mdnsMAC),
			verdict: tcShot, counter: "egress_drop_unspec"},
		{name: ":: Packet Too Big", in: unspec(protoICMPv6, icmpMsg(unspecified, epB, 2, make([]byte, 52)), epB, epBMAC),
			verdict: tcShot, counter: "egress_drop_unspec"},
		// Linux probes with a Nonce option (RFC 7527, enhanced_dad=1 by default).
		{name: ":: DAD NS with a nonce", in: unspec(protoICMPv6, icmpMsg(unspecified, epGroup, 135, nsBody(epA, nonce)), epGroup, epGroupMAC),
			verdict: tcRedirect, counter: "egress_dad_confined"},
		{name: ":: DAD NS with two nonces", in: unspec(protoICMPv6, icmpMsg(unspecified, epGroup, 135, nsBody(epA, nonce, nonce)), epGroup, epGroupMAC),
			verdict: tcRedirect, counter: "egress_dad_confined"},
		{name: ":: DAD NS with three nonces", in: unspec(protoICMPv6, icmpMsg(unspecified, epGroup, 135, nsBody(epA, nonce, nonce, nonce)), epGroup, epGroupMAC),
			verdict: tcShot, counter: "egress_drop_unspec"},
		{name: ":: DAD NS with a nonce and an SLLA", in: unspec(protoICMPv6, icmpMsg(unspecified, epGroup, 135, nsBody(epA, nonce, lla(1, epAMAC))), epGroup, epGroupMAC),
			verdict: tcShot, counter: "egress_drop_unspec"},
		{name: ":: DAD NS with a zero-length option", in: unspec(protoICMPv6, icmpMsg(unspecified, epGroup, 135, nsBody(epA, []byte{14, 0, 1, 2, 3, 4, 5, 6})), epGroup, epGroupMAC),
			verdict: tcShot, counter: "egress_drop_unspec"},
		{name: ":: DAD NS with an SLLA option", in: unspec(protoICMPv6, icmpMsg(unspecified, epGroup, 135, nsBody(epA, lla(1, epAMAC))), epGroup, epGroupMAC),
			verdict: tcShot, counter: "egress_drop_unspec"},
		{name: ":: RS without options", in: unspec(protoICMPv6, icmpMsg(unspecified, netip.MustParseAddr("ff02::2"), 133, make([]byte, 4)),
			netip.MustParseAddr("ff02::2"), net.HardwareAddr{0x33, 0x33, 0, 0, 0, 2}), verdict: tcNext, counter: "egress_pass"},
		{name: ":: MLDv2 report behind hop-by-hop", in: unspec(protoHopOpt, hbh(icmpMsg(unspecified, mld, 143, make([]byte, 4))), mld, mldMAC),
			verdict: tcNext, counter: "egress_pass"},
		{name: "ARP with a neighbour's MAC", in: arpSpoof, verdict: tcShot, counter: "egress_drop_mac"},
		{name: "link-local source to an off-host address", in: llOff.bytes(), verdict: tcNext, counter: "egress_pass"},
		{name: "host policy expired: the kernel routes", in: fromA(remote, protoUDP, 64, udp(8)).bytes(), verdict: tcNext,
			counter: "fwd_pass_stale", setup: expirePolicy,
			undo: func(d *Dataplane) error { return d.SetUplink(forwardUplink()) }},

		// Who may send: its MAC, its link-local, its addresses.
		{name: "another port's MAC", in: wrongMAC.bytes(), verdict: tcShot, counter: "egress_drop_mac"},
		{name: "VLAN-tagged frame", in: vlan, verdict: tcShot, counter: "egress_drop_vlan"},
		{name: "from the gateway's fe80::1", in: gwSrc.bytes(), verdict: tcShot, counter: "egress_spoof_drop"},
		{name: "from a neighbour's link-local", in: otherLL.bytes(), verdict: tcShot, counter: "egress_spoof_drop"},
		{name: "port without an entry: UDP from its own address", in: fromA(remote, protoUDP, 64, udp(8)).bytes(),
			verdict: tcShot, counter: "egress_drop_no_port", setup: noPort, undo: restorePort},
		{name: "port without an entry: DAD from ::", in: dadNoPort, verdict: tcNext, counter: "egress_pass",
			setup: noPort, undo: restorePort},

		// Gateway and neighbour poisoning.
		{name: "NA for the gateway fe80::1", in: fromLL(allNodes, allNodesMAC, 136, naBody(gw)).bytes(), verdict: tcShot, counter: "egress_drop_na_target"},
		{name: "NA for itself with another port's MAC", in: fromLL(allNodes, allNodesMAC, 136, naBody(epA, lla(2, epBMAC))).bytes(),
			verdict: tcShot, counter: "egress_drop_ndp_lladdr"},
		{name: "NA for itself with its MAC", in: fromLL(allNodes, allNodesMAC, 136, naBody(epA, lla(2, epAMAC))).bytes(),
			verdict: tcNext, counter: "egress_pass"},
		{name: "NA for its link-local", in: fromLL(allNodes, allNodesMAC, 136, naBody(epALL)).bytes(), verdict: tcNext, counter: "egress_pass"},
		{name: "NS for the gateway with another MAC as SLLA", in: fromLL(gwGroup, gwGroupMAC, 135, nsBody(gw, lla(1, epBMAC))).bytes(),
			verdict: tcShot, counter: "egress_drop_ndp_lladdr"},
		{name: "NS for the gateway with its own SLLA", in: fromLL(gwGroup, gwGroupMAC, 135, nsBody(gw, lla(1, epAMAC))).bytes(),
			verdict: tcNext, counter: "egress_pass"},
		{name: "NS with a zero-length option", in: fromLL(gwGroup, gwGroupMAC, 135, nsBody(gw, []byte{1, 0, 0, 0, 0, 0, 0, 0})).bytes(),
			verdict: tcShot, counter: "egress_drop_ndp_lladdr"},
		{name: "RS with its own SLLA", in: fromLL(netip.MustParseAddr("ff02::2"), net.HardwareAddr{0x33, 0x33, 0, 0, 0, 2}, 133,
			append([]byte{0, 0, 0, 0}, lla(1, epAMAC)...)).bytes(), verdict: tcNext, counter: "egress_pass"},

		// RA guard (RFC 6105), with the RFC 7113 evasions.
		{name: "Router Advertisement", in: fromLL(allNodes, allNodesMAC, 134, ra).bytes(), verdict: tcShot, counter: "egress_drop_ra"},
		{name: "Redirect", in: fromLL(epBLL(), epBMAC, 137, redirect).bytes(), verdict: tcShot, counter: "egress_drop_ra"},
		{name: "RA behind destination options", in: behind(protoDstOpts, 134, ra, allNodes).bytes(), verdict: tcShot, counter: "egress_drop_ndp_exthdr"},
		{name: "RA behind hop-by-hop", in: behind(protoHopOpt, 134, ra, allNodes).bytes(), verdict: tcShot, counter: "egress_drop_ndp_exthdr"},
		{name: "RA in a fragment", in: behind(protoFrag, 134, ra, allNodes).bytes(), verdict: tcShot, counter: "egress_drop_ndp_exthdr"},
		{name: "NA for a neighbour behind destination options", in: behind(protoDstOpts, 136, naBody(epB), allNodes).bytes(),
			verdict: tcShot, counter: "egress_drop_ndp_exthdr"},
		{name: "MLD report behind hop-by-hop", in: behind(protoHopOpt, 143, make([]byte, 4), netip.MustParseAddr("ff02::16")).bytes(),
			verdict: tcNext, counter: "egress_pass"},
	}
}

// epBLL is B's link-local address (EUI-64 of its MAC).
func epBLL() netip.Addr { return netip.MustParseAddr("fe80::42:acff:fe11:b") }

// Frames from the uplink that the kernel would never forward or answer,
// and the config states under which BPF must leave everything to it.
func guardIngressCases(redirect, answer, pass, drop uint32, xdp bool) []fwdCase {
	llSrc := fromRouter(epA, protoUDP, 64, udp(8))
	llSrc.src = peerLL
	mcastSrc := fromRouter(epA, protoUDP, 64, udp(8))
	mcastSrc.src = netip.MustParseAddr("ff02::1")
	loopSrc := fromRouter(epA, protoUDP, 64, udp(8))
	loopSrc.src = netip.MustParseAddr("::1")
	broadcast := fromRouter(epA, protoUDP, 64, udp(8))
	broadcast.ethDst = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	foreign := fromRouter(epA, protoUDP, 64, udp(8))
	foreign.ethDst = net.HardwareAddr{0x02, 0, 0x5e, 0, 0, 0x99}
	vlanNS := func() []byte {
		b := multicastNS(liveAddr).frame()
		tagged := append([]byte{}, b[:12]...)
		tagged = append(tagged, 0x81, 0x00, 0x00, 0x2a)
		return append(tagged, b[12:]...)
	}()
	nsForeignMAC := multicastNS(liveAddr).frame()
	copy(nsForeignMAC[0:6], []byte{0x02, 0, 0x5e, 0, 0, 0x99})

	otherMAC := net.HardwareAddr{0x02, 0, 0x5e, 0, 0, 0x77}
	nsFrom := func(src netip.Addr, ethSrc net.HardwareAddr, hop uint8) []byte {
		n := multicastNS(liveAddr)
		n.src = src
		if ethSrc != nil {
			n.ethSrc = ethSrc
		}
		if hop != 0 {
			n.hopLimit = hop
		}
		return n.frame()
	}
	spent := func(d *Dataplane) error {
		if err := d.SetNSLimit(NSLimit{PerSource: 1, Burst: 1}); err != nil {
			return err
		}
		return spendBucket(d, peerAddr)
	}
	unspent := func(d *Dataplane) error {
		_ = d.objs.V6dpNsSources.Delete(nsSourceOf(peerAddr, peerMAC))
		return d.SetNSLimit(NSLimit{})
	}
	setFlags := func(set func(*UplinkConfig)) func(*Dataplane) error {
		return func(d *Dataplane) error {
			c := forwardUplink()
			set(&c)
			return d.SetUplink(c)
		}
	}
	restore := func(d *Dataplane) error { return d.SetUplink(forwardUplink()) }
	cases := []fwdCase{
		// NS that must never be answered: the answer would be a reflection.
		{name: "NS from a multicast source", in: nsFrom(netip.MustParseAddr("ff02::1"), nil, 0), verdict: pass, counter: "ns_malformed"},
		{name: "NS from ::1", in: nsFrom(netip.MustParseAddr("::1"), nil, 0), verdict: pass, counter: "ns_malformed"},
		{name: "NS from a broadcast MAC", in: nsFrom(peerAddr, net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 0), verdict: pass, counter: "ns_malformed"},
		// A routed NS (hop limit 254) is the kernel's to drop, and spends no bucket.
		{name: "routed NS while the source's bucket is spent", in: nsFrom(peerAddr, nil, 254), verdict: pass, counter: "ns_malformed",
			setup: spent, undo: unspent},
		{name: "NS from the same address, another MAC, bucket of its own", in: nsFrom(peerAddr, otherMAC, 0),
			verdict: answer, counter: "ns_answered", setup: spent, undo: unspent,
			want: na{ethDst: otherMAC, src: liveAddr, dst: peerAddr, target: liveAddr, router: true, solicited: true}.frame()},
		{name: "link-local source", in: llSrc.bytes(), verdict: pass, counter: "fwd_pass_src"},
		{name: "multicast source", in: mcastSrc.bytes(), verdict: pass, counter: "fwd_pass_src"},
		{name: "loopback source", in: loopSrc.bytes(), verdict: pass, counter: "fwd_pass_src"},
		{name: "unicast in a broadcast frame", in: broadcast.bytes(), verdict: pass, counter: "fwd_pass_mac"},
		{name: "frame for another host's MAC", in: foreign.bytes(), verdict: pass, counter: "fwd_pass_mac"},
		{name: "NS in a frame for another host's MAC", in: nsForeignMAC, verdict: pass, counter: "fwd_pass_mac"},
		{name: "host firewall filters forwarding", in: fromRouter(epA, protoUDP, 64, udp(8)).bytes(), verdict: pass,
			counter: "fwd_pass_filtered", setup: setFlags(func(c *UplinkConfig) { c.Filtered = true }), undo: restore},
		{name: "host policy expired: no daemon watching", in: fromRouter(epA, protoUDP, 64, udp(8)).bytes(), verdict: pass,
			counter: "fwd_pass_stale", setup: expirePolicy, undo: restore},
		// The kernel's answer meets the host's firewall: a BPF answer must not skip it.
		{name: "host firewall filters the NDP path: the kernel answers", in: multicastNS(liveAddr).frame(), verdict: pass,
			counter: "ns_pass_filtered", setup: setFlags(func(c *UplinkConfig) { c.NDPFiltered = true }), undo: restore},
		{name: "host firewall filters the NDP path: the kernel defends DAD", in: dadNS(liveAddr).frame(), verdict: pass,
			counter: "ns_pass_filtered", setup: setFlags(func(c *UplinkConfig) { c.NDPFiltered = true }), undo: restore},
		{name: "host firewall filters the NDP path: forwarding goes on", in: fromRouter(epA, protoICMPv6, 64, icmpMsg(peerAddr, epA, 128, []byte{0, 1, 0, 1})).bytes(),
			want:    fromRouter(epA, protoICMPv6, 64, icmpMsg(peerAddr, epA, 128, []byte{0, 1, 0, 1})).routed(epAMAC, bridgeMAC),
			verdict: redirect, counter: "fwd_redirected", setup: setFlags(func(c *UplinkConfig) { c.NDPFiltered = true }), undo: restore},
		{name: "host firewall filters forwarding only: BPF answers", in: multicastNS(liveAddr).frame(), verdict: answer, counter: "ns_answered",
			want:  na{ethDst: peerMAC, src: liveAddr, dst: peerAddr, target: liveAddr, router: true, solicited: true}.frame(),
			setup: setFlags(func(c *UplinkConfig) { c.Filtered = true }), undo: restore},
		{name: "host policy expired: the kernel answers", in: multicastNS(liveAddr).frame(), verdict: pass,
			counter: "ns_pass_stale", setup: expirePolicy, undo: restore},
		{name: "host policy expired: a gone port's NS is still dropped", in: multicastNS(liveAddr).frame(), verdict: drop,
			counter: "ns_port_gone",
			setup: func(d *Dataplane) error {
				if err := expirePolicy(d); err != nil {
					return err
				}
				return d.objs.V6dpDevmap.Delete(uint32(1))
			},
			undo: func(d *Dataplane) error {
				if err := d.objs.V6dpDevmap.Put(uint32(1), uint32(1)); err != nil {
					return err
				}
				return restore(d)
			}},
		{name: "host forwarding off: no forwarding", in: fromRouter(epA, protoUDP, 64, udp(8)).bytes(), verdict: pass,
			counter: "pass_no_forwarding", setup: setFlags(func(c *UplinkConfig) { c.Router = false }), undo: restore},
		{name: "host forwarding off: no answer", in: multicastNS(liveAddr).frame(), verdict: pass,
			counter: "pass_no_forwarding", setup: setFlags(func(c *UplinkConfig) { c.Router = false }), undo: restore},
		{name: "forwarding is another hook's job", in: fromRouter(epA, protoUDP, 64, udp(8)).bytes(), verdict: pass,
			setup: setFlags(func(c *UplinkConfig) { c.ForwardHooks = 0 }), undo: restore},
		{name: "answering is another hook's job", in: multicastNS(liveAddr).frame(), verdict: pass,
			setup: setFlags(func(c *UplinkConfig) { c.NDPHooks = 0 }), undo: restore},
		{name: "NS for an endpoint whose port left the devmap", in: multicastNS(liveAddr).frame(), verdict: drop,
			counter: "ns_port_gone",
			setup:   func(d *Dataplane) error { return d.objs.V6dpDevmap.Delete(uint32(1)) },
			undo:    func(d *Dataplane) error { return d.objs.V6dpDevmap.Put(uint32(1), uint32(1)) }},
		{name: "NS over the per-source rate", in: multicastNS(liveAddr).frame(), verdict: drop, counter: "ns_rate_limited",
			setup: func(d *Dataplane) error {
				// One NS per hour, burst 1, and the bucket already spent.
				if err := d.SetNSLimit(NSLimit{PerSource: 1, Burst: 1}); err != nil {
					return err
				}
				return spendBucket(d, peerAddr)
			},
			undo: func(d *Dataplane) error {
				_ = d.objs.V6dpNsSources.Delete(nsSourceOf(peerAddr, peerMAC))
				return d.SetNSLimit(NSLimit{})
			}},
	}
	if xdp {
		cases = append(cases,
			fwdCase{name: "VLAN-tagged NS", in: vlanNS, verdict: pass, counter: "pass_vlan"},
			fwdCase{name: "native XDP on a veth: TCP to the kernel", in: fromRouter(epA, protoTCP, 64, tcpSYN()).bytes(),
				verdict: pass, counter: "fwd_pass_l4csum",
				setup: setFlags(func(c *UplinkConfig) { c.XDPL4Pass = true }), undo: restore},
			fwdCase{name: "native XDP on a veth: ICMPv6 still forwarded",
				in:      fromRouter(epA, protoICMPv6, 64, icmpMsg(peerAddr, epA, 128, []byte{0, 1, 0, 1})).bytes(),
				want:    fromRouter(epA, protoICMPv6, 64, icmpMsg(peerAddr, epA, 128, []byte{0, 1, 0, 1})).routed(epAMAC, bridgeMAC),
				verdict: redirect, counter: "fwd_redirected",
				setup: setFlags(func(c *UplinkConfig) { c.XDPL4Pass = true }), undo: restore},
		)
	}
	return cases
}

// expirePolicy writes a config whose host policy ran out long ago.
func expirePolicy(d *Dataplane) error {
	var v uplinkUplinkConfig
	if err := d.objs.V6dpUplinkCfg.Lookup(uint32(0), &v); err != nil {
		return err
	}
	v.PolicyUntilNs = 1
	return d.objs.V6dpUplinkCfg.Put(uint32(0), &v)
}

func nsSourceOf(a netip.Addr, mac net.HardwareAddr) *uplinkNsSource {
	k := uplinkNsSource{Addr: a.As16()}
	copy(k.Mac[:], mac)
	return &k
}

// spendBucket makes the source's bucket full for the next hour.
func spendBucket(d *Dataplane, src netip.Addr) error {
	var b uplinkNsBucket
	b.TatNs = ^uint64(0) >> 1
	return d.objs.V6dpNsSources.Put(nsSourceOf(src, peerMAC), &b)
}

func TestGuardPackets(t *testing.T) {
	ns := fwdNetns(t)
	d := newForwardDataplane(t)
	runSuites(t, ns, d, []caseSuite{
		{"xdp_uplink", d.objs.XdpUplink, guardIngressCases(xdpRedirect, xdpTX, xdpPass, xdpDrop, true)},
		{"tc_uplink", d.objs.TcUplink, guardIngressCases(tcRedirect, tcRedirect, tcNext, tcShot, false)},
		{"tc_endpoint", d.egress.TcEndpoint, guardEgressCases()},
	})
}

// The global NS rate is split over the CPUs that are online, read from
// the kernel's CPU list.
func TestCountCPUList(t *testing.T) {
	for in, want := range map[string]int{"0": 1, "0-1\n": 2, "0-3,6": 5, "0,2,4-7": 6, "": -1, "3-1": -1, "x": -1} {
		n, ok := countCPUList(in)
		if !ok {
			n = -1
		}
		if n != want {
			t.Errorf("countCPUList(%q) = %d, want %d", in, n, want)
		}
	}
}
