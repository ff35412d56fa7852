package rules

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
)

// Addressing modes for container addresses.
const (
	AddressingAuto       = "auto"
	AddressingMAC        = "mac"
	AddressingSequential = "sequential"
)

// MACBits is the longest prefix that holds a 48-bit MAC in its low bits.
const MACBits = 80

// ErrMACPrefix means mac addressing was asked for on a prefix longer than
// /80, which cannot hold a 48-bit MAC.
var ErrMACPrefix = errors.New("mac addressing needs a prefix of /80 or shorter")

// ErrAddressingMode means the mode is not one of auto, mac, sequential.
var ErrAddressingMode = errors.New("not one of auto, mac, sequential")

// ResolveAddressing turns the addressing setting into the mode used for a
// prefix: auto is mac when the prefix can hold a MAC (/80 or shorter),
// else sequential. Callers word the errors for their own fields.
func ResolveAddressing(mode string, p netip.Prefix) (string, error) {
	switch mode {
	case AddressingMAC:
		if p.Bits() > MACBits {
			return "", ErrMACPrefix
		}
		return AddressingMAC, nil
	case AddressingSequential:
		return AddressingSequential, nil
	case AddressingAuto, "":
		if p.Bits() > MACBits {
			return AddressingSequential, nil
		}
		return AddressingMAC, nil
	}
	return "", ErrAddressingMode
}

// DefaultBridge is the bridge Docker and v6dp use unless told otherwise.
const DefaultBridge = "docker0"

var ifNameRe = regexp.MustCompile(`^[A-Za-z0-9_.:@-]{1,15}$`)

// ValidIfName reports whether s can name a network interface.
func ValidIfName(s string) bool { return ifNameRe.MatchString(s) && s != "." && s != ".." }

// MACAddr derives a container's address from its MAC the way Docker's
// original IPv6 support did: the prefix with the 48-bit MAC in the low bits,
// e.g. 02:42:ac:11:00:03 in 2001:db8:1::/64 is 2001:db8:1::242:ac11:3.
// The prefix must be /80 or shorter so the MAC fits without touching it.
func MACAddr(p netip.Prefix, mac net.HardwareAddr) (netip.Addr, error) {
	if len(mac) != 6 {
		return netip.Addr{}, fmt.Errorf("MAC %s is not 48 bits", mac)
	}
	if !p.Addr().Is6() || p.Bits() > 80 {
		return netip.Addr{}, fmt.Errorf("prefix %s: MAC-derived addresses need /80 or shorter", p)
	}
	b := p.Masked().Addr().As16()
	copy(b[10:], mac)
	return netip.AddrFrom16(b), nil
}

// DockerMAC returns the MAC Docker gives the container with IPv4 address
// 172.17.0.0 + index: 02:42 followed by the IPv4 address, so index 3 is
// 02:42:ac:11:00:03. v6dp keeps the scheme so its containers look like
// Docker's and derive the same addresses.
func DockerMAC(index uint16) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0x42, 0xac, 0x11, byte(index >> 8), byte(index)}
}

// ErrPrefixFull means every address of the prefix is taken.
var ErrPrefixFull = errors.New("no free address left in the prefix")

// NextFreeMAC returns the lowest Docker-style MAC (index 2 upwards, .1 being
// Docker's gateway) that is not in used.
func NextFreeMAC(used map[string]bool) (net.HardwareAddr, error) {
	for i := 2; i < 0xffff; i++ {
		m := DockerMAC(uint16(i))
		if !used[m.String()] {
			return m, nil
		}
	}
	return nil, errors.New("no free 02:42:ac:11:xx:xx MAC left")
}

// NextFreeAddr returns the lowest address of p, after the subnet-router
// anycast address (the prefix itself, RFC 4291 2.6.1), that is not in used.
// This is "sequential" addressing: the seed's /125 example gives
// 2001:db8::c009 as the first container of 2001:db8::c008/125.
func NextFreeAddr(p netip.Prefix, used map[netip.Addr]bool) (netip.Addr, error) {
	a := p.Masked().Addr().Next()
	// Bound the walk so a nearly full /64 cannot spin for ever.
	for i := 0; i < 1<<20 && a.IsValid() && p.Contains(a); i++ {
		if !used[a] {
			return a, nil
		}
		a = a.Next()
	}
	return netip.Addr{}, fmt.Errorf("%s: %w", p, ErrPrefixFull)
}

// SolicitedNode returns the solicited-node multicast group of a (RFC 4291
// 2.7.1): ff02::1:ff00:0/104 with the low 24 bits of a.
func SolicitedNode(a netip.Addr) netip.Addr {
	b := a.As16()
	g := [16]byte{0xff, 0x02, 10: 0, 11: 0x01, 12: 0xff, 13: b[13], 14: b[14], 15: b[15]}
	return netip.AddrFrom16(g)
}
