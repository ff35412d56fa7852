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
	idx := s.mustIfindex(t, portA)
	// Control: on-link, switched, they reach each other.
	eventually(t, 20*time.Second, func() error {
		_, err := s.Run(a, "ping", "-c", "1", "-W", "2", addrB)
		return err
	})
	before := s.counters(t, dp)["egress_local"]
	if dp != "kernel" && portFlags(t, s, idx)&portNoSwitch != 0 {
		t.Fatalf("port %s is marked for the bridge to switch before any isolation", portA)
	}

	for _, p := range []string{portA, portB} {
		s.MustRun(s.Host, "bridge", "link", "set", "dev", p, "isolated", "on")
	}
	isolated := time.Now()
	if dp != "kernel" {
		// The port's entry says the bridge decides (PORT_F_NO_SWITCH)...
		waitPortFlag(t, s, idx, true)
		t.Logf("port entry marked %s after isolation was set", time.Since(isolated).Round(time.Millisecond))
	}
	// ...and from then on nothing gets through, although a still has b's
	// MAC from the control ping: BPF would deliver that frame itself.
	if out, err := s.Run(a, "ping", "-c", "3", "-i", "0.2", "-W", "1", addrB); err == nil {
		t.Errorf("isolated %s reached %s:\n%s", a, b, out)
	}
	// Isolation does not cut them off from the router.
	eventually(t, 20*time.Second, func() error {
		_, err := s.Run(s.Router, "ping", "-c", "1", "-W", "2", addrA)
		return err
	})

	for _, p := range []string{portA, portB} {
		s.MustRun(s.Host, "bridge", "link", "set", "dev", p, "isolated", "off")
	}
	opened := time.Now()
	if dp != "kernel" {
		waitPortFlag(t, s, idx, false)
		t.Logf("port entry unmarked %s after isolation was lifted", time.Since(opened).Round(time.Millisecond))
	}
	eventually(t, 20*time.Second, func() error {
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

// portNoSwitch is PORT_F_NO_SWITCH.
const portNoSwitch = 4

// waitPortFlag waits until port idx's entry has PORT_F_NO_SWITCH set (or
// cleared).
func waitPortFlag(t *testing.T, s *seed, idx int, set bool) {
	t.Helper()
	eventually(t, 15*time.Second, func() error {
		if f := portFlags(t, s, idx); (f&portNoSwitch != 0) != set {
			return fmt.Errorf("port ifindex %d: flags %#x, want the no-switch flag %v", idx, f, set)
		}
		return nil
	})
}

// portFlags returns the flags of port idx's entry in the ports map.
func portFlags(t *testing.T, s *seed, idx int) uint32 {
	t.Helper()
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
		t.Fatalf("bpftool: %v: %s", err, out)
	}
	for _, p := range ports {
		if int(p.Formatted.Key) == idx {
			return p.Formatted.Value.Flags
		}
	}
	t.Fatalf("port %d has no entry: %s", idx, out)
	return 0
}
