package frame

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/ndp"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
)

var (
	macA   = net.HardwareAddr{0x02, 0x42, 0xac, 0x11, 0x00, 0x03}
	macB   = net.HardwareAddr{0x02, 0x42, 0xac, 0x11, 0x00, 0x04}
	srcLL  = netip.MustParseAddr("fe80::42:acff:fe11:3")
	target = netip.MustParseAddr("2001:db8::c009")
	gw     = netip.MustParseAddr("fe80::1")
	// addrs compares netip.Addr values, whose fields are unexported.
	addrs = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })
)

// ip6Header checks the fixed header with x/net's parser and returns it.
func ip6Header(t *testing.T, f []byte, off int) *ipv6.Header {
	t.Helper()
	h, err := ipv6.ParseHeader(f[off:])
	if err != nil {
		t.Fatal(err)
	}
	if h.Version != 6 || h.PayloadLen != len(f)-off-40 {
		t.Fatalf("header %+v for a %d-byte frame", h, len(f))
	}
	return h
}

// reNDP parses an NDP message with mdlayher/ndp and marshals it again with
// that package's own checksum: the bytes must come out the same, so the
// layout, the option encoding and the checksum all agree with ndp's.
func reNDP(t *testing.T, body []byte, src, dst netip.Addr) ndp.Message {
	t.Helper()
	m, err := ndp.ParseMessage(body)
	if err != nil {
		t.Fatalf("ndp.ParseMessage: %v\n% x", err, body)
	}
	ref, err := ndp.MarshalMessageChecksum(m, src, dst)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ref, body) {
		t.Fatalf("ndp re-marshals %T differently\n got % x\nwant % x", m, body, ref)
	}
	return m
}

// reICMP checks a message's checksum with x/net/icmp, which computes it
// over the pseudo-header itself.
func reICMP(t *testing.T, body []byte, src, dst netip.Addr) *icmp.Message {
	t.Helper()
	m, err := icmp.ParseMessage(ProtoICMPv6, body)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := m.Marshal(icmp.IPv6PseudoHeader(src.AsSlice(), dst.AsSlice()))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ref, body) {
		t.Fatalf("x/net/icmp computes another message\n got % x\nwant % x", body, ref)
	}
	return m
}

func TestNA(t *testing.T) {
	e := Ether{Dst: macB, Src: macA}
	p := IPv6{Src: srcLL, Dst: AllNodes, HopLimit: 255, Proto: ProtoICMPv6,
		Payload: NA(NAOverride|NARouter, gw, TLLA(macA))}
	f := Frame(e, p)
	if !bytes.Equal(f[:6], macB) || !bytes.Equal(f[6:12], macA) || binary.BigEndian.Uint16(f[12:]) != EtherTypeIPv6 {
		t.Fatalf("ethernet header % x", f[:14])
	}
	h := ip6Header(t, f, 14)
	if h.NextHeader != ProtoICMPv6 || h.HopLimit != 255 || !h.Src.Equal(srcLL.AsSlice()) || !h.Dst.Equal(AllNodes.AsSlice()) {
		t.Fatalf("ip header %+v", h)
	}
	m := reNDP(t, f[54:], srcLL, AllNodes)
	want := &ndp.NeighborAdvertisement{Router: true, Override: true, TargetAddress: gw,
		Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: macA}}}
	if diff := cmp.Diff(want, m, addrs); diff != "" {
		t.Errorf("NA (-want +got):\n%s", diff)
	}
	d, err := Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	if tg, ok := d.Target(); !ok || tg != gw || d.ICMPType() != ICMPNeighAdvert || d.Src6 != srcLL {
		t.Errorf("Parse: %+v", d)
	}
}

func TestNS(t *testing.T) {
	src := netip.MustParseAddr("2001:db8::c00a")
	dst := SolicitedNode(target)
	ref, _ := ndp.SolicitedNodeMulticast(target)
	if dst != ref {
		t.Fatalf("SolicitedNode(%s) = %s, want %s", target, dst, ref)
	}
	f := Frame(Ether{Dst: MulticastMAC(dst), Src: macA}, IPv6{Src: src, Dst: dst, HopLimit: 255,
		Proto: ProtoICMPv6, Payload: NS(target, SLLA(macB))})
	if want := (net.HardwareAddr{0x33, 0x33, 0xff, 0, 0xc0, 0x09}); !bytes.Equal(f[:6], want) {
		t.Errorf("eth dst %s, want %s", net.HardwareAddr(f[:6]), want)
	}
	ip6Header(t, f, 14)
	m := reNDP(t, f[54:], src, dst)
	want := &ndp.NeighborSolicitation{TargetAddress: target,
		Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: macB}}}
	if diff := cmp.Diff(want, m, addrs); diff != "" {
		t.Errorf("NS (-want +got):\n%s", diff)
	}
}

func TestRA(t *testing.T) {
	pfx := netip.MustParsePrefix("2001:db8:bad::/64")
	body := RA(1800, SLLA(macA), PrefixInfo(pfx, 3600, 1800))
	f := Frame(Ether{Dst: MulticastMAC(AllNodes), Src: macA},
		IPv6{Src: srcLL, Dst: AllNodes, HopLimit: 255, Proto: ProtoICMPv6, Payload: body})
	ip6Header(t, f, 14)
	m := reNDP(t, f[54:], srcLL, AllNodes)
	ra, ok := m.(*ndp.RouterAdvertisement)
	if !ok {
		t.Fatalf("parsed as %T", m)
	}
	if ra.RouterLifetime.Seconds() != 1800 || ra.CurrentHopLimit != 64 || len(ra.Options) != 2 {
		t.Fatalf("RA %+v", ra)
	}
	pi, ok := ra.Options[1].(*ndp.PrefixInformation)
	if !ok || pi.Prefix != pfx.Addr() || pi.PrefixLength != 64 || !pi.OnLink || !pi.AutonomousAddressConfiguration ||
		pi.ValidLifetime.Seconds() != 3600 || pi.PreferredLifetime.Seconds() != 1800 {
		t.Errorf("prefix option %+v", ra.Options[1])
	}
}

func TestRedirect(t *testing.T) {
	dest := netip.MustParseAddr("2001:db8::1")
	trigger := IPv6{Src: target, Dst: dest, Proto: ProtoICMPv6, Payload: Echo(1, 1, nil)}.Packet()
	body := Redirect(srcLL, dest, TLLA(macA), RedirectedHeader(trigger))
	f := Frame(Ether{Dst: macB, Src: macA}, IPv6{Src: gw, Dst: target, HopLimit: 255, Proto: ProtoICMPv6, Payload: body})
	ip6Header(t, f, 14)
	m := reICMP(t, f[54:], gw, target)
	if m.Type != ipv6.ICMPTypeRedirect || m.Code != 0 {
		t.Fatalf("parsed %v code %d", m.Type, m.Code)
	}
	b := f[54:]
	if got := netip.AddrFrom16([16]byte(b[8:24])); got != srcLL {
		t.Errorf("target %s", got)
	}
	if got := netip.AddrFrom16([16]byte(b[24:40])); got != dest {
		t.Errorf("destination %s", got)
	}
	// Options: TLLA (1 unit), then the redirected header (type 4), whose
	// length covers its 8-byte start plus the padded packet.
	if b[40] != 2 || b[41] != 1 || !bytes.Equal(b[42:48], macA) {
		t.Errorf("TLLA option % x", b[40:48])
	}
	rh := b[48:]
	if rh[0] != 4 || int(rh[1])*8 != len(rh) || len(rh) != 8+(len(trigger)+7)/8*8 || !bytes.Equal(rh[8:8+len(trigger)], trigger) {
		t.Errorf("redirected header option % x", rh)
	}
}

func TestEchoAndUDP(t *testing.T) {
	src, dst := netip.MustParseAddr("2001:db8::c009"), netip.MustParseAddr("2001:db8::1")
	f := Frame(Ether{Dst: macB, Src: macA}, IPv6{Src: src, Dst: dst, Proto: ProtoICMPv6, Payload: Echo(7, 9, []byte("marker"))})
	h := ip6Header(t, f, 14)
	if h.HopLimit != 64 {
		t.Errorf("default hop limit %d", h.HopLimit)
	}
	m := reICMP(t, f[54:], src, dst)
	if e, ok := m.Body.(*icmp.Echo); !ok || e.ID != 7 || e.Seq != 9 || string(e.Data) != "marker" {
		t.Errorf("echo %+v", m.Body)
	}

	u := Frame(Ether{Dst: macB, Src: macA}, IPv6{Src: src, Dst: dst, Proto: ProtoUDP, Payload: UDP(1000, 9, []byte("x"))})
	ip6Header(t, u, 14)
	// A correct checksum makes the sum over the whole datagram fold to
	// 0xffff; Checksum's complement of that is 0. Cross-checked with the
	// ICMPv6 references above, which share the summing code.
	if c := Checksum(src, dst, ProtoUDP, u[54:]); c != 0 {
		t.Errorf("UDP checksum does not verify: residue %#04x", c)
	}
	if binary.BigEndian.Uint16(u[54+4:]) != 9 {
		t.Errorf("UDP length % x", u[54:62])
	}
}

// Extension headers come between the fixed header and the message; the
// checksum is unchanged by them (the pseudo-header has no room for them).
func TestExtensionHeaders(t *testing.T) {
	na := NA(NAOverride, target, TLLA(macA))
	for _, c := range []struct {
		name string
		ext  []Ext
		want []uint8
	}{
		{"destination options", []Ext{DestOpts(1)}, []uint8{ProtoDestOpts}},
		{"hop-by-hop", []Ext{HopByHop(1)}, []uint8{ProtoHopByHop}},
		{"long destination options", []Ext{DestOpts(40)}, []uint8{ProtoDestOpts}},
		{"hop-by-hop then two destination options", []Ext{HopByHop(2), DestOpts(1), DestOpts(3)},
			[]uint8{ProtoHopByHop, ProtoDestOpts, ProtoDestOpts}},
		{"atomic fragment", []Ext{Fragment(0, false, 0x1234)}, []uint8{ProtoFragment}},
		{"routing header", []Ext{Routing(4)}, []uint8{ProtoRouting}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := Frame(Ether{Dst: macB, Src: macA}, IPv6{Src: srcLL, Dst: AllNodes, HopLimit: 255,
				Ext: c.ext, Proto: ProtoICMPv6, Payload: na})
			if h := ip6Header(t, f, 14); h.NextHeader != int(c.want[0]) {
				t.Errorf("next header %d", h.NextHeader)
			}
			d, err := Parse(f)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.want, d.Exts); diff != "" {
				t.Errorf("headers (-want +got):\n%s", diff)
			}
			if d.Proto != ProtoICMPv6 {
				t.Errorf("upper layer %d", d.Proto)
			}
			reNDP(t, d.Payload, srcLL, AllNodes)
			// Each options header is filled by padding options exactly.
			off := 54
			for _, e := range c.ext {
				n := 8 * (int(f[off+1]) + 1)
				switch e.Type {
				case ProtoRouting:
					if n != 8 || f[off+2] != 4 || f[off+3] != 0 {
						t.Errorf("routing header % x: want 8 bytes, type 4, segments left 0", f[off:off+n])
					}
				case ProtoHopByHop, ProtoDestOpts:
					checkPadding(t, f[off+2:off+n])
				}
				if e.Type == ProtoFragment {
					n = 8
					if binary.BigEndian.Uint16(f[off+2:]) != 0 || binary.BigEndian.Uint32(f[off+4:]) != 0x1234 {
						t.Errorf("fragment header % x", f[off:off+8])
					}
				}
				off += n
			}
		})
	}
}

// checkPadding walks the options of an options header: only Pad1 and
// PadN, ending exactly at the header's end (RFC 8200 section 4.2).
func checkPadding(t *testing.T, opts []byte) {
	t.Helper()
	for i := 0; i < len(opts); {
		switch {
		case opts[i] == 0:
			i++
		case opts[i] == 1 && i+1 < len(opts) && i+2+int(opts[i+1]) <= len(opts):
			i += 2 + int(opts[i+1])
		default:
			t.Fatalf("bad padding at %d of % x", i, opts)
		}
	}
}

func TestFragments(t *testing.T) {
	na := NA(NAOverride, target, TLLA(macA))
	fs := Fragments(Ether{Dst: macB, Src: macA}, IPv6{Src: srcLL, Dst: AllNodes, HopLimit: 255,
		Ext: []Ext{DestOpts(1)}, Proto: ProtoICMPv6, Payload: na}, nil, 16, 0xabcd)
	if len(fs) != 2 {
		t.Fatalf("%d fragments", len(fs))
	}
	var whole []byte
	for i, f := range fs {
		ip6Header(t, f, 14)
		d, err := Parse(f)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]uint8{ProtoDestOpts, ProtoFragment}, d.Exts); diff != "" {
			t.Errorf("fragment %d headers (-want +got):\n%s", i, diff)
		}
		more := f[14+40+8+3]&1 == 1
		if want := uint16(i * 2); d.Offset != want || more != (i == 0) {
			t.Errorf("fragment %d: offset %d more %v", i, d.Offset, more)
		}
		if id := binary.BigEndian.Uint32(f[14+40+8+4:]); id != 0xabcd {
			t.Errorf("fragment %d: id %#x", i, id)
		}
		whole = append(whole, d.Payload...)
	}
	// Reassembled, the message is the NA with the checksum of the whole.
	reNDP(t, whole, srcLL, AllNodes)
	if d, _ := Parse(fs[1]); d.ICMPType() != -1 {
		t.Errorf("a non-first fragment parsed as ICMPv6 type %d", d.ICMPType())
	}
}

// RFC 7113's evasion: the first fragment holds only a long destination
// options header, the RA itself is in the second.
func TestFragmentsHeaderChain(t *testing.T) {
	ra := RA(1800, SLLA(macA))
	fs := Fragments(Ether{Dst: macB, Src: macA}, IPv6{Src: srcLL, Dst: AllNodes, HopLimit: 255,
		Proto: ProtoICMPv6, Payload: ra}, []Ext{DestOpts(4)}, 32, 7)
	d0, err := Parse(fs[0])
	if err != nil {
		t.Fatal(err)
	}
	d1, err := Parse(fs[1])
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]uint8{ProtoFragment, ProtoDestOpts}, d0.Exts); diff != "" {
		t.Errorf("first fragment headers (-want +got):\n%s", diff)
	}
	// The parser stops at the end of the first fragment's headers: no
	// upper layer is in it.
	if d0.ICMPType() != -1 || len(d0.Payload) != 0 {
		t.Errorf("first fragment has an upper layer: type %d, % x", d0.ICMPType(), d0.Payload)
	}
	// Fragment header next header: destination options.
	if fs[0][14+40] != ProtoDestOpts || fs[1][14+40] != ProtoDestOpts || d1.Offset != 4 {
		t.Errorf("fragment headers % x / % x", fs[0][54:62], fs[1][54:62])
	}
	// The second fragment's data is the RA, checksummed as a whole.
	reNDP(t, fs[1][14+40+8:], srcLL, AllNodes)
}

func TestVLAN(t *testing.T) {
	p := IPv6{Src: srcLL, Dst: AllNodes, HopLimit: 255, Proto: ProtoICMPv6, Payload: NA(0, gw)}
	for _, c := range []struct {
		name  string
		e     Ether
		tpids []uint16
	}{
		{"802.1Q VLAN 42", Ether{Tags: []uint16{42}}, []uint16{EtherTypeVLAN}},
		{"two priority tags", Ether{Tags: []uint16{0, 0}}, []uint16{EtherTypeVLAN, EtherTypeVLAN}},
		{"802.1ad then 802.1Q", Ether{Tags: []uint16{7, 42}, TagType: EtherTypeQinQ}, []uint16{EtherTypeQinQ, EtherTypeVLAN}},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.e.Dst, c.e.Src = macB, macA
			f := Frame(c.e, p)
			for i, tpid := range c.tpids {
				if got := binary.BigEndian.Uint16(f[12+4*i:]); got != tpid {
					t.Errorf("tag %d TPID %#04x, want %#04x", i, got, tpid)
				}
			}
			off := 12 + 4*len(c.tpids)
			if binary.BigEndian.Uint16(f[off:]) != EtherTypeIPv6 {
				t.Errorf("inner EtherType % x", f[off:off+2])
			}
			ip6Header(t, f, off+2)
			d, err := Parse(f)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.e.Tags, d.Tags); diff != "" || d.ICMPType() != ICMPNeighAdvert {
				t.Errorf("tags (-want +got):\n%s, type %d", diff, d.ICMPType())
			}
		})
	}
	raw := Raw(Ether{Dst: Broadcast, Src: macA, Type: EtherTypeLocal}, []byte("hello"))
	if d, err := Parse(raw); err != nil || d.IPv6 || d.Type != EtherTypeLocal || !d.Contains([]byte("hello")) {
		t.Errorf("raw frame: %+v %v", d, err)
	}
}

func TestAddresses(t *testing.T) {
	if got := LinkLocal(macA); got != srcLL {
		t.Errorf("LinkLocal(%s) = %s, want %s", macA, got, srcLL)
	}
	if got := MulticastMAC(AllNodes); got.String() != "33:33:00:00:00:01" {
		t.Errorf("MulticastMAC(ff02::1) = %s", got)
	}
}

// Truncated input never panics the parser.
func FuzzParse(f *testing.F) {
	f.Add(Frame(Ether{Dst: macB, Src: macA, Tags: []uint16{1}}, IPv6{Src: srcLL, Dst: AllNodes, Ext: []Ext{HopByHop(1), Fragment(0, false, 1)},
		Proto: ProtoICMPv6, Payload: NA(0, gw, TLLA(macA))}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if d, err := Parse(b); err == nil {
			d.ICMPType()
			d.Target()
		}
	})
}

// Every size of options header is padding only, to the byte.
func TestOptionsSizes(t *testing.T) {
	for units := 1; units <= 256; units++ {
		e := DestOpts(units)
		if len(e.Body)+1 != 8*units || int(e.Body[0]) != units-1 {
			t.Fatalf("%d units: %d bytes, length field %d", units, len(e.Body)+1, e.Body[0])
		}
		checkPadding(t, e.Body[1:])
	}
}
