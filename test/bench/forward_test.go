package bench

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/v6dp/v6dp/test/frame"
	"github.com/v6dp/v6dp/test/topo"
)

// The forwarding benchmark (issue 4) on the NDP bench's topology: the
// router has 2001:db8::/64 on-link and reaches the containers' /80 through
// the host's NDP proxy (the daemon runs --ndp-proxy in every row), as the
// seed does. The UDP flood does not depend on it (trafgen writes whole
// frames, addressed to the host's MAC); TCP does (the router resolves the
// container's address and gets the host's MAC by proxy).
//
// Every container namespace has a UDP socket on the flood's port that is
// never read: each datagram reaches UDP, is counted and dropped at the full
// receive buffer. Nothing answers (no ICMPv6 port unreachable flowing back)
// and the receive path is the one an application would see.

const (
	fwdPort      = 9  // discard
	fwdFrameLen  = 80 // bytes on the wire without FCS, as in the known figures
	fwdWarmTries = 5
)

type fwdParams struct {
	Ns         []int
	Runs       int
	Flood, TCP time.Duration
	CPU        int // trafgen's CPU
}

func forwardParams() fwdParams {
	p := fwdParams{Ns: []int{64, 1000}, Runs: 3, Flood: 2 * time.Second, TCP: 2 * time.Second, CPU: runtime.NumCPU() - 1}
	if os.Getenv("V6DP_BENCH_QUICK") == "1" {
		p.Ns, p.Runs, p.Flood, p.TCP = []int{8}, 1, time.Second, time.Second
	}
	p.Ns, p.Runs = benchNs(p.Ns), benchRuns(p.Runs)
	return p
}

// fwdConfig is one dataplane: the kernel as an operator sets it up, or the
// daemon with a --dataplane. Peer puts an XDP program on the router's end
// of the uplink (as a physical NIC behaves towards native XDP).
type fwdConfig struct {
	Name, Dataplane string
	Peer            bool
}

// fwdConfigs are the rows; V6DP_BENCH_ROWS picks some.
func fwdConfigs() []fwdConfig {
	var out []fwdConfig
	for _, c := range []fwdConfig{
		{Name: "kernel-tuned"},
		{Name: "v6dp-default", Dataplane: "auto"},
		{Name: "v6dp-default-peer", Dataplane: "auto", Peer: true},
		{Name: "v6dp-kernel", Dataplane: "kernel"},
		{Name: "v6dp-tc", Dataplane: "tc"},
		{Name: "v6dp-xdp", Dataplane: "xdp"},
		{Name: "v6dp-xdp-peer", Dataplane: "xdp", Peer: true},
	} {
		if pick(c.Name) {
			out = append(out, c)
		}
	}
	return out
}

// fwdRun is one run's figures. Rates are per second.
type fwdRun struct {
	// The flood into the containers' own stacks: sent by trafgen (router
	// eth0 tx + tx drops), intact at the containers' eth0, reaching UDP
	// there (delivered or dropped at the full buffer; not counting
	// checksum errors), counted by BPF as redirected.
	Offered, Delivered, UDPIn, Redirected float64
	// The same flood with the containers dropping (intact ones) at
	// their eth0's TC ingress: their stacks cost nothing, what is left is
	// the host's; HostCost is its time per packet above the floor.
	Sunk     float64
	HostCost time.Duration
	// Datagrams that arrived changed, in both floods; containers that got
	// no intact one in the first.
	Bad, Starved uint64
	TCP          float64 // bits/s received, iperf3 router to one container
	TCPRed       uint64  // fwd_redirected during the TCP run
}

// fwdRow is one dataplane at one N.
type fwdRow struct {
	Config string
	N      int
	// Ran is what ran, from `v6dp status --json`; BPF when it is not the
	// kernel path.
	Ran    string
	BPF    bool
	Runs   []fwdRun
	Err    string
	Failed []string // the correctness gate's findings: FAILED, make bench fails
	Notes  []string
}

func (r fwdRow) spread(f func(fwdRun) float64) spread {
	var v []float64
	for _, x := range r.Runs {
		v = append(v, f(x))
	}
	return spreadOf(v)
}

// BenchmarkForward measures, on one topology per container count, how many
// packets per second each dataplane delivers intact from the router into
// the containers, its host cost per packet against the floor (the same
// flood dropped at the uplink's TC ingress, measured in the same run), and
// TCP throughput, and times the forwarding programs alone. A row that
// corrupts datagrams or loses containers is FAILED and fails the
// benchmark; figures never do.
func BenchmarkForward(b *testing.B) {
	p := forwardParams()
	tuning := raiseNeighTable(b, maxOf(p.Ns))
	var rows []fwdRow
	var progRows []progRow
	floors := map[int]spread{}
	for i, n := range p.Ns {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			ft := newFwdTopo(b, n)
			floor, err := ft.floor(p)
			if err != nil {
				b.Fatalf("floor: %v", err)
			}
			floors[n] = floor
			last := i == len(p.Ns)-1
			for _, c := range fwdConfigs() {
				b.Run(c.Name, func(b *testing.B) {
					ft.b = b
					r, pr := ft.measure(c, p, floor.Median, last)
					rows = append(rows, r)
					progRows = append(progRows, pr...)
					if len(r.Failed) > 0 {
						b.Errorf("%s N=%d FAILED: %s", c.Name, n, strings.Join(r.Failed, "; "))
					}
					if r.Err != "" {
						b.Errorf("%s N=%d: %s", c.Name, n, r.Err)
					}
					b.ReportMetric(0, "ns/op")
				})
			}
			ft.b = b
		})
	}
	var s strings.Builder
	writeFwdTable(&s, rows, progRows, p, floors, tuning)
	fmt.Print(s.String())
	b.Log("\n" + s.String())
}

// fwdTopo is the NDP bench's topology with what the forwarding bench adds.
type fwdTopo struct {
	*benchTopo
	HostMAC, BridgeMAC net.HardwareAddr
	NSs                []string  // container namespaces
	Flood              string    // trafgen config: one UDP frame per container
	sink               *sink     // the floor: drops at the uplink's TC ingress
	check              *udpCheck // intact datagrams at each container
}

func newFwdTopo(b *testing.B, n int) *fwdTopo {
	b.Helper()
	bt := newBenchTopo(b, n)
	ft := &fwdTopo{benchTopo: bt, HostMAC: bt.mac(bt.Host, "eth0")}
	seen := map[string]bool{}
	for _, p := range bt.Ports {
		if !seen[p.NS] {
			seen[p.NS] = true
			ft.NSs = append(ft.NSs, p.NS)
		}
	}
	src := netip.MustParseAddr(routerAddr)
	var frames [][]byte
	for _, p := range bt.Ports {
		frames = append(frames, udpFrame(ft.HostMAC, bt.RouterMAC, src, p.Addr, 64, fwdFrameLen))
	}
	var macs []net.HardwareAddr
	for _, p := range bt.Ports {
		macs = append(macs, p.MAC)
	}
	check, err := newUDPCheck(frames, macs)
	if err != nil {
		b.Fatalf("UDP check: %+v", err)
	}
	bt.Defer(check.Close)
	ft.check = check
	ft.Flood = filepath.Join(bt.dir, "udp.cfg")
	if err := os.WriteFile(ft.Flood, []byte(trafgenConfig(frames)), 0o644); err != nil {
		b.Fatal(err)
	}
	// The UDP sinks: one socket per container namespace, never read.
	for _, ns := range ft.NSs {
		var fd int
		err := topo.InNS(ns, func() error {
			var err error
			if fd, err = unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
				return err
			}
			return unix.Bind(fd, &unix.SockaddrInet6{Port: fwdPort})
		})
		if err != nil {
			b.Fatalf("UDP sink in %s: %v", ns, err)
		}
		bt.Defer(func() { unix.Close(fd) })
	}
	// The TCP container routes back to the router through the bridge's
	// fe80::1, from its own interface (the endpoint program checks that
	// a port sends only its own addresses).
	p0 := bt.Ports[0]
	bt.MustRun(p0.NS, "ip", "-6", "route", "add", routerAddr+"/128", "via", "fe80::1", "dev", p0.PeerIf)
	s, err := newSink()
	if err != nil {
		b.Fatalf("sink program: %v", err)
	}
	bt.Defer(s.Close)
	ft.sink = s
	return ft
}

// udpFrame is an Ethernet frame of size bytes carrying an IPv6 UDP
// datagram to fwdPort with a valid checksum.
func udpFrame(dstMAC, srcMAC net.HardwareAddr, src, dst netip.Addr, hop uint8, size int) []byte {
	const hdrs = 14 + 40 + 8
	payload := make([]byte, max(size-hdrs, 0))
	for i := range payload {
		payload[i] = byte(i)
	}
	udp := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(udp[0:2], 40000)
	binary.BigEndian.PutUint16(udp[2:4], fwdPort)
	binary.BigEndian.PutUint16(udp[4:6], uint16(8+len(payload)))
	udp = append(udp, payload...)
	// UDP sends a checksum of 0 as 0xffff (RFC 8200 8.1).
	c := frame.Checksum(src, dst, 17, udp)
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(udp[6:8], c)

	f := make([]byte, 0, hdrs+len(payload))
	f = append(f, dstMAC...)
	f = append(f, srcMAC...)
	f = append(f, 0x86, 0xdd, 0x60, 0, 0, 0)
	f = binary.BigEndian.AppendUint16(f, uint16(len(udp)))
	f = append(f, 17, hop)
	s, d := src.As16(), dst.As16()
	f = append(f, s[:]...)
	f = append(f, d[:]...)
	return append(f, udp...)
}

// measure runs one dataplane: set up, warm-up, then per run TCP, the flood
// into the containers' stacks and the flood they drop (host cost), each
// checked for corrupted datagrams and starved containers; the programs
// alone on the last N.
func (ft *fwdTopo) measure(c fwdConfig, p fwdParams, floor float64, progs bool) (r fwdRow, pr []progRow) {
	r = fwdRow{Config: c.Name, N: ft.N}
	var undo []func()
	defer func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}()
	if c.Peer {
		pass, err := ft.peerXDP()
		if err != nil {
			r.Err = "router XDP: " + err.Error()
			return
		}
		undo = append(undo, func() { pass.Close() })
		// Offloads stay at their defaults: native XDP on the veth hands
		// TCP and UDP, whose checksums the router's stack left partial,
		// to the kernel (fwd_pass_l4csum) rather than corrupt them.
	}
	daemon := c.Dataplane != ""
	if daemon {
		d, st, err := ft.startDaemon(c.Dataplane)
		if err != nil {
			r.Err = "daemon: " + err.Error()
			return
		}
		undo = append(undo, d.stop)
		r.Ran = st.Dataplane
		if st.Attach != "" {
			r.Ran += " (" + st.Attach + ")"
		}
		r.BPF = st.Dataplane != "kernel"
		if c.Dataplane != "auto" && c.Dataplane != st.Dataplane {
			r.Ran = "FELL BACK: " + r.Ran
			r.Notes = append(r.Notes, "asked for "+c.Dataplane+", status says "+st.Dataplane+": "+st.Reason)
		}
	} else {
		// The kernel as an operator sets it up for the router to reach
		// the containers: proxy entries (TCP resolves through them),
		// proxy_delay 0, IPv6 off on the ports.
		ft.kernelProxy(true, "0")
		ft.portsIPv6(false)
		undo = append(undo, func() { ft.portsIPv6(true); ft.kernelProxy(false, "") })
		r.Ran = "kernel forwarding, proxy_ndp, ports v6 off"
	}
	detach, err := ft.check.attach(ft)
	if err != nil {
		r.Err = "UDP check: " + err.Error()
		return
	}
	undo = append(undo, detach)

	if err := ft.warmUp(&r); err != nil {
		r.Err = err.Error()
		return
	}
	for run := 0; run < p.Runs; run++ {
		var x fwdRun
		bps, red, err := ft.tcp(p.TCP, r.BPF)
		if err != nil {
			// Once more: the first connection may meet a cold neighbour.
			r.Notes = append(r.Notes, fmt.Sprintf("run %d: TCP, first try (retried): %v", run+1, err))
			ft.debugTCP()
			if bps, red, err = ft.tcp(p.TCP, r.BPF); err != nil {
				r.Failed = addFailure(r.Failed, "TCP into a container failed: "+err.Error())
			}
		}
		x.TCP, x.TCPRed = bps, red
		for _, drop := range []bool{false, true} {
			if err := ft.check.setDrop(drop); err != nil {
				r.Err = err.Error()
				return
			}
			before, err := ft.check.read()
			if err != nil {
				r.Err = err.Error()
				return
			}
			f, err := ft.flood(p, func() (uint64, error) {
				c, err := ft.check.read()
				intact, _ := c.sum()
				return intact, err
			}, !drop)
			if err != nil {
				r.Err = "flood: " + err.Error()
				return
			}
			after, err := ft.check.read()
			if err != nil {
				r.Err = err.Error()
				return
			}
			for k := range after.intact {
				x.Bad += after.bad[k] - before.bad[k]
				if !drop && after.intact[k] == before.intact[k] {
					x.Starved++
				}
			}
			if drop {
				x.Sunk = f.Counted
				if x.Sunk > 0 && floor > 0 {
					x.HostCost = time.Duration((1/x.Sunk - 1/floor) * 1e9)
				}
			} else {
				x.Offered, x.Delivered, x.UDPIn, x.Redirected = f.Offered, f.Counted, f.UDPIn, f.Redirected
			}
		}
		r.Runs = append(r.Runs, x)
		if x.Bad > 0 {
			r.Failed = addFailure(r.Failed, "datagrams arrived changed (not as sent but for the Ethernet source and one hop)")
		}
		if x.Starved > 0 {
			r.Failed = addFailure(r.Failed, fmt.Sprintf("endpoints lost: %d containers received no intact datagram during a flood", x.Starved))
		}
		if daemon {
			if st, err := ft.status(); err != nil {
				r.Failed = addFailure(r.Failed, "status after the floods: "+err.Error())
			} else if st.ProxyEntries < ft.N || (r.BPF && st.BPFEntries < ft.N) {
				r.Failed = addFailure(r.Failed, fmt.Sprintf("endpoints lost: the daemon had %d proxy entries, %d BPF entries of %d", st.ProxyEntries, st.BPFEntries, ft.N))
			}
		}
	}
	if !r.BPF {
		if note := ft.neighbours(); note != "" {
			r.Notes = append(r.Notes, note)
		}
	}
	if progs && r.BPF {
		pr = ft.benchProgs(c.Name)
	}
	return
}

// floor is the rate at which the host drops the flood at its uplink's TC
// ingress (nothing else attached): the host's cost of receiving a packet
// at all, measured once per N and run, before the rows.
func (ft *fwdTopo) floor(p fwdParams) (spread, error) {
	var v []float64
	for run := 0; run < p.Runs; run++ {
		var l link.Link
		err := topo.InNS(ft.Host, func() error {
			ifi, err := net.InterfaceByName("eth0")
			if err != nil {
				return err
			}
			l, err = link.AttachTCX(link.TCXOptions{Interface: ifi.Index, Program: ft.sink.tc, Attach: ebpf.AttachTCXIngress, Anchor: link.Head()})
			return err
		})
		if err != nil {
			return spread{}, err
		}
		f, err := ft.flood(p, ft.sink.count, false)
		l.Close()
		if err != nil {
			return spread{}, err
		}
		v = append(v, f.Counted)
	}
	return spreadOf(v), nil
}

// warmUp sends one datagram to every container and waits until each has
// received one: neighbours resolved and bridge entries learnt on the
// kernel path, every port forwarding on the BPF paths.
func (ft *fwdTopo) warmUp(r *fwdRow) error {
	var missing []string
	for try := 0; try < fwdWarmTries; try++ {
		before := ft.ctRx()
		red0 := ft.redirected(r.BPF)
		log := ft.LogFile("trafgen-warm")
		cmd := exec.Command("ip", "netns", "exec", ft.Router, "trafgen", "--in", ft.Flood, "--out", "eth0",
			"--cpus", "1", "--num", strconv.Itoa(ft.N), "--gap", "20us", "--no-sock-mem", "--notouch-irq", "--no-cpu-stats")
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Run(); err != nil {
			b, _ := os.ReadFile(log.Name())
			return fmt.Errorf("warm-up trafgen: %v: %s", err, b)
		}
		for deadline := time.Now().Add(5 * time.Second); ; {
			after := ft.ctRx()
			missing = missing[:0]
			for _, p := range ft.Ports {
				k := p.NS + "/" + p.PeerIf
				if after.ports[k] <= before.ports[k] {
					missing = append(missing, p.PeerIf)
				}
			}
			if len(missing) == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		// BPF rows: the last round must have gone through BPF for
		// every container (the daemon flags a port as forwarding once
		// its programs are in place).
		if len(missing) == 0 && (!r.BPF || ft.redirected(true)-red0 >= uint64(ft.N)) {
			return nil
		}
		time.Sleep(time.Second)
	}
	if len(missing) > 0 {
		return fmt.Errorf("warm-up: %d containers received nothing after %d rounds (e.g. %s)", len(missing), fwdWarmTries, missing[0])
	}
	r.Notes = append(r.Notes, "warm-up: fwd_redirected did not rise by N in any round")
	return nil
}

// ctCount is the sum of the containers' eth0 rx packets, and each one's.
type ctCount struct {
	sum   uint64
	ports map[string]uint64
	t     time.Time
}

func (ft *fwdTopo) ctRx() ctCount {
	c := ctCount{ports: make(map[string]uint64, ft.N)}
	for _, ns := range ft.NSs {
		links, err := ft.handle(ns).LinkList()
		if err != nil {
			ft.b.Fatal(err)
		}
		for _, l := range links {
			a := l.Attrs()
			if a.Name == "lo" || a.Statistics == nil {
				continue
			}
			c.ports[ns+"/"+a.Name] = a.Statistics.RxPackets
			c.sum += a.Statistics.RxPackets
		}
	}
	c.t = time.Now()
	return c
}

// udpIn is the number of datagrams that reached UDP in all container
// namespaces (delivered to the socket or dropped at its full buffer).
func (ft *fwdTopo) udpIn() (uint64, time.Time) {
	var sum uint64
	for _, ns := range ft.NSs {
		err := topo.InNS(ns, func() error {
			// thread-self: the namespace of this (locked) thread.
			b, err := os.ReadFile("/proc/thread-self/net/snmp6")
			if err != nil {
				return err
			}
			for _, l := range strings.Split(string(b), "\n") {
				f := strings.Fields(l)
				// Delivered to the socket or dropped at its full buffer;
				// checksum errors (also in Udp6InErrors) are not.
				if len(f) == 2 && (f[0] == "Udp6InDatagrams" || f[0] == "Udp6RcvbufErrors") {
					v, _ := strconv.ParseUint(f[1], 10, 64)
					sum += v
				}
			}
			return nil
		})
		if err != nil {
			ft.b.Fatal(err)
		}
	}
	return sum, time.Now()
}

// redirected reads fwd_redirected through `v6dp stats --json` (0 for the
// kernel path, which has no counters).
func (ft *fwdTopo) redirected(bpf bool) uint64 {
	if !bpf {
		return 0
	}
	m, err := ft.counters()
	if err != nil {
		ft.b.Logf("stats: %v", err)
		return 0
	}
	if os.Getenv("V6DP_BENCH_DEBUG") != "" {
		ft.b.Logf("DEBUG counters: %v", m)
	}
	return m["fwd_redirected"]
}

func (ft *fwdTopo) counters() (map[string]uint64, error) {
	out, err := ft.v6dp("stats", "--json")
	if err != nil {
		return nil, err
	}
	m := map[string]uint64{}
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		return nil, fmt.Errorf("stats --json: %w: %s", err, out)
	}
	return m, nil
}

type floodResult struct {
	Offered, Counted, UDPIn, Redirected float64
}

// flood runs trafgen in the router namespace on one CPU at full speed,
// round robin over every container, and takes each counter's rate over a
// window that starts once trafgen is up (each with its own timestamps:
// they are read one after the other): counted is what count says, UDP in
// the containers' own counters when udp is set.
func (ft *fwdTopo) flood(p fwdParams, count func() (uint64, error), udp bool) (floodResult, error) {
	var res floodResult
	log := ft.LogFile("trafgen-udp")
	stop, exited, err := startFlood(ft.Router, p.CPU, ft.Flood, log)
	if err != nil {
		return res, err
	}
	defer stop()
	tx0 := ft.stats(ft.Router, "eth0").TxPackets
	for deadline := time.Now().Add(5 * time.Second); ft.stats(ft.Router, "eth0").TxPackets < tx0+1000; {
		select {
		case <-exited:
			b, _ := os.ReadFile(log.Name())
			return res, fmt.Errorf("trafgen exited: %s", b)
		default:
		}
		if time.Now().After(deadline) {
			return res, errors.New("trafgen sends nothing")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // past the start-up
	bpf := ft.daemonBPF()
	type snap struct {
		tx, n, udp, red     uint64
		txT, nT, udpT, redT time.Time
		failed              error
	}
	take := func() snap {
		var s snap
		st := ft.stats(ft.Router, "eth0")
		s.tx, s.txT = st.TxPackets+st.TxDropped, time.Now()
		s.n, s.failed = count()
		s.nT = time.Now()
		if udp {
			s.udp, s.udpT = ft.udpIn()
		}
		if bpf {
			t0 := time.Now()
			s.red = ft.redirected(true)
			s.redT = t0.Add(time.Since(t0) / 2)
		}
		return s
	}
	s0 := take()
	time.Sleep(p.Flood)
	s1 := take()
	stop()
	if s0.failed != nil || s1.failed != nil {
		return res, errors.Join(s0.failed, s1.failed)
	}
	rate := func(a, b uint64, ta, tb time.Time) float64 {
		if tb.Sub(ta) <= 0 || b < a {
			return 0
		}
		return float64(b-a) / tb.Sub(ta).Seconds()
	}
	res.Offered = rate(s0.tx, s1.tx, s0.txT, s1.txT)
	res.Counted = rate(s0.n, s1.n, s0.nT, s1.nT)
	res.UDPIn = rate(s0.udp, s1.udp, s0.udpT, s1.udpT)
	res.Redirected = rate(s0.red, s1.red, s0.redT, s1.redT)
	time.Sleep(500 * time.Millisecond) // let the queues drain before what comes next
	return res, nil
}

// neighbours says how many containers the host's kernel has no usable
// neighbour entry for on docker0 after a flood ("" if it has all). The
// kernel's IPv6 neighbour table is one for all namespaces, gc_thresh3
// (1024 by default) entries at most, shared with whatever else runs.
func (ft *fwdTopo) neighbours() string {
	h := ft.handle(ft.Host)
	br, err := h.LinkByName("docker0")
	if err != nil {
		return ""
	}
	ns, err := h.NeighList(br.Attrs().Index, unix.AF_INET6)
	if err != nil {
		return ""
	}
	const usable = unix.NUD_REACHABLE | unix.NUD_STALE | unix.NUD_DELAY | unix.NUD_PROBE | unix.NUD_PERMANENT
	ok := 0
	want := map[netip.Addr]bool{}
	for _, p := range ft.Ports {
		want[p.Addr] = true
	}
	for _, n := range ns {
		if a, _ := netip.AddrFromSlice(n.IP); want[a] && n.State&usable != 0 {
			ok++
		}
	}
	if ok >= ft.N {
		return ""
	}
	thresh, _ := os.ReadFile("/proc/sys/net/ipv6/neigh/default/gc_thresh3")
	return fmt.Sprintf("after the flood the host had usable neighbour entries for %d of %d containers on docker0 (gc_thresh3 %s, shared by every namespace on the machine)",
		ok, ft.N, strings.TrimSpace(string(thresh)))
}

// daemonBPF says whether the daemon's pins hold counters (a BPF dataplane).
func (ft *fwdTopo) daemonBPF() bool {
	_, err := os.Stat(filepath.Join(ft.PinDir, "v6dp_counters"))
	return err == nil
}

// tcp runs iperf3 from the router into the first container for dur and
// returns the bits per second received and fwd_redirected's rise.
func (ft *fwdTopo) tcp(dur time.Duration, bpf bool) (float64, uint64, error) {
	p0 := ft.Ports[0]
	addr := p0.Addr.String()
	log := ft.LogFile("iperf3-server")
	srv := exec.Command("ip", "netns", "exec", p0.NS, "iperf3", "-s", "-1", "-B", addr)
	srv.Stdout, srv.Stderr = log, log
	if err := srv.Start(); err != nil {
		return 0, 0, err
	}
	done := make(chan struct{})
	go func() { _ = srv.Wait(); close(done) }()
	defer func() {
		_ = srv.Process.Kill()
		<-done
	}()
	red0 := ft.redirected(bpf)
	secs := strconv.FormatFloat(dur.Seconds(), 'f', -1, 64)
	var out string
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; {
		out, err = ft.Run(ft.Router, "iperf3", "-c", addr, "-t", secs, "-J")
		if err == nil || time.Now().After(deadline) || !strings.Contains(strings.ToLower(out), "connection refused") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	red := ft.redirected(bpf) - red0
	server := func() string {
		select {
		case <-done:
			b, _ := os.ReadFile(log.Name())
			return fmt.Sprintf(" (the server had exited: %s)", strings.Join(strings.Fields(string(b)), " "))
		default:
			return ""
		}
	}
	if err != nil {
		return 0, red, fmt.Errorf("iperf3: %v%s", err, server())
	}
	var j struct {
		Error string `json:"error"`
		End   struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		return 0, red, fmt.Errorf("iperf3 output: %v", err)
	}
	if j.End.SumReceived.BitsPerSecond == 0 {
		return 0, red, fmt.Errorf("iperf3 received nothing: %s%s", j.Error, server())
	}
	return j.End.SumReceived.BitsPerSecond, red, nil
}

// debugTCP logs the routing and neighbour state on the TCP path when
// V6DP_BENCH_DEBUG is set.
func (ft *fwdTopo) debugTCP() {
	if os.Getenv("V6DP_BENCH_DEBUG") == "" {
		return
	}
	p0 := ft.Ports[0]
	for _, c := range [][]string{{ft.Router, "ip", "-6", "neigh"}, {ft.Router, "ip", "-6", "route"}, {ft.Host, "ip", "-6", "neigh", "show", p0.Addr.String()},
		{ft.Host, "ip", "-6", "route", "get", p0.Addr.String()}, {ft.Host, "ip", "-6", "neigh", "show", "proxy", p0.Addr.String()}, {p0.NS, "ip", "-6", "route"}, {p0.NS, "ip", "-6", "neigh"}, {ft.Host, "bridge", "fdb", "show", "br", "docker0"},
		{ft.Host, "nstat", "-az", "Icmp6*"}, {p0.NS, "nstat", "-az", "Icmp6Out*", "Tcp*"}} {
		out, _ := ft.Run(c[0], c[1:]...)
		ft.b.Logf("DEBUG %v:\n%s", c[1:], out)
	}
}

// sink is the floor's receiver: a program for the uplink's TC ingress that
// counts and drops.
type sink struct {
	count0 *ebpf.Map
	tc     *ebpf.Program
}

// newSink assembles the program around one per-CPU counter: counter[0]++
// and drop.
func newSink() (*sink, error) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "bench_sink", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		return nil, err
	}
	s := &sink{count0: m}
	s.tc, err = ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "bench_sink", Type: ebpf.SchedCLS, AttachType: ebpf.AttachTCXIngress, License: "GPL",
		Instructions: count(m, 0, tcActShot, "sunk"),
	})
	if err != nil {
		m.Close()
		return nil, err
	}
	return s, nil
}

func (s *sink) Close() {
	s.tc.Close()
	s.count0.Close()
}

func (s *sink) count() (uint64, error) {
	var per []uint64
	if err := s.count0.Lookup(uint32(0), &per); err != nil {
		return 0, err
	}
	var sum uint64
	for _, v := range per {
		sum += v
	}
	return sum, nil
}

// benchProgs times the daemon's attached forwarding programs alone with
// BPF_PROG_TEST_RUN, on this topology's frames and maps: the uplink
// program (XDP or TC) on a flood frame, and the endpoint program on a
// container's datagram to the router. Each run is a single repeat (the
// programs rewrite the frame in place), averaged over many runs.
func (ft *fwdTopo) benchProgs(config string) []progRow {
	const runs = 20000
	p0 := ft.Ports[len(ft.Ports)/2]
	src := netip.MustParseAddr(routerAddr)
	down := udpFrame(ft.HostMAC, ft.RouterMAC, src, p0.Addr, 64, fwdFrameLen)
	brMAC := ft.mac(ft.Host, "docker0")
	up := udpFrame(brMAC, p0.MAC, p0.Addr, src, 64, fwdFrameLen)
	var rows []progRow
	err := topo.InNS(ft.Host, func() error {
		uplink, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		port, err := net.InterfaceByName(p0.HostIf)
		if err != nil {
			return err
		}
		type target struct {
			name, what string
			prog       *ebpf.Program
			frame      []byte
			ifindex    int
		}
		var targets []target
		if l, err := ft.handle(ft.Host).LinkByName("eth0"); err == nil && l.Attrs().Xdp != nil && l.Attrs().Xdp.ProgId != 0 {
			if prog, err := ebpf.NewProgramFromID(ebpf.ProgramID(l.Attrs().Xdp.ProgId)); err == nil {
				targets = append(targets, target{"xdp_uplink", "router to container", prog, down, uplink.Index})
			}
		}
		for _, t := range []struct {
			ifindex    int
			name, what string
			frame      []byte
		}{{uplink.Index, "tc_uplink", "router to container", down}, {port.Index, "tc_endpoint", "container to router", up}} {
			q, err := link.QueryPrograms(link.QueryOptions{Target: t.ifindex, Attach: ebpf.AttachTCXIngress})
			if err != nil {
				continue
			}
			for _, qp := range q.Programs {
				prog, err := ebpf.NewProgramFromID(qp.ID)
				if err != nil {
					continue
				}
				if info, err := prog.Info(); err == nil && info.Name == t.name {
					targets = append(targets, target{t.name, t.what, prog, t.frame, t.ifindex})
					continue
				}
				prog.Close()
			}
		}
		for _, t := range targets {
			var total time.Duration
			var ret uint32
			for i := 0; i < runs; i++ {
				var d time.Duration
				ret, _, d, err = testRun(t.prog, t.frame, t.ifindex, 1)
				if err != nil {
					break
				}
				total += d
			}
			t.prog.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			rows = append(rows, progRow{Prog: t.name + " (" + config + " row)", Case: t.what,
				NsPerPacket: float64(total.Nanoseconds()) / runs, Verdict: verdictName(strings.Replace(t.name, "tc_endpoint", "tc_uplink", 1), ret)})
		}
		return nil
	})
	if err != nil {
		ft.b.Logf("programs alone: %v", err)
	}
	return rows
}

// testRun is BPF_PROG_TEST_RUN with the ingress interface set in the
// context (cilium/ebpf's Benchmark cannot pass one): an XDP program sees
// it as ingress_ifindex, a TC program as skb->ifindex; repeat runs, the
// duration is per run, out the last run's frame. The thread must be in the
// interface's namespace.
func testRun(prog *ebpf.Program, frame []byte, ifindex int, repeat uint32) (verdict uint32, out []byte, d time.Duration, err error) {
	in := append([]byte(nil), frame...)
	out = make([]byte, len(frame)+512)
	var ctx []byte
	info, err := prog.Info()
	if err != nil {
		return 0, nil, 0, err
	}
	switch info.Type {
	case ebpf.XDP: // struct xdp_md: data, data_end, data_meta, ingress_ifindex
		ctx = make([]byte, 24)
		binary.NativeEndian.PutUint32(ctx[4:], uint32(len(in)))
		binary.NativeEndian.PutUint32(ctx[12:], uint32(ifindex))
	default: // struct __sk_buff up to ifindex
		ctx = make([]byte, 44)
		binary.NativeEndian.PutUint32(ctx[40:], uint32(ifindex))
	}
	attr := struct {
		progFD, retval, sizeIn, sizeOut uint32
		dataIn, dataOut                 uint64
		repeat, duration                uint32
		ctxSizeIn, ctxSizeOut           uint32
		ctxIn, ctxOut                   uint64
		flags, cpu, batch, _            uint32
	}{
		progFD: uint32(prog.FD()), sizeIn: uint32(len(in)), sizeOut: uint32(len(out)),
		dataIn: uint64(uintptr(unsafe.Pointer(&in[0]))), dataOut: uint64(uintptr(unsafe.Pointer(&out[0]))),
		repeat: repeat, ctxSizeIn: uint32(len(ctx)), ctxIn: uint64(uintptr(unsafe.Pointer(&ctx[0]))),
	}
	const bpfProgTestRun = 10
	_, _, errno := unix.Syscall(unix.SYS_BPF, bpfProgTestRun, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	runtime.KeepAlive(in)
	runtime.KeepAlive(out)
	runtime.KeepAlive(ctx)
	if errno != 0 {
		return 0, nil, 0, fmt.Errorf("BPF_PROG_TEST_RUN: %w", errno)
	}
	return attr.retval, out[:min(int(attr.sizeOut), len(out))], time.Duration(attr.duration), nil
}

func findFwd(rows []fwdRow, n int, name string) *fwdRow {
	for i := range rows {
		if rows[i].N == n && rows[i].Config == name && rows[i].Err == "" && len(rows[i].Runs) > 0 {
			return &rows[i]
		}
	}
	return nil
}

func fmtUs(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fus", v/1e3)
}

func writeFwdTable(w io.Writer, rows []fwdRow, progRows []progRow, p fwdParams, floors map[int]spread, tuning string) {
	fmt.Fprintf(w, "\nforwarding (%s): %d-byte UDP frames from trafgen on CPU %d in the router namespace, round robin over all containers, %s per flood, %d run(s) per row (median, min-max); "+
		"delivered = intact datagrams (every byte as sent but for the Ethernet source and one hop) counted at the containers' eth0 TC ingress, into their stacks; "+
		"host cost = 1/rate with the containers dropping the intact ones there minus 1/floor, the floor being the same flood dropped at the uplink's TC ingress (same run); TCP: iperf3 router to one container, %s; %s\n",
		time.Now().UTC().Format("2006-01-02"), fwdFrameLen, p.CPU, p.Flood, p.Runs, p.TCP, tuning)
	for _, n := range p.Ns {
		if f, ok := floors[n]; ok {
			fmt.Fprintf(w, "floor N=%d: %s/s (%s per packet)\n", n, f.format(fmtRate), fmtUs(1e9/f.Median))
		}
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "config\tN\tran (v6dp status)\toffered/s\tdelivered/s\tvs kernel-tuned\tUDP in/s\tfwd_redirected/s\thost cost/packet\tcost vs kernel-tuned\tcorrupted\tTCP Gbit/s\tTCP vs kernel-tuned\tgate\t")
	for _, r := range rows {
		gate := "ok"
		if len(r.Failed) > 0 {
			gate = "FAILED"
		}
		if r.Err != "" || len(r.Runs) == 0 {
			fmt.Fprintf(tw, "%s\t%d\t%s\tERROR (below)\t\t\t\t\t\t\t\t\t\t%s\t\n", r.Config, r.N, r.Ran, gate)
			continue
		}
		del := r.spread(func(x fwdRun) float64 { return x.Delivered })
		cost := r.spread(func(x fwdRun) float64 { return float64(x.HostCost.Nanoseconds()) })
		tcp := r.spread(func(x fwdRun) float64 { return x.TCP })
		vsK, costK, tcpK := "-", "-", "-"
		if k := findFwd(rows, r.N, "kernel-tuned"); k != nil {
			vsK = ratio(del.Median, k.spread(func(x fwdRun) float64 { return x.Delivered }).Median)
			costK = ratio(cost.Median, k.spread(func(x fwdRun) float64 { return float64(x.HostCost.Nanoseconds()) }).Median)
			tcpK = ratio(tcp.Median, k.spread(func(x fwdRun) float64 { return x.TCP }).Median)
		}
		red := "-"
		if r.BPF {
			red = r.spread(func(x fwdRun) float64 { return x.Redirected }).format(fmtRate)
		}
		var bad uint64
		for _, x := range r.Runs {
			bad += x.Bad
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t\n", r.Config, r.N, r.Ran,
			r.spread(func(x fwdRun) float64 { return x.Offered }).format(fmtRate), del.format(fmtRate), vsK,
			r.spread(func(x fwdRun) float64 { return x.UDPIn }).format(fmtRate), red, cost.format(fmtUs), costK, bad,
			tcp.format(func(v float64) string { return fmt.Sprintf("%.2f", v/1e9) }), tcpK, gate)
	}
	tw.Flush()
	notes := make([]rowNotes, 0, len(rows))
	for _, r := range rows {
		n := r.Notes
		for _, f := range r.Failed {
			n = append(n, "FAILED: "+f)
		}
		notes = append(notes, rowNotes{r.Config, r.N, r.Err, n})
	}
	writeNotesAndProgs(w, notes, "forwarding programs alone (BPF_PROG_TEST_RUN on the attached programs and live maps of the largest N, ingress interface set):", progRows)
	writeFwdGoals(w, rows)
}

// writeFwdGoals prints issue 10's goals for the default dataplane: host
// cost per packet and no slower than any single-hook mode or the kernel.
// Goals are about speed: reported, never a failure.
func writeFwdGoals(w io.Writer, rows []fwdRow) {
	fmt.Fprintln(w, "\ngoals (timing: reported, not gated):")
	for _, g := range []struct {
		n    int
		cost float64 // ns
	}{{64, 400}, {1000, 600}} {
		for _, name := range []string{"v6dp-default", "v6dp-default-peer"} {
			d := findFwd(rows, g.n, name)
			if d == nil {
				continue
			}
			cost := d.spread(func(x fwdRun) float64 { return float64(x.HostCost.Nanoseconds()) }).Median
			del := d.spread(func(x fwdRun) float64 { return x.Delivered }).Median
			mark := "not met"
			if cost > 0 && cost <= g.cost {
				mark = "met"
			}
			var slower []string
			for _, other := range []string{"kernel-tuned", "v6dp-kernel", "v6dp-tc", "v6dp-xdp", "v6dp-xdp-peer"} {
				if o := findFwd(rows, g.n, other); o != nil && del < o.spread(func(x fwdRun) float64 { return x.Delivered }).Median {
					slower = append(slower, other)
				}
			}
			fast := "met"
			if len(slower) > 0 {
				fast = "not met (slower than " + strings.Join(slower, ", ") + ")"
			}
			fmt.Fprintf(w, "  N=%d %s: host cost %s, goal <= %s: %s; delivers %s/s, goal no slower than any single-hook mode or the kernel: %s\n",
				g.n, name, fmtUs(cost), fmtUs(g.cost), mark, fmtRate(del), fast)
		}
	}
}
