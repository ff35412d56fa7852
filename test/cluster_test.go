package test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/v6dp/v6dp/ctrl"
	"github.com/v6dp/v6dp/test/topo"
)

// The original document's cluster layouts in namespaces: a router namespace
// whose bridge is the shared segment (2001:db8::/64, the router at ::ffff),
// and host namespaces, host N at 2001:db8::N on its eth0, each running its
// own v6dp daemon. The daemons and every CLI call get no --state-dir or
// --pin-dir: each namespace's defaults must keep them apart (several
// daemons on one machine).
type cluster struct {
	*topo.Topo
	Router string
	hosts  map[int]*clusterHost
}

const clusterRouterAddr = "2001:db8::ffff"

func newCluster(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{Topo: topo.New(t), hosts: map[int]*clusterHost{}}
	c.Router = c.NS("router")
	// A fixed MAC: a bridge without one takes its lowest port's, which
	// changes as hosts join and leaves every host's neighbour entry for
	// the router stale (a real router's MAC does not move).
	c.MustRun(c.Router, "ip", "link", "add", "seg", "address", "02:00:00:00:ff:ff", "type", "bridge", "mcast_snooping", "0")
	c.Sysctl(c.Router, "net.ipv6.conf.seg.accept_dad", "0")
	c.MustRun(c.Router, "ip", "addr", "add", clusterRouterAddr+"/64", "dev", "seg", "nodad")
	c.MustRun(c.Router, "ip", "link", "set", "seg", "up")
	c.Sysctl(c.Router, "net.ipv6.conf.all.forwarding", "1")
	return c
}

// clusterHost is host N of the cluster.
type clusterHost struct {
	c      *cluster
	N      int
	NS     string
	Addr   string // on the segment
	Prefix string // the containers'
	// StateDir and PinDir are the defaults v6dp derives from the host's
	// network namespace.
	StateDir, PinDir string
	daemon           *clusterDaemon
	containers       []string // names
}

// addHost makes host n on the segment with a default route to the router.
func (c *cluster) addHost(t *testing.T, n int, prefix string) *clusterHost {
	t.Helper()
	h := &clusterHost{c: c, N: n, NS: c.NS(fmt.Sprintf("h%d", n)), Addr: fmt.Sprintf("2001:db8::%d", n), Prefix: prefix}
	port := fmt.Sprintf("p%d", n)
	c.Veth(c.Router, port, h.NS, "eth0")
	c.MustRun(c.Router, "ip", "link", "set", port, "master", "seg", "up")
	c.Sysctl(h.NS, "net.ipv6.conf.eth0.accept_dad", "0")
	c.MustRun(h.NS, "ip", "addr", "add", h.Addr+"/64", "dev", "eth0", "nodad")
	c.MustRun(h.NS, "ip", "link", "set", "eth0", "up")
	c.MustRun(h.NS, "ip", "-6", "route", "add", "default", "via", clusterRouterAddr, "dev", "eth0")
	var st syscall.Stat_t
	if err := syscall.Stat("/run/netns/"+h.NS, &st); err != nil {
		t.Fatal(err)
	}
	h.StateDir, h.PinDir = ctrl.NetnsStateDir(st.Ino), ctrl.NetnsPinDir(st.Ino)
	// Before the namespace goes (cleanups run last in, first out), after
	// the daemon's own cleanup: whatever v6dp left in the shared
	// filesystem goes too.
	c.Defer(func() {
		for _, name := range h.containers {
			topo.DeleteNS(name)
		}
		os.RemoveAll(h.StateDir)
		os.RemoveAll(h.PinDir)
	})
	c.hosts[n] = h
	return h
}

// v6dp runs the CLI in the host's namespace, with no directory flags.
func (h *clusterHost) v6dp(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := topo.Nsenter(ctx, h.NS, append([]string{v6dpBin}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("host %d: v6dp %s: %w: %s", h.N, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func (h *clusterHost) mustV6dp(t *testing.T, args ...string) string {
	t.Helper()
	out, err := h.v6dp(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// addContainer runs `v6dp container add` on the host; returns the address.
func (h *clusterHost) addContainer(t *testing.T, name string) string {
	t.Helper()
	h.containers = append(h.containers, name)
	f := strings.Fields(h.mustV6dp(t, "container", "add", name))
	if len(f) < 2 {
		t.Fatalf("host %d: container add %s: no address in the output", h.N, name)
	}
	return f[1]
}

// diagnose describes the host's view for a failure message: its routes and
// neighbours, its containers' addresses, what v6dp says.
func (h *clusterHost) diagnose() string {
	var b strings.Builder
	for _, cmd := range [][]string{{"ip", "-6", "route"}, {"ip", "-6", "neigh"}, {"ip", "-br", "link"}} {
		out, _ := topo.Run(h.NS, cmd...)
		fmt.Fprintf(&b, "host %d: %s:\n%s", h.N, strings.Join(cmd, " "), out)
	}
	for _, c := range h.containers {
		out, _ := topo.Run(c, "ip", "-6", "addr")
		fmt.Fprintf(&b, "container %s: ip -6 addr:\n%s", c, out)
	}
	out, _ := h.v6dp("status")
	fmt.Fprintf(&b, "host %d: v6dp status:\n%s", h.N, out)
	return b.String()
}

// clusterDaemon is a host's `v6dp daemon`.
type clusterDaemon struct {
	h       *clusterHost
	args    []string
	cmd     *exec.Cmd
	log     *os.File
	started time.Time
	exited  chan struct{}
}

// startDaemon starts the host's daemon and waits until it runs; the
// topology's teardown stops it and runs `v6dp cleanup`.
func (h *clusterHost) startDaemon(t *testing.T, args ...string) *clusterDaemon {
	t.Helper()
	d := &clusterDaemon{h: h, args: append([]string{"daemon", "--log-level", "debug"}, args...),
		log: h.c.LogFile(fmt.Sprintf("h%d-daemon", h.N))}
	h.daemon = d
	d.start(t)
	h.c.Defer(func() {
		d.stop(syscall.SIGTERM)
		_, _ = h.v6dp("cleanup")
	})
	return d
}

func (d *clusterDaemon) start(t *testing.T) {
	t.Helper()
	d.cmd = topo.Nsenter(context.Background(), d.h.NS, append([]string{v6dpBin}, d.args...)...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	d.started = time.Now()
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	d.exited = exited
	go func(cmd *exec.Cmd) { _ = cmd.Wait(); close(exited) }(d.cmd)
	eventually(t, 10*time.Second, func() error {
		select {
		case <-exited:
			return fmt.Errorf("host %d: daemon exited: %s", d.h.N, d.logTail())
		default:
		}
		if _, err := os.Stat(filepath.Join(d.h.StateDir, "daemon.json")); err != nil {
			return fmt.Errorf("host %d: daemon not running yet", d.h.N)
		}
		if !strings.Contains(d.logTail(), "daemon running") {
			return fmt.Errorf("host %d: daemon not running yet", d.h.N)
		}
		return nil
	})
}

func (d *clusterDaemon) logTail() string {
	b, _ := os.ReadFile(d.log.Name())
	return string(b)
}

// stop sends sig and waits for the daemon to exit.
func (d *clusterDaemon) stop(sig syscall.Signal) {
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Signal(sig)
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
	d.cmd = nil
}

// clusterStatus mirrors the parts of `v6dp status --json` the tests read.
type clusterStatus struct {
	Daemon  string `json:"daemon"`
	PID     int    `json:"pid"`
	Prefix  string `json:"prefix"`
	Cluster *struct {
		Peers []struct {
			Prefix string `json:"prefix"`
			Via    string `json:"via"`
			State  string `json:"state"`
			Error  string `json:"error"`
		} `json:"peers"`
		BGP *struct {
			RouterID  string          `json:"router_id"`
			Announced []string        `json:"announced"`
			Withdrawn bool            `json:"withdrawn"`
			Sessions  []sessionStatus `json:"sessions"`
		} `json:"bgp"`
	} `json:"cluster"`
	Counters map[string]uint64 `json:"counters"`
}

// sessionStatus is one BGP session of `v6dp status --json`.
type sessionStatus struct {
	Router          string `json:"router"`
	State           string `json:"state"`
	LastError       string `json:"last_error"`
	FailedConnects  int    `json:"failed_connects"`
	GracefulRestart bool   `json:"graceful_restart"`
}

func (h *clusterHost) status(t *testing.T) clusterStatus {
	t.Helper()
	out := h.mustV6dp(t, "status", "--json")
	var st clusterStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("host %d: status --json: %v: %s", h.N, err, out)
	}
	return st
}

// clusterPlan is `v6dp plan --json` for the cluster layouts: the tests run
// the daemons with exactly the flags the planner prints, and the router
// with its BIRD configuration.
type clusterPlan struct {
	Hosts []struct {
		Number      int      `json:"number"`
		FixedCIDRv6 string   `json:"fixed-cidr-v6"`
		Daemon      []string `json:"daemon"`
	} `json:"hosts"`
	Router string `json:"router"`
	BIRD   string `json:"bird"`
}

func planCluster(t *testing.T, args ...string) clusterPlan {
	t.Helper()
	out, err := exec.Command(v6dpBin, append([]string{"plan", "2001:db8::/32", "--json"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("v6dp plan: %v: %s", err, out)
	}
	var p clusterPlan
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatalf("v6dp plan --json: %v: %s", err, out)
	}
	if p.Router != clusterRouterAddr {
		t.Fatalf("plan puts the router at %s, the topology at %s", p.Router, clusterRouterAddr)
	}
	return p
}

// daemonArgs returns host n's daemon flags from the plan (without "v6dp
// daemon"), checking that the plan gives the host the topology's prefix.
func (p clusterPlan) daemonArgs(t *testing.T, h *clusterHost) []string {
	t.Helper()
	for _, ph := range p.Hosts {
		if ph.Number == h.N {
			if ph.FixedCIDRv6 != h.Prefix {
				t.Fatalf("plan gives host %d %s, the topology %s", h.N, ph.FixedCIDRv6, h.Prefix)
			}
			return append([]string(nil), ph.Daemon[2:]...)
		}
	}
	t.Fatalf("plan has no host %d", h.N)
	return nil
}

// ping sends count echo requests from container ns to addr and returns
// an error unless every one is answered.
func ping(ns, addr string, count int) error {
	_, err := topo.Run(ns, "ping", "-6", "-n", "-c", fmt.Sprint(count), "-i", "0.01", "-W", "1", addr)
	return err
}

// reach pings addr from ns until one echo comes back, for up to 10 s: a
// loaded machine can hold a fresh link's first packets for seconds.
func reach(ns, addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := ping(ns, addr, 1)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pingAll has every container of every host ping every container of every
// other host, all pairs at once.
func pingAll(t *testing.T, addrs map[int]map[string]string) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []string
	for n, from := range addrs {
		for m, to := range addrs {
			if n == m {
				continue
			}
			for src := range from {
				for _, dst := range to {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if err := reach(src, dst); err != nil {
							mu.Lock()
							errs = append(errs, fmt.Sprintf("host %d %s -> host %d %s: %v", n, src, m, dst, err))
							mu.Unlock()
						}
					}()
				}
			}
		}
	}
	wg.Wait()
	for _, e := range errs {
		t.Error(e)
	}
}

// Two daemons in two namespaces of one machine, neither given a directory:
// each keeps its own state, pins and containers, and each namespace's CLI
// talks to its own daemon.
func TestClusterDaemonsPerNetns(t *testing.T) {
	c := newCluster(t)
	h1 := c.addHost(t, 1, "2001:db8:1::/64")
	h2 := c.addHost(t, 2, "2001:db8:2::/64")
	if h1.StateDir == h2.StateDir || h1.PinDir == h2.PinDir {
		t.Fatalf("derived directories collide: %s %s / %s %s", h1.StateDir, h1.PinDir, h2.StateDir, h2.PinDir)
	}
	h1.startDaemon(t, "--ipv6", "--fixed-cidr-v6", h1.Prefix, "--uplink", "eth0", "--dataplane", "tc")
	h2.startDaemon(t, "--ipv6", "--fixed-cidr-v6", h2.Prefix, "--uplink", "eth0", "--dataplane", "tc")
	a1 := h1.addContainer(t, topo.Name("c1", c.Tag))
	a2 := h2.addContainer(t, topo.Name("c2", c.Tag))
	for _, x := range []struct {
		h    *clusterHost
		addr string
	}{{h1, a1}, {h2, a2}} {
		st := x.h.status(t)
		if st.Daemon != "running" || st.PID != x.h.daemon.cmd.Process.Pid || st.Prefix != x.h.Prefix {
			t.Errorf("host %d: status talks to the wrong daemon: %s pid %d prefix %s, want running pid %d prefix %s",
				x.h.N, st.Daemon, st.PID, st.Prefix, x.h.daemon.cmd.Process.Pid, x.h.Prefix)
		}
		if !strings.HasPrefix(x.addr, strings.TrimSuffix(x.h.Prefix, ":/64")) {
			t.Errorf("host %d: container address %s is not in the host's prefix %s", x.h.N, x.addr, x.h.Prefix)
		}
		for _, f := range []string{"daemon.json", "journal.json", "containers"} {
			if _, err := os.Stat(filepath.Join(x.h.StateDir, f)); err != nil {
				t.Errorf("host %d: %v", x.h.N, err)
			}
		}
		if _, err := os.Stat(filepath.Join(x.h.PinDir, "v6dp_endpoints")); err != nil {
			t.Errorf("host %d: endpoints map not pinned in the namespace's pin directory: %v", x.h.N, err)
		}
		// Each host's router (the host itself) reaches its container.
		if err := reach(x.h.NS, x.addr); err != nil {
			t.Errorf("host %d: %v\n%s", x.h.N, err, x.h.diagnose())
		}
	}
	// Cleanup in one namespace leaves the other's daemon and pins alone.
	h1.daemon.stop(syscall.SIGTERM)
	h1.mustV6dp(t, "cleanup")
	if _, err := os.Stat(h1.PinDir); !os.IsNotExist(err) {
		t.Errorf("host 1's pin directory survives its cleanup: %v", err)
	}
	if st := h2.status(t); st.Daemon != "running" || st.Counters == nil {
		t.Errorf("host 2 after host 1's cleanup: daemon %s, counters %v", st.Daemon, st.Counters)
	}
	if err := reach(h2.NS, a2); err != nil {
		t.Errorf("host 2 after host 1's cleanup: %v", err)
	}
}

// The switched layout: each host routes the other's container prefix via
// the other's uplink address (--peer), containers on different hosts reach
// each other through both hosts; a peer route deleted behind v6dp's back is
// put back, and one that is not v6dp's is left alone.
func TestClusterSwitched(t *testing.T) {
	for _, dp := range []string{"kernel", "tc", "xdp"} {
		t.Run(dp, func(t *testing.T) { testClusterSwitched(t, dp) })
	}
}

func testClusterSwitched(t *testing.T, dp string) {
	c := newCluster(t)
	plan := planCluster(t, "--role", "switched")
	addrs := map[int]map[string]string{}
	for n := 1; n <= 2; n++ {
		h := c.addHost(t, n, fmt.Sprintf("2001:db8:%d::/64", n))
		h.startDaemon(t, append(plan.daemonArgs(t, h), "--dataplane", dp)...)
		addrs[n] = map[string]string{}
		for i := 1; i <= 2; i++ {
			name := topo.Name(fmt.Sprintf("h%dc%d", n, i), c.Tag)
			addrs[n][name] = h.addContainer(t, name)
		}
	}
	h1, h2 := c.hosts[1], c.hosts[2]
	for src := range addrs[2] {
		for _, dst := range addrs[1] {
			if err := reach(src, dst); err == nil {
				t.Logf("host 2: its container reaches host 1's %s after the daemon started", time.Since(h2.daemon.started).Round(time.Millisecond))
			}
			break
		}
		break
	}
	route := func(h *clusterHost, dst string) string {
		return strings.TrimSpace(c.MustRun(h.NS, "ip", "-6", "route", "show", dst))
	}
	if r := route(h1, "2001:db8:2::/64"); !strings.Contains(r, "via 2001:db8::2 dev eth0 proto 118") {
		t.Fatalf("host 1: route to host 2's containers: %q, want via 2001:db8::2 dev eth0 proto 118", r)
	}
	before := map[int]map[string]uint64{1: h1.status(t).Counters, 2: h2.status(t).Counters}
	pingAll(t, addrs)
	if dp != "kernel" {
		// Cross-host traffic leaves each container by the FIB lookup and
		// enters the far host's container by the uplink program.
		for n, h := range c.hosts {
			after := h.status(t).Counters
			for _, k := range []string{"egress_fib", "fwd_redirected"} {
				if after[k] <= before[n][k] {
					t.Errorf("host %d: counter %s did not move (%d -> %d): cross-host traffic not in BPF", n, k, before[n][k], after[k])
				}
			}
		}
	}
	if t.Failed() {
		return
	}
	// Deleted behind v6dp's back: back at once (route events), well
	// before the periodic resync.
	c.MustRun(h1.NS, "ip", "-6", "route", "del", "2001:db8:2::/64")
	deleted := time.Now()
	eventually(t, 5*time.Second, func() error {
		if r := route(h1, "2001:db8:2::/64"); !strings.Contains(r, "proto 118") {
			return fmt.Errorf("host 1: peer route not repaired: %q", r)
		}
		return nil
	})
	t.Logf("peer route repaired %s after its deletion", time.Since(deleted).Round(time.Millisecond))
	pingAll(t, map[int]map[string]string{1: addrs[1], 2: addrs[2]})
	for _, p := range h1.status(t).Cluster.Peers {
		if p.State != "installed" {
			t.Errorf("host 1: peer %s: %s %s", p.Prefix, p.State, p.Error)
		}
	}
	// A route to a peer prefix that is an operator's (another protocol)
	// is left alone and reported, not overridden.
	c.MustRun(h1.NS, "ip", "-6", "route", "replace", "2001:db8:2::/64", "via", "2001:db8::2", "dev", "eth0", "proto", "static")
	time.Sleep(300 * time.Millisecond)
	if r := route(h1, "2001:db8:2::/64"); !strings.Contains(r, "proto static") || strings.Contains(r, "proto 118") {
		t.Errorf("host 1: an operator's route was touched: %q", r)
	}
	eventually(t, 5*time.Second, func() error {
		for _, p := range h1.status(t).Cluster.Peers {
			if p.State == "conflict" {
				return nil
			}
		}
		return fmt.Errorf("host 1: status does not report the conflicting route: %+v", h1.status(t).Cluster.Peers)
	})
	c.MustRun(h1.NS, "ip", "-6", "route", "del", "2001:db8:2::/64", "proto", "static")
	eventually(t, 5*time.Second, func() error {
		if r := route(h1, "2001:db8:2::/64"); !strings.Contains(r, "proto 118") {
			return fmt.Errorf("host 1: peer route not back after the operator's went: %q", r)
		}
		return nil
	})
	// The flag goes: the route goes with the restart.
	h1.daemon.stop(syscall.SIGTERM)
	h1.daemon.args = []string{"daemon", "--ipv6", "--fixed-cidr-v6", h1.Prefix, "--uplink", "eth0", "--dataplane", dp}
	h1.daemon.start(t)
	eventually(t, 5*time.Second, func() error {
		if r := route(h1, "2001:db8:2::/64"); r != "" {
			return fmt.Errorf("host 1: peer route survives its flag: %q", r)
		}
		return nil
	})
	// Cleanup removes v6dp's peer routes (here: host 2's).
	h2.daemon.stop(syscall.SIGTERM)
	h2.mustV6dp(t, "cleanup")
	if r := route(h2, "2001:db8:1::/64"); r != "" {
		t.Errorf("host 2: peer route survives cleanup: %q", r)
	}
}

// Bad cluster input: one line naming the field and the rule, and nothing
// made in the host's namespace.
func TestClusterBadInput(t *testing.T) {
	c := newCluster(t)
	h := c.addHost(t, 1, "2001:db8:1::/64")
	with := func(head []string, more ...string) []string { return append(append([]string(nil), head...), more...) }
	base := []string{"daemon", "--ipv6", "--fixed-cidr-v6", h.Prefix, "--uplink", "eth0"}
	bgp := with(base, "--bgp-router", clusterRouterAddr, "--bgp-peer-asn", "65000")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"peer without via", with(base, "--peer", "2001:db8:2::/64"), `peer: "2001:db8:2::/64": want PREFIX=VIA`},
		{"peer bad prefix", with(base, "--peer", "2001:db8:zz::/64=2001:db8::2"), `is not an IPv6 prefix`},
		{"peer bad via", with(base, "--peer", "2001:db8:2::/64=host2"), `"host2" is not an IPv6 address`},
		{"peer overlaps own", with(base, "--peer", "2001:db8:1::/48=2001:db8::2"), "2001:db8:1::/48 overlaps this host's own 2001:db8:1::/64"},
		{"peer via inside", with(base, "--peer", "2001:db8:2::/64=2001:db8:2::1"), "the next hop 2001:db8:2::1 is inside the prefix it leads to"},
		{"peers overlap", with(base, "--peer", "2001:db8:2::/64=2001:db8::2", "--peer", "2001:db8:2::/48=2001:db8::3"), "overlaps peer 2001:db8:2::/64"},
		{"asn out of range", with(bgp, "--bgp-asn", "4294967296"), "bgp-asn: 4294967296 is out of range (1-4294967294)"},
		{"asn zero", with(bgp, "--bgp-asn", "0"), "bgp-asn: required with bgp-router"},
		{"peer asn negative", with(base, "--bgp-router", clusterRouterAddr, "--bgp-asn", "65001", "--bgp-peer-asn", "-1"), "bgp-peer-asn: -1 is out of range"},
		{"asn not a number", with(bgp, "--bgp-asn", "sixty"), `invalid value "sixty" for flag -bgp-asn`},
		{"router not an address", with(bgp, "--bgp-asn", "65001", "--bgp-router", "router1"), `bgp-router: "router1" is not an IPv6 address`},
		{"router id", with(bgp, "--bgp-asn", "65001", "--bgp-router-id", "2001:db8::1"), `bgp-router-id: "2001:db8::1" is not a non-zero dotted quad`},
		{"aggregate not containing", with(bgp, "--bgp-asn", "65001", "--bgp-announce-aggregate", "2001:db8:2::/48"), "bgp-announce-aggregate: 2001:db8:2::/48 must be shorter than and contain fixed-cidr-v6 2001:db8:1::/64"},
		{"asn without router", with(base, "--bgp-asn", "65001"), "bgp-router: required with bgp-asn"},
		{"uplink without a global address", []string{"daemon", "--ipv6", "--fixed-cidr-v6", h.Prefix, "--uplink", "lo",
			"--bgp-router", clusterRouterAddr, "--bgp-asn", "65001", "--bgp-peer-asn", "65000"}, "bgp-router: uplink lo has no global IPv6 address to announce as the next hop"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := h.v6dp(tc.args...)
			if err == nil {
				t.Fatalf("exit 0, want an error; output:\n%s", out)
			}
			if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 1 {
				t.Errorf("want a one-line error, got %d lines:\n%s", len(lines), out)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("error %q does not say %q", strings.TrimSpace(out), tc.want)
			}
		})
	}
	if out := c.MustRun(h.NS, "ip", "link", "show"); strings.Contains(out, "docker0") {
		t.Errorf("a refused daemon made the bridge:\n%s", out)
	}
	if _, err := os.Stat(h.StateDir); !os.IsNotExist(err) {
		t.Errorf("a refused daemon made its state directory: %v", err)
	}
}
