package test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/v6dp/v6dp/test/topo"
)

// The routed layout: the router runs BIRD 2, configured as an operator
// would once for every host to come (a neighbour range on the segment,
// dynamic names, graceful restart, import all, export to the kernel); the
// hosts' daemons announce their container prefixes to it by BGP.
// bird is the router's BIRD, with its own config, socket and log under a
// temporary directory.
type bird struct {
	c    *cluster
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

// birdHead goes before the plan's BIRD configuration: the log in the
// temporary directory, a router id (the router has no IPv4 address).
const birdHead = `log "%s/bird.log" all;
router id 10.255.255.255;
`

// startBird starts BIRD in the router namespace; the topology's teardown
// stops it.
func (c *cluster) startBird(t *testing.T, plan clusterPlan) *bird {
	t.Helper()
	if _, err := exec.LookPath("bird"); err != nil {
		t.Fatalf("bird not installed (Debian bird2; make deps installs it): %v", err)
	}
	dir, err := topo.MkdirTemp("bird", c.Tag)
	if err != nil {
		t.Fatal(err)
	}
	c.Defer(func() {
		if os.Getenv("V6DP_KEEP_LOGS") == "" {
			os.RemoveAll(dir)
		}
	})
	conf := filepath.Join(dir, "bird.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(birdHead, dir)+plan.BIRD), 0o644); err != nil {
		t.Fatal(err)
	}
	b := &bird{c: c, dir: dir, done: make(chan struct{})}
	b.cmd = exec.Command("ip", "netns", "exec", c.Router, "bird", "-f", "-c", conf, "-s", filepath.Join(dir, "bird.ctl"), "-P", filepath.Join(dir, "bird.pid"))
	out := c.LogFile("bird-stderr")
	b.cmd.Stdout, b.cmd.Stderr = out, out
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = b.cmd.Wait(); close(b.done) }()
	c.Defer(func() {
		if t.Failed() {
			out, _ := b.birdc("show", "protocols", "all")
			t.Logf("--- birdc show protocols all:\n%s", out)
		}
		_ = b.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-b.done:
		case <-time.After(5 * time.Second):
			_ = b.cmd.Process.Kill()
			<-b.done
		}
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "bird.log"))
			t.Logf("--- bird log:\n%s", log)
			routes, _ := topo.Run(c.Router, "ip", "-6", "route")
			neigh, _ := topo.Run(c.Router, "ip", "-6", "neigh")
			t.Logf("--- router routes:\n%s--- router neighbours:\n%s", routes, neigh)
		}
	})
	eventually(t, 10*time.Second, func() error {
		_, err := b.birdc("show", "status")
		return err
	})
	return b
}

func (b *bird) birdc(args ...string) (string, error) {
	return topo.Run(b.c.Router, append([]string{"birdc", "-s", filepath.Join(b.dir, "bird.ctl")}, args...)...)
}

// routerRoute returns the router's kernel route to prefix ("" if none).
func (c *cluster) routerRoute(prefix string) string {
	out, _ := topo.Run(c.Router, "ip", "-6", "route", "show", prefix)
	return strings.TrimSpace(out)
}

// waitRouterRoute waits until the router's kernel has prefix via host n
// from BIRD, and returns when.
func (c *cluster) waitRouterRoute(t *testing.T, prefix string, n int, limit time.Duration) time.Time {
	t.Helper()
	want := fmt.Sprintf("via 2001:db8::%d dev seg proto bird", n)
	eventually(t, limit, func() error {
		if r := c.routerRoute(prefix); !strings.Contains(r, want) {
			return fmt.Errorf("router: route to %s is %q, want %q", prefix, r, want)
		}
		return nil
	})
	return time.Now()
}

// routedArgs are host h's daemon flags in the routed layout: the plan's.
func routedArgs(t *testing.T, plan clusterPlan, h *clusterHost, dp string) []string {
	t.Helper()
	return append(plan.daemonArgs(t, h), "--dataplane", dp)
}

func routedPrefix(n int) string { return fmt.Sprintf("2001:db8:%d:1::/64", n) }

// session returns host h's BGP session with router, as its status shows it.
func (h *clusterHost) session(t *testing.T, router string) (sessionStatus, error) {
	t.Helper()
	st := h.status(t)
	if st.Cluster == nil || st.Cluster.BGP == nil {
		return sessionStatus{}, fmt.Errorf("host %d: no BGP status: %+v", h.N, st.Cluster)
	}
	for _, s := range st.Cluster.BGP.Sessions {
		if s.Router == router {
			return s, nil
		}
	}
	return sessionStatus{}, fmt.Errorf("host %d: no session with %s: %+v", h.N, router, st.Cluster.BGP.Sessions)
}

// waitSession waits until host h's status shows its session with the
// router up.
func (h *clusterHost) waitSession(t *testing.T, limit time.Duration) {
	t.Helper()
	eventually(t, limit, func() error {
		s, err := h.session(t, clusterRouterAddr)
		if err == nil && s.State != "established" {
			err = fmt.Errorf("host %d: session %s %s (%s)", h.N, s.Router, s.State, s.LastError)
		}
		return err
	})
}

// absentRouter is a second router on the link that nobody answers for.
const absentRouter = "2001:db8::fffe"

// Two hosts announce their prefixes to BIRD, containers on different hosts
// reach each other via the router, a third host joins with no change on
// the router.
func TestClusterRouted(t *testing.T) {
	for _, dp := range []string{"kernel", "tc"} {
		t.Run(dp, func(t *testing.T) { testClusterRouted(t, dp) })
	}
}

func testClusterRouted(t *testing.T, dp string) {
	c := newCluster(t)
	plan := planCluster(t, "--role", "routed", "--hosts", "3")
	addrs := map[int]map[string]string{}
	addHost := func(n int) (*clusterHost, time.Time) {
		h := c.addHost(t, n, routedPrefix(n))
		args := routedArgs(t, plan, h, dp)
		if n == 2 {
			// Its engines' networks under its /48 are found, and announced.
			args = append(args, "--metrics-addr", "[::1]:9662", "--network-parent", "2001:db8:2::/48")
		}
		if n == 1 && dp == "kernel" {
			// Two routers, one of them never there: the other one's
			// session and the announcements do not wait for it.
			args = append(args, "--bgp-router", absentRouter)
		}
		d := h.startDaemon(t, args...)
		addrs[n] = map[string]string{}
		for i := 1; i <= 2; i++ {
			name := topo.Name(fmt.Sprintf("h%dc%d", n, i), c.Tag)
			addrs[n][name] = h.addContainer(t, name)
		}
		return h, d.started
	}
	var b *bird
	if dp == "kernel" {
		// The router's BGP is not up yet: the daemons run, say why in
		// their status and keep trying; the single-host dataplane works.
		h1, _ := addHost(1)
		for _, r := range []string{clusterRouterAddr, absentRouter} {
			eventually(t, 15*time.Second, func() error {
				s, err := h1.session(t, r)
				// Refused, normally (no route to host for the absent
				// one); a fresh link can also lose the first SYNs
				// while the kernel's linkwatch catches up.
				if err == nil && (s.State == "established" || s.FailedConnects == 0 || !strings.HasPrefix(s.LastError, "connect: ")) {
					err = fmt.Errorf("host 1: session with %s %s, %d failed connects, last error %q: want the failed connect reported", r, s.State, s.FailedConnects, s.LastError)
				}
				return err
			})
		}
		for _, a := range addrs[1] {
			if err := reach(h1.NS, a); err != nil {
				t.Errorf("host 1 without its router: %v", err)
			}
		}
		out := h1.mustV6dp(t, "status")
		if !regexp.MustCompile(`bgp router:\s+2001:db8::ffff (active|idle) .*last error: connect: .*failed connects, (retrying|next try)`).MatchString(out) {
			t.Errorf("host 1: status does not say why the session is down:\n%s", out)
		}
		b = c.startBird(t, plan)
		// No restart: the retries find the router.
		h1.waitSession(t, 20*time.Second)
		if s, err := h1.session(t, absentRouter); err != nil || s.State == "established" || s.LastError == "" {
			t.Errorf("host 1: session with the absent router: %+v, %v: want it down, saying why", s, err)
		}
	} else {
		b = c.startBird(t, plan)
		addHost(1)
	}
	_, started2 := addHost(2)
	at := c.waitRouterRoute(t, routedPrefix(2), 2, 20*time.Second)
	t.Logf("host 2: router has its route %s after the daemon started", at.Sub(started2).Round(time.Millisecond))
	c.waitRouterRoute(t, routedPrefix(1), 1, 20*time.Second)
	// The /48s too, as the original document's router routes them.
	c.waitRouterRoute(t, "2001:db8:1::/48", 1, 5*time.Second)
	c.waitRouterRoute(t, "2001:db8:2::/48", 2, 5*time.Second)
	pingAll(t, addrs)

	st := c.hosts[2].status(t).Cluster.BGP
	if st.RouterID != "0.0.0.2" || strings.Join(st.Announced, " ") != routedPrefix(2)+" 2001:db8:2::/48" || len(st.Sessions) != 1 || !st.Sessions[0].GracefulRestart {
		t.Errorf("host 2: BGP status %+v: want router id 0.0.0.2, announcing %s and 2001:db8:2::/48, graceful restart negotiated", st, routedPrefix(2))
	}
	metrics, err := topo.Run(c.hosts[2].NS, "curl", "-sS", "http://[::1]:9662/metrics")
	for _, want := range []string{`v6dp_bgp_session_up{router="2001:db8::ffff"} 1`, "v6dp_bgp_announced_prefixes 2",
		`v6dp_bgp_session_established_total{router="2001:db8::ffff"} 1`} {
		if err != nil || !strings.Contains(metrics, want) {
			t.Errorf("host 2 metrics lack %q: %v\n%s", want, err, metrics)
		}
	}
	if out, err := b.birdc("show", "protocols"); err != nil || strings.Count(out, "Established") != 2 {
		t.Errorf("router: want two established dynamic sessions: %v\n%s", err, out)
	}

	// An engine makes a network under host 2's parent prefix: announced
	// while its bridge has its gateway address, withdrawn when it goes.
	engine := "v6np" + c.Tag
	h2 := c.hosts[2]
	for _, args := range [][]string{
		{"ip", "link", "add", engine, "type", "bridge"},
		{"ip", "addr", "add", "2001:db8:2:7::1/64", "dev", engine, "nodad"},
		{"ip", "link", "set", engine, "up"},
	} {
		if out, err := topo.Run(h2.NS, args...); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	at = time.Now()
	c.waitRouterRoute(t, "2001:db8:2:7::/64", 2, 10*time.Second)
	t.Logf("host 2: the router has the found network's route %s after its bridge got its address", time.Since(at).Round(time.Millisecond))
	if out, err := topo.Run(h2.NS, "ip", "addr", "del", "2001:db8:2:7::1/64", "dev", engine); err != nil {
		t.Fatalf("removing the engine's gateway: %v: %s", err, out)
	}
	eventually(t, 10*time.Second, func() error {
		if r := c.routerRoute("2001:db8:2:7::/64"); r != "" {
			return fmt.Errorf("router still routes the gone network: %q", r)
		}
		return nil
	})

	// A third host joins: nothing changes on the router.
	h3, started3 := addHost(3)
	var src3, dst1 string
	for n := range addrs[3] {
		src3 = n
	}
	for _, a := range addrs[1] {
		dst1 = a
	}
	eventually(t, 30*time.Second, func() error { return ping(src3, dst1, 1) })
	t.Logf("host 3: its container reaches host 1's %s after the daemon started", time.Since(started3).Round(time.Millisecond))
	c.waitRouterRoute(t, routedPrefix(3), 3, 5*time.Second)
	pingAll(t, addrs)
	if dp != "kernel" {
		if ctr := h3.status(t).Counters; ctr["egress_fib"] == 0 || ctr["fwd_redirected"] == 0 {
			t.Errorf("host 3: cross-host traffic not in BPF: egress_fib %d, fwd_redirected %d", ctr["egress_fib"], ctr["fwd_redirected"])
		}
	}
}

// routeWatch records every deletion of a route in the router's kernel.
type routeWatch struct {
	mu      sync.Mutex
	deleted []string
	cmd     *exec.Cmd
}

func (c *cluster) watchRoutes(t *testing.T) *routeWatch {
	t.Helper()
	w := &routeWatch{cmd: exec.Command("ip", "netns", "exec", c.Router, "ip", "-6", "monitor", "route")}
	out, err := w.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "Deleted") {
				w.mu.Lock()
				w.deleted = append(w.deleted, sc.Text())
				w.mu.Unlock()
			}
		}
	}()
	c.Defer(func() { _ = w.cmd.Process.Kill(); _ = w.cmd.Wait(); <-done })
	return w
}

func (w *routeWatch) deletions(prefix string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, d := range w.deleted {
		if strings.Contains(d, prefix) {
			out = append(out, d)
		}
	}
	return out
}

// pinger pings at 100/s from a container until stopped, and returns the
// counts ping itself reports.
type pinger struct {
	cmd *exec.Cmd
	out strings.Builder
}

func startPinger(t *testing.T, ns, addr string) *pinger {
	t.Helper()
	p := &pinger{}
	// -w: a run that dies leaves no ping behind for long.
	p.cmd = exec.Command("ip", "netns", "exec", ns, "ping", "-6", "-n", "-q", "-i", "0.01", "-W", "1", "-w", "60", addr)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, io.Discard
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return p
}

var pingSummary = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

// stop ends ping with SIGINT (it prints its summary) and returns the
// number sent and received. A second after the last send, everything that
// was coming has come.
func (p *pinger) stop(t *testing.T) (sent, received int) {
	t.Helper()
	time.Sleep(time.Second)
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	_ = p.cmd.Wait()
	m := pingSummary.FindStringSubmatch(p.out.String())
	if m == nil {
		t.Fatalf("ping printed no summary: %q", p.out.String())
	}
	sent, _ = strconv.Atoi(m[1])
	received, _ = strconv.Atoi(m[2])
	return sent, received
}

// Graceful restart: while containers on two hosts ping each other at 100/s,
// host 1's daemon is killed and started again 3 s later, then stopped and
// started at once. The router keeps host 1's route throughout, no packet is
// lost. Then host 2 is taken out of service and its route goes.
func TestClusterGracefulRestart(t *testing.T) {
	for _, dp := range []string{"kernel", "tc"} {
		t.Run(dp, func(t *testing.T) { testClusterGracefulRestart(t, dp) })
	}
}

func testClusterGracefulRestart(t *testing.T, dp string) {
	c := newCluster(t)
	plan := planCluster(t, "--role", "routed")
	b := c.startBird(t, plan)
	var h [3]*clusterHost
	var addr [3]string
	var ctr [3]string
	for n := 1; n <= 2; n++ {
		h[n] = c.addHost(t, n, routedPrefix(n))
		h[n].startDaemon(t, routedArgs(t, plan, h[n], dp)...)
		ctr[n] = topo.Name(fmt.Sprintf("h%dc", n), c.Tag)
		addr[n] = h[n].addContainer(t, ctr[n])
	}
	for n := 1; n <= 2; n++ {
		c.waitRouterRoute(t, routedPrefix(n), n, 20*time.Second)
	}
	eventually(t, 10*time.Second, func() error { return ping(ctr[2], addr[1], 1) })
	watch := c.watchRoutes(t)
	restart := func(what string, stop func()) {
		t.Helper()
		to1, to2 := startPinger(t, ctr[2], addr[1]), startPinger(t, ctr[1], addr[2])
		time.Sleep(time.Second)
		stop()
		h[1].daemon.start(t)
		h[1].waitSession(t, 20*time.Second)
		// Past the End-of-RIB: the router has the fresh route, not the
		// stale one.
		time.Sleep(2 * time.Second)
		for _, p := range []struct {
			name string
			p    *pinger
		}{{"host 2 to host 1", to1}, {"host 1 to host 2", to2}} {
			sent, received := p.p.stop(t)
			t.Logf("%s: %s: %d sent, %d received, %d lost", what, p.name, sent, received, sent-received)
			if sent < 300 || received != sent {
				t.Errorf("%s: %s: %d sent, %d received: want at least 300 sent, none lost", what, p.name, sent, received)
			}
		}
		if d := watch.deletions(routedPrefix(1)); len(d) > 0 {
			t.Errorf("%s: the router lost host 1's route: %q", what, d)
		}
		if r := c.routerRoute(routedPrefix(1)); !strings.Contains(r, "proto bird") {
			t.Errorf("%s: router's route to host 1: %q", what, r)
		}
	}
	restart("SIGKILL, start 3s later", func() {
		h[1].daemon.stop(syscall.SIGKILL)
		time.Sleep(3 * time.Second)
		// BIRD holds the route of the dead session (stale) meanwhile.
		if out, err := b.birdc("show", "route", routedPrefix(1)); err != nil || !strings.Contains(out, routedPrefix(1)) {
			t.Errorf("router while host 1's daemon is away: %v\n%s", err, out)
		}
	})
	restart("SIGTERM, start at once", func() { h[1].daemon.stop(syscall.SIGTERM) })

	if dp != "tc" {
		return
	}
	// Host 2 out of service: `v6dp withdraw`, and the router drops its
	// route at once, not after the restart time; it stays out across a
	// restart of its daemon, until `v6dp announce`.
	out := h[2].mustV6dp(t, "withdraw")
	if !strings.Contains(out, "withdrew the host's prefixes from 2001:db8::ffff (established)") {
		t.Errorf("withdraw: %q", out)
	}
	withdrawn := time.Now()
	gone := func(what string) {
		t.Helper()
		eventually(t, 5*time.Second, func() error {
			if r := c.routerRoute(routedPrefix(2)); r != "" {
				return fmt.Errorf("%s: router still routes host 2's prefix: %q", what, r)
			}
			return nil
		})
	}
	gone("after withdraw")
	t.Logf("withdraw: router dropped host 2's route %s after the command returned", time.Since(withdrawn).Round(time.Millisecond))
	if r := c.routerRoute(routedPrefix(1)); !strings.Contains(r, "proto bird") {
		t.Errorf("host 2's withdraw took host 1's route: %q", r)
	}
	if st := h[2].status(t).Cluster.BGP; !st.Withdrawn || len(st.Announced) != 0 {
		t.Errorf("host 2 after withdraw: status %+v, want withdrawn, nothing announced", st)
	}
	h[2].daemon.stop(syscall.SIGTERM)
	h[2].daemon.start(t)
	h[2].waitSession(t, 20*time.Second)
	time.Sleep(time.Second)
	gone("after a restart of the withdrawn host")
	h[2].mustV6dp(t, "announce")
	c.waitRouterRoute(t, routedPrefix(2), 2, 5*time.Second)
}
