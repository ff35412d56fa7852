package ctrl

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The neighbour table's sizing against a fake /proc/sys: no root, and
// the host's own limits are never touched.

// fakeNeigh is a sysctl tree under t.TempDir() with the limits l, or none
// (nil: a namespace other than the initial one), and a neighTable on it
// whose netlink read answers netlinkLimits.
func fakeNeigh(t *testing.T, l *neighLimits, netlinkLimits neighLimits) (*neighTable, Store) {
	t.Helper()
	root := t.TempDir()
	if l != nil {
		dir := filepath.Join(root, "net/ipv6/neigh/default")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		setLimits(t, root, *l)
	}
	n := newNeighTable(root)
	n.read = func() (neighLimits, int, error) { return netlinkLimits, 42, nil }
	clock := time.Unix(1e9, 0)
	n.now = func() time.Time { clock = clock.Add(time.Second); return clock }
	return n, Store{Dir: t.TempDir()}
}

func setLimits(t *testing.T, root string, l neighLimits) {
	t.Helper()
	for i, k := range neighKeys {
		if err := writeSysctlAt(root, k, itoa(l[i])); err != nil {
			t.Fatal(err)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func limitsAt(t *testing.T, root string) neighLimits {
	t.Helper()
	n := &neighTable{root: root}
	l, err := n.current()
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// logs captures the log lines of the test.
func logs(t *testing.T) *bytes.Buffer {
	t.Helper()
	var b bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&b, nil)))
	t.Cleanup(func() { slog.SetDefault(old) })
	return &b
}

var kernelDefaults = neighLimits{128, 512, 1024}

func TestNeighWant(t *testing.T) {
	for _, c := range []struct {
		ports, addrs int
		want         neighLimits
	}{
		{0, 0, kernelDefaults},
		// 48 containers of one address: 128+48*8 = 512, the default fits.
		{48, 48, kernelDefaults},
		{49, 49, neighLimits{256, 1024, 2048}},
		// The bench's N=1000: 128+8000 = 8128 entries.
		{1000, 1000, neighLimits{2048, 8192, 16384}},
		// 10,000 endpoints on ten networks, two addresses each.
		{10000, 20000, neighLimits{25088, 100352, 200704}},
	} {
		got := neighWant(neighNeed(c.ports, c.addrs))
		if got != c.want {
			t.Errorf("%d ports, %d addresses: want %v, got %v", c.ports, c.addrs, c.want, got)
		}
		if got[1] < neighNeed(c.ports, c.addrs) || got[0] > got[1] || got[1] > got[2] {
			t.Errorf("%d ports, %d addresses: %v does not hold %d entries below gc_thresh2 in order", c.ports, c.addrs, got, neighNeed(c.ports, c.addrs))
		}
	}
}

func TestNeighTableRaises(t *testing.T) {
	l := kernelDefaults
	n, st := fakeNeigh(t, &l, neighLimits{})
	out := logs(t)
	// Few endpoints: nothing to do.
	if n.ensure(st, 10, 10) {
		t.Errorf("raised for 10 endpoints")
	}
	if got := limitsAt(t, n.root); got != kernelDefaults {
		t.Errorf("10 endpoints: limits %v, want the defaults", got)
	}
	// 1000: raised, journaled, one log line with old, new and why.
	if !n.ensure(st, 1000, 1000) {
		t.Fatalf("not raised for 1000 endpoints")
	}
	want := neighLimits{2048, 8192, 16384}
	if got := limitsAt(t, n.root); got != want {
		t.Errorf("1000 endpoints: limits %v, want %v", got, want)
	}
	j, err := st.Journal()
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range neighKeys {
		if j.Sysctls[k] != itoa(kernelDefaults[i]) || j.SysctlsSet[k] != itoa(want[i]) {
			t.Errorf("journal for %s: old %q set %q, want %d and %d", k, j.Sysctls[k], j.SysctlsSet[k], kernelDefaults[i], want[i])
		}
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], `msg="IPv6 neighbour table raised" old=128/512/1024 new=2048/8192/16384 why="1000 ports with 1000 addresses need about 8128 entries`) {
		t.Errorf("log: want one line with old, new and why, got:\n%s", out)
	}
	// Fewer again: never lowered, nothing logged.
	out.Reset()
	if n.ensure(st, 10, 10) || limitsAt(t, n.root) != want || out.Len() != 0 {
		t.Errorf("fewer endpoints: limits %v, log %q; want %v kept and nothing logged", limitsAt(t, n.root), out, want)
	}
	// More: raised from v6dp's own value; the original stays the host's.
	if !n.ensure(st, 2000, 2000) {
		t.Fatalf("not raised for 2000 endpoints")
	}
	if j, _ = st.Journal(); j.Sysctls[neighKeys[2]] != "1024" || j.SysctlsSet[neighKeys[2]] != "32768" {
		t.Errorf("after a second raise: old %q set %q, want 1024 and 32768", j.Sysctls[neighKeys[2]], j.SysctlsSet[neighKeys[2]])
	}
}

func TestNeighTableNeverLowers(t *testing.T) {
	// An operator's gc_thresh3 above what v6dp wants, gc_thresh2 below.
	l := neighLimits{4096, 4096, 65536}
	n, st := fakeNeigh(t, &l, neighLimits{})
	logs(t)
	if !n.ensure(st, 1000, 1000) {
		t.Fatalf("gc_thresh2 4096 for 8128 entries: not raised")
	}
	if got, want := limitsAt(t, n.root), (neighLimits{4096, 8192, 65536}); got != want {
		t.Errorf("limits %v, want %v (only gc_thresh2 raised)", got, want)
	}
	j, _ := st.Journal()
	for _, k := range []string{neighKeys[0], neighKeys[2]} {
		if _, ok := j.Sysctls[k]; ok {
			t.Errorf("%s journaled, but v6dp did not change it", k)
		}
	}
}

func TestNeighTableRestoresOnlyWhatItSet(t *testing.T) {
	l := kernelDefaults
	n, st := fakeNeigh(t, &l, neighLimits{})
	logs(t)
	if !n.ensure(st, 1000, 1000) {
		t.Fatal("not raised")
	}
	// An operator sets gc_thresh3 since; the other two stay v6dp's.
	if err := writeSysctlAt(n.root, neighKeys[2], "50000"); err != nil {
		t.Fatal(err)
	}
	j, _ := st.Journal()
	if errs := restoreSysctls(n.root, j, j.Sysctls); len(errs) > 0 {
		t.Fatal(errs)
	}
	if got, want := limitsAt(t, n.root), (neighLimits{128, 512, 50000}); got != want {
		t.Errorf("after cleanup: %v, want %v (the operator's gc_thresh3 kept, the rest restored)", got, want)
	}
}

func TestNeighTableOperatorChangeBetweenRaises(t *testing.T) {
	l := kernelDefaults
	n, st := fakeNeigh(t, &l, neighLimits{})
	logs(t)
	n.ensure(st, 1000, 1000)
	// The operator lowers gc_thresh2 while the daemon runs: raised again
	// at the next check, and the operator's value is the one restored.
	if err := writeSysctlAt(n.root, neighKeys[1], "6000"); err != nil {
		t.Fatal(err)
	}
	n.checked = n.now().Add(-neighRecheck)
	if !n.ensure(st, 1000, 1000) {
		t.Fatal("a lowered gc_thresh2 was not raised again")
	}
	j, _ := st.Journal()
	if j.Sysctls[neighKeys[1]] != "6000" || j.SysctlsSet[neighKeys[1]] != "8192" {
		t.Errorf("journal: old %q set %q, want the operator's 6000 and 8192", j.Sysctls[neighKeys[1]], j.SysctlsSet[neighKeys[1]])
	}
	if errs := restoreSysctls(n.root, j, j.Sysctls); len(errs) > 0 {
		t.Fatal(errs)
	}
	if got, want := limitsAt(t, n.root), (neighLimits{128, 6000, 1024}); got != want {
		t.Errorf("after cleanup: %v, want %v", got, want)
	}
}

func TestNeighTableNotInitialNamespace(t *testing.T) {
	n, st := fakeNeigh(t, nil, kernelDefaults)
	out := logs(t)
	if n.ensure(st, 10, 10) {
		t.Fatal("raised without the sysctls")
	}
	if !strings.Contains(out.String(), "shared by every network namespace") || !strings.Contains(out.String(), "gc_thresh=128/512/1024") ||
		!strings.Contains(out.String(), "initial network namespace") || !strings.Contains(out.String(), "level=INFO") {
		t.Errorf("want one line saying the table is shared, its cap and who sets it, got:\n%s", out)
	}
	// Once.
	out.Reset()
	n.checked = n.now().Add(-neighRecheck)
	n.ensure(st, 20, 20)
	if out.Len() != 0 {
		t.Errorf("logged again:\n%s", out)
	}
	// Too small for the endpoints: one warning, once.
	n.ensure(st, 1000, 1000)
	n.ensure(st, 2000, 2000)
	if c := strings.Count(out.String(), "level=WARN"); c != 1 || !strings.Contains(out.String(), "needed=8128") {
		t.Errorf("want one warning with the need, got:\n%s", out)
	}
	j, _ := st.Journal()
	if len(j.Sysctls) != 0 || len(j.SysctlsSet) != 0 {
		t.Errorf("journaled %v %v without changing anything", j.Sysctls, j.SysctlsSet)
	}
	// The limits unreadable: a warning, nothing else.
	out.Reset()
	n.read = func() (neighLimits, int, error) { return neighLimits{}, 0, errors.New("no netlink") }
	n.checked = time.Time{}
	n.ensure(st, 3000, 3000)
	if !strings.Contains(out.String(), "no netlink") {
		t.Errorf("an unreadable table: %q", out)
	}
}

func TestNeighTableReport(t *testing.T) {
	l := kernelDefaults
	n, st := fakeNeigh(t, &l, kernelDefaults)
	logs(t)
	j, _ := st.Journal()
	if got, want := n.report(j, 10, 12), "gc_thresh1/2/3 128/512/1024, 42 entries in use machine-wide, about 212 needed for 10 ports with 12 addresses"; got != want {
		t.Errorf("before:\n got %q\nwant %q", got, want)
	}
	n.ensure(st, 1000, 1000)
	j, _ = st.Journal()
	if got, want := n.report(j, 1000, 1000), "gc_thresh1/2/3 2048/8192/16384 (raised by v6dp from 128/512/1024), 42 entries in use machine-wide, about 8128 needed for 1000 ports with 1000 addresses"; got != want {
		t.Errorf("raised:\n got %q\nwant %q", got, want)
	}
	// Changed since: no longer v6dp's.
	setLimits(t, n.root, neighLimits{3000, 9000, 20000})
	if got := n.report(j, 1000, 1000); strings.Contains(got, "raised") {
		t.Errorf("changed by an operator since, still shown as raised by v6dp: %q", got)
	}
	m, st2 := fakeNeigh(t, nil, neighLimits{1, 2, 3})
	j2, _ := st2.Journal()
	if got, want := m.report(j2, 0, 0), "gc_thresh1/2/3 1/2/3, 42 entries in use machine-wide, about 128 needed for 0 ports with 0 addresses; shared by every namespace, set only in the initial network namespace"; got != want {
		t.Errorf("another namespace:\n got %q\nwant %q", got, want)
	}
}
