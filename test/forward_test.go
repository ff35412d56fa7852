package test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Forwarding parity: the same traffic, with the same results, under every
// dataplane. The seed's proxy topology, containers in 2001:db8::c008/125
// on-link for the router through the host.
func TestForward(t *testing.T) {
	for _, dp := range dataplanes() {
		t.Run(dp, func(t *testing.T) { testForward(t, dp, false) })
	}
	// The daemon runs native XDP on a veth uplink only when the router's
	// end has an XDP program itself; then redirects into the containers'
	// veths need the XDP program v6dp puts on their far ends.
	t.Run("xdp-native", func(t *testing.T) { testForward(t, "xdp", true) })
}

func testForward(t *testing.T, dp string, native bool) {
	s := newSeed(t, "2001:db8::c008/125")
	bpf := dp != "kernel"
	if native {
		s.routerLikeNIC(t)
	}
	d := s.startDaemon(t, s.daemonArgs(dp))
	if native {
		st := s.mustV6dp(t, "status")
		if !strings.Contains(st, "xdp-native") {
			t.Fatalf("status does not say xdp-native:\n%s", st)
		}
	}
	names := []string{s.name("fa"), s.name("fb")}
	var addrs []string
	for _, n := range names {
		addrs = append(addrs, s.addContainer(t, n))
	}
	for _, a := range addrs {
		s.waitLive(t, a, bpf)
	}
	a, b := addrs[0], addrs[1]
	before := s.counters(t, dp)

	// Router to container and back, container to container, container
	// to the router.
	s.MustRun(s.Router, "ping", "-c", "3", "-i", "0.1", "-W", "2", a)
	s.MustRun(names[0], "ping", "-c", "3", "-i", "0.1", "-W", "2", b)
	s.MustRun(names[1], "ping", "-c", "3", "-i", "0.1", "-W", "2", routerAddr)
	// Large and small packets both ways.
	for _, size := range []string{"0", "1000", "1452"} {
		s.MustRun(s.Router, "ping", "-c", "1", "-W", "2", "-M", "do", "-s", size, a)
		s.MustRun(names[0], "ping", "-c", "1", "-W", "2", "-M", "do", "-s", size, b)
	}

	// TCP both ways and UDP, through the whole path.
	iperf := fwdIperf(t, s, names[0], a)
	iperf("TCP router to container")
	iperf("TCP container to router", "-R")
	iperf("UDP", "-u", "-b", "100M")

	if bpf {
		after := s.counters(t, dp)
		for _, c := range []string{"fwd_redirected", "egress_fib", "egress_local"} {
			if after[c] <= before[c] {
				t.Errorf("counter %s did not rise: the traffic did not take the BPF path (%d -> %d)", c, before[c], after[c])
			}
		}
		if n := after["error"] - before["error"]; n != 0 {
			t.Errorf("counter error rose by %d", n)
		}
	}

	fwdTraceroute(t, s, dp, a)
	fwdSpoof(t, s, dp, names[1])
	fwdPacketTooBig(t, s, dp, a)
	fwdChurn(t, s, dp, names, addrs)

	// cleanup removes every link v6dp pinned, the ports' included.
	d.stop()
	s.mustV6dp(t, "cleanup")
	if _, err := os.Stat(s.PinDir); !os.IsNotExist(err) {
		ents, _ := os.ReadDir(s.PinDir)
		t.Errorf("pin directory left after cleanup: %v", ents)
	}
}

// fwdIperf returns a function that runs one short iperf3 test from the
// router against a server in the container.
func fwdIperf(t *testing.T, s *seed, container, addr string) func(what string, args ...string) {
	return func(what string, args ...string) {
		t.Helper()
		srv := exec.Command("ip", "netns", "exec", container, "iperf3", "-s", "-1", "-B", addr)
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
		var out string
		var err error
		eventually(t, 3*time.Second, func() error {
			out, err = s.Run(s.Router, append([]string{"iperf3", "-c", addr, "-t", "2", "-J"}, args...)...)
			// Until the server listens.
			if strings.Contains(strings.ToLower(out), "connection refused") {
				return fmt.Errorf("iperf3 server not listening yet")
			}
			return nil
		})
		if err != nil {
			t.Fatalf("iperf3 %s: %v", what, err)
		}
		var r struct {
			End struct {
				Sum struct {
					BitsPerSecond float64 `json:"bits_per_second"`
					LostPercent   float64 `json:"lost_percent"`
				} `json:"sum"`
				SumReceived struct {
					BitsPerSecond float64 `json:"bits_per_second"`
				} `json:"sum_received"`
			} `json:"end"`
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("iperf3 %s: %v: %s", what, err, out)
		}
		bps := r.End.SumReceived.BitsPerSecond
		if bps == 0 {
			bps = r.End.Sum.BitsPerSecond
		}
		if bps == 0 {
			t.Errorf("iperf3 %s: nothing received: %s", what, out)
		}
		// A busy 2-vCPU machine loses some UDP on any dataplane.
		if r.End.Sum.LostPercent > 10 {
			t.Errorf("iperf3 %s: %.1f%% lost", what, r.End.Sum.LostPercent)
		}
		t.Logf("iperf3 %s: %.2f Gbit/s", what, bps/1e9)
	}
}

// fwdTraceroute: the host is the first hop (its kernel sends the Time
// Exceeded), the container the second.
func fwdTraceroute(t *testing.T, s *seed, dp, addr string) {
	t.Helper()
	before := s.counters(t, dp)
	out := s.MustRun(s.Router, "traceroute6", "-n", "-q", "1", "-w", "2", "-m", "4", addr)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.Contains(lines[1], hostAddr) || !strings.Contains(lines[2], addr) {
		t.Errorf("traceroute6 to %s: want hop 1 %s and hop 2 the container:\n%s", addr, hostAddr, out)
	}
	if dp != "kernel" {
		if after := s.counters(t, dp); after["fwd_pass_hoplimit"] <= before["fwd_pass_hoplimit"] {
			t.Errorf("fwd_pass_hoplimit did not count the hop-limit-1 probe")
		}
	}
}

// fwdSpoof: a container sending from an address that is not its own gets
// nothing to the router on a BPF dataplane. The kernel path has no source
// validation: there the router must see every spoofed packet, which also
// proves the probes were sent. The capture proves it was running: a
// control packet from the container's own address is seen before the
// spoofed ones are sent, and another after them.
func fwdSpoof(t *testing.T, s *seed, dp, container string) {
	t.Helper()
	const spoofed = "2001:db8::99"
	own := strings.TrimSpace(s.MustRun(container, "sh", "-c", "ip -6 -o addr show dev eth0 scope global | awk '{print $4}' | cut -d/ -f1"))
	before := s.counters(t, dp)
	s.MustRun(container, "ip", "addr", "add", spoofed+"/128", "dev", "eth0", "nodad")
	defer s.MustRun(container, "ip", "addr", "del", spoofed+"/128", "dev", "eth0")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dump := exec.CommandContext(ctx, "ip", "netns", "exec", s.Router, "tcpdump", "-n", "-l", "-i", s.RouterIf,
		"ip6 and (src host "+spoofed+" or src host "+own+")")
	pipe, err := dump.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := dump.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = dump.Wait() }()
	lines := make(chan string, 256)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var spoofSeen []string
	// control sends echo requests from the container's own address until
	// the capture shows one, collecting spoofed packets seen meanwhile.
	control := func(when string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, _ = s.Run(container, "ping", "-c", "1", "-W", "1", "-I", own, routerAddr)
			for drained := false; !drained; {
				select {
				case l, ok := <-lines:
					if !ok {
						t.Fatalf("tcpdump on the router ended %s the spoofed probes", when)
					}
					if strings.Contains(l, "IP6 "+spoofed+" ") || strings.Contains(l, "IP6 "+spoofed+".") {
						spoofSeen = append(spoofSeen, l)
					}
					if strings.Contains(l, " "+own+" > "+routerAddr+": ICMP6, echo request") {
						return
					}
				case <-time.After(200 * time.Millisecond):
					drained = true
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("the router's capture saw no control packet from %s %s the spoofed probes: it is not running", own, when)
			}
		}
	}
	control("before")
	icmp0, ip0 := snmp6(t, s, container, "Icmp6OutEchos"), snmp6(t, s, container, "Ip6OutRequests")
	out, err := s.Run(container, "ping", "-c", "3", "-i", "0.1", "-W", "1", "-I", spoofed, routerAddr)
	if err == nil || !strings.Contains(out, "3 packets transmitted, 0 received") {
		// The port guard drops the requests.
		t.Errorf("ping from the spoofed %s: want 3 sent and none answered, got %v:\n%s", spoofed, err, out)
	}
	// One UDP datagram: traceroute's probe with hop limit 5, past the
	// host (it exits 2 when nothing comes back, as here).
	if out, _ := s.Run(container, "traceroute6", "-n", "-q", "1", "-w", "1", "-f", "5", "-m", "5", "-s", spoofed, routerAddr); !strings.Contains(out, "\n 5  ") {
		t.Errorf("UDP probe from the spoofed %s not sent: %s", spoofed, out)
	}
	if d := snmp6(t, s, container, "Icmp6OutEchos") - icmp0; d < 3 {
		t.Errorf("the container sent %d echo requests from %s, want 3", d, spoofed)
	}
	if d := snmp6(t, s, container, "Ip6OutRequests") - ip0; d < 4 {
		t.Errorf("the container sent %d IPv6 packets during the spoofed probes, want at least 4", d)
	}
	control("after")
	// The port guard validates sources on every dataplane, the kernel's
	// included (a stock host would let all 4 through).
	if len(spoofSeen) != 0 {
		t.Errorf("the router saw packets from the spoofed source %s: %q", spoofed, spoofSeen)
	}
	if after := s.counters(t, dp); after["egress_spoof_drop"] < before["egress_spoof_drop"]+4 {
		t.Errorf("egress_spoof_drop rose by %d, want at least 4 (3 echo requests, 1 datagram)", after["egress_spoof_drop"]-before["egress_spoof_drop"])
	}
}

// fwdPacketTooBig lowers the bridge's MTU: the host must answer the
// router's larger packets with Packet Too Big, on every dataplane.
func fwdPacketTooBig(t *testing.T, s *seed, dp, addr string) {
	t.Helper()
	before := s.counters(t, dp)
	s.MustRun(s.Host, "ip", "link", "set", "docker0", "mtu", "1280")
	defer s.MustRun(s.Host, "ip", "link", "set", "docker0", "mtu", "1500")
	// The daemon applies the change a moment later; until then BPF may
	// deliver the large packet, after that never.
	eventually(t, 5*time.Second, func() error {
		out, _ := s.Run(s.Router, "ping", "-c", "1", "-W", "1", "-M", "do", "-s", "1400", addr)
		if !strings.Contains(out, "mtu=1280") {
			return fmt.Errorf("no Packet Too Big with mtu=1280: %s", out)
		}
		return nil
	})
	// Small packets still pass; the router's route now has MTU 1280.
	s.MustRun(s.Router, "ping", "-c", "1", "-W", "2", "-s", "1000", addr)
	if dp != "kernel" {
		if after := s.counters(t, dp); after["fwd_pass_mtu"] <= before["fwd_pass_mtu"] {
			t.Errorf("fwd_pass_mtu did not count the large packet")
		}
	}
	s.MustRun(s.Router, "ip", "-6", "route", "flush", "cache")
}

// fwdChurn adds and removes containers while the router pings the stable
// ones and the churning ones: the stable ones lose nothing and never get
// a packet that is not theirs, and XDP's devmap holds only live ports.
func fwdChurn(t *testing.T, s *seed, dp string, stable, stableAddrs []string) {
	t.Helper()
	inAddrErrors := func() []uint64 {
		var out []uint64
		for _, c := range stable {
			out = append(out, snmp6(t, s, c, "Ip6InAddrErrors"))
		}
		return out
	}
	errsBefore := inAddrErrors()
	ping := func(addr string) (*exec.Cmd, *strings.Builder) {
		cmd := exec.Command("ip", "netns", "exec", s.Router, "ping", "-c", "250", "-i", "0.01", "-W", "1", addr)
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, out
	}
	stablePing, stableOut := ping(stableAddrs[0])
	// The next container takes the lowest free address, c00b, each time.
	churnPing, _ := ping("2001:db8::c00b")
	for i := 0; i < 4; i++ {
		n := s.name("churn" + strconv.Itoa(i))
		addr := s.addContainer(t, n)
		s.waitLive(t, addr, dp != "kernel")
		time.Sleep(100 * time.Millisecond)
		s.mustV6dp(t, "container", "del", n)
	}
	if err := stablePing.Wait(); err != nil {
		t.Errorf("ping to a stable container during churn: %v\n%s", err, lastLines(stableOut.String(), 3))
	}
	_ = churnPing.Wait()
	if !strings.Contains(stableOut.String(), " 0% packet loss") {
		t.Errorf("ping to a stable container during churn lost packets:\n%s", lastLines(stableOut.String(), 3))
	}
	if got := inAddrErrors(); fmt.Sprint(got) != fmt.Sprint(errsBefore) {
		t.Errorf("stable containers got packets not addressed to them: Ip6InAddrErrors %v -> %v", errsBefore, got)
	}
	if dp == "xdp" {
		live := map[uint32]bool{}
		for _, e := range s.endpoints(t) {
			if idx, err := s.ifindex(e.Veth); err == nil {
				live[idx] = true
			}
		}
		for _, p := range devmapPorts(t, s) {
			if !live[p] {
				t.Errorf("devmap holds ifindex %d, which is no live port", p)
			}
		}
	}
}

func (s *seed) ifindex(name string) (uint32, error) {
	out, err := s.Run(s.Host, "cat", "/sys/class/net/"+name+"/ifindex")
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(strings.TrimSpace(out), 10, 32)
	return uint32(n), err
}

// devmapPorts reads the pinned devmap with bpftool.
func devmapPorts(t *testing.T, s *seed) []uint32 {
	t.Helper()
	out, err := exec.Command("bpftool", "-j", "map", "dump", "pinned", s.PinDir+"/v6dp_devmap").Output()
	if err != nil {
		t.Fatalf("bpftool map dump: %v", err)
	}
	var ents []struct {
		Key []string `json:"key"`
	}
	if err := json.Unmarshal(out, &ents); err != nil {
		t.Fatalf("bpftool map dump: %v: %s", err, out)
	}
	var ports []uint32
	for _, e := range ents {
		b := make([]byte, 0, 4)
		for _, x := range e.Key {
			v, _ := strconv.ParseUint(strings.TrimPrefix(x, "0x"), 16, 8)
			b = append(b, byte(v))
		}
		if len(b) == 4 {
			ports = append(ports, binary.LittleEndian.Uint32(b))
		}
	}
	return ports
}

// snmp6 reads one counter of /proc/net/snmp6 in ns.
func snmp6(t *testing.T, s *seed, ns, name string) uint64 {
	t.Helper()
	out := s.MustRun(ns, "cat", "/proc/net/snmp6")
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 2 && f[0] == name {
			n, _ := strconv.ParseUint(f[1], 10, 64)
			return n
		}
	}
	t.Fatalf("%s not in /proc/net/snmp6 of %s", name, ns)
	return 0
}
