package test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/v6dp/v6dp/test/topo"
)

// The seed's container listing: a MAC-derived global address and the
// default route via fe80::1.
func TestSeedContainerAddressAndRoute(t *testing.T) {
	s := newSeed(t, "2001:db8:1::/64")
	s.startDaemon(t, s.daemonArgs("kernel"))
	c := s.name("c3")
	addr := s.addContainer(t, c, "--mac", "02:42:ac:11:00:03")
	if addr != "2001:db8:1::242:ac11:3" {
		t.Fatalf("address of 02:42:ac:11:00:03 in 2001:db8:1::/64: got %s, want 2001:db8:1::242:ac11:3", addr)
	}
	out := s.MustRun(c, "ip", "-6", "addr", "show", "dev", "eth0")
	if !strings.Contains(out, "inet6 2001:db8:1::242:ac11:3/64 scope global") {
		t.Errorf("ip -6 addr in the container lacks the global MAC address:\n%s", out)
	}
	if !strings.Contains(out, "link/ether 02:42:ac:11:00:03") && !strings.Contains(s.MustRun(c, "ip", "link", "show", "eth0"), "02:42:ac:11:00:03") {
		t.Errorf("container eth0 does not have MAC 02:42:ac:11:00:03")
	}
	rt := s.MustRun(c, "ip", "-6", "route")
	if !strings.Contains(rt, "default via fe80::1 dev eth0") {
		t.Errorf("ip -6 route in the container lacks the default via fe80::1:\n%s", rt)
	}
	// Host side: bridge with fe80::1, route for the prefix, forwarding on.
	br := s.MustRun(s.Host, "ip", "-6", "addr", "show", "dev", "docker0")
	if !strings.Contains(br, "inet6 fe80::1/64 scope link") {
		t.Errorf("docker0 lacks fe80::1/64:\n%s", br)
	}
	hr := s.MustRun(s.Host, "ip", "-6", "route", "show", "2001:db8:1::/64")
	if !strings.Contains(hr, "dev docker0") {
		t.Errorf("host has no route for the prefix via docker0: %q", hr)
	}
	for _, k := range []string{"net.ipv6.conf.all.forwarding", "net.ipv6.conf.default.forwarding"} {
		if v := s.ReadSysctl(s.Host, k); v != "1" {
			t.Errorf("%s = %s, want 1", k, v)
		}
	}
	if v := s.ReadSysctl(s.Host, "net.ipv6.conf.docker0.accept_ra"); v != "0" {
		t.Errorf("docker0 accept_ra = %s, want 0", v)
	}
	// The seed's RA advice: accept_ra 1 becomes 2 on the uplink.
	if v := s.ReadSysctl(s.Host, "net.ipv6.conf.eth0.accept_ra"); v != "2" {
		t.Errorf("eth0 accept_ra = %s, want 2", v)
	}
	// Bridge ports carry no IPv6 of their own.
	veth := s.endpoints(t)[addr].Veth
	if v := s.ReadSysctl(s.Host, "net.ipv6.conf."+veth+".disable_ipv6"); v != "1" {
		t.Errorf("port %s disable_ipv6 = %s, want 1", veth, v)
	}
	// Routed (not proxied) here: the router reaches the container via the host.
	s.MustRun(s.Router, "ip", "-6", "route", "add", "2001:db8:1::/64", "via", hostAddr)
	s.MustRun(s.Router, "ping", "-c", "2", "-W", "2", addr)
}

func TestDefaultGatewayV6(t *testing.T) {
	s := newSeed(t, "2001:db8:1::/64")
	s.startDaemon(t, s.daemonArgs("kernel", "--default-gateway-v6", "2001:db8:1::1"))
	c := s.name("gw")
	s.addContainer(t, c)
	rt := s.MustRun(c, "ip", "-6", "route")
	if !strings.Contains(rt, "default via 2001:db8:1::1 dev eth0") {
		t.Errorf("container route: want default via 2001:db8:1::1:\n%s", rt)
	}
	s.MustRun(c, "ping", "-c", "1", "-W", "2", "2001:db8:1::1")
}

func TestIPForwardFalse(t *testing.T) {
	s := newSeed(t, "2001:db8:1::/64")
	s.startDaemon(t, s.daemonArgs("kernel", "--ip-forward=false"))
	for _, k := range []string{"net.ipv6.conf.all.forwarding", "net.ipv6.conf.default.forwarding"} {
		if v := s.ReadSysctl(s.Host, k); v != "0" {
			t.Errorf("%s = %s with --ip-forward=false, want 0", k, v)
		}
	}
	if v := s.ReadSysctl(s.Host, "net.ipv6.conf.eth0.accept_ra"); v != "1" {
		t.Errorf("eth0 accept_ra = %s without forwarding, want it left at 1", v)
	}
}

// The seed's NDP proxy example, on every dataplane: host 2001:db8::c001/64
// on eth0, Docker 2001:db8::c008/125, router on-link for 2001:db8::/64.
func TestNDPProxySeed(t *testing.T) {
	for _, dp := range dataplanes() {
		t.Run(dp, func(t *testing.T) { testNDPProxySeed(t, dp, "eth0", false) })
	}
	// With XDP on the router's end (as a physical NIC behaves towards
	// XDP_TX), auto still answers on TC, as measured faster on a veth,
	// and says so; --ndp-hook=xdp puts the answers on native XDP while
	// TC forwards, the split auto makes on a physical NIC.
	t.Run("auto-native", func(t *testing.T) { testNDPProxySeed(t, "auto", "eth0", true) })
	t.Run("auto-split", func(t *testing.T) { testNDPProxySeed(t, "auto", "eth0", true, "--ndp-hook", "xdp") })
}

// A VLAN uplink's name has a dot (eth0.100): the kernel has no 802.1Q
// here, so only the name is a VLAN's, and that is what trips sysctl paths.
func TestNDPProxySeedDottedUplink(t *testing.T) {
	for _, dp := range []string{"kernel", "tc"} {
		t.Run(dp, func(t *testing.T) { testNDPProxySeed(t, dp, "eth0.100", false) })
	}
}

func testNDPProxySeed(t *testing.T, dp, uplink string, native bool, extra ...string) {
	s := newSeedOn(t, "2001:db8::c008/125", uplink)
	if native {
		s.routerLikeNIC(t)
	}
	s.startDaemon(t, s.daemonArgs(dp, extra...))
	// The uplink's own NDP settings, under its own name.
	for k, want := range map[string]string{"conf": "proxy_ndp=1", "neigh": "proxy_delay=0"} {
		knob, v, _ := strings.Cut(want, "=")
		if got := s.ReadSysctl(s.Host, "net.ipv6."+k+"."+sysctlIf(uplink)+"."+knob); got != v {
			t.Errorf("%s %s = %s, want %s", uplink, knob, got, v)
		}
	}
	if native {
		want := map[string]*regexp.Regexp{
			"auto with an XDP far end answers on TC (a veth) and says why": regexp.MustCompile(`ndp-answers:\s+tc \(auto: a veth uplink`),
		}
		if len(extra) > 0 {
			want = map[string]*regexp.Regexp{
				"--ndp-hook=xdp answers on native XDP": regexp.MustCompile(`ndp-answers:\s+xdp-native`),
			}
		}
		want["TC forwards"] = regexp.MustCompile(`uplink-to-container:\s+tc`)
		st := s.mustV6dp(t, "status")
		for what, re := range want {
			if !re.MatchString(st) {
				t.Fatalf("%s: status does not say so:\n%s", what, st)
			}
		}
	}
	names := []string{s.name("a"), s.name("b"), s.name("c")}
	var addrs []string
	for _, n := range names {
		addrs = append(addrs, s.addContainer(t, n))
	}
	if addrs[0] != "2001:db8::c009" || addrs[1] != "2001:db8::c00a" || addrs[2] != "2001:db8::c00b" {
		t.Fatalf("sequential addresses in 2001:db8::c008/125: got %v, want c009, c00a, c00b", addrs)
	}
	for _, a := range addrs {
		s.waitLive(t, a, dp != "kernel")
	}
	hostMAC := s.hostMAC(t)
	before := s.counters(t, dp)

	// The router's own kernel resolves the address and reaches it.
	s.MustRun(s.Router, "ping", "-c", "2", "-W", "2", "2001:db8::c009")
	neigh := s.MustRun(s.Router, "ip", "-6", "neigh", "show", "2001:db8::c009", "dev", s.RouterIf)
	if !strings.Contains(neigh, "lladdr "+hostMAC) {
		t.Errorf("router's neighbour entry for 2001:db8::c009: want lladdr %s (the host), got %q", hostMAC, neigh)
	}

	conn, err := topo.ListenNDP(s.Router, s.RouterIf)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, a := range addrs {
		target := netip.MustParseAddr(a)
		// Multicast NS, to the solicited-node group.
		mustAnswer(t, conn, target, hostMAC, dp, true)
		// Unicast NS, as the router's reachability probe: needs the
		// router to know where to send it.
		s.MustRun(s.Router, "ip", "-6", "neigh", "replace", a, "lladdr", hostMAC, "dev", s.RouterIf, "nud", "permanent")
		ans, err := conn.Solicit(target, target, 2*time.Second)
		s.MustRun(s.Router, "ip", "-6", "neigh", "del", a, "dev", s.RouterIf)
		if err != nil {
			t.Fatalf("unicast NS for %s: %v", a, err)
		}
		checkAnswer(t, "unicast NS for "+a, conn, ans, hostMAC, dp, false)
	}
	// An unused address of the prefix gets no answer.
	if err := unanswered(conn, netip.MustParseAddr("2001:db8::c00d"), 500*time.Millisecond); err != nil {
		t.Errorf("unused address: %v", err)
	}
	if dp != "kernel" {
		// ndisc6 (which discards answers not sourced from the target)
		// shows the BPF answer and its TLLA.
		out, err := s.Run(s.Router, "ndisc6", "-1", "-r", "2", "-w", "1000", "2001:db8::c009", s.RouterIf)
		if err != nil || !strings.Contains(strings.ToLower(out), "target link-layer address: "+hostMAC) || !strings.Contains(out, "from 2001:db8::c009") {
			t.Errorf("ndisc6 from the router: want the TLLA %s from 2001:db8::c009, got %v:\n%s", hostMAC, err, out)
		}
		after := s.counters(t, dp)
		if got := after["ns_answered"] - before["ns_answered"]; got < uint64(2*len(addrs)) {
			t.Errorf("BPF counters: ns_answered rose by %d, want at least %d (BPF answered, not the kernel)", got, 2*len(addrs))
		}
		if after["ns_not_live"] <= before["ns_not_live"] {
			t.Errorf("BPF counters: ns_not_live did not count the NS for the unused address")
		}

	}

	// Removing a container stops the answers.
	s.mustV6dp(t, "container", "del", names[1])
	gone := netip.MustParseAddr(addrs[1])
	eventually(t, 2*time.Second, func() error {
		if err := unanswered(conn, gone, 200*time.Millisecond); err != nil {
			return fmt.Errorf("removed container: %v", err)
		}
		return nil
	})
	// The others still answer, correctly.
	mustAnswer(t, conn, netip.MustParseAddr(addrs[2]), hostMAC, dp, true)
}

// checkAnswer validates the whole NA (RFC 4861 7.1.2, then what a proxy's
// solicited answer must say) that conn got for its solicitation.
func checkAnswer(t *testing.T, what string, conn *topo.NDPConn, a *topo.Answer, hostMAC, dp string, multicast bool) {
	t.Helper()
	mac, err := net.ParseMAC(hostMAC)
	if err != nil {
		t.Fatal(err)
	}
	// RFC 4861 7.2.4: the TLLA option must be there for a multicast NS
	// and may be left out for a unicast one (the kernel leaves it out).
	// R: the BPF responder sets it because the host forwards; the
	// kernel answers for a proxy entry with the entry's NTF_ROUTER flag,
	// which v6dp does not set.
	w := conn.Expect(a.NA.TargetAddress, mac, multicast, dp != "kernel")
	if dp != "kernel" {
		// --na-source target, the default.
		w.Source = a.NA.TargetAddress
	}
	if err := a.Check(w); err != nil {
		t.Errorf("%s: %v", what, err)
	}
}

// mustAnswer solicits target (multicast to its solicited-node group, or
// unicast to the target) and validates the whole answer.
func mustAnswer(t *testing.T, conn *topo.NDPConn, target netip.Addr, hostMAC, dp string, multicast bool) *topo.Answer {
	t.Helper()
	dst, what := topo.SolicitNodeGroup(target), "multicast NS for "+target.String()
	if !multicast {
		dst, what = target, "unicast NS for "+target.String()
	}
	a, err := conn.Solicit(target, dst, 2*time.Second)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	checkAnswer(t, what, conn, a, hostMAC, dp, multicast)
	return a
}

// unanswered returns nil only if no NA at all for target, right or wrong,
// arrived within wait after a multicast NS.
func unanswered(conn *topo.NDPConn, target netip.Addr, wait time.Duration) error {
	a, err := conn.Solicit(target, topo.SolicitNodeGroup(target), wait)
	if errors.Is(err, topo.ErrNoAnswer) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("NS for %s: want no NA at all, got: %v", target, err)
	}
	return fmt.Errorf("NS for %s: want no NA at all, got one from %s (S=%v O=%v R=%v TLLA %s)", target, a.Source, a.NA.Solicited, a.NA.Override, a.NA.Router, a.TLLA)
}

// Restarting the daemon, gracefully or with kill -9, loses nothing: a ping
// running across the restarts gets every reply.
func TestRestartKeepsContainersReachable(t *testing.T) {
	for _, dp := range dataplanes() {
		t.Run(dp, func(t *testing.T) {
			s := newSeed(t, "2001:db8::c008/125")
			d := s.startDaemon(t, s.daemonArgs(dp))
			var addrs []string
			for _, n := range []string{"r1", "r2"} {
				addrs = append(addrs, s.addContainer(t, s.name(n)))
			}
			for _, a := range addrs {
				s.waitLive(t, a, dp != "kernel")
			}
			ping := exec.Command("ip", "netns", "exec", s.Router, "ping", "-c", "300", "-i", "0.01", "-W", "1", addrs[0])
			out := &strings.Builder{}
			ping.Stdout, ping.Stderr = out, out
			if err := ping.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(500 * time.Millisecond)
			d.stop()
			time.Sleep(300 * time.Millisecond)
			d.start()
			time.Sleep(300 * time.Millisecond)
			d.kill()
			// A new container while no daemon runs: the next daemon finds it.
			late := s.addContainer(t, s.name("r3"))
			time.Sleep(300 * time.Millisecond)
			d.start()
			if err := ping.Wait(); err != nil {
				t.Fatalf("ping across restarts: %v\n%s", err, out)
			}
			if !strings.Contains(out.String(), " 0% packet loss") {
				t.Errorf("ping across restarts lost packets:\n%s", lastLines(out.String(), 3))
			}
			s.waitLive(t, late, dp != "kernel")
			s.MustRun(s.Router, "ping", "-c", "1", "-W", "2", late)
			for _, a := range addrs {
				s.MustRun(s.Router, "ping", "-c", "1", "-W", "2", a)
			}
		})
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
