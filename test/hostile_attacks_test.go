package test

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/v6dp/v6dp/test/frame"
	"github.com/v6dp/v6dp/test/topo"
)

// The attacks a hostile container makes on the link it shares with its
// neighbours, as exact frames, and the harm each does to a victim that
// accepts it. TestHostileFramesHarm proves every frame does its harm on
// an unguarded link; TestHostile proves that v6dp lets none of them
// through.

// party is one node on the bridge: a container, or the bridge itself.
type party struct {
	NS, If string
	MAC    net.HardwareAddr
	LL     netip.Addr
	Addr   netip.Addr
}

// link is who is on the link, as the attacker sees it.
type link struct {
	Atk, Vic, Nb party
	// GwMAC owns the containers' gateway, fe80::1: the bridge.
	GwMAC  net.HardwareAddr
	Gw     netip.Addr
	Router netip.Addr
	// Rogue is the prefix a rogue RA offers.
	Rogue netip.Prefix
	// Forged is a MAC that belongs to nobody on the link.
	Forged net.HardwareAddr
}

var (
	gatewayLL   = netip.MustParseAddr("fe80::1")
	roguePrefix = netip.MustParsePrefix("2001:db8:bad::/64")
	forgedMAC   = net.HardwareAddr{0x02, 0xde, 0xad, 0xbe, 0xef, 0x01}
)

// attack is one forgery: the frames, and how to tell that a victim that
// took them was harmed.
type attack struct {
	name   string
	frames func(l *link) [][]byte
	// harm returns what the frames changed on the victim, "" if nothing.
	harm func(t *testing.T, l *link) string
	// fragmented: Linux hosts drop fragmented NDP themselves
	// (suppress_frag_ndisc, RFC 6980); other victims may not.
	fragmented bool
	// inert says why a Linux victim takes no harm from the frames even
	// without suppress_frag_ndisc; a guard must still drop them, for
	// the victims that would.
	inert string
}

// ndpFrom is an NDP packet from the attacker's own link-local address.
func ndpFrom(l *link, dst netip.Addr, ext []frame.Ext, msg []byte) frame.IPv6 {
	return frame.IPv6{Src: l.Atk.LL, Dst: dst, HopLimit: 255, Ext: ext, Proto: frame.ProtoICMPv6, Payload: msg}
}

func toAllNodes(l *link) frame.Ether {
	return frame.Ether{Dst: frame.MulticastMAC(frame.AllNodes), Src: l.Atk.MAC}
}

// wrappings are the ways to hide an NDP message from a filter that looks
// only right after the fixed header (RFC 7113 section 2).
var wrappings = []struct {
	name string
	ext  []frame.Ext
}{
	{"", nil},
	{" behind destination options", []frame.Ext{frame.DestOpts(1)}},
	{" behind hop-by-hop options", []frame.Ext{frame.HopByHop(1)}},
}

func hostileAttacks() []attack {
	var as []attack
	for _, w := range wrappings {
		ext := w.ext
		as = append(as, attack{
			name: "NA for the gateway" + w.name,
			frames: func(l *link) [][]byte {
				msg := frame.NA(frame.NARouter|frame.NAOverride, l.Gw, frame.TLLA(l.Atk.MAC))
				return [][]byte{frame.Frame(toAllNodes(l), ndpFrom(l, frame.AllNodes, ext, msg))}
			},
			harm: func(t *testing.T, l *link) string { return neighHarm(t, l.Vic, l.Gw, l.Atk.MAC) },
		})
	}
	as = append(as, attack{
		// A routing header with Segments Left 0 is skipped by the
		// receiver (RFC 8200 4.4), but only on a unicast packet.
		name: "NA for the gateway behind a routing header",
		frames: func(l *link) [][]byte {
			msg := frame.NA(frame.NARouter|frame.NAOverride, l.Gw, frame.TLLA(l.Atk.MAC))
			return [][]byte{frame.Frame(frame.Ether{Dst: l.Vic.MAC, Src: l.Atk.MAC},
				ndpFrom(l, l.Vic.LL, []frame.Ext{frame.Routing(0)}, msg))}
		},
		harm: func(t *testing.T, l *link) string { return neighHarm(t, l.Vic, l.Gw, l.Atk.MAC) },
	})
	gatewayNA := func(l *link, ext []frame.Ext) frame.IPv6 {
		return ndpFrom(l, frame.AllNodes, ext, frame.NA(frame.NARouter|frame.NAOverride, l.Gw, frame.TLLA(l.Atk.MAC)))
	}
	as = append(as,
		attack{
			name:       "NA for the gateway as an atomic fragment",
			fragmented: true,
			frames: func(l *link) [][]byte {
				return [][]byte{frame.Frame(toAllNodes(l), gatewayNA(l, []frame.Ext{frame.Fragment(0, false, 0x5a5a)}))}
			},
			harm: func(t *testing.T, l *link) string { return neighHarm(t, l.Vic, l.Gw, l.Atk.MAC) },
		},
		attack{
			name:       "NA for the gateway in two fragments",
			fragmented: true,
			frames: func(l *link) [][]byte {
				return frame.Fragments(toAllNodes(l), gatewayNA(l, nil), nil, 16, 0x5a5b)
			},
			harm: func(t *testing.T, l *link) string { return neighHarm(t, l.Vic, l.Gw, l.Atk.MAC) },
		},
		attack{
			// Two priority tags (VLAN 0): the port's kernel strips the
			// outer one before TC sees the frame, the victim's kernel
			// strips both and takes the NA (802.1p handling in
			// __netif_receive_skb_core).
			name: "NA for the gateway behind two priority tags",
			frames: func(l *link) [][]byte {
				e := toAllNodes(l)
				e.Tags = []uint16{0, 0}
				return [][]byte{frame.Frame(e, gatewayNA(l, nil))}
			},
			harm: func(t *testing.T, l *link) string { return neighHarm(t, l.Vic, l.Gw, l.Atk.MAC) },
		},
	)
	for _, w := range wrappings[:2] {
		ext := w.ext
		as = append(as, attack{
			name: "NA for a neighbour's address" + w.name,
			frames: func(l *link) [][]byte {
				msg := frame.NA(frame.NAOverride, l.Nb.Addr, frame.TLLA(l.Atk.MAC))
				return [][]byte{frame.Frame(toAllNodes(l), ndpFrom(l, frame.AllNodes, ext, msg))}
			},
			harm: func(t *testing.T, l *link) string { return neighHarm(t, l.Vic, l.Nb.Addr, l.Atk.MAC) },
		})
	}
	as = append(as,
		attack{
			name: "NA for its own address with a forged TLLA",
			frames: func(l *link) [][]byte {
				msg := frame.NA(frame.NAOverride, l.Atk.Addr, frame.TLLA(l.Forged))
				return [][]byte{frame.Frame(toAllNodes(l), ndpFrom(l, frame.AllNodes, nil, msg))}
			},
			harm: func(t *testing.T, l *link) string { return neighHarm(t, l.Vic, l.Atk.Addr, l.Forged) },
		},
		attack{
			name: "NS with a forged SLLAO",
			frames: func(l *link) [][]byte {
				g := frame.SolicitedNode(l.Vic.Addr)
				p := frame.IPv6{Src: l.Atk.Addr, Dst: g, HopLimit: 255, Proto: frame.ProtoICMPv6,
					Payload: frame.NS(l.Vic.Addr, frame.SLLA(l.Forged))}
				return [][]byte{frame.Frame(frame.Ether{Dst: frame.MulticastMAC(g), Src: l.Atk.MAC}, p)}
			},
			harm: func(t *testing.T, l *link) string { return neighHarm(t, l.Vic, l.Atk.Addr, l.Forged) },
		},
	)
	rogueRA := func(l *link) []byte {
		return frame.RA(1800, frame.SLLA(l.Atk.MAC), frame.PrefixInfo(l.Rogue, 3600, 1800))
	}
	for _, w := range wrappings {
		ext := w.ext
		as = append(as, attack{
			name: "rogue RA" + w.name,
			frames: func(l *link) [][]byte {
				return [][]byte{frame.Frame(toAllNodes(l), ndpFrom(l, frame.AllNodes, ext, rogueRA(l)))}
			},
			harm: routeHarm,
		})
	}
	as = append(as, attack{
		name: "rogue RA, unicast to the victim",
		frames: func(l *link) [][]byte {
			return [][]byte{frame.Frame(frame.Ether{Dst: l.Vic.MAC, Src: l.Atk.MAC},
				ndpFrom(l, l.Vic.LL, nil, rogueRA(l)))}
		},
		harm: routeHarm,
	})
	as = append(as, attack{
		// RFC 7113 section 2: only the second fragment has the ICMPv6
		// header, so a guard looking at the first sees no RA.
		name:       "rogue RA after a destination options header in the first fragment",
		fragmented: true,
		inert:      "Linux drops a first fragment without the whole header chain (RFC 8200 4.5)",
		frames: func(l *link) [][]byte {
			return frame.Fragments(toAllNodes(l), ndpFrom(l, frame.AllNodes, nil, rogueRA(l)),
				[]frame.Ext{frame.DestOpts(4)}, 32, 0x5a5c)
		},
		harm: routeHarm,
	})
	for _, w := range wrappings {
		ext := w.ext
		as = append(as, attack{
			// A Redirect must come from the victim's current first hop
			// (RFC 4861 8.1), so the attacker sends it as the gateway.
			name: "Redirect" + w.name,
			frames: func(l *link) [][]byte {
				trigger := frame.IPv6{Src: l.Vic.Addr, Dst: l.Router, Proto: frame.ProtoICMPv6,
					Payload: frame.Echo(1, 1, nil)}.Packet()
				msg := frame.Redirect(l.Atk.LL, l.Router, frame.TLLA(l.Atk.MAC), frame.RedirectedHeader(trigger))
				p := frame.IPv6{Src: l.Gw, Dst: l.Vic.LL, HopLimit: 255, Ext: ext, Proto: frame.ProtoICMPv6, Payload: msg}
				return [][]byte{frame.Frame(frame.Ether{Dst: l.Vic.MAC, Src: l.Atk.MAC}, p)}
			},
			harm: routeHarm,
		})
	}
	return as
}

// sameL3 matches a received frame carrying the same IPv6 packet as f,
// whatever happened to its Ethernet header and tags on the way.
func sameL3(f []byte) func(*frame.Decoded) bool {
	want, err := frame.Parse(f)
	if err != nil || !want.IPv6 {
		panic(fmt.Sprintf("not an IPv6 frame: %v", err))
	}
	return func(d *frame.Decoded) bool { return d.IPv6 && string(d.L3) == string(want.L3) }
}

// ifaceAddrs reads an interface's MAC and link-local address in ns.
func ifaceAddrs(t *testing.T, ns, ifname string) (net.HardwareAddr, netip.Addr) {
	t.Helper()
	nh := nsHandle(t, ns)
	defer nh.Close()
	l, err := nh.LinkByName(ifname)
	if err != nil {
		t.Fatalf("%s in %s: %v", ifname, ns, err)
	}
	var ll netip.Addr
	eventually(t, linkWait, func() error {
		as, err := nh.AddrList(l, netlink.FAMILY_V6)
		if err != nil {
			return err
		}
		for _, a := range as {
			if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.IsLinkLocalUnicast() && a.Flags&unix.IFA_F_TENTATIVE == 0 {
				ll = ip
				return nil
			}
		}
		out, _ := topo.Run(ns, "ip", "-6", "addr", "show", "dev", ifname)
		return fmt.Errorf("%s in %s has no usable link-local address yet:\n%s", ifname, ns, out)
	})
	return l.Attrs().HardwareAddr, ll
}

func echoFrame(e frame.Ether, src, dst netip.Addr, marker []byte) []byte {
	return frame.Frame(e, frame.IPv6{Src: src, Dst: dst, Proto: frame.ProtoICMPv6, Payload: frame.Echo(0x6d70, 1, marker)})
}

func hasMarker(m []byte) func(*frame.Decoded) bool {
	return func(d *frame.Decoded) bool { return d.Contains(m) }
}

// linkWait bounds the wait for a fresh link to carry frames: until the
// kernel's linkwatch has run, a veth drops what it is given and has no
// link-local address, and linkwatch waits for the RTNL lock, which the
// teardown of other tests' namespaces holds for seconds at a time.
const linkWait = 30 * time.Second

// sendUntilSeen sends f until the capture shows a match, for up to
// linkWait.
func sendUntilSeen(snd *frame.Sender, f []byte, c *frame.Capture, match func(*frame.Decoded) bool) error {
	deadline := time.Now().Add(linkWait)
	for {
		if err := snd.Send(f); err != nil {
			return err
		}
		_, err := c.WaitFor(match, 250*time.Millisecond)
		if err == nil || time.Now().After(deadline) {
			return err
		}
	}
}

// nsHandle is a netlink handle inside namespace ns.
func nsHandle(t *testing.T, ns string) *netlink.Handle {
	t.Helper()
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatalf("namespace %s: %v", ns, err)
	}
	defer h.Close()
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatalf("netlink in %s: %v", ns, err)
	}
	return nh
}

// neighbour returns the lladdr of p's neighbour entry for addr on its
// interface, and whether there is one with an address.
func neighbour(t *testing.T, p party, addr netip.Addr) (net.HardwareAddr, bool) {
	t.Helper()
	h := nsHandle(t, p.NS)
	defer h.Close()
	l, err := h.LinkByName(p.If)
	if err != nil {
		t.Fatalf("%s in %s: %v", p.If, p.NS, err)
	}
	ns, err := h.NeighList(l.Attrs().Index, netlink.FAMILY_V6)
	if err != nil {
		t.Fatalf("neighbours of %s in %s: %v", p.If, p.NS, err)
	}
	for _, n := range ns {
		if a, ok := netip.AddrFromSlice(n.IP); ok && a == addr && len(n.HardwareAddr) == 6 {
			return n.HardwareAddr, true
		}
	}
	return nil, false
}

// neighHarm reports p's neighbour entry for addr if it points to bad.
func neighHarm(t *testing.T, p party, addr netip.Addr, bad net.HardwareAddr) string {
	t.Helper()
	if mac, ok := neighbour(t, p, addr); ok && mac.String() == bad.String() {
		return fmt.Sprintf("%s's neighbour entry for %s points to %s", p.NS, addr, bad)
	}
	return ""
}

// routeHarm reports routes, route exceptions and addresses the attacker
// gave the victim: anything via the attacker's link-local address, an
// address from the rogue prefix, a redirected route to the router.
func routeHarm(t *testing.T, l *link) string {
	t.Helper()
	h := nsHandle(t, l.Vic.NS)
	defer h.Close()
	var harm []string
	rs, err := h.RouteList(nil, netlink.FAMILY_V6)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if gw, ok := netip.AddrFromSlice(r.Gw); ok && gw == l.Atk.LL {
			harm = append(harm, "route "+r.String())
		}
		if r.Dst != nil {
			if d, ok := netip.AddrFromSlice(r.Dst.IP); ok && l.Rogue.Contains(d) {
				harm = append(harm, "route to the rogue prefix "+r.Dst.String())
			}
		}
	}
	as, err := h.AddrList(nil, netlink.FAMILY_V6)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range as {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && l.Rogue.Contains(ip) {
			harm = append(harm, "address "+ip.String())
		}
	}
	if got, err := h.RouteGet(l.Router.AsSlice()); err == nil && len(got) > 0 {
		if gw, ok := netip.AddrFromSlice(got[0].Gw); ok && gw == l.Atk.LL {
			harm = append(harm, fmt.Sprintf("route to %s via %s (redirected)", l.Router, gw))
		}
	}
	if len(harm) == 0 {
		return ""
	}
	return l.Vic.NS + " got " + strings.Join(harm, "; ")
}

// Every attack frame does its harm on a link without v6dp: an attacker
// and a victim on one veth pair, the victim's neighbour entries and
// default route set up as on the bridge. This is what makes TestHostile
// able to fail: a frame that harmed nobody would pass it trivially.
func TestHostileFramesHarm(t *testing.T) {
	for _, a := range hostileAttacks() {
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			tp := topo.New(t)
			l := &link{
				Atk:    party{NS: tp.NS("atk"), If: "eth0", MAC: net.HardwareAddr{0x02, 0x42, 0xac, 0x11, 0, 2}, Addr: netip.MustParseAddr("2001:db8::1:2")},
				Vic:    party{NS: tp.NS("vic"), If: "eth0", MAC: net.HardwareAddr{0x02, 0x42, 0xac, 0x11, 0, 3}, Addr: netip.MustParseAddr("2001:db8::1:3")},
				Nb:     party{MAC: net.HardwareAddr{0x02, 0x42, 0xac, 0x11, 0, 4}, Addr: netip.MustParseAddr("2001:db8::1:4")},
				GwMAC:  net.HardwareAddr{0x02, 0x42, 0xac, 0x11, 0, 1},
				Gw:     gatewayLL,
				Router: netip.MustParseAddr(routerAddr),
				Rogue:  roguePrefix,
				Forged: forgedMAC,
			}
			tp.Veth(l.Atk.NS, "eth0", l.Vic.NS, "eth0")
			for _, p := range []*party{&l.Atk, &l.Vic} {
				p.LL = frame.LinkLocal(p.MAC)
				tp.Sysctl(p.NS, "net.ipv6.conf.eth0.accept_dad", "0")
				tp.MustRun(p.NS, "ip", "link", "set", "eth0", "address", p.MAC.String())
				tp.MustRun(p.NS, "ip", "addr", "add", p.Addr.String()+"/112", "dev", "eth0", "nodad")
				tp.MustRun(p.NS, "ip", "link", "set", "eth0", "up")
			}
			v := l.Vic.NS
			if a.fragmented {
				tp.Sysctl(v, "net.ipv6.conf.eth0.suppress_frag_ndisc", "0")
			}
			for _, n := range []struct {
				addr netip.Addr
				mac  net.HardwareAddr
			}{{l.Gw, l.GwMAC}, {l.Nb.Addr, l.Nb.MAC}, {l.Atk.Addr, l.Atk.MAC}} {
				tp.MustRun(v, "ip", "-6", "neigh", "replace", n.addr.String(), "lladdr", n.mac.String(), "nud", "stale", "dev", "eth0")
			}
			tp.MustRun(v, "ip", "-6", "route", "add", "default", "via", l.Gw.String(), "dev", "eth0")
			if h := a.harm(t, l); h != "" {
				t.Fatalf("harmed before the attack: %s", h)
			}
			snd, err := frame.NewSender(l.Atk.NS, "eth0")
			if err != nil {
				t.Fatal(err)
			}
			defer snd.Close()
			c, err := frame.NewCapture(v, "eth0")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// Both links ready (a usable link-local address on each),
			// and the victim able to answer without resolving first.
			ifaceAddrs(t, l.Atk.NS, "eth0")
			ifaceAddrs(t, v, "eth0")
			tp.MustRun(v, "ip", "-6", "neigh", "replace", l.Atk.LL.String(), "lladdr", l.Atk.MAC.String(), "nud", "stale", "dev", "eth0")
			replies, err := frame.NewCapture(l.Atk.NS, "eth0")
			if err != nil {
				t.Fatal(err)
			}
			defer replies.Close()
			// The victim's stack is up before the attack is judged:
			// it answers a control echo request. (A fresh link drops
			// frames, and its IPv6 has no link-local address, until
			// the kernel's linkwatch has run, late on a busy machine.)
			m := []byte("v6dp-hostile-control-" + tp.Tag)
			ctl := echoFrame(frame.Ether{Dst: l.Vic.MAC, Src: l.Atk.MAC}, l.Atk.LL, l.Vic.LL, m)
			reply := func(d *frame.Decoded) bool { return d.ICMPType() == frame.ICMPEchoReply && d.Contains(m) }
			if err := sendUntilSeen(snd, ctl, replies, reply); err != nil {
				t.Fatalf("the victim does not answer a control echo request on the new link: %v", err)
			}
			if a.inert != "" {
				// Delivered, not harmful here: the victim's kernel
				// drops it in reassembly.
				fs := a.frames(l)
				if err := snd.Send(fs...); err != nil {
					t.Fatal(err)
				}
				for _, f := range fs {
					if _, err := c.WaitFor(sameL3(f), 2*time.Second); err != nil {
						t.Fatalf("frame not delivered: %v", err)
					}
				}
				time.Sleep(100 * time.Millisecond)
				if h := a.harm(t, l); h != "" {
					t.Fatalf("harm where none was expected (%s): %s", a.inert, h)
				}
				t.Logf("delivered; no harm to Linux: %s", a.inert)
				return
			}
			fs := a.frames(l)
			if err := snd.Send(fs...); err != nil {
				t.Fatal(err)
			}
			for _, f := range fs {
				if _, err := c.WaitFor(sameL3(f), 2*time.Second); err != nil {
					t.Fatalf("attack frame not delivered: %v", err)
				}
			}
			eventually(t, 3*time.Second, func() error {
				if a.harm(t, l) == "" {
					neigh, _ := tp.Run(v, "ip", "-6", "neigh", "show", "dev", "eth0")
					routes, _ := tp.Run(v, "ip", "-6", "route", "show", "table", "all")
					return fmt.Errorf("the frames did no harm to an unguarded victim; neighbours:\n%sroutes:\n%s", neigh, routes)
				}
				return nil
			})
			t.Log(a.harm(t, l))
		})
	}
}
