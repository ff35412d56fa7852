package plan

import (
	"encoding/binary"
	"net/netip"
)

// subnetCountCap stops subnetCount from overflowing: a count only ever
// meets MaxHosts, so anything past it is "plenty".
const subnetCountCap = 1 << 32

// subnetCount is how many /bits subnets p holds, capped at subnetCountCap.
func subnetCount(p netip.Prefix, bits int) uint64 {
	d := bits - p.Bits()
	if d < 0 {
		return 0
	}
	if d >= 32 {
		return subnetCountCap
	}
	return 1 << d
}

// subnet returns subnet number i of length bits inside p. The caller keeps i
// below subnetCount(p, bits), so the subnet bits of the canonical p are zero
// and i can be ORed in.
func subnet(p netip.Prefix, bits int, i uint64) netip.Prefix {
	return netip.PrefixFrom(setLow(p.Addr(), i, 128-bits), bits)
}

// offset returns the address n past the start of p (p's own address is the
// subnet-router anycast address, RFC 4291 2.6.1, so hosts start at 1).
func offset(p netip.Prefix, n uint64) netip.Addr { return setLow(p.Masked().Addr(), n, 0) }

// setLow ORs v, shifted left by shift bits, into a as a 128-bit number.
func setLow(a netip.Addr, v uint64, shift int) netip.Addr {
	b := a.As16()
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	switch {
	case shift >= 64:
		hi |= v << (shift - 64)
	case shift == 0:
		lo |= v
	default:
		lo |= v << shift
		hi |= v >> (64 - shift)
	}
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:], lo)
	return netip.AddrFrom16(b)
}
