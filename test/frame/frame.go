// Package frame builds exact Ethernet frames for v6dp's hostile-container
// tests (spoofed sources, forged Neighbor Discovery, extension-header and
// VLAN evasions), and sends and captures frames through packet sockets on
// an interface inside a network namespace.
//
// The builders are pure and need no privileges; sending and capturing need
// CAP_NET_RAW in the namespace. Every checksum is computed here (RFC 8200
// section 8.1), so a frame is exactly what a hostile container could put on
// its link, nothing the kernel would fix up on the way.
package frame

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
)

// EtherTypes used by the tests.
const (
	EtherTypeIPv6  = 0x86dd
	EtherTypeVLAN  = 0x8100 // IEEE 802.1Q C-tag
	EtherTypeQinQ  = 0x88a8 // IEEE 802.1ad S-tag
	EtherTypeLocal = 0x88b5 // IEEE 802 local experimental
)

// IP protocol numbers (IANA) of the headers built here.
const (
	ProtoHopByHop = 0
	ProtoTCP      = 6
	ProtoUDP      = 17
	ProtoRouting  = 43
	ProtoFragment = 44
	ProtoICMPv6   = 58
	ProtoNone     = 59
	ProtoDestOpts = 60
)

// Ether is an Ethernet header, optionally with 802.1Q tags.
type Ether struct {
	Dst, Src net.HardwareAddr
	// Tags are the VLAN tags, outermost first: each is the 16-bit TCI
	// (priority, DEI, VLAN id). A tag of 0 is a priority tag (VLAN 0).
	Tags []uint16
	// TagType is the EtherType of the outermost tag; 0 means 0x8100.
	// Inner tags are always 0x8100.
	TagType uint16
	// Type is the EtherType of the payload; 0 means IPv6.
	Type uint16
}

func (e Ether) append(b []byte) []byte {
	b = append(b, e.Dst[:6]...)
	b = append(b, e.Src[:6]...)
	for i, tci := range e.Tags {
		tpid := uint16(EtherTypeVLAN)
		if i == 0 && e.TagType != 0 {
			tpid = e.TagType
		}
		b = binary.BigEndian.AppendUint16(b, tpid)
		b = binary.BigEndian.AppendUint16(b, tci)
	}
	t := e.Type
	if t == 0 {
		t = EtherTypeIPv6
	}
	return binary.BigEndian.AppendUint16(b, t)
}

// Raw is an Ethernet frame with an arbitrary payload (e.g. a non-IPv6
// EtherType, to show which frames a filter looks at).
func Raw(e Ether, payload []byte) []byte {
	return append(e.append(nil), payload...)
}

// Ext is one IPv6 extension header (RFC 8200 section 4). Its Next Header
// field is filled in when the packet is built.
type Ext struct {
	Type uint8
	// Body is the header after its first byte (Next Header): for options
	// and routing headers it starts with Hdr Ext Len.
	Body []byte
}

// options is a Hop-by-Hop or Destination Options header of 8*units bytes
// (1 to 256 units), filled with PadN options of at most 255 zero bytes
// each, and a Pad1 where one byte is left (RFC 8200 section 4.2).
func options(typ uint8, units int) Ext {
	if units < 1 || units > 256 {
		panic(fmt.Sprintf("options header of %d units", units))
	}
	body := make([]byte, 8*units-1)
	body[0] = byte(units - 1)
	for rest := body[1:]; len(rest) > 0; {
		if len(rest) == 1 {
			break // Pad1 is a single zero byte
		}
		n := min(len(rest)-2, 255)
		if len(rest)-2-n == 1 {
			n-- // leave 2 bytes for an empty PadN, not 1
		}
		rest[0], rest[1] = 1, byte(n)
		rest = rest[2+n:]
	}
	return Ext{Type: typ, Body: body}
}

// HopByHop is a Hop-by-Hop Options header of 8*units bytes of padding.
func HopByHop(units int) Ext { return options(ProtoHopByHop, units) }

// DestOpts is a Destination Options header of 8*units bytes of padding.
func DestOpts(units int) Ext { return options(ProtoDestOpts, units) }

// Routing is a Routing header (RFC 8200 section 4.4) of the given type
// with Segments Left 0 and no addresses: a receiver skips it and goes on
// with the next header.
func Routing(typ uint8) Ext {
	return Ext{Type: ProtoRouting, Body: []byte{0, typ, 0, 0, 0, 0, 0}}
}

// Fragment is a Fragment header (RFC 8200 section 4.5). offset is in
// 8-byte units; offset 0 with more false is an atomic fragment (RFC 6946).
func Fragment(offset uint16, more bool, id uint32) Ext {
	body := make([]byte, 7)
	om := offset << 3
	if more {
		om |= 1
	}
	binary.BigEndian.PutUint16(body[1:3], om)
	binary.BigEndian.PutUint32(body[3:7], id)
	return Ext{Type: ProtoFragment, Body: body}
}

// IPv6 is an IPv6 packet: the fixed header, extension headers and the
// upper-layer message.
type IPv6 struct {
	Src, Dst netip.Addr
	// HopLimit 0 means 64; NDP needs 255 (RFC 4861 section 6.1).
	HopLimit uint8
	Ext      []Ext
	// Proto is the upper-layer protocol after the extension headers.
	Proto uint8
	// Payload is the upper-layer message. An ICMPv6 or UDP checksum in
	// it is overwritten with the right one.
	Payload []byte
}

func (p IPv6) hopLimit() uint8 {
	if p.HopLimit == 0 {
		return 64
	}
	return p.HopLimit
}

// upper returns the payload with its checksum filled in.
func (p IPv6) upper() []byte {
	b := append([]byte(nil), p.Payload...)
	switch p.Proto {
	case ProtoICMPv6:
		if len(b) >= 4 {
			b[2], b[3] = 0, 0
			binary.BigEndian.PutUint16(b[2:4], Checksum(p.Src, p.Dst, ProtoICMPv6, b))
		}
	case ProtoUDP:
		if len(b) >= 8 {
			b[6], b[7] = 0, 0
			c := Checksum(p.Src, p.Dst, ProtoUDP, b)
			if c == 0 {
				c = 0xffff // RFC 8200 8.1: a computed 0 is sent as all ones
			}
			binary.BigEndian.PutUint16(b[6:8], c)
		}
	}
	return b
}

// appendIP appends the fixed header, the extension headers ext, and body,
// which starts with a header of type proto.
func (p IPv6) appendIP(b []byte, ext []Ext, proto uint8, body []byte) []byte {
	plen := len(body)
	for _, e := range ext {
		plen += 1 + len(e.Body)
	}
	next := func(i int) uint8 {
		if i < len(ext) {
			return ext[i].Type
		}
		return proto
	}
	b = append(b, 0x60, 0, 0, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(plen))
	b = append(b, next(0), p.hopLimit())
	s, d := p.Src.As16(), p.Dst.As16()
	b = append(b, s[:]...)
	b = append(b, d[:]...)
	for i, e := range ext {
		b = append(b, next(i+1))
		b = append(b, e.Body...)
	}
	return append(b, body...)
}

// Packet returns the IPv6 packet without an Ethernet header.
func (p IPv6) Packet() []byte { return p.appendIP(nil, p.Ext, p.Proto, p.upper()) }

// Frame is the Ethernet frame of p.
func Frame(e Ether, p IPv6) []byte {
	return p.appendIP(e.append(nil), p.Ext, p.Proto, p.upper())
}

// Fragments splits p into two fragments (RFC 8200 section 4.5). p.Ext are
// the unfragmentable headers, repeated in both; the fragmentable part is
// the headers inner followed by the upper-layer message, whose checksum
// covers the whole message. The first fragment carries the first
// firstLen bytes (a multiple of 8) of the fragmentable part, the second
// the rest. With inner headers longer than firstLen, the upper-layer
// header is only in the second fragment (the evasion of RFC 7113
// section 2).
func Fragments(e Ether, p IPv6, inner []Ext, firstLen int, id uint32) [][]byte {
	var part []byte
	for i, x := range inner {
		next := p.Proto
		if i+1 < len(inner) {
			next = inner[i+1].Type
		}
		part = append(append(part, next), x.Body...)
	}
	part = append(part, p.upper()...)
	if firstLen%8 != 0 || firstLen <= 0 || firstLen >= len(part) {
		panic(fmt.Sprintf("fragment length %d of %d bytes", firstLen, len(part)))
	}
	proto := p.Proto
	if len(inner) > 0 {
		proto = inner[0].Type
	}
	first := append(append([]Ext(nil), p.Ext...), Fragment(0, true, id))
	second := append(append([]Ext(nil), p.Ext...), Fragment(uint16(firstLen/8), false, id))
	return [][]byte{
		p.appendIP(e.append(nil), first, proto, part[:firstLen]),
		p.appendIP(e.append(nil), second, proto, part[firstLen:]),
	}
}

// Checksum is the Internet checksum of an upper-layer message over the
// IPv6 pseudo-header (RFC 8200 section 8.1). The message's own checksum
// field must be zero.
func Checksum(src, dst netip.Addr, proto uint8, msg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for len(b) >= 2 {
			sum += uint32(binary.BigEndian.Uint16(b))
			b = b[2:]
		}
		if len(b) == 1 {
			sum += uint32(b[0]) << 8
		}
	}
	s, d := src.As16(), dst.As16()
	add(s[:])
	add(d[:])
	var l [8]byte
	binary.BigEndian.PutUint32(l[:4], uint32(len(msg)))
	l[7] = proto
	add(l[:])
	add(msg)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// MulticastMAC is the Ethernet address of an IPv6 multicast group
// (RFC 2464 section 7).
func MulticastMAC(group netip.Addr) net.HardwareAddr {
	g := group.As16()
	return net.HardwareAddr{0x33, 0x33, g[12], g[13], g[14], g[15]}
}

// SolicitedNode is the solicited-node multicast group of a (RFC 4291
// section 2.7.1).
func SolicitedNode(a netip.Addr) netip.Addr {
	b := a.As16()
	g := [16]byte{0xff, 0x02, 11: 1, 12: 0xff, 13: b[13], 14: b[14], 15: b[15]}
	return netip.AddrFrom16(g)
}

// LinkLocal is the modified EUI-64 link-local address of a MAC (RFC 4291
// appendix A), the one Linux gives an interface by default.
func LinkLocal(mac net.HardwareAddr) netip.Addr {
	return netip.AddrFrom16([16]byte{0xfe, 0x80, 8: mac[0] ^ 2, 9: mac[1], 10: mac[2], 11: 0xff, 12: 0xfe,
		13: mac[3], 14: mac[4], 15: mac[5]})
}

// AllNodes is ff02::1, and AllRouters ff02::2.
var (
	AllNodes   = netip.MustParseAddr("ff02::1")
	AllRouters = netip.MustParseAddr("ff02::2")
	Broadcast  = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
)
