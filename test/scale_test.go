package test

// 2,000 endpoints on two networks (a Linux bridge takes at most 1024
// ports): v6dp's own bridge and an engine's, served by one daemon. Every
// address is answered, and the last one is reachable. The far ends share
// namespaces, 50 to a namespace, so the test stays within the machine's
// means; each is still its own veth port with its own address.
//
// The far ends stay down, all but the last: the kernel's IPv6 neighbour
// table is one for all namespaces (gc_thresh3, 1024 by default, settable
// only in the initial namespace), and every interface that is up adds
// multicast entries to it (MLD, ff02::16, its solicited-node groups).
// 2,000 of them filled it and made other tests' pings fail with ENOBUFS.
// v6dp needs no traffic to learn an endpoint, and an address given with
// nodad on a link that is down is not tentative.

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/v6dp/v6dp/test/topo"
)

const (
	scalePerNetwork = 1000
	scalePerNS      = 50
)

func TestScale2000(t *testing.T) {
	s := newSeed(t, "2001:db8:0:0:1::/80")
	engine := "v6s" + s.Tag
	const enginePrefix = "2001:db8:0:0:2::/80"
	// The engine's bridge, made as an engine makes it: with its gateway.
	s.MustRun(s.Host, "ip", "link", "add", engine, "type", "bridge")
	s.Sysctl(s.Host, "net.ipv6.conf."+engine+".accept_dad", "0")
	s.MustRun(s.Host, "ip", "addr", "add", "2001:db8::2:0:0:1/80", "dev", engine, "nodad")
	s.MustRun(s.Host, "ip", "link", "set", engine, "up")
	s.startDaemon(t, append(s.daemonArgs("tc"), "--network", engine+"="+enginePrefix))

	type network struct {
		bridge, gw string
		addr       func(i int) string
	}
	nets := []network{
		{"docker0", "fe80::1", func(i int) string { return fmt.Sprintf("2001:db8::1:0:1:%x", i+1) }},
		{engine, "2001:db8::2:0:0:1", func(i int) string { return fmt.Sprintf("2001:db8::2:0:1:%x", i+1) }},
	}
	var all []string
	var last struct{ ns, ifname, addr, gw string }
	began := time.Now()
	var host strings.Builder
	var inside []struct {
		ns    string
		batch strings.Builder
	}
	for n, net := range nets {
		for i := 0; i < scalePerNetwork; i++ {
			if i%scalePerNS == 0 {
				ns := s.NS(fmt.Sprintf("sc%d", len(inside)))
				s.Sysctl(ns, "net.ipv6.conf.default.accept_dad", "0")
				inside = append(inside, struct {
					ns    string
					batch strings.Builder
				}{ns: ns})
			}
			in := &inside[len(inside)-1]
			port, far := fmt.Sprintf("vs%s%d", s.Tag, n*scalePerNetwork+i), fmt.Sprintf("e%d", i%scalePerNS)
			a := net.addr(i)
			fmt.Fprintf(&host, "link add %s type veth peer name %s netns %s\n", port, far, in.ns)
			fmt.Fprintf(&in.batch, "addr add %s/80 dev %s nodad\n", a, far)
			all = append(all, a)
			last.ns, last.ifname, last.addr, last.gw = in.ns, far, a, net.gw
		}
	}
	for n := range nets {
		for i := 0; i < scalePerNetwork; i++ {
			fmt.Fprintf(&host, "link set vs%s%d master %s up\n", s.Tag, n*scalePerNetwork+i, nets[n].bridge)
		}
	}
	batch := func(ns, cmds string) {
		t.Helper()
		cmd := topo.Nsenter(t.Context(), ns, "ip", "-batch", "-")
		cmd.Stdin = strings.NewReader(cmds)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ip -batch in %s: %v: %s", ns, err, lastLines(string(out), 3))
		}
	}
	// Make the pairs (far ends into their namespaces), configure the far
	// ends, then put the ports on the bridges, as an engine does it.
	lines := strings.SplitAfter(host.String(), "\n")
	adds, joins := strings.Join(lines[:2*scalePerNetwork], ""), strings.Join(lines[2*scalePerNetwork:], "")
	batch(s.Host, adds)
	for i := range inside {
		batch(inside[i].ns, inside[i].batch.String())
	}
	s.MustRun(last.ns, "ip", "link", "set", last.ifname, "up")
	s.MustRun(last.ns, "ip", "-6", "route", "add", "default", "via", last.gw, "dev", last.ifname)
	made := time.Now()
	batch(s.Host, joins)
	joined := time.Now()
	t.Logf("made %d veth pairs in %d namespaces in %s, put them on the bridges in %s", len(all), len(inside), ms(made.Sub(began)), ms(joined.Sub(made)))

	// Converged: every address has its proxy entry and its BPF entry.
	want := map[string]bool{}
	for _, a := range all {
		want[a] = true
	}
	var proxied, inMap time.Duration
	eventually(t, 60*time.Second, func() error {
		out := s.MustRun(s.Host, "ip", "-6", "neigh", "show", "proxy")
		n := 0
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) > 0 && want[f[0]] {
				n++
			}
		}
		if n < len(all) {
			return fmt.Errorf("%d of %d proxy entries", n, len(all))
		}
		if proxied == 0 {
			proxied = time.Since(joined)
		}
		out, err := s.v6dp("status", "--json")
		if err != nil {
			return err
		}
		if !strings.Contains(out, fmt.Sprintf(`"bpf_endpoints": %d`, len(all))) {
			return fmt.Errorf("BPF map not at %d entries yet", len(all))
		}
		inMap = time.Since(joined)
		return nil
	})
	t.Logf("converged: all %d proxy entries %s after the last port joined, BPF map entries by %s (polled)", len(all), ms(proxied), ms(inMap))

	// The work done beside serving (IPv6 off at once, the guards after a
	// burst) is done for every port: none stays with IPv6 on or without
	// its program.
	ports := make([]string, 0, len(all))
	for k := range all {
		ports = append(ports, fmt.Sprintf("vs%s%d", s.Tag, k))
	}
	eventually(t, 90*time.Second, func() error { return portsPrepared(s.Host, ports) })
	t.Logf("every port with its IPv6 off and its guard %s after the last port joined", ms(time.Since(joined)))

	// Every address is answered.
	conn, err := topo.ListenNDP(s.Router, s.RouterIf)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hostMAC := s.hostMAC(t)
	start := time.Now()
	for i, a := range all {
		if i%100 == 99 {
			// Each solicited-node group the router sends to is a
			// neighbour entry of that shared table: let them go.
			s.MustRun(s.Router, "ip", "-6", "neigh", "flush", "nud", "noarp")
		}
		target := netip.MustParseAddr(a)
		var ans *topo.Answer
		for try := 0; try < 3 && ans == nil; try++ {
			ans, err = conn.Solicit(target, topo.SolicitNodeGroup(target), 500*time.Millisecond)
		}
		if err != nil {
			t.Fatalf("NS for %s: %v", a, err)
		}
		checkAnswer(t, "NS for "+a, conn, ans, hostMAC, "tc", true)
	}
	t.Logf("all %d addresses answered in %s", len(all), ms(time.Since(start)))
	// What this test put into the machine-wide neighbour table.
	neigh := 0
	for _, ns := range append([]string{s.Host, s.Router}, func() []string {
		var out []string
		for i := range inside {
			out = append(out, inside[i].ns)
		}
		return out
	}()...) {
		neigh += strings.Count(s.MustRun(ns, "ip", "-6", "neigh", "show", "nud", "all"), "\n")
	}
	t.Logf("IPv6 neighbour entries in the test's namespaces: %d", neigh)
	if neigh > 200 {
		t.Errorf("%d IPv6 neighbour entries: the table is shared by every namespace on the machine (gc_thresh3 1024 by default)", neigh)
	}
	if p := <-pingUntil(s, last.addr, 10*time.Second); p.err != nil {
		t.Fatalf("router ping to the last endpoint %s: %v", last.addr, p.err)
	}
	var rt struct {
		PID int `json:"pid"`
	}
	if b, err := os.ReadFile(filepath.Join(s.StateDir, "daemon.json")); err == nil && json.Unmarshal(b, &rt) == nil {
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", rt.PID)); err == nil {
			for _, l := range strings.Split(string(st), "\n") {
				if strings.HasPrefix(l, "VmRSS:") || strings.HasPrefix(l, "VmHWM:") {
					t.Logf("daemon with %d endpoints: %s", len(all), strings.Join(strings.Fields(l), " "))
				}
			}
		}
	}
}

// portsPrepared reports the first of ports (in namespace ns) that still
// has IPv6 on or no v6dp endpoint program at its ingress.
func portsPrepared(ns string, ports []string) error {
	return topo.InNS(ns, func() error {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return err
		}
		defer h.Close()
		for _, p := range ports {
			off, err := topo.IPv6Off(p)
			if err != nil {
				return err
			}
			if !off {
				return fmt.Errorf("port %s: IPv6 still on", p)
			}
			l, err := h.LinkByName(p)
			if err != nil {
				return err
			}
			if !topo.PortGuarded(h, l.Attrs().Index) {
				return fmt.Errorf("port %s: no endpoint program", p)
			}
		}
		return nil
	})
}
