package ctrl

import (
	"encoding/binary"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestReadNeighTable reads the kernel's IPv6 neighbour table by rtnetlink
// (stopping at the table's own message) and, where this namespace has the
// sysctls (the initial one), checks the limits against them.
func TestReadNeighTable(t *testing.T) {
	l, entries, err := readNeighTable()
	if err != nil {
		t.Fatal(err)
	}
	if entries < 0 {
		t.Errorf("entries %d: the table's message had no config", entries)
	}
	for i, k := range neighKeys {
		if l[i] <= 0 {
			t.Errorf("gc_thresh%d = %d", i+1, l[i])
		}
		b, err := os.ReadFile("/proc/sys/" + k)
		if err != nil {
			continue // not the initial namespace: netlink is the only reader
		}
		if v, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && v != l[i] {
			t.Errorf("gc_thresh%d: netlink says %d, %s says %d", i+1, l[i], k, v)
		}
	}
	// Read again many times: each read leaves a dump unfinished, which
	// must leave no descriptor behind.
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	before := fds()
	for range 200 {
		if _, _, err := readNeighTable(); err != nil {
			t.Fatal(err)
		}
	}
	if after := fds(); after > before {
		t.Errorf("%d descriptors after 200 reads, %d before", after, before)
	}
}

// FuzzParseNeighTable: any RTM_NEWNEIGHTBL payload is read without a
// panic, and limits are reported only when all three were in it.
func FuzzParseNeighTable(f *testing.F) {
	u32 := func(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }
	whole := append([]byte{unix.AF_INET6, 0, 0, 0}, rtattr(ndtaThresh1, u32(128))...)
	whole = append(whole, rtattr(ndtaThresh2, u32(512))...)
	whole = append(whole, rtattr(ndtaThresh3, u32(1024))...)
	whole = append(whole, rtattr(ndtaConfig, make([]byte, 8))...)
	f.Add(whole)
	f.Add(whole[:12])
	f.Add([]byte{unix.AF_INET, 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, m []byte) {
		l, _, ok := parseNeighTable(m)
		if ok && (len(m) < 4 || m[0] != unix.AF_INET6) {
			t.Fatalf("limits %v from a message that is not the IPv6 table's", l)
		}
	})
}
