package bench

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/v6dp/v6dp/loader"
	"github.com/v6dp/v6dp/test/topo"
)

var v6dpBin string

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Println("bench needs root: skipped")
		os.Exit(0)
	}
	os.Exit(topo.Main(m, func() (func(), error) {
		dir, err := topo.MkdirTemp("bench-bin", topo.RunTag())
		if err != nil {
			return nil, err
		}
		v6dpBin = filepath.Join(dir, "v6dp")
		if out, err := exec.Command("go", "build", "-o", v6dpBin, "../../cmd/v6dp").CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("building v6dp: %v\n%s", err, out)
		}
		return func() { os.RemoveAll(dir) }, nil
	}))
}

// params are the knobs of one run; V6DP_BENCH_QUICK=1 is the smoke mode.
type params struct {
	Ns          []int
	Flood       time.Duration
	Probes      int
	DelayProbes int // kernel with the default proxy_delay: ~0.4 s per probe
	CPU         int // the flood generator's CPU
}

func benchParams() params {
	p := params{Ns: []int{8, 1000}, Flood: 3 * time.Second, Probes: 200, DelayProbes: 20, CPU: runtime.NumCPU() - 1}
	if os.Getenv("V6DP_BENCH_QUICK") == "1" {
		p = params{Ns: []int{8}, Flood: time.Second, Probes: 50, DelayProbes: 5, CPU: p.CPU}
	}
	return p
}

// row is one configuration's figures.
type row struct {
	Config    string
	N         int
	Dataplane string // as v6dp status (or the setup) reports it
	Lat       latency
	Flooded   bool
	Offered   float64 // NS per second sent by trafgen (router eth0 tx)
	Answered  float64 // NA per second back at the router (router eth0 rx)
	HostDrop  float64 // per second dropped on the host's eth0 (rx_dropped)
	Err       string
	Notes     []string
}

func (r row) fraction() float64 {
	if r.Offered == 0 {
		return 0
	}
	return r.Answered / r.Offered
}

// config is one way of answering the router's solicitations. setup turns
// it on in the topology and returns what the row's dataplane column says
// and how to turn it off again.
type config struct {
	Name        string
	LatencyOnly bool
	// Skip, if set, is asked before setup with the rows so far.
	Skip  func(rows []row) bool
	Setup func(bt *benchTopo) (dataplane string, teardown func(), err error)
	// Daemon rows check afterwards that the daemon kept every address.
	Daemon bool
}

func configs() []config {
	daemon := func(dp string, peerXDP bool) func(bt *benchTopo) (string, func(), error) {
		return func(bt *benchTopo) (string, func(), error) {
			var pass io.Closer
			if peerXDP {
				var err error
				if pass, err = bt.peerXDP(); err != nil {
					return "", nil, err
				}
			}
			d, st, err := bt.startDaemon(dp)
			if err != nil {
				if pass != nil {
					pass.Close()
				}
				return "", nil, err
			}
			label := st.Dataplane
			if st.Attach != "" {
				label += " (" + st.Attach + ")"
			}
			if dp != "kernel" && st.Dataplane == "kernel" {
				label = "FELL BACK: kernel"
			}
			if peerXDP {
				label += " +peer XDP"
			}
			return label, func() {
				d.stop()
				if pass != nil {
					pass.Close()
				}
			}, nil
		}
	}
	// The loader rows attach the BPF programs themselves on top of the
	// daemon's kernel path: they stand in for a daemon whose BPF dataplane
	// is not there (yet), and are skipped once the daemon's own row runs it.
	fellBack := func(name string) func(rows []row) bool {
		return func(rows []row) bool {
			for _, r := range rows {
				if r.Config == name {
					return !strings.HasPrefix(r.Dataplane, "FELL BACK")
				}
			}
			return false
		}
	}
	direct := func(mode string) func(bt *benchTopo) (string, func(), error) {
		return func(bt *benchTopo) (string, func(), error) {
			d, _, err := bt.startDaemon("kernel")
			if err != nil {
				return "", nil, err
			}
			label, detach, err := bt.attachLoader(mode)
			if err != nil {
				d.stop()
				return "", nil, err
			}
			return label, func() { detach(); d.stop() }, nil
		}
	}
	return []config{
		{Name: "kernel-stock", Setup: func(bt *benchTopo) (string, func(), error) {
			bt.kernelProxy(true, "0")
			return "kernel proxy_ndp, delay 0, ports v6 on", func() { bt.kernelProxy(false, "") }, nil
		}},
		{Name: "kernel-default-delay", LatencyOnly: true, Setup: func(bt *benchTopo) (string, func(), error) {
			bt.kernelProxy(true, bt.proxyDelay)
			return "kernel proxy_ndp, delay " + bt.proxyDelay, func() { bt.kernelProxy(false, "") }, nil
		}},
		{Name: "ndppd", Setup: func(bt *benchTopo) (string, func(), error) {
			stop, err := bt.startNDPPD()
			return "ndppd 'iface docker0'", stop, err
		}},
		{Name: "v6dp-kernel", Daemon: true, Setup: daemon("kernel", false)},
		{Name: "v6dp-xdp", Daemon: true, Setup: daemon("xdp", false)},
		{Name: "v6dp-xdp-peer", Daemon: true, Setup: daemon("xdp", true)},
		{Name: "v6dp-tc", Daemon: true, Setup: daemon("tc", false)},
		{Name: "loader-xdp-generic", Daemon: true, Skip: fellBack("v6dp-xdp"), Setup: direct("xdp-generic")},
		{Name: "loader-xdp-native", Daemon: true, Skip: fellBack("v6dp-xdp-peer"), Setup: direct("xdp-native")},
		{Name: "loader-tc", Daemon: true, Skip: fellBack("v6dp-tc"), Setup: direct("tc")},
	}
}

// BenchmarkNDPFlood floods the host with multicast Neighbor Solicitations
// for its containers' addresses from the router and counts the answers,
// for every way of answering, on one topology per container count.
func BenchmarkNDPFlood(b *testing.B) {
	p := benchParams()
	var mu sync.Mutex
	var rows []row
	for _, n := range p.Ns {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			bt := newBenchTopo(b, n)
			for _, c := range configs() {
				mu.Lock()
				skip := c.Skip != nil && c.Skip(rowsFor(rows, n))
				mu.Unlock()
				if skip {
					continue
				}
				b.Run(c.Name, func(b *testing.B) {
					bt.b = b
					r := bt.measure(c, p)
					mu.Lock()
					rows = append(rows, r)
					mu.Unlock()
					if r.Err != "" {
						// A peer that fails to answer is a measurement
						// (it stands in the table); only v6dp's own rows
						// failing fail the run.
						if strings.HasPrefix(c.Name, "v6dp") || strings.HasPrefix(c.Name, "loader") {
							b.Errorf("%s N=%d: %s", c.Name, n, r.Err)
						} else {
							b.Logf("%s N=%d: %s", c.Name, n, r.Err)
						}
						return
					}
					reportRow(b, r)
				})
			}
			bt.b = b
		})
	}
	var progRows []progRow
	b.Run("prog", func(b *testing.B) { progRows = benchProg(b) })
	var s strings.Builder
	writeTable(&s, rows, progRows, p)
	fmt.Print(s.String())
	b.Log("\n" + s.String())
}

func rowsFor(rows []row, n int) []row {
	var out []row
	for _, r := range rows {
		if r.N == n {
			out = append(out, r)
		}
	}
	return out
}

func reportRow(b *testing.B, r row) {
	b.ReportMetric(0, "ns/op")
	if r.Flooded {
		b.ReportMetric(r.Offered, "offered/s")
		b.ReportMetric(r.Answered, "answers/s")
		b.ReportMetric(100*r.fraction(), "answered-%")
	}
	if r.Lat.Answered > 0 {
		b.ReportMetric(float64(r.Lat.Median.Nanoseconds())/1e3, "median-us")
		b.ReportMetric(float64(r.Lat.P99.Nanoseconds())/1e3, "p99-us")
	}
}

// measure sets a configuration up, probes latency, floods, and tears down.
func (bt *benchTopo) measure(c config, p params) row {
	r := row{Config: c.Name, N: bt.N}
	label, teardown, err := c.Setup(bt)
	if err != nil {
		r.Err = "setup: " + err.Error()
		return r
	}
	defer teardown()
	r.Dataplane = label
	pr, err := newProber(bt.Router, "eth0")
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer pr.Close()

	timeout := time.Second
	probes := p.Probes
	if c.LatencyOnly {
		timeout, probes = 2*time.Second, p.DelayProbes
	}
	// Quiet first: a starting daemon announces its addresses (unsolicited
	// NAs, three rounds a second apart), which would count as answers.
	bt.quiet(bt.Router, "eth0", 1200*time.Millisecond, 8*time.Second)
	// Ready when the last container answers (setup may still be settling).
	last := len(bt.Ports) - 1
	ready := false
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if _, err := pr.probe(bt.Frames[last], bt.Ports[last].Addr, timeout); err == nil {
			ready = true
			break
		}
	}
	if !ready {
		r.Err = fmt.Sprintf("no answer for %s within 10s", bt.Ports[last].Addr)
		return r
	}
	// Latency: single solicitations, one at a time, to random live
	// addresses (the same sequence for every configuration).
	rng := rand.New(rand.NewPCG(uint64(bt.N), 1))
	var rtts []time.Duration
	for i := 0; i < probes; i++ {
		k := rng.IntN(len(bt.Ports))
		if rtt, err := pr.probe(bt.Frames[k], bt.Ports[k].Addr, timeout); err == nil {
			rtts = append(rtts, rtt)
		}
		time.Sleep(time.Millisecond)
	}
	r.Lat = summarize(rtts, probes)
	if c.LatencyOnly {
		return r
	}
	if err := bt.flood(&r, p); err != nil {
		r.Err = err.Error()
	}
	if c.Daemon {
		// A row only counts if the daemon kept every address live all along.
		if st, err := bt.status(); err != nil {
			r.Notes = append(r.Notes, "status after the flood: "+err.Error())
		} else if st.ProxyEntries < bt.N || (st.Dataplane != "kernel" && st.BPFEntries < bt.N) {
			r.Notes = append(r.Notes, fmt.Sprintf("after the flood the daemon had %d proxy entries, %d BPF entries of %d", st.ProxyEntries, st.BPFEntries, bt.N))
		}
	}
	return r
}

// flood runs trafgen in the router namespace on one CPU at full speed,
// round robin over every container address, and counts what goes out and
// what comes back during a window that starts once trafgen is up.
func (bt *benchTopo) flood(r *row, p params) error {
	log := bt.LogFile("trafgen")
	stop, exited, err := startFlood(bt.Router, p.CPU, bt.TrafgenConf, log)
	if err != nil {
		return err
	}
	defer stop()
	tx0 := bt.stats(bt.Router, "eth0").TxPackets
	for deadline := time.Now().Add(5 * time.Second); bt.stats(bt.Router, "eth0").TxPackets < tx0+1000; {
		select {
		case <-exited:
			b, _ := os.ReadFile(log.Name())
			return fmt.Errorf("trafgen exited: %s", b)
		default:
		}
		if time.Now().After(deadline) {
			return errors.New("trafgen sends nothing")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // past the start-up
	r0, h0, t0 := bt.stats(bt.Router, "eth0"), bt.stats(bt.Host, "eth0"), time.Now()
	time.Sleep(p.Flood)
	r1, h1, t1 := bt.stats(bt.Router, "eth0"), bt.stats(bt.Host, "eth0"), time.Now()
	stop()
	sec := t1.Sub(t0).Seconds()
	r.Flooded = true
	r.Offered = float64(r1.TxPackets-r0.TxPackets) / sec
	r.Answered = float64(r1.RxPackets-r0.RxPackets) / sec
	r.HostDrop = float64(h1.RxDropped-h0.RxDropped) / sec
	time.Sleep(500 * time.Millisecond) // let the queues drain before the next row
	return nil
}

// quiet waits until ifname in ns has received nothing for a while.
func (bt *benchTopo) quiet(ns, ifname string, calm, limit time.Duration) {
	last, since := bt.stats(ns, ifname).RxPackets, time.Now()
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		if rx := bt.stats(ns, ifname).RxPackets; rx != last {
			last, since = rx, time.Now()
		} else if time.Since(since) >= calm {
			return
		}
	}
}

// peerXDP attaches an XDP program that passes everything to the router's
// eth0, natively: veth delivers frames sent back by XDP_TX only to a peer
// with XDP (and so NAPI) enabled.
func (bt *benchTopo) peerXDP() (io.Closer, error) {
	var c io.Closer
	err := topo.InNS(bt.Router, func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		c, err = loader.AttachXDPPass(ifi.Index)
		return err
	})
	return c, err
}

// attachLoader loads and attaches v6dp's uplink program on the host's
// eth0 with every container as an endpoint, through the loader package
// directly, the way the daemon's BPF dataplane will.
func (bt *benchTopo) attachLoader(mode string) (string, func(), error) {
	pin := bt.PinDir + "-direct"
	var pass io.Closer
	if mode == "xdp-native" {
		var err error
		if pass, err = bt.peerXDP(); err != nil {
			return "", nil, err
		}
	}
	var d *loader.Dataplane
	var ifindex int
	var got loader.Mode
	err := topo.InNS(bt.Host, func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		ifindex = ifi.Index
		var ll netip.Addr
		addrs, _ := ifi.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(ipn.IP); ok && ip.Is6() && ip.IsLinkLocalUnicast() {
					ll = ip
				}
			}
		}
		if d, err = loader.Open(pin); err != nil {
			return fmt.Errorf("loader.Open: %+v", err)
		}
		if err := d.SetUplink(loader.UplinkConfig{Ifindex: ifi.Index, MAC: ifi.HardwareAddr, LinkLocal: ll, Router: true}); err != nil {
			return err
		}
		for _, p := range bt.Ports {
			l, err := net.InterfaceByName(p.HostIf)
			if err != nil {
				return err
			}
			e := loader.Endpoint{Addr: p.Addr, Ifindex: uint32(l.Index), MAC: p.MAC, HostMAC: l.HardwareAddr, MTU: 1500, Flags: loader.EndpointProxy}
			if err := d.PutEndpoint(e); err != nil {
				return err
			}
		}
		switch mode {
		case "xdp-generic":
			got, err = d.AttachXDP(ifi.Index, false)
		case "xdp-native":
			got, err = d.AttachXDP(ifi.Index, true)
		case "tc":
			got, err = d.AttachTC(ifi.Index)
		}
		return err
	})
	detach := func() {
		if d != nil {
			_ = topo.InNS(bt.Host, func() error { return d.Detach(ifindex) })
			d.Close()
		}
		_ = loader.Remove(pin)
		removePins(pin)
		if pass != nil {
			pass.Close()
		}
	}
	if err != nil {
		detach()
		return "", nil, err
	}
	bt.Defer(func() { removePins(pin) })
	label := "loader: " + string(got)
	if pass != nil {
		label += " +peer XDP"
	}
	return label, detach, nil
}

func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < time.Millisecond:
		return fmt.Sprintf("%.1fus", float64(d.Nanoseconds())/1e3)
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d.Nanoseconds())/1e6)
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

func fmtRate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func ratio(a, b float64) string {
	if a == 0 || b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

func find(rows []row, n int, name string) *row {
	for i := range rows {
		if rows[i].N == n && rows[i].Config == name && rows[i].Err == "" {
			return &rows[i]
		}
	}
	return nil
}

func writeTable(w io.Writer, rows []row, progRows []progRow, p params) {
	fmt.Fprintf(w, "\nNDP flood: trafgen on CPU %d in the router namespace, %s per row, round robin over all container addresses; latency: %d single probes (kernel rx timestamps)\n\n",
		p.CPU, p.Flood, p.Probes)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "config\tN\tdataplane\toffered/s\tanswered/s\tanswered\thost drop/s\tmedian\tp99\tprobes ok\tvs kernel-stock\tvs v6dp-kernel\t")
	for _, r := range rows {
		if r.Err != "" {
			fmt.Fprintf(tw, "%s\t%d\tERROR (below)\t\t\t\t\t\t\t\t\t\t\n", r.Config, r.N)
			continue
		}
		off, ans, frac, drop, vsK, vsV := "-", "-", "-", "-", "-", "-"
		if r.Flooded {
			off, ans, drop = fmtRate(r.Offered), fmtRate(r.Answered), fmtRate(r.HostDrop)
			frac = fmt.Sprintf("%.1f%%", 100*r.fraction())
			if k := find(rows, r.N, "kernel-stock"); k != nil {
				vsK = ratio(r.Answered, k.Answered)
			}
			if v := find(rows, r.N, "v6dp-kernel"); v != nil {
				vsV = ratio(r.Answered, v.Answered)
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\t\n", r.Config, r.N, r.Dataplane, off, ans, frac, drop,
			fmtDur(r.Lat.Median), fmtDur(r.Lat.P99), r.Lat.Answered, r.Lat.Sent, vsK, vsV)
	}
	tw.Flush()
	notes := make([]rowNotes, 0, len(rows))
	for _, r := range rows {
		notes = append(notes, rowNotes{r.Config, r.N, r.Err, r.Notes})
	}
	writeNotesAndProgs(w, notes, "program alone (BPF_PROG_TEST_RUN, endpoints map with 1000 entries):", progRows)
	writeGoals(w, rows)
}

// writeGoals checks issue 3's targets against the rows of this run.
func writeGoals(w io.Writer, rows []row) {
	fmt.Fprintln(w, "\ngoals (issue 3):")
	best := func(n int) *row { // the fastest BPF row that ran
		var b *row
		for _, name := range []string{"v6dp-xdp", "v6dp-xdp-peer", "loader-xdp-generic", "loader-xdp-native"} {
			r := find(rows, n, name)
			if r == nil || !r.Flooded || strings.HasPrefix(r.Dataplane, "FELL BACK") {
				continue
			}
			if b == nil || r.Answered > b.Answered {
				b = r
			}
		}
		return b
	}
	check := func(what string, ok bool, detail string) {
		mark := "MISS"
		if ok {
			mark = "ok  "
		}
		fmt.Fprintf(w, "  %s %s: %s\n", mark, what, detail)
	}
	if x := best(1000); x != nil {
		tag := fmt.Sprintf("%s (%s)", x.Config, x.Dataplane)
		for _, g := range []struct {
			peer string
			want float64
		}{{"kernel-stock", 5}, {"v6dp-kernel", 2}, {"ndppd", 10}} {
			if k := find(rows, 1000, g.peer); k != nil && k.Answered > 0 {
				check(fmt.Sprintf("N=1000 answers/s >= %gx %s", g.want, g.peer), x.Answered >= g.want*k.Answered,
					fmt.Sprintf("%s: %s/s vs %s/s = %.2fx", tag, fmtRate(x.Answered), fmtRate(k.Answered), x.Answered/k.Answered))
			}
		}
		check("N=1000 every offered NS answered", x.fraction() >= 0.999, fmt.Sprintf("%s: %.2f%%", tag, 100*x.fraction()))
		check("N=1000 median < 20us", x.Lat.Median > 0 && x.Lat.Median < 20*time.Microsecond, fmt.Sprintf("%s: %s", tag, fmtDur(x.Lat.Median)))
	} else {
		fmt.Fprintln(w, "  no BPF row at N=1000")
	}
	if x := best(8); x != nil {
		var kb float64
		for _, name := range []string{"kernel-stock", "v6dp-kernel"} {
			if k := find(rows, 8, name); k != nil && k.Answered > kb {
				kb = k.Answered
			}
		}
		if kb > 0 {
			check("N=8 answers/s >= 1.5x the kernel at its best", x.Answered >= 1.5*kb,
				fmt.Sprintf("%s: %s/s vs %s/s = %.2fx", x.Config, fmtRate(x.Answered), fmtRate(kb), x.Answered/kb))
		}
	}
}

// startFlood runs trafgen at full speed in ns, pinned to cpu, replaying
// conf until stopped. trafgen forks a worker that outlives a signal to its
// parent alone (and would go on flooding the next row), so it runs in a
// process group of its own and stop ends the whole group.
func startFlood(ns string, cpu int, conf string, log *os.File) (stop func(), exited <-chan struct{}, err error) {
	cmd := exec.Command("ip", "netns", "exec", ns, "taskset", "-c", strconv.Itoa(cpu),
		"trafgen", "--in", conf, "--out", "eth0", "--cpus", "1", "--num", "0",
		"--no-sock-mem", "--notouch-irq", "--no-cpu-stats")
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	pgid := cmd.Process.Pid
	forget := topo.TrackGroup(pgid)
	var once sync.Once
	stop = func() {
		once.Do(func() {
			defer forget()
			_ = syscall.Kill(-pgid, syscall.SIGINT)
			select {
			case <-done:
			case <-time.After(5 * time.Second):
			}
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-done
		})
	}
	return stop, done, nil
}

// rowNotes is what every table prints under itself: a row's error and notes.
type rowNotes struct {
	Config string
	N      int
	Err    string
	Notes  []string
}

// writeNotesAndProgs prints the rows' errors and notes, then the programs'
// own cost under title.
func writeNotesAndProgs(w io.Writer, rows []rowNotes, title string, progRows []progRow) {
	for _, r := range rows {
		if r.Err != "" {
			e := strings.ReplaceAll(r.Err, "\n", " ")
			if len(e) > 600 {
				e = e[:600] + "..."
			}
			fmt.Fprintf(w, "error: %s N=%d: %s\n", r.Config, r.N, e)
		}
		for _, n := range r.Notes {
			fmt.Fprintf(w, "note: %s N=%d: %s\n", r.Config, r.N, n)
		}
	}
	if len(progRows) == 0 {
		return
	}
	fmt.Fprintln(w, "\n"+title)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "program\tcase\tns/packet\tverdict\t")
	for _, pr := range progRows {
		fmt.Fprintf(tw, "%s\t%s\t%.1f\t%s\t\n", pr.Prog, pr.Case, pr.NsPerPacket, pr.Verdict)
	}
	tw.Flush()
}
