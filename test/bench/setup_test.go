package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/v6dp/v6dp/test/topo"
)

// The seed's NDP-proxy topology: the router on-link for 2001:db8::/64, the
// host at 2001:db8::c001 on eth0, the containers behind docker0 with
// MAC-derived addresses in a /80 inside the router's on-link /64, so the
// router solicits them and the host has to answer by proxy.
const (
	routerAddr = "2001:db8::1"
	hostAddr   = "2001:db8::c001"
	ctPrefix   = "2001:db8:0:0:1::/80"
	// Containers per container namespace: the daemon resolves each bridge
	// port through its peer's namespace, and one namespace may hold many
	// peers, which makes a thousand containers a matter of seconds.
	perNS = 125
)

// port is one container: a bridge port in the host, its peer in a
// container namespace.
type port struct {
	HostIf, PeerIf, NS string
	MAC                net.HardwareAddr
	Addr               netip.Addr
}

// benchTopo is one topology, shared by every configuration for one N.
type benchTopo struct {
	*topo.Topo
	b            *testing.B
	N            int
	Router, Host string
	Ports        []port
	RouterMAC    net.HardwareAddr
	HostMAC      net.HardwareAddr
	Frames       [][]byte // NS frame per port, same order
	// Dead are addresses of the prefix no container has; the flood
	// solicits them too (after the live ones), and any answer for them is
	// a wrong one.
	Dead        []netip.Addr
	TrafgenConf string
	StateDir    string
	PinDir      string
	dir         string
	proxyDelay  string // the kernel's default, restored after each config
	handles     map[string]*netlink.Handle
}

func newBenchTopo(b *testing.B, n int) *benchTopo {
	b.Helper()
	start := time.Now()
	tp := topo.New(b)
	dir, err := topo.MkdirTemp("bench", tp.Tag)
	if err != nil {
		b.Fatal(err)
	}
	tp.Defer(func() { os.RemoveAll(dir) })
	bt := &benchTopo{Topo: tp, b: b, N: n, dir: dir, handles: map[string]*netlink.Handle{}}
	bt.StateDir = filepath.Join(bt.dir, "state")
	bt.PinDir = "/sys/fs/bpf/" + topo.Name("bench", tp.Tag)
	tp.Defer(func() {
		for _, h := range bt.handles {
			h.Close()
		}
		removePins(bt.PinDir)
	})
	bt.Router = tp.NS("router")
	bt.Host = tp.NS("host")
	tp.Veth(bt.Router, "eth0", bt.Host, "eth0")
	tp.Sysctl(bt.Router, "net.ipv6.conf.eth0.accept_dad", "0")
	tp.MustRun(bt.Router, "ip", "addr", "add", routerAddr+"/64", "dev", "eth0", "nodad")
	tp.MustRun(bt.Router, "ip", "link", "set", "eth0", "up")
	tp.Sysctl(bt.Host, "net.ipv6.conf.eth0.accept_dad", "0")
	tp.MustRun(bt.Host, "ip", "addr", "add", hostAddr+"/64", "dev", "eth0", "nodad")
	tp.MustRun(bt.Host, "ip", "link", "set", "eth0", "up")
	tp.MustRun(bt.Host, "ip", "-6", "route", "add", "default", "via", routerAddr, "dev", "eth0")
	bt.proxyDelay = tp.ReadSysctl(bt.Host, "net.ipv6.neigh.eth0.proxy_delay")
	bt.RouterMAC = bt.mac(bt.Router, "eth0")
	bt.HostMAC = bt.mac(bt.Host, "eth0")

	// A stock Docker host: forwarding on, docker0 with fe80::1 and the
	// route for the containers' prefix.
	tp.Sysctl(bt.Host, "net.ipv6.conf.all.forwarding", "1")
	tp.Sysctl(bt.Host, "net.ipv6.conf.default.forwarding", "1")
	tp.MustRun(bt.Host, "ip", "link", "add", "docker0", "type", "bridge")
	tp.Sysctl(bt.Host, "net.ipv6.conf.docker0.accept_dad", "0")
	tp.MustRun(bt.Host, "ip", "addr", "add", "fe80::1/64", "dev", "docker0", "nodad")
	tp.MustRun(bt.Host, "ip", "link", "set", "docker0", "up")
	tp.MustRun(bt.Host, "ip", "-6", "route", "add", ctPrefix, "dev", "docker0")

	pfx := netip.MustParsePrefix(ctPrefix).Addr().As16()
	var hostBatch strings.Builder
	nsBatch := map[string]*strings.Builder{}
	var nss []string
	for i := 0; i < n; i++ {
		if i%perNS == 0 {
			ns := tp.NS(fmt.Sprintf("ct%d", i/perNS))
			// Containers in a bench do not need DAD or router
			// solicitations; they would only add noise on the bridge.
			for _, k := range []string{"accept_dad", "dad_transmits", "router_solicitations"} {
				tp.Sysctl(ns, "net.ipv6.conf.default."+k, "0")
			}
			nss = append(nss, ns)
			nsBatch[ns] = &strings.Builder{}
		}
		ns := nss[len(nss)-1]
		id := i + 2 // Docker's first container MAC is ...:02
		mac := net.HardwareAddr{0x02, 0x42, 0xac, 0x11, byte(id >> 8), byte(id)}
		a := pfx
		copy(a[10:], mac)
		p := port{HostIf: fmt.Sprintf("vb%d", i), PeerIf: fmt.Sprintf("e%d", i), NS: ns, MAC: mac, Addr: netip.AddrFrom16(a)}
		bt.Ports = append(bt.Ports, p)
		fmt.Fprintf(&hostBatch, "link add %s type veth peer name %s address %s netns %s\n", p.HostIf, p.PeerIf, p.MAC, p.NS)
		fmt.Fprintf(&hostBatch, "link set %s master docker0 up\n", p.HostIf)
		fmt.Fprintf(nsBatch[ns], "link set %s up\naddr add %s/80 dev %s nodad\n", p.PeerIf, p.Addr, p.PeerIf)
	}
	bt.batch(bt.Host, hostBatch.String())
	for _, ns := range nss {
		bt.batch(ns, nsBatch[ns].String())
	}
	// Bridge ports keep IPv6 on as Docker leaves them: wait until their
	// link-local addresses are through DAD, so that setup traffic is over.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if out := tp.MustRun(bt.Host, "ip", "-6", "addr", "show", "tentative"); strings.TrimSpace(out) == "" {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}

	src := netip.MustParseAddr(routerAddr)
	var conf strings.Builder
	for _, p := range bt.Ports {
		f, err := nsFrame(bt.RouterMAC, src, p.Addr)
		if err != nil {
			b.Fatal(err)
		}
		bt.Frames = append(bt.Frames, f)
	}
	flood := append([][]byte(nil), bt.Frames...)
	for i := 0; i < max(1, n/16); i++ {
		mac := net.HardwareAddr{0x02, 0x42, 0xac, 0x12, byte(i >> 8), byte(i)}
		a := pfx
		copy(a[10:], mac)
		dead := netip.AddrFrom16(a)
		f, err := nsFrame(bt.RouterMAC, src, dead)
		if err != nil {
			b.Fatal(err)
		}
		bt.Dead = append(bt.Dead, dead)
		flood = append(flood, f)
	}
	conf.WriteString(trafgenConfig(flood))
	bt.TrafgenConf = filepath.Join(bt.dir, "flood.cfg")
	if err := os.WriteFile(bt.TrafgenConf, []byte(conf.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	b.Logf("N=%d: topology with %d containers in %d namespaces ready in %s", n, n, len(nss), time.Since(start).Round(time.Millisecond))
	return bt
}

// batch feeds commands to `ip -batch` in ns.
func (bt *benchTopo) batch(ns, cmds string) {
	bt.b.Helper()
	f := filepath.Join(bt.dir, "batch-"+ns)
	if err := os.WriteFile(f, []byte(cmds), 0o644); err != nil {
		bt.b.Fatal(err)
	}
	bt.MustRun(ns, "ip", "-batch", f)
}

func (bt *benchTopo) mac(ns, ifname string) net.HardwareAddr {
	bt.b.Helper()
	m, err := net.ParseMAC(strings.TrimSpace(bt.MustRun(ns, "cat", "/sys/class/net/"+ifname+"/address")))
	if err != nil {
		bt.b.Fatal(err)
	}
	return m
}

// handle is a netlink handle inside ns.
func (bt *benchTopo) handle(ns string) *netlink.Handle {
	bt.b.Helper()
	if h, ok := bt.handles[ns]; ok {
		return h
	}
	nh, err := netns.GetFromName(ns)
	if err != nil {
		bt.b.Fatal(err)
	}
	defer nh.Close()
	h, err := netlink.NewHandleAt(nh)
	if err != nil {
		bt.b.Fatal(err)
	}
	bt.handles[ns] = h
	return h
}

func (bt *benchTopo) stats(ns, ifname string) netlink.LinkStatistics {
	bt.b.Helper()
	l, err := bt.handle(ns).LinkByName(ifname)
	if err != nil {
		bt.b.Fatal(err)
	}
	return *l.Attrs().Statistics
}

// proxyEntries adds (or removes) one kernel proxy entry per container on
// the host's eth0, as the documented stock setup does.
func (bt *benchTopo) proxyEntries(add bool) {
	bt.b.Helper()
	verb := "add"
	if !add {
		verb = "del"
	}
	var s strings.Builder
	for _, p := range bt.Ports {
		fmt.Fprintf(&s, "neigh %s proxy %s dev eth0\n", verb, p.Addr)
	}
	bt.batch(bt.Host, s.String())
}

// kernelProxy switches the kernel's own proxy on (the stock Docker-host
// recipe) or off again.
func (bt *benchTopo) kernelProxy(on bool, delay string) {
	bt.b.Helper()
	v := "0"
	if on {
		v = "1"
	}
	bt.Sysctl(bt.Host, "net.ipv6.conf.all.proxy_ndp", v)
	bt.Sysctl(bt.Host, "net.ipv6.conf.eth0.proxy_ndp", v)
	if !on {
		delay = bt.proxyDelay
	}
	bt.Sysctl(bt.Host, "net.ipv6.neigh.eth0.proxy_delay", delay)
	bt.proxyEntries(on)
}

// removePins removes a bench pin directory (links, programs, maps).
func removePins(dir string) {
	if !strings.HasPrefix(dir, "/sys/fs/bpf/"+topo.Prefix) {
		return
	}
	_ = os.RemoveAll(dir)
}

// v6dp runs the v6dp CLI in the host namespace, with the host's bpffs.
func (bt *benchTopo) v6dp(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	full := append(args, "--state-dir", bt.StateDir)
	out, err := topo.Nsenter(ctx, bt.Host, append([]string{v6dpBin}, full...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("v6dp %s: %w: %s", strings.Join(full, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// statusReport is the part of `v6dp status --json` the bench reads.
type statusReport struct {
	Dataplane    string            `json:"dataplane"`
	Attach       string            `json:"attach"`
	Reason       string            `json:"reason"`
	ProxyEntries int               `json:"kernel_proxy_entries"`
	BPFEntries   int               `json:"bpf_endpoints"`
	Counters     map[string]uint64 `json:"counters"`
}

func (bt *benchTopo) status() (*statusReport, error) {
	out, err := bt.v6dp("status", "--json")
	if err != nil {
		return nil, err
	}
	var r statusReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return nil, fmt.Errorf("status --json: %w: %s", err, out)
	}
	return &r, nil
}

// daemon is a running `v6dp daemon` in the host namespace.
type daemon struct {
	cmd  *exec.Cmd
	log  *os.File
	stop func()
}

// startDaemon starts the daemon and waits until every container address
// is live (kernel proxy entries; BPF map entries too when a BPF dataplane
// is in use). stop must be called, which also runs `v6dp cleanup`.
func (bt *benchTopo) startDaemon(dataplane string, extra ...string) (*daemon, *statusReport, error) {
	d := &daemon{log: bt.LogFile("daemon-" + dataplane)}
	args := []string{"daemon", "--ipv6", "--fixed-cidr-v6", ctPrefix, "--uplink", "eth0", "--ndp-proxy",
		"--dataplane", dataplane, "--pin-dir", bt.PinDir, "--state-dir", bt.StateDir,
		"--netns-dirs", "/run/netns", "--resync-interval", "10m", "--log-level", "debug"}
	args = append(args, extra...)
	d.cmd = topo.Nsenter(context.Background(), bt.Host, append([]string{v6dpBin}, args...)...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		return nil, nil, err
	}
	exited := make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(exited) }()
	stopped := false
	bt.Defer(func() {
		if !stopped {
			bt.stopDaemon(d, exited)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-exited:
			b, _ := os.ReadFile(d.log.Name())
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			// The end of the log says why (a panic's first frames included).
			for i, l := range lines {
				if strings.HasPrefix(l, "panic:") {
					lines = lines[i:]
					break
				}
			}
			return nil, nil, fmt.Errorf("daemon exited: %s", strings.Join(lines[max(0, len(lines)-12):], " | "))
		default:
		}
		st, err := bt.status()
		if err == nil && st.ProxyEntries >= bt.N && (st.Dataplane == "kernel" || st.BPFEntries >= bt.N) {
			d.stop = func() { stopped = true; bt.stopDaemon(d, exited) }
			return d, st, nil
		}
		if time.Now().After(deadline) {
			return nil, nil, fmt.Errorf("daemon not ready after 60s: %+v %v", st, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (bt *benchTopo) stopDaemon(d *daemon, exited chan struct{}) {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = d.cmd.Process.Kill()
		<-exited
	}
	if out, err := bt.v6dp("cleanup"); err != nil {
		bt.b.Logf("v6dp cleanup: %v: %s", err, out)
	}
	removePins(bt.PinDir)
}

// startNDPPD runs ndppd in the host namespace with the configuration an
// operator writes for a Docker bridge: one rule for the containers' prefix,
// resolved on docker0 (it forwards the NS there and answers once a
// container answers, so only live addresses get answers).
func (bt *benchTopo) startNDPPD() (stop func(), err error) {
	conf := filepath.Join(bt.dir, "ndppd.conf")
	c := fmt.Sprintf("proxy eth0 {\n  router yes\n  timeout 500\n  ttl 30000\n  rule %s {\n    iface docker0\n  }\n}\n", ctPrefix)
	if err := os.WriteFile(conf, []byte(c), 0o644); err != nil {
		return nil, err
	}
	log := bt.LogFile("ndppd")
	cmd := exec.Command("ip", "netns", "exec", bt.Host, "ndppd", "-c", conf)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	done := false
	stop = func() {
		if done {
			return
		}
		done = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	bt.Defer(stop)
	return stop, nil
}
