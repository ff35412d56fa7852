package frame

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
)

// Decoded is a received frame, taken apart as far as the tests look.
type Decoded struct {
	Dst, Src net.HardwareAddr
	Tags     []uint16
	Type     uint16
	// The rest is set for IPv6 frames only.
	IPv6     bool
	Src6     netip.Addr
	Dst6     netip.Addr
	HopLimit uint8
	// Exts are the extension header types in order.
	Exts []uint8
	// Fragment is set when a Fragment header was walked; Offset is in
	// 8-byte units.
	Fragment bool
	Offset   uint16
	// Proto and Payload are the upper layer after the extension headers.
	Proto   uint8
	Payload []byte
	// L3 is the IPv6 packet, without the Ethernet header, tags and any
	// trailing padding.
	L3  []byte
	Raw []byte
}

var errShort = errors.New("frame shorter than its headers")

// Parse decodes an Ethernet frame: VLAN tags, the IPv6 header and its
// options, routing and fragment headers.
func Parse(f []byte) (*Decoded, error) {
	if len(f) < 14 {
		return nil, errShort
	}
	d := &Decoded{Dst: net.HardwareAddr(f[0:6]), Src: net.HardwareAddr(f[6:12]), Raw: f}
	off := 12
	for {
		if len(f) < off+2 {
			return nil, errShort
		}
		t := binary.BigEndian.Uint16(f[off:])
		if t != EtherTypeVLAN && t != EtherTypeQinQ {
			d.Type = t
			off += 2
			break
		}
		if len(f) < off+4 {
			return nil, errShort
		}
		d.Tags = append(d.Tags, binary.BigEndian.Uint16(f[off+2:]))
		off += 4
	}
	if d.Type != EtherTypeIPv6 {
		return d, nil
	}
	ip := f[off:]
	if len(ip) < 40 || ip[0]>>4 != 6 {
		return nil, errShort
	}
	d.IPv6 = true
	d.Src6 = netip.AddrFrom16([16]byte(ip[8:24]))
	d.Dst6 = netip.AddrFrom16([16]byte(ip[24:40]))
	d.HopLimit = ip[7]
	end := 40 + int(binary.BigEndian.Uint16(ip[4:6]))
	if end > len(ip) {
		return nil, errShort
	}
	d.L3 = ip[:end]
	next, p := ip[6], ip[40:end]
	for {
		switch next {
		case ProtoHopByHop, ProtoDestOpts, ProtoRouting:
			if len(p) < 8 || len(p) < 8*(int(p[1])+1) {
				return nil, errShort
			}
			d.Exts = append(d.Exts, next)
			next, p = p[0], p[8*(int(p[1])+1):]
			continue
		case ProtoFragment:
			if len(p) < 8 {
				return nil, errShort
			}
			d.Exts = append(d.Exts, next)
			d.Fragment = true
			d.Offset = binary.BigEndian.Uint16(p[2:4]) >> 3
			next, p = p[0], p[8:]
			continue
		}
		break
	}
	d.Proto, d.Payload = next, p
	return d, nil
}

// ICMPType is the ICMPv6 type of an unfragmented (or first fragment)
// ICMPv6 message, else -1.
func (d *Decoded) ICMPType() int {
	if !d.IPv6 || d.Proto != ProtoICMPv6 || d.Offset != 0 || len(d.Payload) < 4 {
		return -1
	}
	return int(d.Payload[0])
}

// Target is the target address of an NS, NA or Redirect.
func (d *Decoded) Target() (netip.Addr, bool) {
	switch d.ICMPType() {
	case ICMPNeighSolicit, ICMPNeighAdvert, ICMPRedirect:
		if len(d.Payload) >= 24 {
			return netip.AddrFrom16([16]byte(d.Payload[8:24])), true
		}
	}
	return netip.Addr{}, false
}

// Contains reports whether the frame holds marker anywhere.
func (d *Decoded) Contains(marker []byte) bool { return bytes.Contains(d.Raw, marker) }
