package bench

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/mdlayher/ndp"
)

// The flood's frames must be solicitations the kernel accepts: the
// checksum is checked against the ndp package's own computation.
func TestNSFrame(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	src := netip.MustParseAddr("2001:db8::1")
	target := netip.MustParseAddr("2001:db8::1:242:ac11:2")
	f, err := nsFrame(mac, src, target)
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{0x33, 0x33, 0xff, 0x11, 0x00, 0x02}; !bytes.Equal(f[:6], want) {
		t.Errorf("eth dst % x, want % x", f[:6], want)
	}
	if f[14+7] != 255 {
		t.Errorf("hop limit %d", f[14+7])
	}
	dst, _ := ndp.SolicitedNodeMulticast(target)
	ref, err := ndp.MarshalMessageChecksum(&ndp.NeighborSolicitation{
		TargetAddress: target,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: mac}},
	}, src, dst)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f[14+40:], ref) {
		t.Errorf("ICMPv6 body\n got % x\nwant % x", f[14+40:], ref)
	}
	if got := netip.AddrFrom16([16]byte(f[14+24 : 14+40])); got != dst {
		t.Errorf("ip dst %s, want %s", got, dst)
	}
}
