package test

// v6dp beside a real Docker engine: Debian's dockerd (docker.io 20.10) runs
// in the host namespace of the seed's NDP proxy topology and owns docker0;
// v6dp adopts the bridge, learns the containers from it and answers the
// router's Neighbor Solicitations for them.

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/v6dp/v6dp/test/docker"
	"github.com/v6dp/v6dp/test/topo"
)

const dockerImage = "v6dp-busybox:test"

// The bounds README.md and docs/docker.md state, asserted on every
// dataplane, generous for a slow machine (the test logs each run's own
// figures).
const (
	// The router's first ping reply after `docker run -d` returned.
	dockerFirstPing = time.Second
	// v6dp's proxy entry after Docker put the address on the container.
	dockerLearn = time.Second
	// The router's first ping reply, for containers that already run,
	// after v6dp logged "daemon running".
	dockerAdoptPing = 3 * time.Second
	// A stopped container's proxy entry gone after `docker stop`
	// returned, and from then on until no NA at all comes for it.
	dockerStopSilence = time.Second
)

func TestDocker(t *testing.T) {
	// `make deps` installs the engine: a machine without it is a broken
	// setup, not a reason to skip.
	if why := dockerMissing(); why != "" {
		t.Fatalf("precondition missing (run `make deps`): %s", why)
	}
	// Directories outside the engines' roots that dockerd and the
	// containerd shims make whatever their roots: removed at the end if
	// they did not exist before and are empty (another engine may use
	// them by then).
	for _, d := range []string{"/run/docker", "/run/docker/plugins", "/run/containerd", "/run/containerd/s"} {
		if _, err := os.Stat(d); err != nil {
			t.Cleanup(func() { _ = os.Remove(d) })
		}
	}
	img, err := topo.MkdirTemp("image", topo.RunTag())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(img) })
	tarball := filepath.Join(img, "busybox-rootfs.tar")
	if err := docker.WriteRootfsFile(tarball, docker.Busybox); err != nil {
		t.Fatalf("busybox root filesystem: %v", err)
	}
	for _, dp := range dataplanes() {
		t.Run("v6dp-first-mac80/"+dp, func(t *testing.T) { testDockerV6dpFirst(t, dp, tarball) })
		t.Run("containers-first-seq125/"+dp, func(t *testing.T) { testDockerContainersFirst(t, dp, tarball) })
	}
}

// dockerMissing names what this machine lacks to run the engine, or "".
func dockerMissing() string {
	for _, b := range []string{"dockerd", "containerd", "containerd-shim-runc-v2", "runc", "docker-init", "nsenter"} {
		if _, err := exec.LookPath(b); err != nil {
			return b + " not installed (Debian: apt-get install docker.io)"
		}
	}
	if dockerCLI() == "" {
		return "docker CLI not installed (Debian: apt-get install docker.io)"
	}
	if _, err := os.Stat(docker.Busybox); err != nil {
		return docker.Busybox + " missing (Debian: apt-get install busybox-static)"
	}
	return ""
}

// dockerCLI prefers the CLI of Debian's engine package over any other
// docker on PATH.
func dockerCLI() string {
	if _, err := os.Stat("/usr/bin/docker"); err == nil {
		return "/usr/bin/docker"
	}
	p, _ := exec.LookPath("docker")
	return p
}

// The seed's first layout: the router on-link for 2001:db8::/64, the host
// at 2001:db8::c001/64, Docker's /80 inside that /64, addresses from the
// MAC. v6dp starts before the containers and learns each as it starts.
func testDockerV6dpFirst(t *testing.T, dp, tarball string) {
	s := newSeed(t, "2001:db8:0:0:1::/80")
	e := startEngine(t, s, tarball, "--fixed-cidr-v6", s.Prefix)
	bridgeBefore := dockerBridgeAddrs(t, s)
	s.startDaemon(t, s.daemonArgs(dp, "--bridge", "docker0", "--netns-dirs", e.netnsDir()))
	checkBridgeKept(t, s, bridgeBefore)

	var names, addrs []string
	for i := 1; i <= 3; i++ {
		// A fixed MAC, so the address is known before `docker run` returns
		// and the ping can start at once.
		mac := fmt.Sprintf("02:42:ac:11:00:%02x", 0x20+i)
		want := macAddr(t, s.Prefix, mac)
		name := s.name(fmt.Sprintf("d%d", i))
		w := watchProxy(t, s, want.String(), true)
		configured := watchSandboxAddr(t, e.netnsDir(), want.String())
		began := time.Now()
		e.run(t, name, "--mac-address", mac)
		t0 := time.Now()
		ping := pingUntil(s, want.String(), 10*time.Second)
		learned := w.wait(5 * time.Second)
		// The first port gives docker0 its carrier, and only then does the
		// kernel run DAD on the addresses dockerd gave it (fe80::1 among
		// them): until that ends, about 1 to 2 s, the host sends no NS
		// into docker0 (no usable link-local source), so nothing reaches
		// the container, however fast the router was answered.
		note := ""
		if out, _ := s.Run(s.Host, "ip", "-6", "-o", "addr", "show", "dev", "docker0", "tentative"); strings.TrimSpace(out) != "" {
			note = " (docker0's own addresses were still in DAD)"
		}
		p := <-ping
		if p.err != nil {
			t.Fatalf("router ping %s after docker run: %v", want, p.err)
		}
		joined := learned
		select {
		case joined = <-w.joined:
		default:
			t.Errorf("%s: no link event for its port joining docker0", name)
		}
		set := learned
		select {
		case set = <-configured:
		case <-time.After(time.Second):
			t.Errorf("%s: did not see Docker put %s on the container's eth0", name, want)
		}
		t.Logf("%s %s: docker run took %s; port joined docker0 at +%s, Docker set the address at +%s, v6dp's proxy entry at +%s (%s after the address, %s after docker run returned); router's first ping reply %s after `docker run -d` returned%s",
			name, want, ms(t0.Sub(began)), ms(joined.Sub(began)), ms(set.Sub(began)), ms(learned.Sub(began)), signed(learned.Sub(set)), signed(learned.Sub(t0)), ms(p.at.Sub(t0)), note)
		if d := p.at.Sub(t0); d > dockerFirstPing {
			t.Errorf("%s: the router's first ping reply came %s after docker run -d returned, want within %s", name, ms(d), dockerFirstPing)
		}
		if d := learned.Sub(set); d > dockerLearn {
			t.Errorf("%s: v6dp's proxy entry came %s after Docker set the address, want within %s", name, ms(d), dockerLearn)
		}
		if got := e.inspectAddr(t, name); got != want.String() {
			t.Fatalf("%s: Docker gave %s, want %s (prefix + MAC %s)", name, got, want, mac)
		}
		names, addrs = append(names, name), append(addrs, want.String())
	}
	checkDockerEndpoints(t, s, e, dp, names, addrs)
}

// The seed's second layout: Docker 2001:db8::c008/125 (sequential, from
// IPAM) in the provider's range, with --default-gateway-v6 inside the
// prefix. The containers run before v6dp starts; v6dp finds them.
func testDockerContainersFirst(t *testing.T, dp, tarball string) {
	s := newSeed(t, "2001:db8::c008/125")
	const gw = "2001:db8::c00e"
	e := startEngine(t, s, tarball, "--fixed-cidr-v6", s.Prefix, "--default-gateway-v6", gw)
	var names, addrs []string
	for i := 1; i <= 3; i++ {
		name := s.name(fmt.Sprintf("d%d", i))
		e.run(t, name)
		names, addrs = append(names, name), append(addrs, e.inspectAddr(t, name))
	}
	prefix := netip.MustParsePrefix(s.Prefix)
	seen := map[string]bool{}
	for i, a := range addrs {
		ip, err := netip.ParseAddr(a)
		if err != nil || !prefix.Contains(ip) || seen[a] || a == gw {
			t.Fatalf("%s: Docker address %q: want a distinct address of %s other than the gateway", names[i], a, prefix)
		}
		seen[a] = true
		if rt := e.mustDocker(t, "exec", names[i], "ip", "-6", "route"); !strings.Contains(rt, "default via "+gw+" dev eth0") {
			t.Errorf("%s: want default via %s (--default-gateway-v6):\n%s", names[i], gw, rt)
		}
	}
	t.Logf("Docker's sequential addresses in %s: %v", s.Prefix, addrs)
	// Without v6dp nobody answers for them: the router cannot resolve.
	conn, err := topo.ListenNDP(s.Router, s.RouterIf)
	if err != nil {
		t.Fatal(err)
	}
	if err := unanswered(conn, netip.MustParseAddr(addrs[0]), 300*time.Millisecond); err != nil {
		t.Fatalf("before v6dp runs: %v", err)
	}
	conn.Close()

	bridgeBefore := dockerBridgeAddrs(t, s)
	t0 := time.Now()
	s.startDaemon(t, s.daemonArgs(dp, "--bridge", "docker0", "--netns-dirs", e.netnsDir(), "--default-gateway-v6", gw))
	running := time.Now()
	for _, a := range addrs {
		p := <-pingUntil(s, a, 10*time.Second)
		if p.err != nil {
			t.Fatalf("router ping %s after v6dp started: %v", a, p.err)
		}
		t.Logf("%s: router's first ping reply %s after v6dp was started (%s after it logged 'daemon running')",
			a, ms(p.at.Sub(t0)), ms(p.at.Sub(running)))
		if d := p.at.Sub(running); d > dockerAdoptPing {
			t.Errorf("%s: the router's first ping reply came %s after v6dp logged 'daemon running', want within %s", a, ms(d), dockerAdoptPing)
		}
	}
	checkBridgeKept(t, s, bridgeBefore)
	// The gateway Docker handed out is on the bridge now (v6dp put it there).
	if br := s.MustRun(s.Host, "ip", "-6", "addr", "show", "dev", "docker0"); !strings.Contains(br, "inet6 "+gw+"/125") {
		t.Errorf("docker0 lacks the containers' gateway %s/125:\n%s", gw, br)
	}
	e.mustDocker(t, "exec", names[0], "ping", "-c", "1", "-W", "2", gw)
	checkDockerEndpoints(t, s, e, dp, names, addrs)
}

// checkDockerEndpoints is the common part: every container address is
// live in v6dp, resolved by the router (by a solicitation of the test's
// own and by the router's kernel), reachable, and counted by the
// dataplane; a stopped container is dropped within a second.
func checkDockerEndpoints(t *testing.T, s *seed, e *engine, dp string, names, addrs []string) {
	t.Helper()
	for _, a := range addrs {
		s.waitLive(t, a, dp != "kernel")
	}
	hostMAC := s.hostMAC(t)
	conn, err := topo.ListenNDP(s.Router, s.RouterIf)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	before := s.counters(t, dp)
	for _, a := range addrs {
		target := netip.MustParseAddr(a)
		ans := mustAnswer(t, conn, target, hostMAC, dp, true)
		if dp == "kernel" && ans.Source == target {
			t.Errorf("NS for %s: answered from the target address; the kernel answers from its own address", a)
		}
		s.MustRun(s.Router, "ping", "-c", "1", "-W", "2", a)
		neigh := s.MustRun(s.Router, "ip", "-6", "neigh", "show", a, "dev", s.RouterIf)
		if !strings.Contains(neigh, "lladdr "+hostMAC) {
			t.Errorf("router's neighbour entry for %s: want lladdr %s (the host), got %q", a, hostMAC, neigh)
		}
		t.Logf("%s: NA from %s in %s, TLLA %s; router: %s", a, ans.Source, ms(ans.RTT), ans.TLLA, strings.TrimSpace(neigh))
		// Unicast NS, the router's reachability probe, to the entry the
		// router holds now.
		mustAnswer(t, conn, target, hostMAC, dp, false)
	}
	if dp != "kernel" {
		// ndisc6 discards answers not sourced from the target: it sees
		// only BPF answers.
		out, err := s.Run(s.Router, "ndisc6", "-1", "-r", "2", "-w", "1000", addrs[0], s.RouterIf)
		if err != nil || !strings.Contains(strings.ToLower(out), "target link-layer address: "+hostMAC) {
			t.Errorf("ndisc6 %s from the router: want the TLLA %s, got %v:\n%s", addrs[0], hostMAC, err, out)
		}
	}
	if dp != "kernel" {
		after := s.counters(t, dp)
		if got := after["ns_answered"] - before["ns_answered"]; got < uint64(len(addrs)) {
			t.Errorf("BPF counters: ns_answered rose by %d, want at least %d (BPF answered, not the kernel)", got, len(addrs))
		}
		t.Logf("dataplane %s answered: ns_answered %d -> %d", dp, before["ns_answered"], after["ns_answered"])
	} else {
		t.Logf("dataplane kernel: answers from the kernel's proxy entries (no BPF counters)")
	}

	// `docker stop`: the address leaves the answer set within a second.
	gone := netip.MustParseAddr(addrs[1])
	w := watchProxy(t, s, gone.String(), false)
	t0 := time.Now()
	e.mustDocker(t, "stop", names[1])
	stopped := time.Now()
	dropped := w.wait(2 * time.Second)
	// A fresh socket: no advertisement queued from earlier exchanges.
	conn2, err := topo.ListenNDP(s.Router, s.RouterIf)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	var silent time.Time
	answered := 0
	eventually(t, dockerStopSilence, func() error {
		sent := time.Now()
		if err := unanswered(conn2, gone, 150*time.Millisecond); err != nil {
			answered++
			return fmt.Errorf("stopped container: %v", err)
		}
		silent = sent
		return nil
	})
	t.Logf("docker stop %s took %s; proxy entry for %s gone %s after the stop began; NS answered after the stop returned: %d, first unanswered one sent %s after it returned",
		names[1], ms(stopped.Sub(t0)), gone, ms(dropped.Sub(t0)), answered, ms(max(0, silent.Sub(stopped))))
	if dropped.Sub(stopped) > dockerStopSilence {
		t.Errorf("%s dropped %s after docker stop returned, want within %s", gone, ms(dropped.Sub(stopped)), dockerStopSilence)
	}
	if _, ok := s.endpoints(t)[gone.String()]; ok {
		t.Errorf("v6dp still lists the stopped container's %s", gone)
	}
	// The others still answer and are reachable.
	for _, a := range []string{addrs[0], addrs[2]} {
		mustAnswer(t, conn, netip.MustParseAddr(a), hostMAC, dp, true)
		s.MustRun(s.Router, "ping", "-c", "1", "-W", "2", a)
	}
	t.Logf("v6dp status:\n%s", s.mustV6dp(t, "status"))
}

// dockerBridgeAddrs lists docker0's IPv6 addresses as dockerd left them.
func dockerBridgeAddrs(t *testing.T, s *seed) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(s.MustRun(s.Host, "ip", "-6", "-o", "addr", "show", "dev", "docker0"), "\n") {
		f := strings.Fields(l)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "inet6" {
				out = append(out, f[i+1])
			}
		}
	}
	return out
}

// checkBridgeKept: v6dp adopted docker0 without removing anything of
// Docker's, and the bridge is still the one dockerd made.
func checkBridgeKept(t *testing.T, s *seed, before []string) {
	t.Helper()
	now := strings.Join(dockerBridgeAddrs(t, s), " ")
	for _, a := range before {
		if !strings.Contains(" "+now+" ", " "+a+" ") {
			t.Errorf("docker0 lost Docker's address %s after v6dp started (now: %s)", a, now)
		}
	}
	if st, err := os.ReadFile(filepath.Join(s.StateDir, "journal.json")); err == nil && strings.Contains(string(st), `"created_bridge"`) {
		t.Errorf("v6dp journaled docker0 as created by itself: %s", st)
	}
}

// macAddr is Docker's (and the seed's) MAC-derived address: the prefix
// with the MAC in the last 48 bits.
func macAddr(t *testing.T, prefix, mac string) netip.Addr {
	t.Helper()
	p := netip.MustParsePrefix(prefix)
	var m [6]byte
	if _, err := fmt.Sscanf(mac, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]); err != nil {
		t.Fatal(err)
	}
	b := p.Addr().As16()
	copy(b[10:], m[:])
	return netip.AddrFrom16(b)
}

// signed prints a duration that may be negative (before the reference).
func signed(d time.Duration) string {
	if d < 0 {
		return "-" + ms(-d)
	}
	return ms(d)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

type pingResult struct {
	at  time.Time
	err error
}

// pingUntil pings addr from the router every 10 ms until the first reply
// (or the limit) and reports when the reply came. A ping that ends early
// on errors (the host's "address unreachable" while it cannot resolve the
// container on docker0) is started again.
func pingUntil(s *seed, addr string, limit time.Duration) <-chan pingResult {
	ch := make(chan pingResult, 1)
	go func() {
		end := time.Now().Add(limit)
		var err error
		for time.Now().Before(end) {
			w := fmt.Sprint(max(1, int(time.Until(end).Seconds()+0.5)))
			ctx, cancel := context.WithTimeout(context.Background(), limit+5*time.Second)
			out, perr := topo.Nsenter(ctx, s.Router, "ping", "-6", "-n", "-q", "-c", "1", "-i", "0.01", "-w", w, addr).CombinedOutput()
			cancel()
			if perr == nil {
				ch <- pingResult{at: time.Now()}
				return
			}
			err = fmt.Errorf("%w: %s", perr, lastLines(string(out), 2))
		}
		ch <- pingResult{at: time.Now(), err: err}
	}()
	return ch
}

// proxyWatch polls the host's proxy neighbour entries through netlink
// (no traffic, about every millisecond) from its start, to time when v6dp
// adds or drops the entry for one address.
type proxyWatch struct {
	t    *testing.T
	addr string
	at   time.Time
	done chan struct{}
	stop chan struct{}
	// joined gets the time a new veth port joined docker0.
	joined chan time.Time
}

// watchPorts records when the next new veth joins docker0 (link events,
// as v6dp sees them).
func (w *proxyWatch) watchPorts(ns netns.NsHandle) {
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		w.t.Fatal(err)
	}
	defer h.Close()
	br, err := h.LinkByName("docker0")
	if err != nil {
		w.t.Fatal(err)
	}
	old := map[int]bool{}
	links, _ := h.LinkList()
	for _, l := range links {
		if l.Attrs().MasterIndex == br.Attrs().Index {
			old[l.Attrs().Index] = true
		}
	}
	ch := make(chan netlink.LinkUpdate, 256)
	stop := make(chan struct{})
	if err := netlink.LinkSubscribeAt(ns, ch, stop); err != nil {
		w.t.Fatal(err)
	}
	go func() {
		defer close(stop)
		for {
			select {
			case u := <-ch:
				a := u.Link.Attrs()
				if u.Header.Type == unix.RTM_NEWLINK && a.MasterIndex == br.Attrs().Index && u.Link.Type() == "veth" && !old[a.Index] {
					w.joined <- time.Now()
					return
				}
			case <-w.stop:
				return
			}
		}
	}()
}

// watchProxy starts watching until the entry for addr is present (or,
// with present false, absent).
func watchProxy(t *testing.T, s *seed, addr string, present bool) *proxyWatch {
	t.Helper()
	ns, err := netns.GetFromName(s.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	w := &proxyWatch{t: t, addr: addr, done: make(chan struct{}), stop: make(chan struct{}), joined: make(chan time.Time, 1)}
	if present {
		w.watchPorts(ns)
	}
	go func() {
		defer h.Close()
		defer close(w.done)
		for {
			if proxyHas(h, addr) == present {
				w.at = time.Now()
				return
			}
			select {
			case <-w.stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { w.cancel() })
	return w
}

func proxyHas(h *netlink.Handle, addr string) bool {
	ns, err := h.NeighProxyList(0, netlink.FAMILY_V6)
	if err != nil {
		return false
	}
	for _, n := range ns {
		if n.IP.String() == addr {
			return true
		}
	}
	return false
}

func (w *proxyWatch) cancel() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// wait returns when the entry reached the state watched for; the test
// fails if it did not within limit.
func (w *proxyWatch) wait(limit time.Duration) time.Time {
	select {
	case <-w.done:
	case <-time.After(limit):
		w.cancel()
	}
	if w.at.IsZero() {
		w.t.Errorf("proxy entry for %s did not change as expected within %s", w.addr, limit)
		return time.Now()
	}
	return w.at
}

// watchSandboxAddr reports when addr appears in a network namespace that
// is new in dir (Docker's sandbox namespaces), polling about every
// millisecond from the start.
func watchSandboxAddr(t *testing.T, dir, addr string) <-chan time.Time {
	t.Helper()
	ch := make(chan time.Time, 1)
	old := map[string]bool{}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		old[e.Name()] = true
	}
	want := netip.MustParseAddr(addr)
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() {
		handles := map[string]*netlink.Handle{}
		defer func() {
			for _, h := range handles {
				h.Close()
			}
		}()
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); {
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if old[e.Name()] || handles[e.Name()] != nil {
					continue
				}
				ns, err := netns.GetFromPath(filepath.Join(dir, e.Name()))
				if err != nil {
					continue
				}
				h, err := netlink.NewHandleAt(ns)
				ns.Close()
				if err == nil {
					handles[e.Name()] = h
				}
			}
			for _, h := range handles {
				as, _ := h.AddrList(nil, netlink.FAMILY_V6)
				for _, a := range as {
					if ip, ok := netip.AddrFromSlice(a.IP); ok && ip == want {
						ch <- time.Now()
						return
					}
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	return ch
}

// engine is a dockerd started in the host namespace of a test topology,
// with its own data and exec roots, sockets, containerd, cgroup parent and
// key file, so that it never meets another engine on the machine.
type engine struct {
	t      *testing.T
	s      *seed
	root   string
	sock   string
	cgroup string // cgroup parent of the containers (cgroupfs driver)
	cmd    *exec.Cmd
	exited chan struct{}
}

func startEngine(t *testing.T, s *seed, tarball string, args ...string) *engine {
	t.Helper()
	// Short: containerd's sockets live below it (108-byte socket paths).
	root, err := topo.MkdirTemp("dk", s.Tag)
	if err != nil {
		t.Fatal(err)
	}
	e := &engine{t: t, s: s, root: root, sock: filepath.Join(root, "docker.sock"), cgroup: topo.Name("cg", s.Tag), exited: make(chan struct{})}
	// Runs before the namespaces go (the topology tears down last in,
	// first out): deleting the host namespace would kill dockerd -9.
	s.Defer(e.stop)
	// dockerd 20.10 has no flag for its key file; without this key it
	// writes /etc/docker/key.json.
	cfg := filepath.Join(root, "daemon.json")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("{\"deprecated-key-path\": %q}\n", filepath.Join(root, "key.json"))), 0o644); err != nil {
		t.Fatal(err)
	}
	full := append([]string{"dockerd",
		"--config-file", cfg,
		"--data-root", filepath.Join(root, "data"),
		"--exec-root", filepath.Join(root, "exec"),
		"--pidfile", filepath.Join(root, "dockerd.pid"),
		"-H", "unix://" + e.sock,
		"--containerd-namespace", e.cgroup,
		"--containerd-plugins-namespace", e.cgroup + "-plugins",
		"--exec-opt", "native.cgroupdriver=cgroupfs",
		"--cgroup-parent", "/" + e.cgroup,
		// IPv4 NAT and filtering are not under test and would add
		// iptables rules and br_netfilter; v6dp routes IPv6 plainly.
		"--iptables=false",
		"--userland-proxy=false",
		"--ipv6",
	}, args...)
	log := s.LogFile("dockerd")
	e.cmd = topo.Nsenter(context.Background(), s.Host, full...)
	e.cmd.Stdout, e.cmd.Stderr = log, log
	e.cmd.Env = append(os.Environ(), "PATH="+os.Getenv("PATH")+":/usr/sbin:/usr/bin:/sbin:/bin")
	if err := e.cmd.Start(); err != nil {
		t.Fatalf("starting dockerd: %v", err)
	}
	go func() { _ = e.cmd.Wait(); close(e.exited) }()
	start := time.Now()
	for {
		if _, err := e.docker("version", "--format", "{{.Server.Version}}"); err == nil {
			break
		}
		select {
		case <-e.exited:
			// Whatever the cause (cgroups, mounts, privileges), the
			// Docker claims are untested on this machine: a failure
			// with dockerd's own words, never a skip.
			b, _ := os.ReadFile(log.Name())
			t.Fatalf("dockerd exited during start: %s", lastLines(string(b), 5))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("dockerd not answering on %s after 30 s", e.sock)
		}
	}
	t.Logf("dockerd up in %s: %s", ms(time.Since(start)), strings.Join(full, " "))
	e.mustDocker(t, "import", "-c", `CMD ["/bin/sh"]`, tarball, dockerImage)
	return e
}

func (e *engine) netnsDir() string { return filepath.Join(e.root, "exec", "netns") }

func (e *engine) docker(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, dockerCLI(), append([]string{"-H", "unix://" + e.sock}, args...)...)
	// The CLI's own config stays in the test's root too.
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+filepath.Join(e.root, "cli"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func (e *engine) mustDocker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := e.docker(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// run starts a container that sleeps; --init makes `docker stop` quick
// (a shell or sleep as PID 1 ignores SIGTERM).
func (e *engine) run(t *testing.T, name string, extra ...string) {
	t.Helper()
	args := append([]string{"run", "-d", "--init", "--name", name}, extra...)
	e.mustDocker(t, append(args, dockerImage, "sleep", "3600")...)
}

func (e *engine) inspectAddr(t *testing.T, name string) string {
	t.Helper()
	return strings.TrimSpace(e.mustDocker(t, "inspect", "-f", "{{.NetworkSettings.GlobalIPv6Address}}", name))
}

// stop removes the containers, stops dockerd and its containerd, and
// removes everything they made: processes, mounts, cgroups, directories.
func (e *engine) stop() {
	alive := true
	select {
	case <-e.exited:
		alive = false
	default:
	}
	if alive {
		if out, err := e.docker("ps", "-aq"); err == nil && strings.TrimSpace(out) != "" {
			_, _ = e.docker(append([]string{"rm", "-f"}, strings.Fields(out)...)...)
		}
		_ = e.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-e.exited:
		case <-time.After(15 * time.Second):
			_ = e.cmd.Process.Kill()
			<-e.exited
		}
	}
	// What outlived dockerd: containers in our cgroup, and containerd and
	// its shims, which name our root on their command lines.
	for _, pid := range e.leftoverPIDs() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, m := range topo.MountsUnder(e.root) {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil {
			e.t.Logf("unmount %s: %v", m, err)
		}
	}
	for _, d := range e.cgroupDirs() {
		if err := os.Remove(d); err != nil && !os.IsNotExist(err) {
			e.t.Logf("removing cgroup %s: %v", d, err)
		}
	}
	if err := os.RemoveAll(e.root); err != nil {
		e.t.Logf("removing %s: %v", e.root, err)
	}
}

// cgroupDirs lists the cgroups below the containers' parent, deepest
// first, in every hierarchy (cgroup v1 controllers or the v2 tree).
func (e *engine) cgroupDirs() []string {
	var tops []string
	if ents, err := os.ReadDir("/sys/fs/cgroup"); err == nil {
		tops = append(tops, filepath.Join("/sys/fs/cgroup", e.cgroup))
		for _, c := range ents {
			tops = append(tops, filepath.Join("/sys/fs/cgroup", c.Name(), e.cgroup))
		}
	}
	var dirs []string
	for _, top := range tops {
		if st, err := os.Stat(top); err != nil || !st.IsDir() {
			continue
		}
		_ = filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
	}
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	return dirs
}

func (e *engine) leftoverPIDs() []int {
	seen := map[int]bool{}
	for _, d := range e.cgroupDirs() {
		b, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		for _, f := range strings.Fields(string(b)) {
			var pid int
			if _, err := fmt.Sscan(f, &pid); err == nil && pid > 1 {
				seen[pid] = true
			}
		}
	}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		var pid int
		if _, err := fmt.Sscan(p.Name(), &pid); err != nil || pid == os.Getpid() {
			continue
		}
		b, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if strings.Contains(string(b), e.root+"/") {
			seen[pid] = true
		}
	}
	var out []int
	for pid := range seen {
		out = append(out, pid)
	}
	return out
}
