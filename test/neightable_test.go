package test

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/v6dp/v6dp/ctrl"
	"github.com/v6dp/v6dp/test/topo"
)

// The kernel's IPv6 neighbour table is one for the whole machine, its
// limits (gc_thresh1/2/3) sysctls of the initial network namespace only
// (issue 11). A daemon in any other namespace (every test's) can only say
// so; in the initial namespace v6dp raises them for its endpoints and
// cleanup puts back what it raised, unless someone changed it since.

var neighKeys = []string{
	"/proc/sys/net/ipv6/neigh/default/gc_thresh1",
	"/proc/sys/net/ipv6/neigh/default/gc_thresh2",
	"/proc/sys/net/ipv6/neigh/default/gc_thresh3",
}

// hostNeighLimits reads the initial namespace's limits (this process's:
// the tests run there, as `make test` does).
func hostNeighLimits(t *testing.T) [3]int {
	t.Helper()
	var l [3]int
	for i, k := range neighKeys {
		b, err := os.ReadFile(k)
		if err != nil {
			t.Fatalf("the tests run in the initial network namespace, which has %s: %v", k, err)
		}
		if l[i], err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func limitsString(l [3]int) string { return fmt.Sprintf("%d/%d/%d", l[0], l[1], l[2]) }

// ntableLimits are the limits as the kernel reports them by rtnetlink
// (ip ntable), from any namespace.
func ntableLimits(t *testing.T, ns string) string {
	t.Helper()
	out, err := topo.Run(ns, "ip", "ntable", "show", "name", "ndisc_cache")
	if err != nil {
		t.Fatalf("ip ntable: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`thresh1 (\d+) thresh2 (\d+) thresh3 (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("ip ntable shows no limits:\n%s", out)
	}
	return m[1] + "/" + m[2] + "/" + m[3]
}

func TestNeighTable(t *testing.T) {
	t.Run("another namespace: said, not changed", func(t *testing.T) {
		before := hostNeighLimits(t)
		s := newSeed(t, "2001:db8::1:0/112")
		d := s.startDaemon(t, s.daemonArgs("kernel"))
		s.addContainer(t, s.name("c1"))
		// What the kernel says, read from the host's namespace as the
		// daemon reads it.
		want := ntableLimits(t, s.Host)
		if want != limitsString(before) {
			t.Fatalf("ip ntable in a namespace shows %s, the initial namespace's sysctls %s", want, limitsString(before))
		}
		log, _ := os.ReadFile(d.log.Name())
		line := ""
		for _, l := range strings.Split(string(log), "\n") {
			if strings.Contains(l, "neighbour table") {
				if line != "" {
					t.Errorf("more than one line about the neighbour table:\n%s\n%s", line, l)
				}
				line = l
			}
		}
		for _, w := range []string{"shared by every network namespace", "gc_thresh=" + want, "initial network namespace"} {
			if !strings.Contains(line, w) {
				t.Errorf("the daemon's line about the neighbour table lacks %q: %q", w, line)
			}
		}
		st := s.mustV6dp(t, "status")
		m := regexp.MustCompile(`neighbour table:\s+gc_thresh1/2/3 (\S+), (\d+) entries in use machine-wide, about (\d+) needed for 1 ports with 1 addresses; shared by every namespace, set only in the initial network namespace`).FindStringSubmatch(st)
		if m == nil {
			t.Fatalf("status has no neighbour table line for 1 port, the cap and who sets it:\n%s", st)
		}
		t.Logf("daemon: %s\nstatus: %s", line, m[0])
		if m[1] != want {
			t.Errorf("status shows the limits %s, the kernel %s", m[1], want)
		}
		if n, _ := strconv.Atoi(m[2]); n < 1 {
			t.Errorf("status shows %s entries in use", m[2])
		}
		if after := hostNeighLimits(t); after != before {
			t.Errorf("a daemon in a namespace changed the initial namespace's limits from %v to %v", before, after)
		}
	})

	t.Run("initial namespace: raised, then restored unless changed since", func(t *testing.T) {
		orig := hostNeighLimits(t)
		// Whatever happens, the initial namespace gets its values back:
		// each limit that holds a value this test (or v6dp in it) wrote.
		// One that holds another was changed by someone else meanwhile
		// (the bench raises them too) and is theirs.
		var ours [3]map[int]bool
		for i := range ours {
			ours[i] = map[int]bool{}
		}
		t.Cleanup(func() {
			now := hostNeighLimits(t)
			for i, k := range neighKeys {
				if ours[i][now[i]] {
					_ = os.WriteFile(k, []byte(strconv.Itoa(orig[i])), 0o644)
				} else if now[i] != orig[i] {
					t.Logf("%s is %d, changed by someone else meanwhile: left", k, now[i])
				}
			}
		})
		// Just enough ports that gc_thresh2 is too small.
		ports := (orig[1]-128)/8 + 1
		st := ctrl.Store{Dir: t.TempDir()}
		if !ctrl.SizeNeighTable(st, ports, ports) {
			t.Fatalf("%d ports with gc_thresh %v: not raised", ports, orig)
		}
		raised := hostNeighLimits(t)
		for i := range raised {
			ours[i][raised[i]] = true
		}
		if raised[1] <= orig[1] || raised[2] < orig[2] || raised[0] < orig[0] || raised[2] < 2*raised[1]-1 {
			t.Errorf("raised from %v to %v: want gc_thresh2 higher, none lower, gc_thresh3 twice gc_thresh2", orig, raised)
		}
		if got := ntableLimits(t, ""); got != limitsString(raised) {
			t.Errorf("the kernel's table has %s, the sysctls say %v", got, raised)
		}
		// An operator sets gc_thresh3 since: theirs stays, the rest goes back.
		mine := raised[2] + 1
		ours[2][mine] = true
		if err := os.WriteFile(neighKeys[2], []byte(strconv.Itoa(mine)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := ctrl.RestoreSysctls(st); err != nil {
			t.Fatal(err)
		}
		want := [3]int{orig[0], orig[1], mine}
		if got := hostNeighLimits(t); got != want {
			t.Errorf("after cleanup: %v, want %v (restored, but the operator's gc_thresh3)", got, want)
		}
	})
}
