package bench

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/v6dp/v6dp/test/topo"
)

// BenchmarkScale10k is issue 11's host of ten networks of 1,000
// containers (a Linux bridge takes at most 1024 ports): v6dp's own
// docker0 and nine engine bridges given with --network BRIDGE=PREFIX, each
// made as an engine makes it, with its gateway address. It measures how
// long v6dp takes, after the last port joins its bridge, until the kernel
// proxy entries, the BPF endpoints map, the ports map and the devmap hold
// every endpoint; the daemon's CPU time for that; and its memory at 0,
// 2,000 and 10,000 endpoints. Then the gates: every address answered (one
// NS each from the router, every answer validated whole) and every
// container reachable (one echo request each from the router). A gate that
// fails fails the run; figures never do.
//
// The far ends share namespaces, 50 to a namespace (200 namespaces), each
// still its own veth with its own address, default route (a rule by source
// address) and gateway. Run it alone with `make bench BENCH=Scale10k`;
// V6DP_SCALE_NETS and V6DP_SCALE_PER shrink it (V6DP_BENCH_QUICK=1: two
// networks of 100), V6DP_BENCH_RUNS sets the runs (3).
func BenchmarkScale10k(b *testing.B) {
	p := scaleParamsFromEnv()
	n := p.Nets * p.PerNet
	// Twice the bench's usual room: the router's entry for each
	// container, the host's for each of the engines' (the kernel forwards
	// those), each container's for its gateway and the multicast entries
	// of every far end that is up.
	tuning := raiseNeighTable(b, 2*n)
	st := newScaleTopo(b, p)
	var res []scaleRun
	var failed []string
	for run := 0; run < p.Runs; run++ {
		last := run == p.Runs-1
		r, err := st.run(last)
		if err != nil {
			failed = append(failed, fmt.Sprintf("run %d: %v", run+1, err))
			break
		}
		res = append(res, r)
		if last {
			failed = append(failed, st.gates(&res[len(res)-1])...)
		}
	}
	// The kernel alone last, as the daemon's runs after the first found
	// the ports: taken off their bridges, IPv6 restored by cleanup.
	var alone []phase
	if os.Getenv("V6DP_SCALE_ALONE") != "0" {
		if st.keep != nil {
			st.stopDaemon(st.keep)
			st.join(0, st.p.Nets, false)
		}
		alone = st.kernelAlone()
	}
	var s strings.Builder
	writeScale(&s, p, tuning, alone, res, failed)
	fmt.Print(s.String())
	b.Log("\n" + s.String())
	for _, f := range failed {
		b.Errorf("scale N=%d FAILED: %s", n, f)
	}
	b.ReportMetric(0, "ns/op")
}

type scaleParams struct {
	Nets, PerNet, PerNS, Runs int
	// Split is how many networks join in the first phase (2,000
	// endpoints at full size); the rest join in the second.
	Split int
}

func scaleParamsFromEnv() scaleParams {
	p := scaleParams{Nets: 10, PerNet: 1000, PerNS: 50, Runs: benchRuns(3), Split: 2}
	if os.Getenv("V6DP_BENCH_QUICK") == "1" {
		p.Nets, p.PerNet, p.Runs = 2, 100, 1
	}
	if v, err := strconv.Atoi(os.Getenv("V6DP_SCALE_NETS")); err == nil && v > 0 && v <= 10 {
		p.Nets = v
	}
	if v, err := strconv.Atoi(os.Getenv("V6DP_SCALE_PER")); err == nil && v > 0 && v <= 1000 {
		p.PerNet = v
	}
	p.PerNS = min(p.PerNS, p.PerNet)
	p.Split = min(p.Split, p.Nets-1)
	if p.Nets == 1 {
		p.Split = 1
	}
	return p
}

// scaleNet is one network: its bridge, prefix and the containers' gateway.
type scaleNet struct {
	Bridge string
	Prefix netip.Prefix
	GW     netip.Addr
	MAC    net.HardwareAddr // the bridge's
}

// scalePort is one container: its port, its far end and its address.
type scalePort struct {
	HostIf string
	Index  int // the port's ifindex in the host namespace
	NS     string
	PeerIf string
	Addr   netip.Addr
	Net    int
}

type scaleTopo struct {
	*topo.Topo
	b                  *testing.B
	p                  scaleParams
	Router, Host       string
	RouterMAC, HostMAC net.HardwareAddr
	Nets               []scaleNet
	Ports              []scalePort
	uplinkIndex        int
	dir                string
	StateDir, PinDir   string
	setup              time.Duration
	nss                int
	keep               *scaleDaemon // the last run's daemon, for the gates
	runs               int
}

// The networks: 2001:db8:0:0:K::/80 for K = 1..10, inside the router's
// on-link /64; the first is v6dp's docker0 (gateway fe80::1), the others
// engines' bridges with the gateway PREFIX::1 on them.
func scaleNetworks(n int) []scaleNet {
	var out []scaleNet
	for k := 0; k < n; k++ {
		pfx := netip.MustParsePrefix(fmt.Sprintf("2001:db8:0:0:%x::/80", k+1))
		net := scaleNet{Bridge: fmt.Sprintf("br%d", k), Prefix: pfx,
			GW:  netip.MustParseAddr(fmt.Sprintf("2001:db8::%x:0:0:1", k+1)),
			MAC: net.HardwareAddr{0x02, 0x42, 0x0a, 0, 0, byte(k + 1)}}
		if k == 0 {
			net.Bridge, net.GW = "docker0", netip.MustParseAddr("fe80::1")
		}
		out = append(out, net)
	}
	return out
}

func newScaleTopo(b *testing.B, p scaleParams) *scaleTopo {
	b.Helper()
	start := time.Now()
	tp := topo.New(b)
	dir, err := topo.MkdirTemp("scale", tp.Tag)
	if err != nil {
		b.Fatal(err)
	}
	tp.Defer(func() { os.RemoveAll(dir) })
	st := &scaleTopo{Topo: tp, b: b, p: p, dir: dir, Nets: scaleNetworks(p.Nets)}
	st.StateDir = filepath.Join(dir, "state")
	st.PinDir = "/sys/fs/bpf/" + topo.Name("scale", tp.Tag)
	tp.Defer(func() { removePins(st.PinDir) })
	st.Router = tp.NS("router")
	st.Host = tp.NS("host")
	tp.Veth(st.Router, "eth0", st.Host, "eth0")
	tp.Sysctl(st.Router, "net.ipv6.conf.eth0.accept_dad", "0")
	tp.MustRun(st.Router, "ip", "addr", "add", routerAddr+"/64", "dev", "eth0", "nodad")
	tp.MustRun(st.Router, "ip", "link", "set", "eth0", "up")
	// The host's ports do no DAD: v6dp turns their IPv6 off anyway.
	for _, k := range []string{"eth0.accept_dad", "default.accept_dad", "all.forwarding", "default.forwarding"} {
		v := "0"
		if strings.HasSuffix(k, "forwarding") {
			v = "1"
		}
		tp.Sysctl(st.Host, "net.ipv6.conf."+k, v)
	}
	tp.MustRun(st.Host, "ip", "addr", "add", hostAddr+"/64", "dev", "eth0", "nodad")
	tp.MustRun(st.Host, "ip", "link", "set", "eth0", "up")
	tp.MustRun(st.Host, "ip", "-6", "route", "add", "default", "via", routerAddr, "dev", "eth0")
	st.RouterMAC = scaleMAC(b, tp, st.Router, "eth0")
	st.HostMAC = scaleMAC(b, tp, st.Host, "eth0")

	// docker0 as dockerd makes it (fe80::1); the engines' bridges as an
	// engine makes them, with their gateway address. v6dp adopts all.
	var hb strings.Builder
	for k, n := range st.Nets {
		fmt.Fprintf(&hb, "link add %s address %s type bridge\n", n.Bridge, n.MAC)
		if k == 0 {
			fmt.Fprintf(&hb, "addr add fe80::1/64 dev %s nodad\n", n.Bridge)
		} else {
			fmt.Fprintf(&hb, "addr add %s/80 dev %s nodad\n", n.GW, n.Bridge)
		}
		fmt.Fprintf(&hb, "link set %s up\n", n.Bridge)
	}
	st.batch(st.Host, hb.String())

	// The containers: 50 far ends to a namespace, each with its address,
	// its own default route (by source address) and its gateway's
	// neighbour entry (so that 10,000 solicitations for the gateway do
	// not each flood a bridge of 1,000 ports: the kernel's cost, not
	// v6dp's, and not what is measured here).
	hb.Reset()
	nsb := map[string]*strings.Builder{}
	var nss []string
	for k, n := range st.Nets {
		for i := 0; i < p.PerNet; i++ {
			if i%p.PerNS == 0 {
				ns := tp.NS(fmt.Sprintf("c%d", len(nss)))
				nss = append(nss, ns)
				nsb[ns] = &strings.Builder{}
				tp.MustRun(ns, "sh", "-c", "for k in accept_dad dad_transmits router_solicitations; do echo 0 > /proc/sys/net/ipv6/conf/default/$k; done")
			}
			ns := nss[len(nss)-1]
			j := i % p.PerNS
			a := n.Prefix.Addr().As16()
			binary.BigEndian.PutUint16(a[12:], 1)
			binary.BigEndian.PutUint16(a[14:], uint16(i+1))
			port := scalePort{HostIf: fmt.Sprintf("vs%d", len(st.Ports)), NS: ns, PeerIf: fmt.Sprintf("e%d", j),
				Addr: netip.AddrFrom16(a), Net: k}
			st.Ports = append(st.Ports, port)
			fmt.Fprintf(&hb, "link add %s type veth peer name %s netns %s\n", port.HostIf, port.PeerIf, ns)
			w := nsb[ns]
			fmt.Fprintf(w, "addr add %s/80 dev %s nodad\n", port.Addr, port.PeerIf)
			fmt.Fprintf(w, "link set %s up\n", port.PeerIf)
			fmt.Fprintf(w, "route add default via %s dev %s table %d\n", n.GW, port.PeerIf, 100+j)
			fmt.Fprintf(w, "rule add from %s table %d pref %d\n", port.Addr, 100+j, 100+j)
			fmt.Fprintf(w, "neigh add %s lladdr %s dev %s nud permanent\n", n.GW, n.MAC, port.PeerIf)
		}
	}
	st.batch(st.Host, hb.String())
	for _, ns := range nss {
		st.batch(ns, nsb[ns].String(), "-6")
	}
	st.nss = len(nss)
	links, err := st.hostLinks()
	if err != nil {
		b.Fatal(err)
	}
	for i := range st.Ports {
		l, ok := links[st.Ports[i].HostIf]
		if !ok {
			b.Fatalf("port %s missing", st.Ports[i].HostIf)
		}
		st.Ports[i].Index = l
	}
	st.uplinkIndex = links["eth0"]
	st.setup = time.Since(start)
	b.Logf("scale: %d containers in %d namespaces on %d bridges ready in %s", len(st.Ports), len(nss), len(st.Nets), st.setup.Round(time.Millisecond))
	return st
}

func scaleMAC(b *testing.B, tp *topo.Topo, ns, ifname string) net.HardwareAddr {
	b.Helper()
	m, err := net.ParseMAC(strings.TrimSpace(tp.MustRun(ns, "cat", "/sys/class/net/"+ifname+"/address")))
	if err != nil {
		b.Fatal(err)
	}
	return m
}

func (st *scaleTopo) batch(ns, cmds string, opts ...string) {
	st.b.Helper()
	f := filepath.Join(st.dir, "batch")
	if err := os.WriteFile(f, []byte(cmds), 0o644); err != nil {
		st.b.Fatal(err)
	}
	st.MustRun(ns, append(append([]string{"ip"}, opts...), "-batch", f)...)
}

// inHost runs f with a netlink handle in the host namespace.
func (st *scaleTopo) inHost(f func(h *netlink.Handle) error) error {
	return topo.InNS(st.Host, func() error {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return err
		}
		defer h.Close()
		return f(h)
	})
}

func (st *scaleTopo) hostLinks() (map[string]int, error) {
	out := map[string]int{}
	err := st.inHost(func(h *netlink.Handle) error {
		links, err := h.LinkList()
		for _, l := range links {
			out[l.Attrs().Name] = l.Attrs().Index
		}
		return err
	})
	return out, err
}

// join puts the ports of networks [from, to) on their bridges (up, as an
// engine does), or takes them off again.
func (st *scaleTopo) join(from, to int, on bool) {
	var s strings.Builder
	for _, p := range st.Ports {
		if p.Net < from || p.Net >= to {
			continue
		}
		if on {
			fmt.Fprintf(&s, "link set %s master %s up\n", p.HostIf, st.Nets[p.Net].Bridge)
		} else {
			fmt.Fprintf(&s, "link set %s nomaster down\n", p.HostIf)
		}
	}
	st.batch(st.Host, s.String())
}

// scaleDaemon is the daemon of one run.
type scaleDaemon struct {
	cmd    *exec.Cmd
	pid    int
	exited chan struct{}
	log    *os.File
	// stopped: stopDaemon ran (it stops the daemon and cleans up once).
	stopped bool
}

func (st *scaleTopo) daemonArgs() []string {
	args := []string{"daemon", "--ipv6", "--fixed-cidr-v6", st.Nets[0].Prefix.String(), "--bridge", "docker0",
		"--uplink", "eth0", "--ndp-proxy", "--pin-dir", st.PinDir, "--state-dir", st.StateDir, "--resync-interval", "10m"}
	for _, n := range st.Nets[1:] {
		args = append(args, "--network", n.Bridge+"="+n.Prefix.String())
	}
	if lvl := os.Getenv("V6DP_SCALE_LOG"); lvl != "" {
		// The daemon's log level (debug: how long each step took).
		args = append(args, "--log-level", lvl)
	}
	return args
}

func (st *scaleTopo) v6dp(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	full := append(args, "--state-dir", st.StateDir)
	out, err := topo.Nsenter(ctx, st.Host, append([]string{v6dpBin}, full...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("v6dp %s: %w: %s", strings.Join(full, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func (st *scaleTopo) startDaemon(run int) (*scaleDaemon, error) {
	d := &scaleDaemon{log: st.LogFile(fmt.Sprintf("daemon-scale-%d", run)), exited: make(chan struct{})}
	cmd := topo.Nsenter(context.Background(), st.Host, append([]string{v6dpBin}, st.daemonArgs()...)...)
	cmd.Stdout, cmd.Stderr = d.log, d.log
	if prof := os.Getenv("V6DP_SCALE_CPUPROFILE"); prof != "" {
		cmd.Env = append(os.Environ(), "V6DP_CPUPROFILE="+fmt.Sprintf("%s.%d", prof, run))
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d.cmd = cmd
	go func() { _ = cmd.Wait(); close(d.exited) }()
	st.Defer(func() { st.stopDaemon(d) })
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-d.exited:
			b, _ := os.ReadFile(d.log.Name())
			return nil, fmt.Errorf("daemon exited: %s", lastLinesOf(string(b), 12))
		default:
		}
		if b, err := os.ReadFile(filepath.Join(st.StateDir, "daemon.json")); err == nil {
			var rt struct {
				PID int `json:"pid"`
			}
			if json.Unmarshal(b, &rt) == nil && rt.PID > 0 {
				if _, err := st.v6dp("status", "--json"); err == nil {
					d.pid = rt.PID
					return d, nil
				}
			}
		}
		if time.Now().After(deadline) {
			return nil, errors.New("daemon not ready after 60s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (st *scaleTopo) stopDaemon(d *scaleDaemon) {
	if d.stopped {
		return
	}
	d.stopped = true
	select {
	case <-d.exited:
	default:
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(20 * time.Second):
			_ = d.cmd.Process.Kill()
			<-d.exited
		}
	}
	if out, err := st.v6dp("cleanup"); err != nil {
		st.b.Logf("v6dp cleanup: %v: %s", err, out)
	}
	removePins(st.PinDir)
}

func lastLinesOf(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}

// procStat is a process's CPU time (utime+stime) and resident memory.
type procStat struct {
	CPU time.Duration
	RSS int64 // bytes
}

func readProc(pid int) (procStat, error) {
	var ps procStat
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ps, err
	}
	// Fields after the command name, which is in parentheses and may
	// hold spaces: state is field 3, utime 14, stime 15.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return ps, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	stt, _ := strconv.ParseInt(f[12], 10, 64)
	ps.CPU = time.Duration(ut+stt) * time.Second / 100 // USER_HZ
	b, err = os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ps, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			ps.RSS = kb << 10
		}
	}
	return ps, nil
}

// phase is one batch of ports joining and what it cost v6dp.
type phase struct {
	Endpoints int           // endpoints after it
	Join      time.Duration // the ports' joining (ip -batch)
	// Converged is from the last port's joining to the moment every
	// entry was found (polled every 20 ms); Proxy, Endpoints, Ports and
	// Devmap the moments each was complete.
	Converged, Proxy, EPMap, PortMap, Devmap time.Duration
	// Guarded and IPv6Off: from the last port's joining until every port
	// has its endpoint program and its IPv6 off, work the daemon does
	// after serving the ports (polled every 200 ms after convergence).
	Guarded, IPv6Off time.Duration
	// FarUp: from the last port's joining until every far end of the
	// phase is operationally up (the kernel's link work; until then its
	// container cannot send), polled every 200 ms after convergence.
	FarUp   time.Duration
	CPU     time.Duration // daemon CPU from the first join to convergence
	Settled time.Duration // daemon CPU from the first join until it is idle
	RSS     int64         // after it, settled
}

type scaleRun struct {
	RSS0     int64
	Phases   []phase
	Answered int // valid NAs, of all addresses
	Wrong    []string
	NSRounds int
	NSTime   time.Duration
	Reached  int
	Pinged   int
	PingTime time.Duration
	Note     []string
}

// run starts a daemon on the empty bridges, joins the first networks'
// ports and waits for convergence, then the others', measuring each; the
// last run keeps the daemon for the gates, the others stop it, clean up
// and take the ports off the bridges.
func (st *scaleTopo) run(keep bool) (scaleRun, error) {
	var r scaleRun
	st.runs++
	d, err := st.startDaemon(st.runs)
	if err != nil {
		return r, err
	}
	time.Sleep(time.Second)
	ps, err := readProc(d.pid)
	if err != nil {
		return r, err
	}
	r.RSS0 = ps.RSS
	for _, ph := range [][2]int{{0, st.p.Split}, {st.p.Split, st.p.Nets}} {
		if ph[0] >= ph[1] {
			continue
		}
		f, err := st.phase(d, ph[0], ph[1])
		if err != nil {
			return r, err
		}
		r.Phases = append(r.Phases, f)
	}
	if keep {
		st.keep = d
		return r, nil
	}
	st.stopDaemon(d)
	st.join(0, st.p.Nets, false)
	return r, nil
}

// phase joins the ports of networks [from, to) and waits until v6dp has
// every endpoint up to network to in the proxy entries and the maps.
func (st *scaleTopo) phase(d *scaleDaemon, from, to int) (phase, error) {
	var f phase
	want := map[netip.Addr]int{} // address to port ifindex
	ports := map[uint32]bool{}
	for _, p := range st.Ports {
		if p.Net < to {
			want[p.Addr] = p.Index
			ports[uint32(p.Index)] = true
		}
	}
	f.Endpoints = len(want)
	before, err := readProc(d.pid)
	if err != nil {
		return f, err
	}
	start := time.Now()
	st.join(from, to, true)
	joined := time.Now()
	f.Join = joined.Sub(start)
	c, err := openScaleCheck(st.PinDir)
	if err != nil {
		return f, err
	}
	defer c.close()
	deadline := joined.Add(3 * time.Minute)
	var last string
	for {
		now := time.Now()
		done, why := true, ""
		if f.Proxy == 0 {
			if n, err := st.proxyCount(want); err != nil {
				return f, err
			} else if n == len(want) {
				f.Proxy = now.Sub(joined)
			} else {
				done, why = false, fmt.Sprintf("%d of %d proxy entries", n, len(want))
			}
		}
		if done && f.EPMap == 0 {
			if n := c.endpoints(want); n == len(want) {
				f.EPMap = now.Sub(joined)
			} else {
				done, why = false, fmt.Sprintf("%d of %d endpoints map entries", n, len(want))
			}
		}
		if done && f.PortMap == 0 {
			if n := c.portEntries(ports); n == len(ports) {
				f.PortMap = now.Sub(joined)
			} else {
				done, why = false, fmt.Sprintf("%d of %d ports map entries", n, len(ports))
			}
		}
		if done && f.Devmap == 0 {
			if n := c.devmapEntries(ports); n == len(ports) {
				f.Devmap = now.Sub(joined)
			} else {
				done, why = false, fmt.Sprintf("%d of %d devmap entries", n, len(ports))
			}
		}
		if done {
			f.Converged = now.Sub(joined)
			break
		}
		last = why
		select {
		case <-d.exited:
			b, _ := os.ReadFile(d.log.Name())
			return f, fmt.Errorf("daemon exited: %s", lastLinesOf(string(b), 12))
		default:
		}
		if now.After(deadline) {
			return f, fmt.Errorf("not converged 3 minutes after the last of %d ports joined: %s", len(want), last)
		}
		time.Sleep(20 * time.Millisecond)
	}
	conv, err := readProc(d.pid)
	if err != nil {
		return f, err
	}
	f.CPU = conv.CPU - before.CPU
	if err := st.portWork(&f, joined, from, to); err != nil {
		return f, err
	}
	// Settled: no CPU used for a second (announcements are sent a second
	// apart, three rounds).
	prev := conv
	for idle := 0; idle < 10; {
		time.Sleep(200 * time.Millisecond)
		now, err := readProc(d.pid)
		if err != nil {
			return f, err
		}
		if now.CPU-prev.CPU <= 10*time.Millisecond {
			idle++
		} else {
			idle = 0
		}
		prev = now
	}
	f.Settled = prev.CPU - before.CPU
	f.RSS = prev.RSS
	return f, nil
}

// portWork waits until every port of networks [from, to) has its endpoint
// program (a v6dp tc filter at its ingress) and its IPv6 off, and records
// when each was complete, from joined.
func (st *scaleTopo) portWork(f *phase, joined time.Time, from, to int) error {
	unguarded, on := map[int]bool{}, map[string]bool{}
	for _, p := range st.Ports {
		if p.Net >= from && p.Net < to {
			unguarded[p.Index], on[p.HostIf] = true, true
		}
	}
	far := st.farEnds(from, to)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if err := st.farUp(far); err != nil {
			return err
		}
		err := st.inHost(func(h *netlink.Handle) error {
			for idx := range unguarded {
				if topo.PortGuarded(h, idx) {
					delete(unguarded, idx)
				}
			}
			for name := range on {
				if off, err := topo.IPv6Off(name); err == nil && off {
					delete(on, name)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		now := time.Now()
		if len(unguarded) == 0 && f.Guarded == 0 {
			f.Guarded = now.Sub(joined)
		}
		if len(on) == 0 && f.IPv6Off == 0 {
			f.IPv6Off = now.Sub(joined)
		}
		if len(far) == 0 && f.FarUp == 0 {
			f.FarUp = now.Sub(joined)
		}
		if f.Guarded > 0 && f.IPv6Off > 0 && f.FarUp > 0 {
			return nil
		}
		if now.After(deadline) {
			return fmt.Errorf("3 minutes after convergence: %d ports without their program, %d with IPv6 on, far ends not up in %d namespaces",
				len(unguarded), len(on), len(far))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// farEnds returns the far ends of networks [from, to), by namespace.
func (st *scaleTopo) farEnds(from, to int) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, p := range st.Ports {
		if p.Net >= from && p.Net < to {
			if out[p.NS] == nil {
				out[p.NS] = map[string]bool{}
			}
			out[p.NS][p.PeerIf] = true
		}
	}
	return out
}

// farUp drops from far the far ends that are operationally up now (one
// link dump of each namespace that still has one down).
func (st *scaleTopo) farUp(far map[string]map[string]bool) error {
	for ns, peers := range far {
		err := topo.InNS(ns, func() error {
			h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
			if err != nil {
				return err
			}
			defer h.Close()
			links, err := h.LinkList()
			for _, l := range links {
				if a := l.Attrs(); a.OperState == netlink.OperUp {
					delete(peers, a.Name)
				}
			}
			return err
		})
		if err != nil {
			return err
		}
		if len(peers) == 0 {
			delete(far, ns)
		}
	}
	return nil
}

// kernelAlone joins the ports as run does, with no daemon: the stock
// kernel's own time for the same bursts (the ports' IPv6 on, as an engine
// leaves it), to read the daemon's columns against. One run, after the
// daemon's: run first, its minute of link work on ports with IPv6 on
// slowed the daemon's first run that followed (join 12.9 s, not 6.8).
func (st *scaleTopo) kernelAlone() []phase {
	var out []phase
	for _, ph := range [][2]int{{0, st.p.Split}, {st.p.Split, st.p.Nets}} {
		if ph[0] >= ph[1] {
			continue
		}
		f := phase{}
		for _, p := range st.Ports {
			if p.Net < ph[1] {
				f.Endpoints++
			}
		}
		far := st.farEnds(ph[0], ph[1])
		start := time.Now()
		st.join(ph[0], ph[1], true)
		f.Join = time.Since(start)
		if took, err := st.waitFarUp(far, 3*time.Minute); err == nil {
			f.FarUp = took // left 0 (not within 3m) on a timeout
		} else {
			st.b.Logf("kernel alone: %v", err)
		}
		out = append(out, f)
	}
	st.join(0, st.p.Nets, false)
	return out
}

// proxyCount counts the wanted addresses that have a kernel proxy entry on
// the host's uplink.
func (st *scaleTopo) proxyCount(want map[netip.Addr]int) (int, error) {
	n := 0
	err := st.inHost(func(h *netlink.Handle) error {
		list, err := h.NeighProxyList(st.uplinkIndex, netlink.FAMILY_V6)
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			return err
		}
		for _, e := range list {
			if a, ok := netip.AddrFromSlice(e.IP); ok && e.Flags&netlink.NTF_PROXY != 0 {
				if _, ok := want[a.Unmap()]; ok {
					n++
				}
			}
		}
		return nil
	})
	return n, err
}

// scaleCheck reads the daemon's pinned maps.
type scaleCheck struct {
	eps, ports, devmap *ebpf.Map
}

func openScaleCheck(pin string) (*scaleCheck, error) {
	c := &scaleCheck{}
	var err error
	for _, m := range []struct {
		name string
		to   **ebpf.Map
	}{{"v6dp_endpoints", &c.eps}, {"v6dp_ports", &c.ports}, {"v6dp_devmap", &c.devmap}} {
		if *m.to, err = ebpf.LoadPinnedMap(filepath.Join(pin, m.name), &ebpf.LoadPinOptions{ReadOnly: true}); err != nil {
			c.close()
			return nil, fmt.Errorf("pinned map %s: %w", m.name, err)
		}
	}
	return c, nil
}

func (c *scaleCheck) close() {
	for _, m := range []*ebpf.Map{c.eps, c.ports, c.devmap} {
		if m != nil {
			m.Close()
		}
	}
}

// endpoints counts the wanted addresses whose entry names their port.
func (c *scaleCheck) endpoints(want map[netip.Addr]int) int {
	n := 0
	var k [16]byte
	v := make([]byte, c.eps.ValueSize())
	it := c.eps.Iterate()
	for it.Next(&k, &v) {
		// struct endpoint_info starts with the ifindex.
		if idx, ok := want[netip.AddrFrom16(k)]; ok && int(binary.NativeEndian.Uint32(v)) == idx {
			n++
		}
	}
	return n
}

func (c *scaleCheck) portEntries(want map[uint32]bool) int { return countKeys(c.ports, want) }

func (c *scaleCheck) devmapEntries(want map[uint32]bool) int { return countKeys(c.devmap, want) }

func countKeys(m *ebpf.Map, want map[uint32]bool) int {
	n := 0
	var k, next uint32
	for first := true; ; first = false {
		var err error
		if first {
			err = m.NextKey(nil, &next)
		} else {
			err = m.NextKey(&k, &next)
		}
		if err != nil {
			return n
		}
		if want[next] {
			n++
		}
		k = next
	}
}

// gates checks, with the last run's daemon at full size, that every
// address is answered and every container reachable from the router.
func (st *scaleTopo) gates(r *scaleRun) []string {
	var failed []string
	// The kernel's own work first: after a burst of thousands of links
	// coming up, the kernel marks each far end operationally up (and
	// lets it send) in its linkwatch work, which lags behind; a far end
	// not yet up drops what its container sends, v6dp or not.
	if took, err := st.farEndsUp(time.Minute); err != nil {
		failed = append(failed, err.Error())
	} else {
		r.Note = append(r.Note, fmt.Sprintf("every far end operationally up %s after the gates began waiting", fmtDur(took)))
	}
	// The neighbour table is one for all namespaces: when it is full
	// (entries of namespaces an earlier run left still being freed, say)
	// the router's kernel cannot resolve a container, v6dp or not.
	entries0, fulls0, statErr := ndiscStats()
	answered, wrong, rounds, took, err := st.solicitAll()
	r.Answered, r.Wrong, r.NSRounds, r.NSTime = answered, wrong, rounds, took
	switch {
	case err != nil:
		failed = append(failed, "solicitations: "+err.Error())
	case answered < len(st.Ports):
		failed = append(failed, fmt.Sprintf("%d of %d addresses answered", answered, len(st.Ports)))
	}
	if len(wrong) > 0 {
		failed = append(failed, fmt.Sprintf("%d wrong answers, e.g. %s", len(wrong), wrong[0]))
	}
	reached, missed, took, err := st.pingAll()
	r.Reached, r.Pinged, r.PingTime = reached, len(st.Ports), took
	if entries1, fulls1, err := ndiscStats(); err == nil && statErr == nil {
		r.Note = append(r.Note, fmt.Sprintf("kernel IPv6 neighbour table: %d entries when the gates began, %d after; full %d times during them (ndisc_cache table_fulls)",
			entries0, entries1, fulls1-fulls0))
	}
	switch {
	case err != nil:
		failed = append(failed, "echo requests: "+err.Error())
	case reached < len(st.Ports):
		failed = append(failed, fmt.Sprintf("%d of %d containers reachable; not: %s", reached, len(st.Ports), st.missing(missed)))
	}
	if out, err := st.v6dp("status", "--json"); err == nil {
		var s statusReport
		if json.Unmarshal([]byte(out), &s) == nil {
			r.Note = append(r.Note, fmt.Sprintf("dataplane %s (%s): %d proxy entries, %d BPF endpoints", s.Dataplane, s.Attach, s.ProxyEntries, s.BPFEntries))
			if len(failed) > 0 {
				// What the programs did, for the failure's reader.
				var nz []string
				for k, v := range s.Counters {
					if v > 0 {
						nz = append(nz, fmt.Sprintf("%s=%d", k, v))
					}
				}
				sort.Strings(nz)
				r.Note = append(r.Note, "BPF counters: "+strings.Join(nz, " "))
			}
		}
	}
	if len(missed) > 0 {
		// The router's neighbour entry and one kernel ping for the first
		// few that were not reached.
		for _, i := range missed[:min(3, len(missed))] {
			p := st.Ports[i]
			neigh, _ := st.Run(st.Router, "ip", "-6", "neigh", "show", p.Addr.String())
			ping, perr := st.Run(st.Router, "ping", "-c", "1", "-W", "2", p.Addr.String())
			route, _ := st.Run(p.NS, "ip", "-6", "route", "get", routerAddr, "from", p.Addr.String())
			gw, _ := st.Run(p.NS, "ip", "-6", "neigh", "show", "dev", p.PeerIf)
			tc, _ := st.Run(st.Host, "tc", "-s", "filter", "show", "dev", p.HostIf, "ingress")
			r.Note = append(r.Note, fmt.Sprintf("port %s filters: %q", p.HostIf, strings.Join(strings.Fields(tc), " ")))
			var key [4]byte
			binary.NativeEndian.PutUint32(key[:], uint32(p.Index))
			args := []string{"-j", "map", "lookup", "pinned", st.PinDir + "/v6dp_ports", "key"}
			for _, b := range key {
				args = append(args, strconv.Itoa(int(b)))
			}
			if out, err := exec.Command("bpftool", args...).CombinedOutput(); err == nil || len(out) > 0 {
				r.Note = append(r.Note, fmt.Sprintf("port %s entry: %s", p.HostIf, strings.Join(strings.Fields(string(out)), " ")))
			}
			r.Note = append(r.Note, fmt.Sprintf("not reached %s (%s): router neigh %q; ping again: %v %q; its route %q; its neighbours %q",
				p.Addr, p.HostIf, strings.TrimSpace(neigh), perr, lastLinesOf(ping, 2), strings.TrimSpace(route), strings.TrimSpace(gw)))
		}
		for _, m := range []string{"v6dp_networks", "v6dp_uplink_cfg"} {
			out, _ := exec.Command("bpftool", "map", "dump", "pinned", st.PinDir+"/"+m).CombinedOutput()
			var keep []string
			for _, l := range strings.Split(string(out), "\n") {
				if strings.Contains(l, "bridge_ifindex") || strings.Contains(l, "flags") || strings.Contains(l, "bridge_mac") || strings.Contains(l, "\"key\"") || strings.Contains(l, "key:") {
					keep = append(keep, strings.TrimSpace(l))
				}
			}
			r.Note = append(r.Note, m+": "+strings.Join(keep[:min(len(keep), 80)], " "))
		}
	}
	return failed
}

// farEndsUp waits until every far end is operationally up.
func (st *scaleTopo) farEndsUp(limit time.Duration) (time.Duration, error) {
	return st.waitFarUp(st.farEnds(0, st.p.Nets), limit)
}

// waitFarUp waits until every far end of far is operationally up (far is
// emptied), for at most limit, and returns how long that took.
func (st *scaleTopo) waitFarUp(far map[string]map[string]bool, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	for {
		if err := st.farUp(far); err != nil {
			return 0, err
		}
		if len(far) == 0 {
			return time.Since(start), nil
		}
		if time.Since(start) > limit {
			down := 0
			for _, peers := range far {
				down += len(peers)
			}
			return 0, fmt.Errorf("%d far ends not operationally up after %s", down, limit)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// scaleRounds is how often an address that got no answer is asked again.
const scaleRounds = 3

// solicitAll sends one multicast NS from the router for every address
// (prebuilt frames on a packet socket, 5,000 a second: within the
// responder's default limit of 10,000 a second from one source) and
// validates every Neighbor Advertisement that comes back whole (RFC 4861
// 7.1.2, and a proxy's answer: S set, O clear, R set, the host's MAC as
// TLLA and source, unicast to the router). Addresses that got no valid
// answer are asked again, up to scaleRounds rounds in all.
func (st *scaleTopo) solicitAll() (answered int, wrong []string, rounds int, took time.Duration, err error) {
	index := make(map[netip.Addr]int, len(st.Ports))
	frames := make([][]byte, len(st.Ports))
	for i, p := range st.Ports {
		index[p.Addr] = i
		if frames[i], err = nsFrame(st.RouterMAC, routerAddr6(), p.Addr); err != nil {
			return 0, nil, 0, 0, err
		}
	}
	var fd, ifindex int
	err = topo.InNS(st.Router, func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		ifindex = ifi.Index
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_IPV6))); err != nil {
			return err
		}
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20)
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IPV6), Ifindex: ifindex})
	})
	if err != nil {
		return 0, nil, 0, 0, err
	}
	defer unix.Close(fd)
	valid := make([]bool, len(st.Ports))
	var seenWrong []string
	// read takes what has arrived, waiting up to wait for more.
	read := func(wait time.Duration) {
		buf := make([]byte, 2048)
		deadline := time.Now().Add(wait)
		for {
			left := time.Until(deadline)
			if left < 0 {
				left = 0
			}
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			if n, _ := unix.Poll(pfd, int(left/time.Millisecond)); n <= 0 {
				return
			}
			n, from, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
			if err != nil {
				continue
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
				continue
			}
			a := topo.ParseNA(buf[:n])
			if a == nil || a.Dest.IsMulticast() && !a.NA.Solicited && len(a.RFC4861()) == 0 {
				continue // not an NA, or a well-formed announcement
			}
			i, ok := index[a.NA.TargetAddress]
			if !ok {
				seenWrong = append(seenWrong, fmt.Sprintf("NA for %s, no container's", a.NA.TargetAddress))
				continue
			}
			w := topo.Expect{Target: st.Ports[i].Addr, To: routerAddr6(), ToMAC: st.RouterMAC, HostMAC: st.HostMAC, NeedTLLA: true, Router: true}
			if err := a.Check(w); err != nil {
				seenWrong = append(seenWrong, err.Error())
				continue
			}
			valid[i] = true
		}
	}
	start := time.Now()
	to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IPV6), Ifindex: ifindex}
	for rounds = 1; rounds <= scaleRounds; rounds++ {
		sent := 0
		for i := range frames {
			if valid[i] {
				continue
			}
			if err := unix.Sendto(fd, frames[i], 0, to); err != nil {
				return 0, nil, rounds, 0, fmt.Errorf("send: %w", err)
			}
			if sent++; sent%250 == 0 {
				read(50 * time.Millisecond)
			}
		}
		read(time.Second)
		answered = 0
		for _, v := range valid {
			if v {
				answered++
			}
		}
		if answered == len(valid) {
			break
		}
	}
	return answered, seenWrong, min(rounds, scaleRounds), time.Since(start), nil
}

// pingAll sends one echo request from the router to every container (a
// raw ICMPv6 socket, 2,000 a second) and counts the containers that
// replied; those that did not are asked again, up to scaleRounds rounds.
func (st *scaleTopo) pingAll() (reached int, missed []int, took time.Duration, err error) {
	index := make(map[netip.Addr]int, len(st.Ports))
	for i, p := range st.Ports {
		index[p.Addr] = i
	}
	var fd int
	err = topo.InNS(st.Router, func() error {
		if fd, err = unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMPV6); err != nil {
			return err
		}
		var f unix.ICMPv6Filter
		for i := range f.Data {
			f.Data[i] = ^uint32(0)
		}
		f.Data[129>>5] &^= 1 << (129 & 31) // echo replies only
		if err := unix.SetsockoptICMPv6Filter(fd, unix.SOL_ICMPV6, unix.ICMPV6_FILTER, &f); err != nil {
			return err
		}
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20)
		return nil
	})
	if err != nil {
		return 0, nil, 0, err
	}
	defer unix.Close(fd)
	const id = 0x6d70
	ok := make([]bool, len(st.Ports))
	read := func(wait time.Duration) {
		buf := make([]byte, 2048)
		deadline := time.Now().Add(wait)
		for {
			left := time.Until(deadline)
			if left < 0 {
				left = 0
			}
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			if n, _ := unix.Poll(pfd, int(left/time.Millisecond)); n <= 0 {
				return
			}
			n, from, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
			if err != nil || n < 8 || buf[0] != 129 || binary.BigEndian.Uint16(buf[4:6]) != id {
				continue
			}
			sa, isV6 := from.(*unix.SockaddrInet6)
			if !isV6 {
				continue
			}
			if i, known := index[netip.AddrFrom16(sa.Addr)]; known && int(binary.BigEndian.Uint16(buf[6:8])) == i&0xffff {
				ok[i] = true
			}
		}
	}
	start := time.Now()
	for round := 1; round <= scaleRounds; round++ {
		sent := 0
		for i, p := range st.Ports {
			if ok[i] {
				continue
			}
			msg := make([]byte, 16)
			msg[0] = 128
			binary.BigEndian.PutUint16(msg[4:], id)
			binary.BigEndian.PutUint16(msg[6:], uint16(i))
			binary.BigEndian.PutUint64(msg[8:], uint64(i))
			// A failed send (the router's neighbour queue full) is
			// tried again next round.
			_ = unix.Sendto(fd, msg, 0, &unix.SockaddrInet6{Addr: p.Addr.As16()})
			if sent++; sent%250 == 0 {
				read(125 * time.Millisecond)
			}
		}
		read(2 * time.Second)
		reached = 0
		for _, v := range ok {
			if v {
				reached++
			}
		}
		if reached == len(ok) {
			break
		}
	}
	for i, v := range ok {
		if !v {
			missed = append(missed, i)
		}
	}
	return reached, missed, time.Since(start), nil
}

// missing describes the containers of idxs: how many on each network and
// the first few.
func (st *scaleTopo) missing(idxs []int) string {
	per := map[string]int{}
	var first []string
	for _, i := range idxs {
		p := st.Ports[i]
		per[st.Nets[p.Net].Bridge]++
		if len(first) < 8 {
			first = append(first, fmt.Sprintf("%s (%s %s/%s)", p.Addr, p.HostIf, p.NS, p.PeerIf))
		}
	}
	return fmt.Sprintf("%v, e.g. %s", per, strings.Join(first, ", "))
}

// writeScale prints the case's table.
func writeScale(w *strings.Builder, p scaleParams, tuning string, alone []phase, runs []scaleRun, failed []string) {
	n := p.Nets * p.PerNet
	fmt.Fprintf(w, "\nScale: %d networks of %d containers (%d endpoints; far ends %d to a namespace), one daemon, --dataplane auto; %s for the run\n",
		p.Nets, p.PerNet, n, p.PerNS, tuning)
	fmt.Fprintf(w, "Times from the last port's joining its bridge to every entry found (polled every 20 ms; guarded, ipv6 off, far ends up: every port with its program, with its IPv6 off, every far end operationally up, polled every 200 ms after); medians of %d runs (min-max); CPU is the daemon's utime+stime\n", len(runs))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "endpoints\tjoined\tports join\tconverged\tproxy\tendpoints map\tports map\tdevmap\tguarded\tipv6 off\tfar ends up\tCPU to converge\tCPU until idle\tRSS\t")
	ms := func(v float64) string { return fmtDur(time.Duration(v)) }
	mib := func(v float64) string { return fmt.Sprintf("%.1f MiB", v/(1<<20)) }
	for i := 0; len(runs) > 0 && i < len(runs[0].Phases); i++ {
		var join, conv, px, ep, pm, dm, gd, off, up, cpu, idle, rss []float64
		for _, r := range runs {
			if i >= len(r.Phases) {
				continue
			}
			f := r.Phases[i]
			join, conv = append(join, float64(f.Join)), append(conv, float64(f.Converged))
			px, ep, pm, dm = append(px, float64(f.Proxy)), append(ep, float64(f.EPMap)), append(pm, float64(f.PortMap)), append(dm, float64(f.Devmap))
			gd, off, up = append(gd, float64(f.Guarded)), append(off, float64(f.IPv6Off)), append(up, float64(f.FarUp))
			cpu, idle, rss = append(cpu, float64(f.CPU)), append(idle, float64(f.Settled)), append(rss, float64(f.RSS))
		}
		prev := 0
		if i > 0 {
			prev = runs[0].Phases[i-1].Endpoints
		}
		f := runs[0].Phases[i]
		fmt.Fprintf(tw, "%d\t+%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", f.Endpoints, f.Endpoints-prev,
			spreadOf(join).format(ms), spreadOf(conv).format(ms), spreadOf(px).format(ms), spreadOf(ep).format(ms),
			spreadOf(pm).format(ms), spreadOf(dm).format(ms), spreadOf(gd).format(ms), spreadOf(off).format(ms),
			spreadOf(up).format(ms), spreadOf(cpu).format(ms), spreadOf(idle).format(ms), spreadOf(rss).format(mib))
	}
	for i, f := range alone {
		prev := 0
		if i > 0 {
			prev = alone[i-1].Endpoints
		}
		up := "not within 3m"
		if f.FarUp > 0 {
			up = fmtDur(f.FarUp)
		}
		fmt.Fprintf(tw, "kernel alone: %d\t+%d\t%s\t\t\t\t\t\t\t\t%s\t\t\t\t\n", f.Endpoints, f.Endpoints-prev, fmtDur(f.Join), up)
	}
	tw.Flush()
	if len(alone) > 0 {
		fmt.Fprintln(w, "kernel alone: the same joins with no daemon (one run, after the daemon's): the ports keep IPv6 on, as an engine leaves them")
	}
	var rss0 []float64
	for _, r := range runs {
		rss0 = append(rss0, float64(r.RSS0))
	}
	if len(runs) > 0 && len(runs[0].Phases) > 0 {
		s0 := spreadOf(rss0).Median
		line := fmt.Sprintf("daemon RSS: %s at 0 endpoints", mib(s0))
		prevN, prevRSS := 0, s0
		for i := range runs[0].Phases {
			var rss []float64
			for _, r := range runs {
				if i < len(r.Phases) {
					rss = append(rss, float64(r.Phases[i].RSS))
				}
			}
			m, e := spreadOf(rss).Median, runs[0].Phases[i].Endpoints
			line += fmt.Sprintf(", %s at %d (%+.0f bytes per endpoint from %d)", mib(m), e, (m-prevRSS)/float64(e-prevN), prevN)
			prevN, prevRSS = e, m
		}
		fmt.Fprintln(w, line)
	}
	if len(runs) > 0 {
		r := runs[len(runs)-1]
		fmt.Fprintf(w, "answers: %d of %d addresses got a valid NA (one multicast NS each from the router, %d round(s), %s); %d wrong\n",
			r.Answered, n, r.NSRounds, fmtDur(r.NSTime), len(r.Wrong))
		fmt.Fprintf(w, "reachable: %d of %d containers answered an echo request from the router (%s)\n", r.Reached, r.Pinged, fmtDur(r.PingTime))
		for _, s := range r.Note {
			fmt.Fprintln(w, "note: "+s)
		}
	}
	for _, f := range failed {
		fmt.Fprintln(w, "FAILED: "+f)
	}
}

// ndiscStats reads the kernel's IPv6 neighbour table statistics: its
// entries (all namespaces) and how often it was full, summed over CPUs.
func ndiscStats() (entries, tableFulls uint64, err error) {
	b, err := os.ReadFile("/proc/net/stat/ndisc_cache")
	if err != nil {
		return 0, 0, err
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 2 {
		return 0, 0, fmt.Errorf("ndisc_cache: no per-CPU lines")
	}
	head := strings.Fields(lines[0])
	col := map[string]int{}
	for i, h := range head {
		col[h] = i
	}
	ei, ok1 := col["entries"]
	fi, ok2 := col["table_fulls"]
	if !ok1 || !ok2 {
		return 0, 0, fmt.Errorf("ndisc_cache: no entries or table_fulls column")
	}
	for i, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != len(head) {
			return 0, 0, fmt.Errorf("ndisc_cache: line %d has %d fields, want %d", i+2, len(f), len(head))
		}
		n, err := strconv.ParseUint(f[fi], 16, 64)
		if err != nil {
			return 0, 0, err
		}
		tableFulls += n
		if i == 0 {
			if entries, err = strconv.ParseUint(f[ei], 16, 64); err != nil {
				return 0, 0, err
			}
		}
	}
	return entries, tableFulls, nil
}
