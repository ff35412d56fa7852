package ctrl

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

func rtattr(typ uint16, v []byte) []byte {
	b := binary.NativeEndian.AppendUint16(nil, uint16(unix.SizeofRtAttr+len(v)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, v...)
	for len(b)%unix.RTA_ALIGNTO != 0 {
		b = append(b, 0)
	}
	return b
}

// TestAttrParsers: the link kind and a bridge port's flags read from
// attributes as the kernel sends them, and a truncated attribute read as
// nothing (the kind) or as blocked (the flags: the safe answer).
func TestAttrParsers(t *testing.T) {
	info := append(rtattr(unix.IFLA_INFO_KIND, []byte("veth\x00")), rtattr(unix.IFLA_INFO_DATA|unix.NLA_F_NESTED, nil)...)
	if k := linkKind(info); k != "veth" {
		t.Errorf("linkKind = %q, want veth", k)
	}
	if k := linkKind(info[:6]); k != "" {
		t.Errorf("linkKind of a truncated attribute = %q, want none", k)
	}
	protinfo := func(isolated, locked byte) []byte {
		in := append(rtattr(unix.IFLA_BRPORT_STATE, []byte{3}), rtattr(unix.IFLA_BRPORT_ISOLATED, []byte{isolated})...)
		in = append(in, rtattr(unix.IFLA_BRPORT_LOCKED, []byte{locked})...)
		return append(rtattr(unix.IFLA_MTU, binary.NativeEndian.AppendUint32(nil, 1500)), rtattr(unix.IFLA_PROTINFO|unix.NLA_F_NESTED, in)...)
	}
	for _, c := range []struct {
		name  string
		attrs []byte
		want  bool
	}{
		{"plain port", protinfo(0, 0), false},
		{"isolated", protinfo(1, 0), true},
		{"locked", protinfo(0, 1), true},
		{"no protinfo", rtattr(unix.IFLA_MTU, binary.NativeEndian.AppendUint32(nil, 1500)), false},
		{"truncated", protinfo(0, 0)[:14], true},
	} {
		if got := brportBlocked(c.attrs); got != c.want {
			t.Errorf("%s: brportBlocked = %v, want %v", c.name, got, c.want)
		}
	}
}
