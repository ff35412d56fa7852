package ctrl

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
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
// read too, and the ports that are gone forgotten.
func TestPortJournal(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	// An earlier version's layout.
	if err := os.MkdirAll(st.path(portJournalDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(st.path(portJournalDir), "v6dpgone1x"), []byte("0"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := st.JournalPorts(map[string]string{"lo": "0", "v6dpgone0x": "0"}); err != nil {
		t.Fatal(err)
	}
	if err := st.JournalPorts(map[string]string{"lo": "1"}); err != nil {
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
	if err := st.JournalPorts(map[string]string{"v6dpgone2x": "0"}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"lo": "0", "v6dpgone0x": "0", "v6dpgone1x": "0", "v6dptorn0x": "0", "v6dpgone2x": "0"}
	if diff := cmp.Diff(want, st.journaledPorts()); diff != "" {
		t.Fatalf("journaled ports (-want +got):\n%s", diff)
	}
	st.forgetGonePortFiles()
	if diff := cmp.Diff(map[string]string{"lo": "0"}, st.journaledPorts()); diff != "" {
		t.Fatalf("after forgetting the gone ports (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(st.path(portJournalDir)); !os.IsNotExist(err) {
		t.Errorf("the old layout's directory is still there: %v", err)
	}
}
