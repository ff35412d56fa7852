package bench

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
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
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

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
	Flood, TCP time.Duration
	CPU        int // trafgen's CPU
}

func forwardParams() fwdParams {
	p := fwdParams{Ns: []int{64, 1000}, Flood: 3 * time.Second, TCP: 3 * time.Second, CPU: runtime.NumCPU() - 1}
	if os.Getenv("V6DP_BENCH_QUICK") == "1" {
		p.Ns, p.Flood, p.TCP = []int{8}, time.Second, time.Second
	}
	return p
}

// fwdConfig is one dataplane. peer puts an XDP program on the router's
// end of the uplink, which makes the daemon's xdp dataplane native.
type fwdConfig struct {
	Name, Dataplane string
	Peer            bool
}

// fwdConfigs are the rows; V6DP_BENCH_FORWARD=kernel,tc picks some (while
// developing).
func fwdConfigs() []fwdConfig {
	all := []fwdConfig{
		{Name: "kernel", Dataplane: "kernel"},
		{Name: "tc", Dataplane: "tc"},
		{Name: "xdp", Dataplane: "xdp"},
		{Name: "xdp-peer", Dataplane: "xdp", Peer: true},
	}
	pick := os.Getenv("V6DP_BENCH_FORWARD")
	if pick == "" {
		return all
	}
	var out []fwdConfig
	for _, c := range all {
		for _, name := range strings.Split(pick, ",") {
			if c.Name == name {
				out = append(out, c)
			}
		}
	}
	return out
}

// fwdRow is one dataplane's figures at one N. Rates are per second.
type fwdRow struct {
	Config string
	N      int
	// Ran is what ran, from `v6dp status --json`; BPF when it is not the
	// kernel path.
	Ran string
	BPF bool
	// The flood: sent by trafgen (router eth0 tx + tx drops), received at
	// the containers' eth0, reaching UDP in the containers, and counted by
	// the BPF programs as redirected.
	Offered, Delivered, UDPIn, Redirected float64
	// The bound: the same flood with the containers' eth0 dropping in
	// XDP (or TC ingress where XDP is not on the path), counted there.
	Bound, BoundRedirected float64
	BoundHook              string
	// TCP: iperf3 from the router into one container.
	TCP           float64 // bits/s received
	TCPRedirected uint64  // fwd_redirected during the TCP run
	Err           string
	Notes         []string
}

// BenchmarkForward measures, on one topology per container count, how many
// packets per second each dataplane delivers from the router into the
// containers, the same with the containers dropping at XDP (the bound),
// and TCP throughput, and times the forwarding programs alone.
func BenchmarkForward(b *testing.B) {
	p := forwardParams()
	var rows []fwdRow
	var progRows []progRow
	for i, n := range p.Ns {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			ft := newFwdTopo(b, n)
			last := i == len(p.Ns)-1
			for _, c := range fwdConfigs() {
				b.Run(c.Name, func(b *testing.B) {
					ft.b = b
					r, pr := ft.measure(c, p, last)
					rows = append(rows, r)
					progRows = append(progRows, pr...)
					if r.Err != "" {
						b.Errorf("%s N=%d: %s", c.Name, n, r.Err)
						return
					}
					b.ReportMetric(0, "ns/op")
					b.ReportMetric(r.Delivered, "delivered/s")
					b.ReportMetric(r.Bound, "bound/s")
					b.ReportMetric(r.TCP/1e9, "tcp-Gbit/s")
				})
			}
			ft.b = b
		})
	}
	var s strings.Builder
	writeFwdTable(&s, rows, progRows, p)
	fmt.Print(s.String())
	b.Log("\n" + s.String())
}

// fwdTopo is the NDP bench's topology with what the forwarding bench adds.
type fwdTopo struct {
	*benchTopo
	HostMAC, BridgeMAC net.HardwareAddr
	NSs                []string // container namespaces
	Flood              string   // trafgen config: one UDP frame per container
	sink               *sink
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
	binary.BigEndian.PutUint16(udp[6:8], l4Checksum(src, dst, 17, udp))

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

// l4Checksum is the Internet checksum of msg (its checksum field zero)
// over the IPv6 pseudo-header; UDP sends 0 as 0xffff.
func l4Checksum(src, dst netip.Addr, proto uint8, msg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	s, d := src.As16(), dst.As16()
	add(s[:])
	add(d[:])
	var l [8]byte
	binary.BigEndian.PutUint32(l[0:4], uint32(len(msg)))
	l[7] = proto
	add(l[:])
	add(msg)
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	if c := ^uint16(sum); c != 0 {
		return c
	}
	return 0xffff
}

// measure runs one dataplane: daemon up, warm-up, TCP, flood, bound flood,
// and (last N only) the programs alone.
func (ft *fwdTopo) measure(c fwdConfig, p fwdParams, progs bool) (r fwdRow, pr []progRow) {
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
		// Native XDP hands the container frames without the skb's
		// "checksum left to offload" state; a NIC delivers complete
		// checksums, the router's veth only with tx offload off.
		ft.MustRun(ft.Router, "ethtool", "-K", "eth0", "tx", "off")
		undo = append(undo, func() { _, _ = ft.Run(ft.Router, "ethtool", "-K", "eth0", "tx", "on") })
		r.Notes = append(r.Notes, "router eth0 tx checksum offload (and so TSO) off for native XDP")
	}
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
	if c.Dataplane != st.Dataplane {
		r.Ran = "FELL BACK: " + r.Ran
		r.Notes = append(r.Notes, "asked for "+c.Dataplane+", status says "+st.Dataplane+": "+st.Reason)
	}

	if err := ft.warmUp(&r); err != nil {
		r.Err = err.Error()
		return
	}
	// TCP first, on the state the warm-up left (after a flood at N=1000
	// the kernel path may have lost neighbour entries, see neighbours).
	bps, red, err := ft.tcp(p.TCP, r.BPF)
	if err != nil {
		// Once more: the first connection may meet a cold neighbour.
		r.Notes = append(r.Notes, "TCP, first try (retried): "+err.Error())
		ft.debugTCP()
		if bps, red, err = ft.tcp(p.TCP, r.BPF); err != nil {
			r.Notes = append(r.Notes, "TCP: "+err.Error())
		}
	}
	r.TCP, r.TCPRedirected = bps, red

	f, err := ft.flood(p, false)
	if err != nil {
		r.Err = "flood: " + err.Error()
		return
	}
	r.Offered, r.Delivered, r.UDPIn, r.Redirected = f.Offered, f.Delivered, f.UDPIn, f.Redirected
	if r.Delivered > 0 && (r.UDPIn < 0.98*r.Delivered || r.UDPIn > 1.02*r.Delivered) {
		r.Notes = append(r.Notes, fmt.Sprintf("UDP in the containers %s/s vs %s/s at their eth0", fmtRate(r.UDPIn), fmtRate(r.Delivered)))
	}

	if !r.BPF {
		if note := ft.neighbours(); note != "" {
			r.Notes = append(r.Notes, note)
		}
	}
	hook := "xdp"
	if st.Attach == "tcx" || st.Attach == "tc-clsact" {
		// bpf_redirect_peer hands the skb to the container's eth0
		// ingress: the veth driver, and with it XDP, is not on the path.
		hook = "tc"
	}
	detach, err := ft.sink.attach(ft, hook)
	if err != nil {
		r.Err = "bound: attaching the sink: " + err.Error()
		return
	}
	bf, err := ft.flood(p, true)
	detach()
	if err != nil {
		r.Err = "bound flood: " + err.Error()
		return
	}
	r.Bound, r.BoundRedirected, r.BoundHook = bf.Sunk, bf.Redirected, hook
	if bf.Delivered > 0 && bf.Sunk < 0.98*bf.Delivered {
		r.Notes = append(r.Notes, fmt.Sprintf("bound: the sink counted %s/s of %s/s at the containers' eth0", fmtRate(bf.Sunk), fmtRate(bf.Delivered)))
	}
	if progs && r.BPF {
		pr = ft.benchProgs(c.Name)
	}
	return
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
				if len(f) == 2 && (f[0] == "Udp6InDatagrams" || f[0] == "Udp6InErrors" || f[0] == "Udp6NoPorts") {
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
	Offered, Delivered, UDPIn, Redirected, Sunk float64
}

// flood runs trafgen in the router namespace on one CPU at full speed,
// round robin over every container, and takes each counter's rate over a
// window that starts once trafgen is up (each with its own timestamps:
// they are read one after the other).
func (ft *fwdTopo) flood(p fwdParams, bound bool) (floodResult, error) {
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
		tx     uint64
		txT    time.Time
		ct     ctCount
		udp    uint64
		udpT   time.Time
		red    uint64
		redT   time.Time
		sunk   uint64
		sunkT  time.Time
		failed error
	}
	take := func() snap {
		var s snap
		st := ft.stats(ft.Router, "eth0")
		s.tx, s.txT = st.TxPackets+st.TxDropped, time.Now()
		s.ct = ft.ctRx()
		if !bound {
			s.udp, s.udpT = ft.udpIn()
		}
		if bpf {
			t0 := time.Now()
			s.red = ft.redirected(true)
			s.redT = t0.Add(time.Since(t0) / 2)
		}
		if bound {
			s.sunk, s.failed = ft.sink.count()
			s.sunkT = time.Now()
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
	res.Delivered = rate(s0.ct.sum, s1.ct.sum, s0.ct.t, s1.ct.t)
	res.UDPIn = rate(s0.udp, s1.udp, s0.udpT, s1.udpT)
	res.Redirected = rate(s0.red, s1.red, s0.redT, s1.redT)
	res.Sunk = rate(s0.sunk, s1.sunk, s0.sunkT, s1.sunkT)
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

// sink is the bound's receiver: a program that counts and drops, as XDP
// (native, on the containers' eth0) or at TC ingress.
type sink struct {
	count0  *ebpf.Map
	xdp, tc *ebpf.Program
}

// newSink assembles the two programs around one per-CPU counter:
// counter[0]++ and drop.
func newSink() (*sink, error) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "bench_sink", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		return nil, err
	}
	prog := func(t ebpf.ProgramType, at ebpf.AttachType, verdict int32) (*ebpf.Program, error) {
		return ebpf.NewProgram(&ebpf.ProgramSpec{
			Name: "bench_sink", Type: t, AttachType: at, License: "GPL",
			Instructions: asm.Instructions{
				asm.StoreImm(asm.RFP, -4, 0, asm.Word),
				asm.Mov.Reg(asm.R2, asm.RFP),
				asm.Add.Imm(asm.R2, -4),
				asm.LoadMapPtr(asm.R1, m.FD()),
				asm.FnMapLookupElem.Call(),
				asm.JEq.Imm(asm.R0, 0, "out"),
				asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
				asm.Add.Imm(asm.R1, 1),
				asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
				asm.Mov.Imm(asm.R0, verdict).WithSymbol("out"),
				asm.Return(),
			},
		})
	}
	s := &sink{count0: m}
	if s.xdp, err = prog(ebpf.XDP, ebpf.AttachXDP, 1 /* XDP_DROP */); err != nil {
		s.Close()
		return nil, err
	}
	if s.tc, err = prog(ebpf.SchedCLS, ebpf.AttachTCXIngress, 2 /* TC_ACT_SHOT */); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *sink) Close() {
	if s.xdp != nil {
		s.xdp.Close()
	}
	if s.tc != nil {
		s.tc.Close()
	}
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

// attach puts the sink on every container's eth0. With hook "xdp", far
// ends that already run the daemon's xdp_pass (native XDP on the uplink
// needs it there) get their pinned link's program swapped for the sink,
// and back afterwards; the others get a link of the bench's own. The
// links are not pinned: they go with the bench process at the latest.
func (s *sink) attach(ft *fwdTopo, hook string) (func(), error) {
	var links []link.Link
	type swap struct {
		l    link.Link
		orig *ebpf.Program
	}
	var swapped []swap
	detach := func() {
		for _, l := range links {
			l.Close()
		}
		for _, sw := range swapped {
			if err := sw.l.Update(sw.orig); err != nil {
				ft.b.Logf("restoring xdp_pass: %v", err)
			}
			sw.orig.Close()
			sw.l.Close()
		}
		links, swapped = nil, nil
	}
	ft.Defer(detach)
	if hook == "xdp" {
		err := filepath.WalkDir(ft.PinDir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			l, err := link.LoadPinnedLink(path, nil)
			if err != nil {
				return nil // a map or a program
			}
			info, err := l.Info()
			if err != nil || info.Type != link.XDPType {
				l.Close()
				return nil
			}
			orig, err := ebpf.NewProgramFromID(info.Program)
			if err != nil {
				l.Close()
				return err
			}
			pi, err := orig.Info()
			if err != nil || pi.Name != "xdp_pass" {
				orig.Close()
				l.Close()
				return err
			}
			if err := l.Update(s.xdp); err != nil {
				orig.Close()
				l.Close()
				return err
			}
			swapped = append(swapped, swap{l, orig})
			return nil
		})
		if err != nil {
			detach()
			return nil, err
		}
	}
	sinkID := uint32(0)
	if info, err := s.xdp.Info(); err == nil {
		if id, ok := info.ID(); ok {
			sinkID = uint32(id)
		}
	}
	for _, ns := range ft.NSs {
		ls, err := ft.handle(ns).LinkList()
		if err != nil {
			detach()
			return nil, err
		}
		err = topo.InNS(ns, func() error {
			for _, nl := range ls {
				a := nl.Attrs()
				if a.Name == "lo" {
					continue
				}
				if hook == "tc" {
					l, err := link.AttachTCX(link.TCXOptions{Interface: a.Index, Program: s.tc, Attach: ebpf.AttachTCXIngress, Anchor: link.Head()})
					if err != nil {
						return fmt.Errorf("%s: %w", a.Name, err)
					}
					links = append(links, l)
					continue
				}
				if a.Xdp != nil && a.Xdp.ProgId != 0 {
					if a.Xdp.ProgId == sinkID {
						continue // swapped above
					}
					return fmt.Errorf("%s: has a foreign XDP program (id %d)", a.Name, a.Xdp.ProgId)
				}
				l, err := link.AttachXDP(link.XDPOptions{Program: s.xdp, Interface: a.Index, Flags: link.XDPDriverMode})
				if err != nil {
					return fmt.Errorf("%s: %w", a.Name, err)
				}
				links = append(links, l)
			}
			return nil
		})
		if err != nil {
			detach()
			return nil, err
		}
	}
	return detach, nil
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
				ret, d, err = testRun(t.prog, t.frame, t.ifindex)
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
// it as ingress_ifindex, a TC program as skb->ifindex. The thread must be
// in the interface's namespace.
func testRun(prog *ebpf.Program, frame []byte, ifindex int) (uint32, time.Duration, error) {
	in := append([]byte(nil), frame...)
	out := make([]byte, len(frame)+512)
	var ctx []byte
	info, err := prog.Info()
	if err != nil {
		return 0, 0, err
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
		repeat: 1, ctxSizeIn: uint32(len(ctx)), ctxIn: uint64(uintptr(unsafe.Pointer(&ctx[0]))),
	}
	const bpfProgTestRun = 10
	_, _, errno := unix.Syscall(unix.SYS_BPF, bpfProgTestRun, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	runtime.KeepAlive(in)
	runtime.KeepAlive(out)
	runtime.KeepAlive(ctx)
	if errno != 0 {
		return 0, 0, fmt.Errorf("BPF_PROG_TEST_RUN: %w", errno)
	}
	return attr.retval, time.Duration(attr.duration), nil
}

func findFwd(rows []fwdRow, n int, name string) *fwdRow {
	for i := range rows {
		if rows[i].N == n && rows[i].Config == name && rows[i].Err == "" {
			return &rows[i]
		}
	}
	return nil
}

func pct(a, b float64) string {
	if a == 0 || b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*a/b)
}

func writeFwdTable(w io.Writer, rows []fwdRow, progRows []progRow, p fwdParams) {
	fmt.Fprintf(w, "\nforwarding: %d-byte UDP frames from trafgen on CPU %d in the router namespace, round robin over all containers, %s per flood; "+
		"delivered = rx at the containers' eth0 (UDP in = reached UDP there); bound = the same flood with the containers' eth0 dropping "+
		"(hook: xdp native, or tc ingress where bpf_redirect_peer skips the veth driver); TCP: iperf3 router to one container, %s\n\n",
		fwdFrameLen, p.CPU, p.Flood, p.TCP)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "config\tN\tran (v6dp status)\toffered/s\tdelivered/s\tUDP in/s\tfwd_redirected/s\tvs kernel\tbound/s\thook\tbound fwd_redir/s\t% of bound\tTCP Gbit/s\tTCP vs kernel\tTCP fwd_redirected\t")
	for _, r := range rows {
		if r.Err != "" {
			fmt.Fprintf(tw, "%s\t%d\tERROR (below)\t\t\t\t\t\t\t\t\t\t\t\t\t\n", r.Config, r.N)
			continue
		}
		vsK, tcpK := "-", "-"
		if k := findFwd(rows, r.N, "kernel"); k != nil {
			vsK, tcpK = ratio(r.Delivered, k.Delivered), ratio(r.TCP, k.TCP)
		}
		red, bred, tred := "-", "-", "-"
		if r.BPF {
			red, bred, tred = fmtRate(r.Redirected), fmtRate(r.BoundRedirected), strconv.FormatUint(r.TCPRedirected, 10)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t%s\t%s\t\n", r.Config, r.N, r.Ran,
			fmtRate(r.Offered), fmtRate(r.Delivered), fmtRate(r.UDPIn), red, vsK, fmtRate(r.Bound), r.BoundHook, bred,
			pct(r.Delivered, r.Bound), r.TCP/1e9, tcpK, tred)
	}
	tw.Flush()
	notes := make([]rowNotes, 0, len(rows))
	for _, r := range rows {
		notes = append(notes, rowNotes{r.Config, r.N, r.Err, r.Notes})
	}
	writeNotesAndProgs(w, notes, "forwarding programs alone (BPF_PROG_TEST_RUN on the attached programs and live maps of the largest N, ingress interface set):", progRows)
	writeFwdGoals(w, rows, p)
}

// writeFwdGoals checks issue 4's targets for every BPF row that ran BPF
// forwarding (status not the kernel, fwd_redirected covering most of what
// was delivered).
func writeFwdGoals(w io.Writer, rows []fwdRow, p fwdParams) {
	fmt.Fprintln(w, "\ngoals (issue 4):")
	check := func(ok bool, format string, args ...any) {
		mark := "MISS"
		if ok {
			mark = "ok  "
		}
		fmt.Fprintf(w, "  %s "+format+"\n", append([]any{mark}, args...)...)
	}
	want := map[int]float64{64: 1.5, 1000: 3}
	anyRow := false
	for _, r := range rows {
		if r.Config == "kernel" || r.Err != "" {
			continue
		}
		anyRow = true
		tag := fmt.Sprintf("N=%d %s [%s]", r.N, r.Config, r.Ran)
		if !r.BPF || strings.HasPrefix(r.Ran, "FELL BACK") {
			check(false, "%s: BPF forwarding did not run", tag)
			continue
		}
		if r.Redirected < 0.9*r.Delivered {
			check(false, "%s: fwd_redirected %s/s covers only %s of %s/s delivered", tag, fmtRate(r.Redirected), pct(r.Redirected, r.Delivered), fmtRate(r.Delivered))
		}
		k := findFwd(rows, r.N, "kernel")
		if f, ok := want[r.N]; ok && k != nil && k.Delivered > 0 {
			check(r.Delivered >= f*k.Delivered, "%s: delivered >= %gx kernel: %s/s vs %s/s = %.2fx", tag, f,
				fmtRate(r.Delivered), fmtRate(k.Delivered), r.Delivered/k.Delivered)
		}
		if r.Bound > 0 {
			check(r.Delivered >= 0.7*r.Bound, "%s: delivered >= 70%% of its bound: %s/s of %s/s = %s", tag,
				fmtRate(r.Delivered), fmtRate(r.Bound), pct(r.Delivered, r.Bound))
		}
		if k != nil && k.TCP == 0 {
			fmt.Fprintf(w, "  ---- %s: TCP not compared: the kernel row has no TCP figure\n", tag)
		}
		if k != nil && k.TCP > 0 {
			check(r.TCP >= k.TCP && r.TCPRedirected > 0, "%s: TCP no slower than kernel (and through BPF): %.2f vs %.2f Gbit/s, fwd_redirected +%d", tag,
				r.TCP/1e9, k.TCP/1e9, r.TCPRedirected)
		}
	}
	if !anyRow {
		fmt.Fprintln(w, "  no BPF row")
	}
	if len(p.Ns) == 1 {
		fmt.Fprintln(w, "  (quick mode: the ratio goals are defined for N=64 and N=1000)")
	}
}
