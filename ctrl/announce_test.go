package ctrl

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

// The checksum of a known ICMPv6 message, and the check a receiver makes:
// the sum over pseudo-header and message, checksum included, is 0xffff.
func TestICMP6Checksum(t *testing.T) {
	src := netip.MustParseAddr("fe80::1").As16()
	dst := netip.MustParseAddr("ff02::1").As16()
	// An NA: type 136, code 0, checksum 0, flags R|O, target 2001:db8::1,
	// target link-layer address option.
	msg := make([]byte, 32)
	msg[0], msg[4] = 136, 0xa0
	target := netip.MustParseAddr("2001:db8::1").As16()
	copy(msg[8:24], target[:])
	msg[24], msg[25] = 2, 1
	copy(msg[26:32], []byte{0x02, 0x42, 0xac, 0x11, 0x00, 0x02})
	sum := icmp6Checksum(src[:], dst[:], msg)
	if sum == 0 {
		t.Fatal("checksum 0")
	}
	binary.BigEndian.PutUint16(msg[2:4], sum)
	if again := icmp6Checksum(src[:], dst[:], msg); again != 0 {
		t.Errorf("summed with its checksum in place: %#04x, want 0 (0xffff before the complement)", again)
	}
	odd := append(append([]byte(nil), msg...), 0x01)
	binary.BigEndian.PutUint16(odd[2:4], 0)
	binary.BigEndian.PutUint16(odd[2:4], icmp6Checksum(src[:], dst[:], odd))
	if again := icmp6Checksum(src[:], dst[:], odd); again != 0 {
		t.Errorf("odd length: %#04x, want 0", again)
	}
	if htons(0x86dd) == 0x86dd && binary.NativeEndian.Uint16([]byte{0x86, 0xdd}) != 0x86dd {
		t.Error("htons did not swap on a little-endian host")
	}
}
