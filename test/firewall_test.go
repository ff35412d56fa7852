package test

import (
	"fmt"
	"regexp"
	"testing"
	"time"
)

// TestFirewallHolds: with the host's ip6tables FORWARD policy at DROP, or
// one rule dropping the router's flow, the router's pings must not reach a
// container on any dataplane; with no filtering the fast path carries
// them (its counters rise), and status says which.
func TestFirewallHolds(t *testing.T) {
	for _, dp := range []string{"kernel", "xdp", "tc", "auto"} {
		t.Run(dp, func(t *testing.T) {
			s := newSeed(t, "2001:db8::c008/125")
			s.startDaemon(t, s.daemonArgs(dp))
			a := s.addContainer(t, s.name("fw"))
			s.waitLive(t, a, dp != "kernel")
			ping := func() bool {
				_, err := s.Run(s.Router, "ping", "-c", "1", "-W", "1", a)
				return err == nil
			}
			// Reachable, with a generous bound: a first ping resolves
			// neighbours both ways, which on a loaded machine takes
			// longer than its one second.
			reaches := func(what string) {
				t.Helper()
				eventually(t, 10*time.Second, func() error {
					if !ping() {
						return fmt.Errorf("router cannot ping the container %s", what)
					}
					return nil
				})
			}
			fastPath := func(want string) {
				t.Helper()
				re := regexp.MustCompile(`fast path:\s+` + want)
				eventually(t, 5*time.Second, func() error {
					if st := s.mustV6dp(t, "status"); !re.MatchString(st) {
						return fmt.Errorf("status does not say fast path %q:\n%s", want, st)
					}
					return nil
				})
			}
			// Control: no filtering, the fast path forwards.
			before := s.counters(t, dp)
			reaches("without any firewall rule")
			if dp != "kernel" {
				fastPath("on")
				if after := s.counters(t, dp); after["fwd_redirected"] <= before["fwd_redirected"] {
					t.Errorf("no filtering, yet the ping did not take the fast path")
				}
			}
			for _, rule := range [][]string{
				{"ip6tables", "-P", "FORWARD", "DROP"},
				{"ip6tables", "-I", "FORWARD", "-s", routerAddr, "-d", a, "-j", "DROP"},
			} {
				s.MustRun(s.Host, rule...)
				if dp != "kernel" {
					fastPath("off: the host firewall filters")
				}
				before := s.counters(t, dp)
				if ping() {
					t.Errorf("%v: the router's ping reached the container", rule)
				}
				after := s.counters(t, dp)
				if n := after["fwd_redirected"] - before["fwd_redirected"]; n != 0 {
					t.Errorf("%v: %d packets forwarded in BPF past the firewall", rule, n)
				}
				if dp != "kernel" && after["fwd_pass_filtered"] <= before["fwd_pass_filtered"] {
					t.Errorf("%v: fwd_pass_filtered did not rise", rule)
				}
				s.MustRun(s.Host, "ip6tables", "-F", "FORWARD")
				s.MustRun(s.Host, "ip6tables", "-P", "FORWARD", "ACCEPT")
			}
			// Rules gone: ip6tables-nft leaves its empty chains, which filter nothing.
			if dp != "kernel" {
				fastPath("on")
			}
			reaches("after the rules went")
		})
	}
}
