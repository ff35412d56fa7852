package test

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/v6dp/v6dp/test/topo"
)

// With no daemon running, a container that goes stops being answered at
// once (its port left the devmap), while the others still are; the next
// daemon adopts the rest.
func TestDaemonAway(t *testing.T) {
	for _, dp := range []string{"xdp", "tc"} {
		t.Run(dp, func(t *testing.T) {
			s := newSeed(t, "2001:db8::c008/125")
			d := s.startDaemon(t, s.daemonArgs(dp))
			gone, stays := s.name("away1"), s.name("away2")
			a1, a2 := s.addContainer(t, gone), s.addContainer(t, stays)
			s.waitLive(t, a1, true)
			s.waitLive(t, a2, true)
			conn, err := topo.ListenNDP(s.Router, s.RouterIf)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			t1, t2 := netip.MustParseAddr(a1), netip.MustParseAddr(a2)
			if _, err := conn.Solicit(t1, topo.SolicitNodeGroup(t1), 2*time.Second); err != nil {
				t.Fatalf("before: %v", err)
			}
			d.kill()
			s.mustV6dp(t, "container", "del", gone)
			time.Sleep(100 * time.Millisecond)
			before := s.counters(t, dp)
			if ans, err := conn.Solicit(t1, topo.SolicitNodeGroup(t1), 500*time.Millisecond); !errors.Is(err, topo.ErrNoAnswer) {
				after := s.counters(t, dp)
				t.Errorf("no daemon, container deleted 100 ms ago: %s still answered from %s with TLLA %v (%v; BPF ns_port_gone %d -> %d, ns_answered %d -> %d)",
					a1, ans.Source, ans.TLLA, err, before["ns_port_gone"], after["ns_port_gone"], before["ns_answered"], after["ns_answered"])
			}
			if _, err := conn.Solicit(t2, topo.SolicitNodeGroup(t2), 2*time.Second); err != nil {
				t.Errorf("no daemon: %s, still there, not answered: %v", a2, err)
			}
			s.MustRun(s.Router, "ping", "-c", "1", "-W", "2", a2)
			d.start()
			// The log holds the first run's "daemon running" too: wait for
			// the new one's runtime record.
			eventually(t, 10*time.Second, func() error {
				return s.contains(s.mustV6dp(t, "status"), "running (pid")
			})
			s.waitLive(t, a2, true)
			if _, ok := s.endpoints(t)[a1]; ok {
				t.Errorf("the new daemon lists the deleted %s", a1)
			}
		})
	}
}
