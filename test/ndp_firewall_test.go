package test

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/v6dp/v6dp/test/topo"
)

// The host's firewall holds on the NDP answer path too (review item M3):
// the kernel's proxy takes an NS in through netfilter's prerouting and
// input hooks and sends its NA through output and postrouting, so what an
// input rule drops gets no answer from a stock kernel, and no BPF answer
// either; an input chain that leaves NDP alone still gets the NS
// answered, by the kernel, and once the rules go BPF answers again. The
// rules live in the test's host namespace (netfilter state is per
// namespace); the test checks that none went into its own.
func TestFirewallNDP(t *testing.T) {
	for _, dp := range dataplanes() {
		t.Run(dp, func(t *testing.T) {
			t.Parallel()
			testFirewallNDP(t, dp)
		})
	}
}

type ndpFirewall struct {
	*seed
	dp   string
	conn *topo.NDPConn
	mac  string // the host uplink's MAC, the answers' TLLA
	a, b string // container addresses: the rules drop the NS for a only
}

func testFirewallNDP(t *testing.T, dp string) {
	s := newSeed(t, "2001:db8::c008/125")
	if dp == "xdp" {
		// Native XDP, as on a physical NIC (see routerLikeNIC).
		s.routerLikeNIC(t)
	}
	table := "v6dp_ndp_" + s.Tag
	comment := "v6dp-test-" + s.Tag
	defer func() {
		if out, _ := topo.Run("", "nft", "list", "tables"); strings.Contains(out, table) {
			t.Errorf("nft table %s is in the test's own namespace", table)
		}
		if out, _ := topo.Run("", "ip6tables", "-S", "INPUT"); strings.Contains(out, comment) {
			t.Errorf("the test's own namespace has the test's INPUT rule:\n%s", out)
		}
	}()
	// The router's link-local address, which the socket binds to, comes
	// a moment after its link is up.
	var conn *topo.NDPConn
	eventually(t, 5*time.Second, func() (err error) {
		conn, err = topo.ListenNDP(s.Router, s.RouterIf)
		return err
	})
	defer conn.Close()
	f := &ndpFirewall{seed: s, dp: dp, conn: conn, mac: s.hostMAC(t)}

	// The NS the router sends for a: from its link-local address (conn)
	// or its global one (its own neighbour resolution), to a's
	// solicited-node group or to a itself. A rule set before the daemon
	// starts holds from the first NS.
	nft := func(args ...string) { s.MustRun(s.Host, append([]string{"nft"}, args...)...) }
	inputChain := func(t *testing.T, policy string) {
		// Gone at the end of the subtest that adds it, also on failure,
		// so that the next one starts with no rules (a second delete
		// fails harmlessly).
		t.Cleanup(func() { _, _ = s.Run(s.Host, "nft", "delete", "table", "inet", table) })
		nft("add", "table", "inet", table)
		nft("add", "chain", "inet", table, "input", "{ type filter hook input priority 0 ; policy "+policy+" ; }")
	}
	dropNSFor := func(a string) {
		target := netip.MustParseAddr(a)
		nft("add", "rule", "inet", table, "input",
			"ip6", "saddr", "{", routerAddr+",", conn.Source().String(), "}",
			"ip6", "daddr", "{", a+",", topo.SolicitNodeGroup(target).String(), "}",
			"icmpv6", "type", "nd-neighbor-solicit", "drop")
	}
	// f.a is not known yet: the first container gets the prefix's first
	// free address (c009), the second c00a, as in every seed test.
	inputChain(t, "accept")
	dropNSFor("2001:db8::c009")
	d := s.startDaemon(t, s.daemonArgs(dp))
	f.a, f.b = s.addContainer(t, s.name("nfa")), s.addContainer(t, s.name("nfb"))
	if f.a != "2001:db8::c009" {
		t.Fatalf("first container got %s, want 2001:db8::c009 (the rule is for it)", f.a)
	}
	s.waitLive(t, f.a, f.bpf())
	s.waitLive(t, f.b, f.bpf())

	t.Run("nftables input rule from the start", func(t *testing.T) {
		f.answersBy(t, "kernel: the host firewall filters the NDP answer path \\(inet "+table+" chain input has 1 rules\\)")
		f.hostile(t, func() { f.unanswered(t, f.a) })
	})

	t.Run("no rules: answered, by BPF on its dataplanes", func(t *testing.T) {
		nft("delete", "table", "inet", table)
		f.byBPF(t)
	})

	// An input chain that never drops NDP: the NS is still answered,
	// by the kernel now, as the chain might have.
	t.Run("nftables input chain that does not touch NDP", func(t *testing.T) {
		inputChain(t, "accept")
		nft("add", "rule", "inet", table, "input", "tcp", "dport", "22", "accept")
		f.answersBy(t, "kernel: the host firewall filters the NDP answer path")
		f.fastPathOn(t)
		before := s.counters(t, dp)
		s.answeredWith(t, conn, f.a, f.mac, firewallWait)
		f.byKernel(t, before)
		nft("delete", "table", "inet", table)
		f.byBPF(t)
	})

	// The router's DAD for a container's address (an NS from ::) is
	// defended by whoever answers NS: BPF with no rules, the kernel from
	// its proxy entry through a chain that lets the probe pass, nobody
	// through one that drops it, as on a stock host. Control for each:
	// the router's DAD fails while the address is defended.
	t.Run("DAD probes under the firewall", func(t *testing.T) {
		before := s.counters(t, dp)
		if flags := f.routerDAD(t, f.a); flags&unix.IFA_F_DADFAILED == 0 {
			t.Errorf("no rules: the router's DAD for %s, live behind the host, did not fail (flags %#x)", f.a, flags)
		}
		if f.bpf() {
			if after := s.counters(t, dp); after["ns_dad_answered"] <= before["ns_dad_answered"] {
				t.Errorf("no rules, yet BPF did not defend %s (ns_dad_answered %d -> %d)", f.a, before["ns_dad_answered"], after["ns_dad_answered"])
			}
		}
		inputChain(t, "accept")
		nft("add", "rule", "inet", table, "input", "tcp", "dport", "22", "accept")
		f.answersBy(t, "kernel: the host firewall filters the NDP answer path")
		before = s.counters(t, dp)
		if flags := f.routerDAD(t, f.a); flags&unix.IFA_F_DADFAILED == 0 {
			t.Errorf("an input chain that passes NDP: the router's DAD for %s did not fail (flags %#x): the kernel did not defend it", f.a, flags)
		}
		f.byKernel(t, before)
		nft("add", "rule", "inet", table, "input", "ip6", "saddr", "::", "icmpv6", "type", "nd-neighbor-solicit", "drop")
		before = s.counters(t, dp)
		if flags := f.routerDAD(t, f.a); flags&unix.IFA_F_DADFAILED != 0 {
			t.Errorf("an input rule drops DAD probes, yet the router's DAD for %s failed (flags %#x): defended past the firewall", f.a, flags)
		}
		f.notByBPF(t, before, 1)
		nft("delete", "table", "inet", table)
		f.byBPF(t)
	})

	// iptables-nft, as the FORWARD tests use it: a rule, then a policy.
	t.Run("ip6tables INPUT rule", func(t *testing.T) {
		rule := []string{"INPUT", "-s", routerAddr, "-d", topo.SolicitNodeGroup(netip.MustParseAddr(f.a)).String(),
			"-p", "ipv6-icmp", "--icmpv6-type", "neighbour-solicitation", "-m", "comment", "--comment", comment, "-j", "DROP"}
		t.Cleanup(func() { _, _ = s.Run(s.Host, append([]string{"ip6tables", "-D"}, rule...)...) })
		s.MustRun(s.Host, append([]string{"ip6tables", "-I"}, rule...)...)
		f.answersBy(t, "kernel: the host firewall filters the NDP answer path \\(ip6 filter chain INPUT has 1 rules\\)")
		f.hostile(t, func() {
			// The router's kernel resolves a, from its global address:
			// it gets no answer, and the packet is never sent.
			s.MustRun(s.Router, "ip", "neigh", "flush", "dev", s.RouterIf)
			if out, err := s.Run(s.Router, "ping", "-c", "1", "-W", "3", f.a); err == nil {
				t.Errorf("the router resolved and reached %s through the INPUT drop:\n%s", f.a, out)
			}
			s.MustRun(s.Router, "ping", "-c", "1", "-W", "3", f.b)
		})
	})
	t.Run("ip6tables INPUT policy DROP", func(t *testing.T) {
		t.Cleanup(func() { _, _ = s.Run(s.Host, "ip6tables", "-P", "INPUT", "ACCEPT") })
		s.MustRun(s.Host, "ip6tables", "-P", "INPUT", "DROP")
		f.answersBy(t, "kernel: the host firewall filters the NDP answer path \\(ip6 filter chain INPUT has policy drop\\)")
		before := s.counters(t, dp)
		f.unanswered(t, f.a)
		f.unanswered(t, f.b)
		f.notByBPF(t, before, 2)
		s.MustRun(s.Host, "ip6tables", "-P", "INPUT", "ACCEPT")
		// ip6tables-nft leaves its empty chains, which filter nothing.
		f.byBPF(t)
	})

	// While no daemon runs, nobody reads the firewall: a few seconds
	// after the last daemon's end (policyHolds) the kernel answers, through
	// whatever rules are set by then. (On the kernel dataplane it always
	// does: the first subtest shows it.)
	if !f.bpf() {
		return
	}
	t.Run("no daemon: a rule set since holds", func(t *testing.T) {
		d.kill()
		inputChain(t, "accept")
		dropNSFor(f.a)
		f.answersBy(t, "kernel: no daemon has confirmed")
		before := s.counters(t, dp)
		f.unanswered(t, f.a)
		s.answeredWith(t, conn, f.b, f.mac, firewallWait)
		after := s.counters(t, dp)
		if n := after["ns_answered"] - before["ns_answered"]; n != 0 {
			t.Errorf("no daemon for seconds: BPF answered %d NS past the firewall", n)
		}
		if after["ns_pass_stale"] < before["ns_pass_stale"]+2 {
			t.Errorf("ns_pass_stale rose by %d, want at least 2", after["ns_pass_stale"]-before["ns_pass_stale"])
		}
		nft("delete", "table", "inet", table)
	})
}

func (f *ndpFirewall) bpf() bool { return f.dp != "kernel" }

// routerDAD has the router take addr with DAD (one probe, at once) and
// returns the address's flags once DAD has ended; the address is gone
// again afterwards.
func (f *ndpFirewall) routerDAD(t *testing.T, addr string) int {
	t.Helper()
	dev := f.RouterIf
	for k, v := range map[string]string{
		"net.ipv6.conf." + dev + ".accept_dad":       "1",
		"net.ipv6.conf." + dev + ".dad_transmits":    "1",
		"net.ipv6.neigh." + dev + ".retrans_time_ms": "1000",
	} {
		f.Sysctl(f.Router, k, v)
	}
	f.MustRun(f.Router, "ip", "addr", "add", addr+"/128", "dev", dev)
	defer func() { _, _ = f.Run(f.Router, "ip", "addr", "del", addr+"/128", "dev", dev) }()
	return dadEnded(t, f.Router, netip.MustParseAddr(addr))
}

// answersBy waits until status says who answers NS (BPF dataplanes only:
// on the kernel's the kernel always does).
func (f *ndpFirewall) answersBy(t *testing.T, want string) {
	t.Helper()
	if !f.bpf() {
		return
	}
	re := regexp.MustCompile(`ns answers:\s+` + want)
	eventually(t, firewallWait, func() error {
		if st := f.mustV6dp(t, "status"); !re.MatchString(st) {
			return fmt.Errorf("status does not say ns answers %q:\n%s", want, st)
		}
		return nil
	})
}

// fastPathOn: a rule on the NDP path alone leaves forwarding in BPF.
func (f *ndpFirewall) fastPathOn(t *testing.T) {
	t.Helper()
	if !f.bpf() {
		return
	}
	if st := f.mustV6dp(t, "status"); !regexp.MustCompile(`fast path:\s+on`).MatchString(st) {
		t.Errorf("an input chain turned the forwarding fast path off:\n%s", st)
	}
}

// hostile runs check, in which the NS for a go unanswered, and checks
// that b, which no rule drops, is answered by the kernel meanwhile, and
// that BPF answered neither.
func (f *ndpFirewall) hostile(t *testing.T, check func()) {
	t.Helper()
	before := f.counters(t, f.dp)
	check()
	f.answeredWith(t, f.conn, f.b, f.mac, firewallWait)
	f.notByBPF(t, before, 2)
}

// unanswered: the router's NS for addr, multicast and unicast, get no
// answer (the daemon's announcements of a new address are none).
func (f *ndpFirewall) unanswered(t *testing.T, addr string) {
	t.Helper()
	target := netip.MustParseAddr(addr)
	for _, dst := range []netip.Addr{topo.SolicitNodeGroup(target), target} {
		if ans, err := f.conn.Solicit(target, dst, time.Second); !errors.Is(err, topo.ErrNoAnswer) && !errors.Is(err, topo.ErrOnlyUnsolicited) {
			src := "?"
			if ans != nil {
				src = ans.Source.String()
			}
			t.Errorf("NS for %s to %s through the host's input drop: answered from %s (%v)", addr, dst, src, err)
		}
	}
}

// notByBPF: since before, BPF answered no NS and passed at least n to the
// kernel for the firewall.
func (f *ndpFirewall) notByBPF(t *testing.T, before map[string]uint64, n uint64) {
	t.Helper()
	if !f.bpf() {
		return
	}
	after := f.counters(t, f.dp)
	for _, c := range []string{"ns_answered", "ns_dad_answered"} {
		if d := after[c] - before[c]; d != 0 {
			t.Errorf("%s rose by %d while the host firewall filters the NDP path", c, d)
		}
	}
	if d := after["ns_pass_filtered"] - before["ns_pass_filtered"]; d < n {
		t.Errorf("ns_pass_filtered rose by %d, want at least %d", d, n)
	}
}

// byKernel: the answers since before came from the kernel.
func (f *ndpFirewall) byKernel(t *testing.T, before map[string]uint64) {
	t.Helper()
	f.notByBPF(t, before, 1)
}

// byBPF: within firewallWait of the last rule going, status says BPF
// answers and the router's NS for a is answered, by BPF (ns_answered).
func (f *ndpFirewall) byBPF(t *testing.T) {
	t.Helper()
	f.answersBy(t, "BPF on ")
	before := f.counters(t, f.dp)
	f.answeredWith(t, f.conn, f.a, f.mac, firewallWait)
	if !f.bpf() {
		return
	}
	if after := f.counters(t, f.dp); after["ns_answered"] <= before["ns_answered"] {
		t.Errorf("no rules, yet BPF did not answer (ns_answered %d -> %d)", before["ns_answered"], after["ns_answered"])
	}
}
