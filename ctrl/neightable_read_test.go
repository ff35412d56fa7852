package ctrl

import (
	"os"
	"strconv"
	"strings"
	"testing"
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
	// must cost no descriptor or memory that stays.
	for range 200 {
		if _, _, err := readNeighTable(); err != nil {
			t.Fatal(err)
		}
	}
}
