package topo

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/mdlayher/ndp"
)

var (
	hostMAC   = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	routerMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
	routerLL  = netip.MustParseAddr("fe80::2")
	target    = netip.MustParseAddr("2001:db8::c009")
)

// naFrame is a proxy's correct answer to the router's multicast NS, which
// each case below breaks in one way.
func naFrame(t *testing.T, edit func(f []byte)) []byte {
	t.Helper()
	body, err := ndp.MarshalMessageChecksum(&ndp.NeighborAdvertisement{
		Router: true, Solicited: true, TargetAddress: target,
		Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: hostMAC}},
	}, target, routerLL)
	if err != nil {
		t.Fatal(err)
	}
	f := append([]byte{}, routerMAC...)
	f = append(f, hostMAC...)
	f = append(f, 0x86, 0xdd, 0x60, 0, 0, 0)
	f = binary.BigEndian.AppendUint16(f, uint16(len(body)))
	f = append(f, 58, 255)
	s, d := target.As16(), routerLL.As16()
	f = append(f, s[:]...)
	f = append(f, d[:]...)
	f = append(f, body...)
	if edit != nil {
		edit(f)
	}
	return f
}

func expect() Expect {
	return Expect{Target: target, To: routerLL, ToMAC: routerMAC, HostMAC: hostMAC, NeedTLLA: true, Router: true, Source: target}
}

// Each way an answer can be wrong is reported by Check, naming it.
func TestCheckSeesWrongAnswers(t *testing.T) {
	const icmp = 14 + 40
	fixSum := func(f []byte) {
		binary.BigEndian.PutUint16(f[icmp+2:], 0)
		binary.BigEndian.PutUint16(f[icmp+2:], checksum(target, routerLL, f[icmp:]))
	}
	cases := []struct {
		name string
		edit func(f []byte)
		want string // "" for the correct answer
	}{
		{"correct", nil, ""},
		{"hop limit 64", func(f []byte) { f[14+7] = 64 }, "hop limit 64"},
		{"bad checksum", func(f []byte) { f[icmp+2] ^= 0xff }, "checksum wrong"},
		{"code 1", func(f []byte) { f[icmp+1] = 1; fixSum(f) }, "code 1"},
		{"S clear", func(f []byte) { f[icmp+4] &^= 0x40; fixSum(f) }, "S flag clear"},
		{"O set", func(f []byte) { f[icmp+4] |= 0x20; fixSum(f) }, "O flag set"},
		{"R clear", func(f []byte) { f[icmp+4] &^= 0x80; fixSum(f) }, "R flag false"},
		{"other target", func(f []byte) { f[icmp+23] ^= 1; fixSum(f) }, "target 2001:db8::c008"},
		{"wrong TLLA", func(f []byte) { f[icmp+24+7] ^= 1; fixSum(f) }, "TLLA 02:00:00:00:00:00"},
		{"zero-length option", func(f []byte) { f[icmp+24+1] = 0; fixSum(f) }, "malformed option"},
		{"ethernet source", func(f []byte) { f[11] ^= 1 }, "Ethernet source"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := ParseNA(naFrame(t, c.edit))
			if a == nil {
				t.Fatal("not parsed as an NA")
			}
			err := a.Check(expect())
			switch {
			case c.want == "" && err != nil:
				t.Errorf("correct answer rejected: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("Check = %v, want it to say %q", err, c.want)
			}
		})
	}
	// No TLLA at all: fine for a unicast NS, wrong for a multicast one.
	a := ParseNA(naFrame(t, nil))
	a.TLLA = nil
	w := expect()
	if err := a.Check(w); err == nil || !strings.Contains(err.Error(), "no Target Link-Layer Address") {
		t.Errorf("missing TLLA for a multicast NS: %v", err)
	}
	w.NeedTLLA = false
	if err := a.Check(w); err != nil {
		t.Errorf("missing TLLA for a unicast NS: %v", err)
	}
}

// An unsolicited announcement (to all-nodes, S clear) is not an answer;
// with S set it is a wrong one.
func TestAnnouncement(t *testing.T) {
	body, err := ndp.MarshalMessageChecksum(&ndp.NeighborAdvertisement{Override: true, TargetAddress: target,
		Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: hostMAC}}}, routerLL, netip.IPv6LinkLocalAllNodes())
	if err != nil {
		t.Fatal(err)
	}
	f := append([]byte{0x33, 0x33, 0, 0, 0, 1}, hostMAC...)
	f = append(f, 0x86, 0xdd, 0x60, 0, 0, 0)
	f = binary.BigEndian.AppendUint16(f, uint16(len(body)))
	f = append(f, 58, 255)
	s, d := routerLL.As16(), netip.IPv6LinkLocalAllNodes().As16()
	f = append(f, s[:]...)
	f = append(f, d[:]...)
	f = append(f, body...)
	if a := ParseNA(f); a == nil || !a.announcement() {
		t.Fatalf("a correct unsolicited NA is not recognised as an announcement: %+v", a)
	}
	f[14+40+4] |= 0x40
	if a := ParseNA(f); a == nil || a.announcement() || len(a.RFC4861()) == 0 {
		t.Errorf("S set on an NA to all-nodes: want an RFC 4861 7.1.2 violation")
	}
}

// FuzzParseNA: any frame parses without a panic, and an advertisement
// ParseNA finds clean (RFC 4861 7.1.2) is one mdlayher/ndp reads the same
// way: the same flags, target and TLLA.
func FuzzParseNA(f *testing.F) {
	t := &testing.T{}
	f.Add(naFrame(t, nil))
	f.Add(naFrame(t, func(b []byte) { b[14+40+4] = 0 }))
	f.Add(naFrame(t, func(b []byte) { b[14+40+24+1] = 0 }))
	f.Fuzz(func(t *testing.T, frame []byte) {
		a := ParseNA(frame)
		if a == nil || len(a.RFC4861()) > 0 {
			return
		}
		m, err := ndp.ParseMessage(frame[14+40 : 14+40+a.ICMPLen])
		if err != nil {
			t.Fatalf("clean to ParseNA, rejected by ndp: %v\n% x", err, frame)
		}
		na, ok := m.(*ndp.NeighborAdvertisement)
		if !ok {
			t.Fatalf("clean NA to ParseNA, a %T to ndp", m)
		}
		var tlla net.HardwareAddr
		for _, o := range na.Options {
			if l, ok := o.(*ndp.LinkLayerAddress); ok && l.Direction == ndp.Target {
				tlla = l.Addr
			}
		}
		if na.Router != a.NA.Router || na.Solicited != a.NA.Solicited || na.Override != a.NA.Override ||
			na.TargetAddress != a.NA.TargetAddress || tlla.String() != a.TLLA.String() {
			t.Fatalf("ParseNA %+v TLLA %s, ndp %+v TLLA %s", a.NA, a.TLLA, na, tlla)
		}
	})
}
