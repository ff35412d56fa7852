package bench

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/mdlayher/ndp"
)

var (
	tRouterMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	tHostMAC   = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
	tRouter    = netip.MustParseAddr(routerAddr)
	tLive      = netip.MustParseAddr("2001:db8::1:242:ac11:2")
	tDead      = netip.MustParseAddr("2001:db8::1:242:ac11:3")
)

// naAnswer is the proxy's right answer to the flood's NS for target.
func naAnswer(t *testing.T, target netip.Addr, edit func(f []byte)) []byte {
	t.Helper()
	body, err := ndp.MarshalMessageChecksum(&ndp.NeighborAdvertisement{Router: true, Solicited: true, TargetAddress: target,
		Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: tHostMAC}}}, target, tRouter)
	if err != nil {
		t.Fatal(err)
	}
	f := append(append(append([]byte{}, tRouterMAC...), tHostMAC...), 0x86, 0xdd, 0x60, 0, 0, 0, 0, byte(len(body)), 58, 255)
	s, d := target.As16(), tRouter.As16()
	f = append(append(append(f, s[:]...), d[:]...), body...)
	if edit != nil {
		edit(f)
	}
	return f
}

func runTC(t *testing.T, p *ebpf.Program, frame []byte) uint32 {
	t.Helper()
	ret, err := p.Run(&ebpf.RunOptions{Data: frame, Repeat: 1})
	if err != nil {
		t.Fatal(err)
	}
	return ret
}

// The router-side check counts the right answer as valid and every way of
// being wrong as wrong; other traffic passes uncounted.
func TestNACheck(t *testing.T) {
	c, err := newNACheck(tRouterMAC, tHostMAC, tRouter, netip.MustParsePrefix(ctPrefix), []netip.Addr{tLive})
	if err != nil {
		t.Fatalf("%+v", err)
	}
	defer c.Close()
	const icmp = 14 + 40
	cases := []struct {
		name  string
		frame []byte
		valid bool
	}{
		{"right", naAnswer(t, tLive, nil), true},
		{"target not live", naAnswer(t, tDead, nil), false},
		{"hop limit 64", naAnswer(t, tLive, func(f []byte) { f[14+7] = 64 }), false},
		{"checksum", naAnswer(t, tLive, func(f []byte) { f[icmp+2] ^= 1 }), false},
		{"code 1", naAnswer(t, tLive, func(f []byte) { f[icmp+1] = 1 }), false},
		{"S clear", naAnswer(t, tLive, func(f []byte) { f[icmp+4] &^= 0x40 }), false},
		{"O set", naAnswer(t, tLive, func(f []byte) { f[icmp+4] |= 0x20 }), false},
		{"TLLA", naAnswer(t, tLive, func(f []byte) { f[icmp+31] ^= 1 }), false},
		{"no TLLA option", naAnswer(t, tLive, func(f []byte) { f[icmp+24] = 1 }), false},
		{"to another address", naAnswer(t, tLive, func(f []byte) { f[14+39] ^= 1 }), false},
		{"from another MAC", naAnswer(t, tLive, func(f []byte) { f[11] ^= 1 }), false},
		{"to another MAC", naAnswer(t, tLive, func(f []byte) { f[5] ^= 1 }), false},
		{"short", naAnswer(t, tLive, nil)[:80], false},
	}
	var wantValid, wantWrong uint64
	for _, cs := range cases {
		if got := runTC(t, c.prog, cs.frame); got != tcActShot {
			t.Errorf("%s: verdict %d, want drop", cs.name, got)
		}
		if cs.valid {
			wantValid++
		} else {
			wantWrong++
		}
		v, w, err := c.read()
		if err != nil {
			t.Fatal(err)
		}
		if v != wantValid || w != wantWrong {
			t.Errorf("%s: counted valid %d wrong %d, want %d %d", cs.name, v, w, wantValid, wantWrong)
			wantValid, wantWrong = v, w
		}
	}
	if got := c.lastWrong(); !strings.Contains(got, "target "+tLive.String()) {
		t.Errorf("the last wrong NA is not reported: %s", got)
	}
	// An announcement (to all-nodes, S clear): passed, not counted; with
	// S set it is wrong.
	ann := naAnswer(t, tLive, func(f []byte) {
		copy(f[0:6], []byte{0x33, 0x33, 0, 0, 0, 1})
		f[icmp+4] &^= 0x40
	})
	if got := runTC(t, c.prog, ann); got != tcActOK {
		t.Errorf("an unsolicited NA: verdict %d, want pass", got)
	}
	if v, w, _ := c.read(); v != wantValid || w != wantWrong {
		t.Errorf("an unsolicited NA was counted")
	}
	ann[icmp+4] |= 0x40
	runTC(t, c.prog, ann)
	if _, w, _ := c.read(); w != wantWrong+1 {
		t.Errorf("an NA to all-nodes with S set was not counted wrong")
	}
	wantWrong++
	// An NA for the host's own address (a reachability probe's answer):
	// passed, not counted.
	host := naAnswer(t, netip.MustParseAddr(hostAddr), nil)
	if got := runTC(t, c.prog, host); got != tcActOK {
		t.Errorf("an NA for the host's address: verdict %d, want pass", got)
	}
	if v, w, _ := c.read(); v != wantValid || w != wantWrong {
		t.Errorf("an NA for the host's address was counted")
	}
	// Not an NA: passed, not counted.
	ns, err := nsFrame(tRouterMAC, tRouter, tLive)
	if err != nil {
		t.Fatal(err)
	}
	if got := runTC(t, c.prog, ns); got != tcActOK {
		t.Errorf("an NS: verdict %d, want pass", got)
	}
	if v, w, _ := c.read(); v != wantValid || w != wantWrong {
		t.Errorf("an NS was counted")
	}
}

// The container-side check counts the flood's datagram as intact after
// one hop whatever the Ethernet source, and anything changed as not.
func TestUDPCheck(t *testing.T) {
	sent := udpFrame(tHostMAC, tRouterMAC, tRouter, tLive, 64, fwdFrameLen)
	other := udpFrame(tHostMAC, tRouterMAC, tRouter, tDead, 64, fwdFrameLen)
	ctMAC := net.HardwareAddr{0x02, 0x42, 0xac, 0x11, 0, 2}
	c, err := newUDPCheck([][]byte{sent, other}, []net.HardwareAddr{ctMAC, ctMAC})
	if err != nil {
		t.Fatalf("%+v", err)
	}
	defer c.Close()
	arrived := func(edit func(f []byte)) []byte {
		f := append([]byte(nil), sent...)
		f[14+7]--
		copy(f[0:6], ctMAC)
		copy(f[6:12], []byte{0x02, 0xbb, 0, 0, 0, 9}) // the bridge's MAC, say
		if edit != nil {
			edit(f)
		}
		return f
	}
	cases := []struct {
		name   string
		frame  []byte
		intact bool
	}{
		{"intact", arrived(nil), true},
		{"hop limit not decremented", arrived(func(f []byte) { f[14+7]++ }), false},
		{"payload byte", arrived(func(f []byte) { f[len(f)-1] ^= 1 }), false},
		{"UDP checksum", arrived(func(f []byte) { f[14+40+6] ^= 1 }), false},
		{"destination address", arrived(func(f []byte) { f[14+39] ^= 1 }), false},
		{"destination MAC", arrived(func(f []byte) { f[0] ^= 1 }), false},
		{"truncated", arrived(nil)[:70], false},
		{"padded", append(arrived(nil), 0), false},
	}
	// Not the flood's: passed, not counted.
	tcp := arrived(func(f []byte) { f[14+6] = 6 })
	if ret := runTC(t, c.progs[0], tcp); ret != tcActOK {
		t.Errorf("TCP: verdict %d, want pass", ret)
	}
	if got, _ := c.read(); got.intact[0]+got.bad[0] != 0 {
		t.Errorf("TCP was counted")
	}
	for _, drop := range []bool{false, true} {
		if err := c.setDrop(drop); err != nil {
			t.Fatal(err)
		}
		for _, cs := range cases {
			before, _ := c.read()
			ret := runTC(t, c.progs[0], cs.frame)
			after, _ := c.read()
			di, db := after.intact[0]-before.intact[0], after.bad[0]-before.bad[0]
			if cs.intact && (di != 1 || db != 0) || !cs.intact && (di != 0 || db != 1) {
				t.Errorf("drop=%v %s: intact +%d, bad +%d", drop, cs.name, di, db)
			}
			want := uint32(tcActOK)
			if drop && cs.intact {
				want = tcActShot
			}
			if ret != want {
				t.Errorf("drop=%v %s: verdict %d, want %d", drop, cs.name, ret, want)
			}
			if after.intact[1] != 0 || after.bad[1] != 0 {
				t.Errorf("%s counted for the other container", cs.name)
			}
		}
	}
}
