package test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/v6dp/v6dp/test/topo"
)

// The host's firewall holds on every dataplane (issue 9): what the host's
// ip6tables or nftables FORWARD rules drop, no fast path delivers, and
// where nothing is filtered the fast path still carries the traffic. The
// rules live in the test's host namespace (netfilter state is per
// namespace), so deleting the namespace removes them; the test checks
// that none of them is in the namespace it runs in.
func TestFirewall(t *testing.T) {
	for _, dp := range hostileDataplanes() {
		t.Run(dp, func(t *testing.T) {
			t.Parallel()
			testFirewall(t, dp)
		})
	}
}

// firewallWait bounds how long a dataplane may take to notice a rule
// added or removed while it runs. A rule present before the daemon starts
// must hold from the first packet.
const firewallWait = 15 * time.Second

type firewall struct {
	*seed
	dp     string
	a, b   string // container names
	aa, ba string // their addresses
}

func testFirewall(t *testing.T, dp string) {
	s := newSeed(t, "2001:db8::c008/125")
	if dp == "xdp" {
		// Native XDP, as on a physical NIC (see routerLikeNIC).
		s.routerLikeNIC(t)
	}
	f := &firewall{seed: s, dp: dp}
	rootRules := hostFirewall(t, "")
	comment := "v6dp-test-" + s.Tag
	defer func() {
		// The rules went into the host namespace only.
		if got := hostFirewall(t, ""); strings.Contains(got, comment) || got != rootRules {
			t.Errorf("the test's own namespace's firewall changed:\nbefore:\n%s\nafter:\n%s", rootRules, got)
		}
	}()

	// A FORWARD policy of DROP set before the daemon starts holds from
	// the first packet.
	s.MustRun(s.Host, "ip6tables", "-P", "FORWARD", "DROP")
	s.startDaemon(t, s.daemonArgs(dp))
	f.a, f.b = s.name("fwa"), s.name("fwb")
	f.aa, f.ba = s.addContainer(t, f.a), s.addContainer(t, f.b)
	s.waitLive(t, f.aa, dp != "kernel")
	s.waitLive(t, f.ba, dp != "kernel")
	t.Run("policy DROP from the start", func(t *testing.T) {
		f.blocked(t, s.Router, f.aa, f.a, 0)
		f.blocked(t, f.a, routerAddr, s.Router, 0)
		f.blocked(t, s.Router, f.ba, f.b, 0)
	})
	s.MustRun(s.Host, "ip6tables", "-P", "FORWARD", "ACCEPT")
	t.Run("no filtering", f.fastPath)

	t.Run("ip6tables rule dropping one flow", func(t *testing.T) {
		in := []string{"FORWARD", "-d", f.aa, "-p", "ipv6-icmp", "--icmpv6-type", "echo-request", "-m", "comment", "--comment", comment, "-j", "DROP"}
		out := []string{"FORWARD", "-s", f.aa, "-d", routerAddr, "-p", "ipv6-icmp", "--icmpv6-type", "echo-request", "-m", "comment", "--comment", comment, "-j", "DROP"}
		s.MustRun(s.Host, append([]string{"ip6tables", "-I"}, in...)...)
		s.MustRun(s.Host, append([]string{"ip6tables", "-I"}, out...)...)
		if got := hostFirewall(t, s.Host); !strings.Contains(got, comment) {
			t.Fatalf("the rules are not in the host namespace:\n%s", got)
		}
		f.blocked(t, s.Router, f.aa, f.a, firewallWait)
		f.blocked(t, f.a, routerAddr, s.Router, firewallWait)
		// The other flows go on.
		s.MustRun(s.Router, "ping", "-c", "2", "-i", "0.2", "-W", "2", f.ba)
		s.MustRun(f.b, "ping", "-c", "2", "-i", "0.2", "-W", "2", routerAddr)
		s.MustRun(s.Host, append([]string{"ip6tables", "-D"}, in...)...)
		s.MustRun(s.Host, append([]string{"ip6tables", "-D"}, out...)...)
	})

	t.Run("policy DROP while running", func(t *testing.T) {
		s.MustRun(s.Host, "ip6tables", "-P", "FORWARD", "DROP")
		f.blocked(t, s.Router, f.aa, f.a, firewallWait)
		f.blocked(t, f.b, routerAddr, s.Router, firewallWait)
		s.MustRun(s.Host, "ip6tables", "-P", "FORWARD", "ACCEPT")
	})

	t.Run("nftables rule dropping one flow", func(t *testing.T) {
		table := "v6dp_test_" + s.Tag
		s.MustRun(s.Host, "nft", "add", "table", "inet", table)
		s.MustRun(s.Host, "nft", "add", "chain", "inet", table, "forward_filter", "{ type filter hook forward priority 0 ; policy accept ; }")
		s.MustRun(s.Host, "nft", "add", "rule", "inet", table, "forward_filter", "ip6", "daddr", f.aa, "icmpv6", "type", "echo-request", "drop")
		if out := s.MustRun("", "nft", "list", "tables"); strings.Contains(out, table) {
			t.Errorf("nft table %s is in the test's own namespace", table)
		}
		f.blocked(t, s.Router, f.aa, f.a, firewallWait)
		s.MustRun(s.Router, "ping", "-c", "2", "-i", "0.2", "-W", "2", f.ba)
		s.MustRun(s.Host, "nft", "delete", "table", "inet", table)
	})

	// Netfilter's ingress hook runs after TC ingress and XDP: a fast path
	// that forwards from there skips it, the kernel's path does not.
	t.Run("nftables netdev ingress rule on the uplink", func(t *testing.T) {
		table := "v6dp_ingress_" + s.Tag
		s.MustRun(s.Host, "nft", "add", "table", "netdev", table)
		s.MustRun(s.Host, "nft", "add", "chain", "netdev", table, "uplink_in", "{ type filter hook ingress device eth0 priority 0 ; policy accept ; }")
		s.MustRun(s.Host, "nft", "add", "rule", "netdev", table, "uplink_in", "ip6", "daddr", f.aa, "icmpv6", "type", "echo-request", "drop")
		f.blocked(t, s.Router, f.aa, f.a, firewallWait)
		s.MustRun(s.Router, "ping", "-c", "2", "-i", "0.2", "-W", "2", f.ba)
		s.MustRun(s.Host, "nft", "delete", "table", "netdev", table)
	})
	t.Run("no filtering at the end", f.fastPath)
}

// hostFirewall returns the IPv6 FORWARD rules and policy of ns (empty:
// the test's own namespace).
func hostFirewall(t *testing.T, ns string) string {
	t.Helper()
	out, err := topo.Run(ns, "ip6tables", "-S", "FORWARD")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// blocked asserts that echo requests from the from namespace to addr
// never reach the to namespace: within wait the first one is lost, and
// from then on every one is, counted where they would arrive.
func (f *firewall) blocked(t *testing.T, from, addr, to string, wait time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(wait); wait > 0; {
		in0 := snmp6(t, f.seed, to, "Icmp6InEchos")
		_, err := f.Run(from, "ping", "-c", "1", "-W", "0.5", addr)
		if err != nil && snmp6(t, f.seed, to, "Icmp6InEchos") == in0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's echo request to %s reached %s: the firewall's FORWARD drop does not hold (after %s)", from, addr, to, wait)
		}
		time.Sleep(100 * time.Millisecond)
	}
	in0 := snmp6(t, f.seed, to, "Icmp6InEchos")
	out, err := f.Run(from, "ping", "-c", "3", "-i", "0.2", "-W", "0.5", addr)
	if err == nil || !strings.Contains(out, " 100% packet loss") {
		t.Errorf("%s's pings to %s while the firewall drops them: %v\n%s", from, addr, err, out)
	}
	if d := snmp6(t, f.seed, to, "Icmp6InEchos") - in0; d != 0 {
		t.Errorf("%d of %s's echo requests to %s reached %s through the firewall", d, from, addr, to)
	}
}

// fastPath: with nothing filtered, traffic flows both ways, and on a BPF
// dataplane through BPF (its forwarding counters move), again within
// firewallWait of the last rule going.
func (f *firewall) fastPath(t *testing.T) {
	s := f.seed
	deadline := time.Now().Add(firewallWait)
	for {
		before := s.counters(t, f.dp)
		s.MustRun(s.Router, "ping", "-c", "3", "-i", "0.1", "-W", "2", f.aa)
		s.MustRun(f.a, "ping", "-c", "3", "-i", "0.1", "-W", "2", routerAddr)
		if f.dp == "kernel" {
			return
		}
		after := s.counters(t, f.dp)
		var slow []string
		for _, c := range []string{"fwd_redirected", "egress_fib"} {
			if after[c] < before[c]+3 {
				slow = append(slow, fmt.Sprintf("%s rose by %d, want 3", c, after[c]-before[c]))
			}
		}
		if len(slow) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("with no filtering the fast path is not used: %s", strings.Join(slow, "; "))
		}
		time.Sleep(200 * time.Millisecond)
	}
}
