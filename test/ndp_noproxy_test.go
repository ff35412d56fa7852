package test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"testing"
	"time"

	"github.com/v6dp/v6dp/test/topo"
)

// Without --ndp-proxy v6dp answers no NS for the containers, on any
// dataplane: the kernel gets no proxy entries, and BPF, which could
// answer on its own, must not either (the operator routes the prefix to
// the host, or another box answers for it). The containers stay
// reachable by a route, through the BPF fast path where there is one.
func TestNoNDPProxy(t *testing.T) {
	for _, dp := range []string{"kernel", "tc", "auto"} {
		t.Run(dp, func(t *testing.T) {
			t.Parallel()
			s := newSeed(t, "2001:db8::c008/125")
			var args []string
			for _, a := range s.daemonArgs(dp) {
				if a != "--ndp-proxy" {
					args = append(args, a)
				}
			}
			s.startDaemon(t, args)
			addr := s.addContainer(t, s.name("a"))
			eventually(t, 10*time.Second, func() error {
				e, ok := s.endpoints(t)[addr]
				if !ok || dp != "kernel" && !e.BPF {
					return fmt.Errorf("%s not an endpoint yet: %+v", addr, e)
				}
				if e.KernelProxy {
					return fmt.Errorf("%s has a kernel proxy entry without --ndp-proxy", addr)
				}
				return nil
			})
			if st := s.mustV6dp(t, "status"); !regexp.MustCompile(`ndp-answers:\s+none`).MatchString(st) {
				t.Errorf("status does not say no NS is answered:\n%s", st)
			}
			before := map[string]uint64{}
			if dp != "kernel" {
				before = s.counters(t, dp)
			}
			conn, err := topo.ListenNDP(s.Router, s.RouterIf)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			target := netip.MustParseAddr(addr)
			// Frames the host's uplink received: the NS must reach it.
			rx := func() int {
				var links []struct {
					Stats struct {
						RX struct {
							Packets int `json:"packets"`
						} `json:"rx"`
					} `json:"stats64"`
				}
				out := s.MustRun(s.Host, "ip", "-j", "-s", "link", "show", "dev", s.Uplink)
				if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
					t.Fatalf("ip -j -s link show %s: %v: %s", s.Uplink, err, out)
				}
				return links[0].Stats.RX.Packets
			}
			rxBefore := rx()
			// Hostile to the rule: the router asks, multicast and
			// unicast; nobody on the host may answer.
			if err := unanswered(conn, target, time.Second); err != nil {
				t.Errorf("multicast NS for %s without --ndp-proxy: %v", addr, err)
			}
			hostMAC := s.hostMAC(t)
			s.MustRun(s.Router, "ip", "-6", "neigh", "replace", addr, "lladdr", hostMAC, "dev", s.RouterIf, "nud", "permanent")
			if a, err := conn.Solicit(target, target, time.Second); err == nil && a != nil {
				t.Errorf("unicast NS for %s without --ndp-proxy answered: %+v", addr, a)
			}
			s.MustRun(s.Router, "ip", "-6", "neigh", "del", addr, "dev", s.RouterIf)
			// The solicitations did reach the host's uplink: unanswered
			// there, not lost on the way.
			if got := rx() - rxBefore; got < 2 {
				t.Errorf("the host's uplink received %d frames during the 2 NS: they did not reach the host", got)
			}
			if dp != "kernel" {
				after := s.counters(t, dp)
				if got := after["ns_answered"] - before["ns_answered"]; got != 0 {
					t.Errorf("ns_answered rose by %d without --ndp-proxy", got)
				}
			}
			// Control: routed to the host, the container is reached.
			s.MustRun(s.Router, "ip", "-6", "route", "add", "2001:db8::c008/125", "via", hostAddr, "dev", s.RouterIf)
			if p := <-pingUntil(s, addr, 10*time.Second); p.err != nil {
				t.Fatalf("router ping to %s routed via the host: %v", addr, p.err)
			}
		})
	}
}
