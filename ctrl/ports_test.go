package ctrl

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// The journal forgets the ports that are gone and keeps everything else.
func TestForgetGonePorts(t *testing.T) {
	j := &Journal{Sysctls: map[string]string{
		ipv6Conf("lo", "disable_ipv6"):             "0",
		ipv6Conf("v6dpgone0x", "disable_ipv6"):     "0",
		ipv6Conf("v6dpgone0x", "accept_ra"):        "1",
		"net/ipv6/conf/all/forwarding":             "0",
		ipv6Neigh("v6dpgone0x.100", "proxy_delay"): "80",
	}}
	forgetGonePorts(j)
	want := map[string]bool{ipv6Conf("lo", "disable_ipv6"): true, ipv6Conf("v6dpgone0x", "accept_ra"): true,
		"net/ipv6/conf/all/forwarding": true, ipv6Neigh("v6dpgone0x.100", "proxy_delay"): true}
	for k := range j.Sysctls {
		if !want[k] {
			t.Errorf("kept %s", k)
		}
		delete(want, k)
	}
	for k := range want {
		t.Errorf("forgot %s", k)
	}
}

// The port journal: appended in bursts, read with the first value of a
// port winning (the one from before v6dp), the older file-per-port layout
// and the older lines without an ifindex read too, and the ports that are
// gone forgotten.
func TestPortJournal(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	// An earlier version's layout.
	if err := os.MkdirAll(st.path(portJournalDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(st.path(portJournalDir), "v6dpgone1x"), []byte("0"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := func(v string) journaledPort { return journaledPort{Old: v} }
	if err := st.JournalPorts(map[string]journaledPort{"lo": old("0"), "v6dpgone0x": old("0")}); err != nil {
		t.Fatal(err)
	}
	if err := st.JournalPorts(map[string]journaledPort{"lo": old("1")}); err != nil {
		t.Fatal(err)
	}
	// A crash cut a line short; the next batch starts on its own line.
	f, err := os.OpenFile(st.path(portJournal), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("v6dptorn0x 0\nv6dptorn1x"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := st.JournalPorts(map[string]journaledPort{"v6dpgone2x": old("0")}); err != nil {
		t.Fatal(err)
	}
	entry := func(name, v string, idx int) portEntry {
		return portEntry{Name: name, journaledPort: journaledPort{Old: v, Index: idx}}
	}
	want := []portEntry{entry("v6dpgone1x", "0", 0), entry("lo", "0", 0), entry("v6dpgone0x", "0", 0),
		entry("v6dptorn0x", "0", 0), entry("v6dpgone2x", "0", 0)}
	sortEntries := cmpopts.SortSlices(func(a, b portEntry) bool { return a.id() < b.id() })
	if diff := cmp.Diff(want, st.journaledPorts(), sortEntries, cmp.AllowUnexported(portEntry{})); diff != "" {
		t.Fatalf("journaled ports (-want +got):\n%s", diff)
	}
	st.forgetGonePortFiles()
	if diff := cmp.Diff([]portEntry{entry("lo", "0", 0)}, st.journaledPorts(), cmp.AllowUnexported(portEntry{})); diff != "" {
		t.Fatalf("after forgetting the gone ports (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(st.path(portJournalDir)); !os.IsNotExist(err) {
		t.Errorf("the old layout's directory is still there: %v", err)
	}
}

// Entries with an ifindex follow their port: a port renamed since it was
// journaled is found (and rewritten) under its new name, a port that is
// gone is forgotten even when another took its name, and two ports that
// had one name at different times are two entries.
func TestPortJournalByIndex(t *testing.T) {
	var idxs ifindexSock
	defer idxs.close()
	lo, err := idxs.index("lo")
	if err != nil || lo <= 0 {
		t.Fatalf("no index for lo: %d, %v", lo, err)
	}
	const gone = 1 << 30 // no namespace has made this many links
	st := Store{Dir: t.TempDir()}
	jp := func(v string, idx int) journaledPort { return journaledPort{Old: v, Index: idx} }
	// The port that became lo was journaled as v6dpren0x; lo's own name
	// was held by a port that is gone.
	if err := st.JournalPorts(map[string]journaledPort{"v6dpren0x": jp("0", lo), "lo": jp("1", gone)}); err != nil {
		t.Fatal(err)
	}
	if err := st.JournalPorts(map[string]journaledPort{"v6dpren0x": jp("1", gone+1)}); err != nil {
		t.Fatal(err)
	}
	if n := len(st.journaledPorts()); n != 3 {
		t.Fatalf("%d entries, want 3 (one a port): %v", n, st.journaledPorts())
	}
	var r portNames
	defer r.close()
	for _, e := range st.journaledPorts() {
		now, ok, err := r.now(e)
		if err != nil {
			t.Fatal(err)
		}
		switch e.Index {
		case lo:
			if !ok || now != "lo" {
				t.Errorf("renamed port: now %q, there %v; want lo", now, ok)
			}
		default:
			if ok {
				t.Errorf("gone port %v found as %q", e, now)
			}
		}
	}
	// A crash cut "v6dptorn0x 0 7<more digits>" short: at the end of the
	// file it is not read, and the next batch does not make it whole (it
	// would name interface 7, another one).
	f, err := os.OpenFile(st.path(portJournal), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Fprintf(f, "v6dptorn0x 0 %d", 7); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if n := len(st.journaledPorts()); n != 3 {
		t.Errorf("%d entries with a torn last line, want 3: %v", n, st.journaledPorts())
	}
	if err := st.JournalPorts(map[string]journaledPort{"v6dpgone3x": jp("0", gone+2)}); err != nil {
		t.Fatal(err)
	}
	for _, e := range st.journaledPorts() {
		if e.Name == "v6dptorn0x" {
			t.Errorf("the torn line was made whole by the next batch: %v", e)
		}
	}
	st.forgetGonePortFiles()
	b, err := os.ReadFile(st.path(portJournal))
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("lo 0 %d\n", lo); string(b) != want {
		t.Errorf("journal after the resync: %q, want %q", b, want)
	}
}
