package bench

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/mdlayher/ndp"

	"github.com/v6dp/v6dp/test/frame"
)

// nsFrame builds the Ethernet frame of a multicast Neighbor Solicitation
// for target, as a router would send it: from src (srcMAC), to the
// target's solicited-node group, hop limit 255, with a source link-layer
// address option and a valid ICMPv6 checksum.
func nsFrame(srcMAC net.HardwareAddr, src, target netip.Addr) ([]byte, error) {
	dst, err := ndp.SolicitedNodeMulticast(target)
	if err != nil {
		return nil, err
	}
	body, err := ndp.MarshalMessage(&ndp.NeighborSolicitation{
		TargetAddress: target,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: srcMAC}},
	})
	if err != nil {
		return nil, err
	}
	binary.BigEndian.PutUint16(body[2:4], 0)
	binary.BigEndian.PutUint16(body[2:4], frame.Checksum(src, dst, 58, body))

	d16 := dst.As16()
	f := make([]byte, 0, 14+40+len(body))
	// Ethernet: 33:33 + the low 32 bits of the group (33:33:ff:xx:xx:xx).
	f = append(f, 0x33, 0x33, d16[12], d16[13], d16[14], d16[15])
	f = append(f, srcMAC...)
	f = append(f, 0x86, 0xdd)
	// IPv6 header.
	f = append(f, 0x60, 0, 0, 0)
	f = binary.BigEndian.AppendUint16(f, uint16(len(body)))
	f = append(f, 58, 255) // next header ICMPv6, hop limit 255
	s16 := src.As16()
	f = append(f, s16[:]...)
	f = append(f, d16[:]...)
	return append(f, body...), nil
}

// naTarget returns the target of a Neighbor Advertisement frame, if f is
// one (no extension headers: proxies send none).
func naTarget(f []byte) (netip.Addr, bool) {
	if len(f) < 14+40+24 || f[12] != 0x86 || f[13] != 0xdd || f[14+6] != 58 || f[14+40] != 136 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom16([16]byte(f[14+40+8 : 14+40+24])), true
}

// trafgenConfig writes one trafgen packet per frame, byte by byte; trafgen
// sends them round robin. cpu restricts the packets to that CPU's sender.
func trafgenConfig(frames [][]byte) string {
	var b strings.Builder
	for i, f := range frames {
		fmt.Fprintf(&b, "/* %d */\n{", i)
		for j, c := range f {
			if j%16 == 0 {
				b.WriteString("\n ")
			}
			fmt.Fprintf(&b, " 0x%02x,", c)
		}
		b.WriteString("\n}\n")
	}
	return b.String()
}
