package test

// Endpoints learned with no namespace path and addresses followed by
// events: a container whose namespace only a process holds (as Podman's,
// containerd's and LXC's are), a port that cannot be resolved (shown in
// `v6dp status` with the reason), and a container that gains and loses a
// second address.

import (
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/v6dp/v6dp/test/topo"
)

// discoveryDataplanes are the kernel path and one BPF dataplane.
func discoveryDataplanes() []string { return []string{"kernel", "tc"} }

// processNetns starts a process in a new network namespace that no file
// holds and returns its pid; the process (and so the namespace) ends at
// the topology's cleanup.
func processNetns(t *testing.T, s *seed) int {
	t.Helper()
	cmd := topo.Nsenter(t.Context(), s.Host, "unshare", "--net", "sleep", "3600")
	if err := cmd.Start(); err != nil {
		t.Fatalf("unshare --net: %v", err)
	}
	s.Defer(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// unshare has made the namespace once its own namespace differs from
	// its parent's.
	pid := cmd.Process.Pid
	eventually(t, 5*time.Second, func() error {
		out, err := exec.Command("readlink", fmt.Sprintf("/proc/%d/ns/net", pid)).Output()
		host, _ := exec.Command("ip", "netns", "exec", s.Host, "readlink", "/proc/self/ns/net").Output()
		if err != nil || len(host) == 0 || string(out) == string(host) {
			return fmt.Errorf("process %d not in its own namespace yet", pid)
		}
		if c, _ := exec.Command("cat", fmt.Sprintf("/proc/%d/comm", pid)).Output(); strings.TrimSpace(string(c)) != "sleep" {
			return fmt.Errorf("process %d is not sleep yet", pid)
		}
		return nil
	})
	return pid
}

// inPid runs a command in the network namespace of pid.
func inPid(t *testing.T, pid int, args ...string) {
	t.Helper()
	full := append([]string{"-t", strconv.Itoa(pid), "-n", "--"}, args...)
	if out, err := exec.Command("nsenter", full...).CombinedOutput(); err != nil {
		t.Fatalf("nsenter -t %d -n %s: %v: %s", pid, strings.Join(args, " "), err, out)
	}
}

func TestProcessHeldNetns(t *testing.T) {
	for _, dp := range discoveryDataplanes() {
		t.Run(dp, func(t *testing.T) { testProcessHeldNetns(t, dp) })
	}
}

func testProcessHeldNetns(t *testing.T, dp string) {
	s := newSeed(t, "2001:db8:0:0:1::/80")
	// Only the test's own directory is searched: no file anywhere holds
	// the container's namespace.
	s.startDaemon(t, s.daemonArgs(dp, "--netns-dirs", t.TempDir()))
	pid := processNetns(t, s)
	const addr = "2001:db8::1:0:0:42"
	s.MustRun(s.Host, "ip", "link", "add", "vproc", "type", "veth", "peer", "name", "tproc")
	s.MustRun(s.Host, "ip", "link", "set", "tproc", "netns", strconv.Itoa(pid))
	inPid(t, pid, "ip", "link", "set", "tproc", "name", "eth0")
	inPid(t, pid, "ip", "link", "set", "lo", "up")
	inPid(t, pid, "ip", "link", "set", "eth0", "up")
	inPid(t, pid, "ip", "addr", "add", addr+"/80", "dev", "eth0", "nodad")
	inPid(t, pid, "ip", "-6", "route", "add", "default", "via", "fe80::1", "dev", "eth0")
	began := time.Now()
	s.MustRun(s.Host, "ip", "link", "set", "vproc", "master", "docker0", "up")
	s.waitLive(t, addr, dp != "kernel")
	t.Logf("learned %s in a namespace held only by pid %d, %s after its port joined the bridge", addr, pid, ms(time.Since(began)))
	if p := <-pingUntil(s, addr, 10*time.Second); p.err != nil {
		t.Fatalf("router ping %s: %v", addr, p.err)
	}
	if e := s.endpoints(t)[addr]; e.Name != fmt.Sprintf("pid %d", pid) {
		t.Errorf("endpoint %s is named %q, want %q", addr, e.Name, fmt.Sprintf("pid %d", pid))
	}

	// A port whose far end is in the host's own namespace cannot be an
	// endpoint: status says so, naming the port.
	s.MustRun(s.Host, "ip", "link", "add", "vlocal", "type", "veth", "peer", "name", "tlocal")
	s.MustRun(s.Host, "ip", "link", "set", "vlocal", "master", "docker0", "up")
	st := s.mustV6dp(t, "status")
	if !strings.Contains(st, "not resolved: port vlocal") || !strings.Contains(st, "host's own namespace") {
		t.Errorf("status does not show the unresolved port vlocal with its reason:\n%s", st)
	}

	// The process ends, the namespace and its veth go: not answered.
	s.MustRun(s.Host, "kill", strconv.Itoa(pid))
	eventually(t, 5*time.Second, func() error {
		if out := s.MustRun(s.Host, "ip", "-6", "neigh", "show", "proxy"); strings.Contains(out, addr) {
			return errors.New("proxy entry still there after the namespace went")
		}
		return nil
	})
}

// TestSecondAddress: a container gains a second address and loses it;
// the router's solicitations for it are answered within milliseconds of
// the change, and not after its removal.
func TestSecondAddress(t *testing.T) {
	for _, dp := range discoveryDataplanes() {
		t.Run(dp, func(t *testing.T) { testSecondAddress(t, dp) })
	}
}

func testSecondAddress(t *testing.T, dp string) {
	s := newSeed(t, "2001:db8:0:0:1::/80")
	s.startDaemon(t, s.daemonArgs(dp))
	name := s.name("two")
	first := s.addContainer(t, name)
	s.waitLive(t, first, dp != "kernel")
	second := netip.MustParseAddr("2001:db8::1:0:0:77")
	conn, err := topo.ListenNDP(s.Router, s.RouterIf)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	group := topo.SolicitNodeGroup(second)
	hostMAC := s.hostMAC(t)
	if a, err := conn.Solicit(second, group, 200*time.Millisecond); !errors.Is(err, topo.ErrNoAnswer) {
		t.Fatalf("NS for %s before the container has it: want no answer, got %+v, %v", second, a, err)
	}

	// Poll with solicitations every few ms from the change on. Answered
	// means a solicited NA came back; v6dp's own unsolicited announcement
	// of the new address is not one.
	answeredBy := func(limit time.Duration, want bool) (time.Duration, error) {
		start := time.Now()
		var last error
		for time.Since(start) < limit {
			a, err := conn.Solicit(second, group, 5*time.Millisecond)
			if err == nil {
				// An answer is valid whole, or the test fails.
				checkAnswer(t, "NS for "+second.String(), conn, a, hostMAC, dp, true)
			}
			if (err == nil) == want {
				return time.Since(start), nil
			}
			last = err
		}
		return 0, fmt.Errorf("after %s: answered is still %v (last: %v)", limit, !want, last)
	}
	s.MustRun(name, "ip", "addr", "add", second.String()+"/80", "dev", "eth0", "nodad")
	added, err := answeredBy(3*time.Second, true)
	if err != nil {
		t.Fatalf("second address %s: %v", second, err)
	}
	if p := <-pingUntil(s, second.String(), 5*time.Second); p.err != nil {
		t.Fatalf("router ping %s: %v", second, p.err)
	}
	s.MustRun(name, "ip", "addr", "del", second.String()+"/80", "dev", "eth0")
	removed, err := answeredBy(3*time.Second, false)
	if err != nil {
		t.Fatalf("removed address %s: %v", second, err)
	}
	// Not answered afterwards either, nor present anywhere.
	if a, err := conn.Solicit(second, group, 300*time.Millisecond); !errors.Is(err, topo.ErrNoAnswer) {
		t.Errorf("NS for %s after its removal: want no answer, got %+v, %v", second, a, err)
	}
	if e, ok := s.endpoints(t)[second.String()]; ok {
		t.Errorf("%s still an endpoint address after removal: %+v", second, e)
	}
	t.Logf("%s: second address %s answered %s after `ip addr add` returned, unanswered %s after `ip addr del` returned (each measured with NS every ~5 ms)",
		dp, second, ms(added), ms(removed))
	// The bound the issue sets; the figure is logged above either way.
	if added > time.Second || removed > time.Second {
		t.Errorf("address change took effect after %s / %s; want milliseconds (at most 1 s here)", ms(added), ms(removed))
	}
}

// TestAddressClaimedTwice: a second container that puts its neighbour's
// address on its own eth0 gets nothing for it: the first keeps it (BPF
// forwards to the first), status names the claimant's address as refused.
func TestAddressClaimedTwice(t *testing.T) {
	for _, dp := range discoveryDataplanes() {
		t.Run(dp, func(t *testing.T) { testAddressClaimedTwice(t, dp) })
	}
}

func testAddressClaimedTwice(t *testing.T, dp string) {
	s := newSeed(t, "2001:db8:0:0:1::/80")
	s.startDaemon(t, s.daemonArgs(dp))
	first, second := s.name("own"), s.name("thief")
	addr := s.addContainer(t, first)
	s.waitLive(t, addr, dp != "kernel")
	own := s.addContainer(t, second)
	s.waitLive(t, own, dp != "kernel")
	s.MustRun(second, "ip", "addr", "add", addr+"/80", "dev", "eth0", "nodad")
	var refused string
	eventually(t, 3*time.Second, func() error {
		st := s.mustV6dp(t, "status")
		for _, l := range strings.Split(st, "\n") {
			if strings.Contains(l, addr+" not published: claimed first by the endpoint on ") {
				refused = l
				return nil
			}
		}
		return fmt.Errorf("status does not show %s refused for %s", addr, second)
	})
	t.Logf("status: %s", strings.TrimSpace(refused))
	e := s.endpoints(t)[addr]
	if e.Name != first {
		t.Errorf("%s is listed for %q, want the first holder %q", addr, e.Name, first)
	}
	if dp != "kernel" {
		// BPF forwards the router's pings to the owner only.
		before := snmp6(t, s, second, "Icmp6InEchos")
		s.MustRun(s.Router, "ping", "-c", "3", "-i", "0.2", "-W", "2", addr)
		if got := snmp6(t, s, second, "Icmp6InEchos") - before; got != 0 {
			t.Errorf("the claimant received %d of the router's echo requests for %s", got, addr)
		}
	}
	// The claimant lets go: nothing changes for the owner, the refusal goes.
	s.MustRun(second, "ip", "addr", "del", addr+"/80", "dev", "eth0")
	eventually(t, 3*time.Second, func() error {
		if st := s.mustV6dp(t, "status"); strings.Contains(st, "claimed first") {
			return fmt.Errorf("refusal still shown after the claimant dropped %s", addr)
		}
		return nil
	})
	s.MustRun(s.Router, "ping", "-c", "1", "-W", "2", addr)
}
