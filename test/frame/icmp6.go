package frame

import (
	"encoding/binary"
	"net"
	"net/netip"
)

// ICMPv6 message types (RFC 4443, RFC 4861).
const (
	ICMPEchoRequest   = 128
	ICMPEchoReply     = 129
	ICMPRouterSolicit = 133
	ICMPRouterAdvert  = 134
	ICMPNeighSolicit  = 135
	ICMPNeighAdvert   = 136
	ICMPRedirect      = 137
)

// Neighbor Advertisement flags (RFC 4861 section 4.4).
const (
	NARouter    = 0x80
	NASolicited = 0x40
	NAOverride  = 0x20
)

// Option is one NDP option (RFC 4861 section 4.6), already encoded.
type Option []byte

// LLAOption is a Source (1) or Target (2) Link-Layer Address option.
func LLAOption(typ uint8, mac net.HardwareAddr) Option {
	return append(Option{typ, 1}, mac[:6]...)
}

// SLLA is the Source Link-Layer Address option.
func SLLA(mac net.HardwareAddr) Option { return LLAOption(1, mac) }

// TLLA is the Target Link-Layer Address option.
func TLLA(mac net.HardwareAddr) Option { return LLAOption(2, mac) }

// PrefixInfo is a Prefix Information option (RFC 4861 section 4.6.2),
// on-link and autonomous (SLAAC), with the given lifetimes in seconds.
func PrefixInfo(p netip.Prefix, valid, preferred uint32) Option {
	o := make(Option, 32)
	o[0], o[1], o[2], o[3] = 3, 4, byte(p.Bits()), 0x80|0x40
	binary.BigEndian.PutUint32(o[4:8], valid)
	binary.BigEndian.PutUint32(o[8:12], preferred)
	a := p.Masked().Addr().As16()
	copy(o[16:], a[:])
	return o
}

// RedirectedHeader is a Redirected Header option (RFC 4861 section 4.6.3)
// carrying the start of the packet that triggered the redirect.
func RedirectedHeader(pkt []byte) Option {
	n := 8 + len(pkt)
	n = (n + 7) &^ 7
	o := make(Option, n)
	o[0], o[1] = 4, byte(n/8)
	copy(o[8:], pkt)
	return o
}

func appendOptions(b []byte, opts []Option) []byte {
	for _, o := range opts {
		b = append(b, o...)
	}
	return b
}

// NA is a Neighbor Advertisement (RFC 4861 section 4.4) for target with
// the given flags (NARouter, NASolicited, NAOverride).
func NA(flags uint8, target netip.Addr, opts ...Option) []byte {
	b := []byte{ICMPNeighAdvert, 0, 0, 0, flags, 0, 0, 0}
	t := target.As16()
	return appendOptions(append(b, t[:]...), opts)
}

// NS is a Neighbor Solicitation (RFC 4861 section 4.3) for target.
func NS(target netip.Addr, opts ...Option) []byte {
	b := []byte{ICMPNeighSolicit, 0, 0, 0, 0, 0, 0, 0}
	t := target.As16()
	return appendOptions(append(b, t[:]...), opts)
}

// RA is a Router Advertisement (RFC 4861 section 4.2) offering a default
// router for lifetime seconds (0: not a default router).
func RA(lifetime uint16, opts ...Option) []byte {
	b := []byte{ICMPRouterAdvert, 0, 0, 0, 64, 0}
	b = binary.BigEndian.AppendUint16(b, lifetime)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0) // reachable time, retrans timer: unspecified
	return appendOptions(b, opts)
}

// Redirect is a Redirect (RFC 4861 section 4.5): packets for dest should
// go to target instead of the current first hop.
func Redirect(target, dest netip.Addr, opts ...Option) []byte {
	b := []byte{ICMPRedirect, 0, 0, 0, 0, 0, 0, 0}
	t, d := target.As16(), dest.As16()
	b = append(append(b, t[:]...), d[:]...)
	return appendOptions(b, opts)
}

// Echo is an Echo Request (RFC 4443 section 4.1).
func Echo(id, seq uint16, data []byte) []byte {
	b := []byte{ICMPEchoRequest, 0, 0, 0}
	b = binary.BigEndian.AppendUint16(b, id)
	b = binary.BigEndian.AppendUint16(b, seq)
	return append(b, data...)
}

// UDP is a UDP datagram (RFC 768); its checksum is filled in by IPv6.
func UDP(srcPort, dstPort uint16, data []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, srcPort)
	b = binary.BigEndian.AppendUint16(b, dstPort)
	b = binary.BigEndian.AppendUint16(b, uint16(8+len(data)))
	b = append(b, 0, 0)
	return append(b, data...)
}
