package test

// The bridge's own port isolation holds on the fast path: BPF delivers
// between two containers of one bridge only where the bridge would
// switch. Isolated ports (bridge link set ... isolated on) reach no other
// isolated port on a stock host; BPF must not carry them past that.

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

func TestBridgeIsolation(t *testing.T) {
	for _, dp := range []string{"kernel", "tc"} {
		t.Run(dp, func(t *testing.T) { testBridgeIsolation(t, dp) })
	}
}

func testBridgeIsolation(t *testing.T, dp string) {
	s := newSeed(t, "2001:db8::c008/125")
	s.startDaemon(t, s.daemonArgs(dp))
	a, b := s.name("a"), s.name("b")
	addrA, addrB := s.addContainer(t, a), s.addContainer(t, b)
	s.waitLive(t, addrA, dp != "kernel")
	s.waitLive(t, addrB, dp != "kernel")
	eps := s.endpoints(t)
	portA, portB := eps[addrA].Veth, eps[addrB].Veth
	if portA == "" || portB == "" {
		t.Fatalf("no ports for %s and %s: %+v", addrA, addrB, eps)
	}
	// Control: on-link, switched, they reach each other.
	s.MustRun(a, "ping", "-c", "1", "-W", "2", addrB)
	before := s.counters(t, dp)["egress_local"]

	for _, p := range []string{portA, portB} {
		s.MustRun(s.Host, "bridge", "link", "set", "dev", p, "isolated", "on")
	}
	isolated := time.Now()
	if dp != "kernel" {
		// The port's entry says the bridge decides (PORT_F_NO_SWITCH)...
		idx := s.mustIfindex(t, portA)
		eventually(t, 15*time.Second, func() error {
			var ports []struct {
				Formatted struct {
					Key   uint32 `json:"key"`
					Value struct {
						Flags uint32 `json:"flags"`
					} `json:"value"`
				} `json:"formatted"`
			}
			out := s.MustRun("", "bpftool", "-j", "map", "dump", "pinned", s.PinDir+"/v6dp_ports")
			if err := json.Unmarshal([]byte(out), &ports); err != nil {
				return fmt.Errorf("bpftool: %v: %s", err, out)
			}
			for _, p := range ports {
				if int(p.Formatted.Key) == idx && p.Formatted.Value.Flags&4 != 0 {
					return nil
				}
			}
			return fmt.Errorf("port %s (%d) not marked as the bridge's to switch: %s", portA, idx, out)
		})
		t.Logf("port entry marked %s after isolation was set", time.Since(isolated).Round(time.Millisecond))
	}
	// ...and from then on nothing gets through, although a still has b's
	// MAC from the control ping: BPF would deliver that frame itself.
	if out, err := s.Run(a, "ping", "-c", "3", "-i", "0.2", "-W", "1", addrB); err == nil {
		t.Errorf("isolated %s reached %s:\n%s", a, b, out)
	}
	eventually(t, 15*time.Second, func() error {
		if out, err := s.Run(a, "ping", "-c", "1", "-W", "1", addrB); err == nil {
			return fmt.Errorf("isolated %s still reaches %s: %s", a, b, out)
		}
		return nil
	})
	// Isolation does not cut them off from the router.
	s.MustRun(s.Router, "ping", "-c", "1", "-W", "2", addrA)

	for _, p := range []string{portA, portB} {
		s.MustRun(s.Host, "bridge", "link", "set", "dev", p, "isolated", "off")
	}
	eventually(t, 15*time.Second, func() error {
		_, err := s.Run(a, "ping", "-c", "1", "-W", "1", addrB)
		return err
	})
	if dp != "kernel" {
		// Switched in BPF again once the bridge allows it.
		eventually(t, 15*time.Second, func() error {
			s.MustRun(a, "ping", "-c", "1", "-W", "1", addrB)
			if after := s.counters(t, dp)["egress_local"]; after <= before {
				return fmt.Errorf("egress_local %d, %d before isolation: BPF does not switch again", after, before)
			}
			return nil
		})
	}
}
