package bench

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/v6dp/v6dp/test/topo"
)

// params are the knobs of the NDP bench; V6DP_BENCH_QUICK=1 is the smoke
// mode, V6DP_BENCH_N, V6DP_BENCH_RUNS and V6DP_BENCH_ROWS narrow it.
type params struct {
	Ns          []int
	Runs        int
	Flood       time.Duration
	Probes      int // per run
	DelayProbes int // kernel with the default proxy_delay: ~0.4 s per probe
	CPU         int // the flood generator's CPU
}

func benchParams() params {
	p := params{Ns: []int{64, 1000}, Runs: 3, Flood: 2 * time.Second, Probes: 100, DelayProbes: 10, CPU: runtime.NumCPU() - 1}
	if os.Getenv("V6DP_BENCH_QUICK") == "1" {
		p = params{Ns: []int{8}, Runs: 1, Flood: time.Second, Probes: 30, DelayProbes: 3, CPU: p.CPU}
	}
	p.Ns, p.Runs = benchNs(p.Ns), benchRuns(p.Runs)
	return p
}

// ndpRun is one run's flood.
type ndpRun struct {
	Offered  float64 // NS/s for live targets sent by trafgen
	Valid    float64 // valid NAs/s for live targets back at the router
	Wrong    uint64  // any other NA during the flood
	HostDrop float64 // per second dropped on the host's eth0 (rx_dropped)
}

// row is one configuration's figures.
type row struct {
	Config    string
	N         int
	Dataplane string // as v6dp status (or the setup) reports it
	Runs      []ndpRun
	Lat       latency // every run's probes together
	Err       string  // the row could not be measured
	// Failed lists the correctness gate's findings: wrong answers,
	// endpoints lost. A row with any is FAILED and fails make bench.
	Failed []string
	Notes  []string
}

func (r row) spreads() (offered, valid, share spread) {
	var o, v, f []float64
	for _, x := range r.Runs {
		o, v = append(o, x.Offered), append(v, x.Valid)
		if x.Offered > 0 {
			f = append(f, x.Valid/x.Offered)
		}
	}
	return spreadOf(o), spreadOf(v), spreadOf(f)
}

func (r row) wrong() (n uint64) {
	for _, x := range r.Runs {
		n += x.Wrong
	}
	return n
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
	// Daemon rows check after each run that the daemon kept every
	// address; the others that the kernel's proxy entries are all there.
	Daemon bool
	Kernel bool
}

func configs() []config {
	// The flood comes from one source, the router: the BPF rows measure
	// what the responder can do with the NS limit off, and one row shows
	// the default limit holding (its answers are the limit, by design).
	unlimited := []string{"--ns-rate-per-source", "0", "--ns-rate-global", "0"}
	daemonWith := func(dp string, peerXDP bool, extra []string) func(bt *benchTopo) (string, func(), error) {
		return func(bt *benchTopo) (string, func(), error) {
			var pass io.Closer
			if peerXDP {
				var err error
				if pass, err = bt.peerXDP(); err != nil {
					return "", nil, err
				}
			}
			d, st, err := bt.startDaemon(dp, extra...)
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
			if dp != "kernel" && dp != "auto" && st.Dataplane == "kernel" {
				label = "FELL BACK: kernel"
			}
			if peerXDP {
				label += " +peer XDP"
			}
			if len(extra) == 0 {
				label += ", default NS limit"
			}
			return label, func() {
				d.stop()
				if pass != nil {
					pass.Close()
				}
			}, nil
		}
	}
	daemon := func(dp string, peerXDP bool) func(bt *benchTopo) (string, func(), error) {
		return daemonWith(dp, peerXDP, unlimited)
	}
	// The loader rows attach the BPF programs themselves on top of the
	// daemon's kernel path: they stand in for a daemon whose BPF dataplane
	// is not there, and are skipped once the daemon's own row runs it.
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
	// The kernel as an operator sets it up: proxy_ndp, one proxy entry per
	// container, the delay given, IPv6 off on the ports.
	kernel := func(delay func(bt *benchTopo) string) func(bt *benchTopo) (string, func(), error) {
		return func(bt *benchTopo) (string, func(), error) {
			d := delay(bt)
			bt.kernelProxy(true, d)
			bt.portsIPv6(false)
			return "kernel proxy_ndp, delay " + d + ", ports v6 off", func() { bt.portsIPv6(true); bt.kernelProxy(false, "") }, nil
		}
	}
	return []config{
		{Name: "kernel-tuned", Kernel: true, Setup: kernel(func(*benchTopo) string { return "0" })},
		{Name: "kernel-default-delay", Kernel: true, LatencyOnly: true, Setup: kernel(func(bt *benchTopo) string { return bt.proxyDelay })},
		{Name: "ndppd", Setup: func(bt *benchTopo) (string, func(), error) {
			bt.portsIPv6(false)
			stop, err := bt.startNDPPD()
			if err != nil {
				bt.portsIPv6(true)
				return "", nil, err
			}
			return "ndppd 'iface docker0', ports v6 off", func() { stop(); bt.portsIPv6(true) }, nil
		}},
		{Name: "v6dp-default", Daemon: true, Setup: daemon("auto", false)},
		{Name: "v6dp-default-peer", Daemon: true, Setup: daemon("auto", true)},
		{Name: "v6dp-default-limited", Daemon: true, Setup: daemonWith("auto", false, nil)},
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
// for its containers' addresses (and a few addresses no container has)
// from the router and counts the valid answers, for every way of
// answering, on one topology per container count. A row that answers
// wrongly or loses endpoints is FAILED and fails the benchmark; figures
// never do.
func BenchmarkNDPFlood(b *testing.B) {
	p := benchParams()
	tuning := raiseNeighTable(b, maxOf(p.Ns))
	var mu sync.Mutex
	var rows []row
	for _, n := range p.Ns {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			bt := newBenchTopo(b, n)
			check, err := newNACheck(bt.RouterMAC, bt.HostMAC, routerAddr6(), netip.MustParsePrefix(ctPrefix), portAddrs(bt))
			if err != nil {
				b.Fatalf("NA check: %+v", err)
			}
			bt.Defer(check.Close)
			for _, c := range configs() {
				if !pick(c.Name) {
					continue
				}
				mu.Lock()
				skip := c.Skip != nil && c.Skip(rowsFor(rows, n))
				mu.Unlock()
				if skip {
					continue
				}
				b.Run(c.Name, func(b *testing.B) {
					bt.b = b
					r := bt.measure(c, p, check)
					mu.Lock()
					rows = append(rows, r)
					mu.Unlock()
					switch {
					case len(r.Failed) > 0:
						b.Errorf("%s N=%d FAILED: %s", c.Name, n, strings.Join(r.Failed, "; "))
					case r.Err != "" && (strings.HasPrefix(c.Name, "v6dp") || strings.HasPrefix(c.Name, "loader")):
						b.Errorf("%s N=%d: %s", c.Name, n, r.Err)
					case r.Err != "":
						// A peer that cannot be measured is a finding
						// about the peer, in the table.
						b.Logf("%s N=%d: %s", c.Name, n, r.Err)
					}
					b.ReportMetric(0, "ns/op")
				})
			}
			bt.b = b
		})
	}
	var progRows []progRow
	b.Run("prog", func(b *testing.B) { progRows = benchProg(b) })
	var s strings.Builder
	writeTable(&s, rows, progRows, p, tuning)
	fmt.Print(s.String())
	b.Log("\n" + s.String())
}

func maxOf(v []int) int {
	m := 0
	for _, x := range v {
		m = max(m, x)
	}
	return m
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

// measure sets a configuration up, then per run probes latency (each
// answer validated whole) and floods (answers counted by check), checks
// that no endpoint was lost, and tears down.
func (bt *benchTopo) measure(c config, p params, check *naCheck) row {
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
	// NAs, three rounds a second apart).
	bt.quiet(bt.Router, "eth0", 1200*time.Millisecond, 8*time.Second)
	// Ready when the last container answers (setup may still be settling).
	last := len(bt.Ports) - 1
	ready := false
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if _, _, err := pr.probe(bt.Frames[last], bt.Ports[last].Addr, timeout); err == nil {
			ready = true
			break
		}
	}
	if !ready {
		r.Err = fmt.Sprintf("no answer for %s within 10s", bt.Ports[last].Addr)
		return r
	}
	rng := rand.New(rand.NewPCG(uint64(bt.N), 1))
	var rtts []time.Duration
	sent := 0
	for run := 0; run < p.Runs; run++ {
		// Latency: single solicitations, one at a time, to random live
		// addresses (the same sequence for every configuration), each
		// answer checked whole.
		for i := 0; i < probes; i++ {
			k := rng.IntN(len(bt.Ports))
			sent++
			rtt, a, err := pr.probe(bt.Frames[k], bt.Ports[k].Addr, timeout)
			if err == nil {
				w := topo.Expect{Target: bt.Ports[k].Addr, To: routerAddr6(), ToMAC: bt.RouterMAC, HostMAC: bt.HostMAC, NeedTLLA: true, Router: a.NA.Router}
				if err := a.Check(w); err != nil {
					r.Failed = addFailure(r.Failed, "wrong answer to a probe: "+err.Error())
					continue
				}
				rtts = append(rtts, rtt)
			}
			time.Sleep(time.Millisecond)
		}
		if c.LatencyOnly {
			break
		}
		// A dead address is never answered, flood or not.
		if _, a, err := pr.probe(deadFrame(bt), bt.Dead[0], 300*time.Millisecond); err == nil {
			r.Failed = addFailure(r.Failed, fmt.Sprintf("answered for %s, which no container has (NA from %s, TLLA %s)", bt.Dead[0], a.Source, a.TLLA))
		} else if !errors.Is(err, errTimeout) {
			r.Err = err.Error()
			break
		}
		fr, err := bt.flood(p, check)
		if err != nil {
			r.Err = err.Error()
			break
		}
		r.Runs = append(r.Runs, fr)
		if fr.Wrong > 0 {
			r.Failed = addFailure(r.Failed, "wrong NAs during the flood (invalid, for a dead address, or not to the router); the last: "+check.lastWrong())
		}
		r.Failed = append(r.Failed, bt.lostEndpoints(c)...)
	}
	r.Lat = summarize(rtts, sent)
	return r
}

// lostEndpoints reports endpoints a row lost: the daemon's proxy and BPF
// entries, or the kernel's proxy entries, below N.
func (bt *benchTopo) lostEndpoints(c config) []string {
	switch {
	case c.Daemon:
		st, err := bt.status()
		if err != nil {
			return []string{"status after the flood: " + err.Error()}
		}
		if st.ProxyEntries < bt.N || (st.Dataplane != "kernel" && st.BPFEntries < bt.N) {
			return []string{fmt.Sprintf("endpoints lost: after the flood the daemon had %d proxy entries, %d BPF entries of %d", st.ProxyEntries, st.BPFEntries, bt.N)}
		}
	case c.Kernel:
		if n := bt.proxyEntryCount(); n < bt.N {
			return []string{fmt.Sprintf("endpoints lost: %d kernel proxy entries of %d", n, bt.N)}
		}
	}
	return nil
}

// flood runs trafgen in the router namespace on one CPU at full speed,
// round robin over every container address and the dead ones, and counts
// what goes out and the valid answers that come back during a window that
// starts once trafgen is up. Wrong answers count from the start of the
// flood until its queues have drained.
func (bt *benchTopo) flood(p params, check *naCheck) (ndpRun, error) {
	var r ndpRun
	detach, err := check.attach(bt.Router, "eth0")
	if err != nil {
		return r, fmt.Errorf("NA check: %w", err)
	}
	defer detach()
	_, wrong0, err := check.read()
	if err != nil {
		return r, err
	}
	log := bt.LogFile("trafgen")
	stop, exited, err := startFlood(bt.Router, p.CPU, bt.TrafgenConf, log)
	if err != nil {
		return r, err
	}
	defer stop()
	tx0 := bt.stats(bt.Router, "eth0").TxPackets
	for deadline := time.Now().Add(5 * time.Second); bt.stats(bt.Router, "eth0").TxPackets < tx0+1000; {
		select {
		case <-exited:
			b, _ := os.ReadFile(log.Name())
			return r, fmt.Errorf("trafgen exited: %s", b)
		default:
		}
		if time.Now().After(deadline) {
			return r, errors.New("trafgen sends nothing")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // past the start-up
	r0, h0, t0 := bt.stats(bt.Router, "eth0"), bt.stats(bt.Host, "eth0"), time.Now()
	v0, _, err := check.read()
	if err != nil {
		return r, err
	}
	time.Sleep(p.Flood)
	r1, h1, t1 := bt.stats(bt.Router, "eth0"), bt.stats(bt.Host, "eth0"), time.Now()
	v1, _, err := check.read()
	if err != nil {
		return r, err
	}
	stop()
	time.Sleep(500 * time.Millisecond) // late answers, and quiet for what comes next
	_, wrong1, err := check.read()
	if err != nil {
		return r, err
	}
	sec := t1.Sub(t0).Seconds()
	live := float64(len(bt.Ports)) / float64(len(bt.Ports)+len(bt.Dead))
	r.Offered = float64(r1.TxPackets-r0.TxPackets) / sec * live
	r.Valid = float64(v1-v0) / sec
	r.Wrong = wrong1 - wrong0
	r.HostDrop = float64(h1.RxDropped-h0.RxDropped) / sec
	return r, nil
}

func deadFrame(bt *benchTopo) []byte {
	f, err := nsFrame(bt.RouterMAC, routerAddr6(), bt.Dead[0])
	if err != nil {
		bt.b.Fatal(err)
	}
	return f
}

func find(rows []row, n int, name string) *row {
	for i := range rows {
		if rows[i].N == n && rows[i].Config == name && rows[i].Err == "" && len(rows[i].Runs) > 0 {
			return &rows[i]
		}
	}
	return nil
}

func pctOf(v float64) string { return fmt.Sprintf("%.1f%%", 100*v) }

func writeTable(w io.Writer, rows []row, progRows []progRow, p params, tuning string) {
	fmt.Fprintf(w, "\nNDP flood (%s): trafgen on CPU %d in the router namespace, %s per run, %d run(s) per row (median, min-max), round robin over all container addresses and 1 dead address per 16; "+
		"answered = valid NAs for live targets counted at the router's TC ingress (RFC 4861 7.1.2 and the proxy's fields, checksum included); latency: %d single probes per run (kernel rx timestamps), each answer checked whole; peers: %s, proxy_delay 0, ports v6 off\n\n",
		time.Now().UTC().Format("2006-01-02"), p.CPU, p.Flood, p.Runs, p.Probes, tuning)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "config\tN\tdataplane\toffered/s\tanswered/s\tshare answered\twrong NAs\thost drop/s\tmedian\tp99\tprobes ok\tvs kernel-tuned\tvs v6dp-kernel\tgate\t")
	for _, r := range rows {
		gate := "ok"
		if len(r.Failed) > 0 {
			gate = "FAILED"
		}
		if r.Err != "" {
			fmt.Fprintf(tw, "%s\t%d\t%s\tERROR (below)\t\t\t\t\t\t\t\t\t\t%s\t\n", r.Config, r.N, r.Dataplane, gate)
			continue
		}
		off, ans, frac, wrong, drop, vsK, vsV := "-", "-", "-", "-", "-", "-", "-"
		if len(r.Runs) > 0 {
			o, v, f := r.spreads()
			var d []float64
			for _, x := range r.Runs {
				d = append(d, x.HostDrop)
			}
			off, ans, frac, drop = o.format(fmtRate), v.format(fmtRate), f.format(pctOf), spreadOf(d).format(fmtRate)
			wrong = fmt.Sprint(r.wrong())
			if k := find(rows, r.N, "kernel-tuned"); k != nil {
				_, kv, _ := k.spreads()
				vsK = ratio(v.Median, kv.Median)
			}
			if k := find(rows, r.N, "v6dp-kernel"); k != nil {
				_, kv, _ := k.spreads()
				vsV = ratio(v.Median, kv.Median)
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\t%s\t\n", r.Config, r.N, r.Dataplane, off, ans, frac, wrong, drop,
			fmtDur(r.Lat.Median), fmtDur(r.Lat.P99), r.Lat.Answered, r.Lat.Sent, vsK, vsV, gate)
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
	writeNotesAndProgs(w, notes, "program alone (BPF_PROG_TEST_RUN, endpoints map with 1000 entries):", progRows)
	writeGoals(w, rows)
}

// writeGoals prints issue 10's NDP goal for the default dataplane. Goals
// are about speed: reported, never a failure.
func writeGoals(w io.Writer, rows []row) {
	fmt.Fprintln(w, "\ngoals (timing: reported, not gated):")
	for _, n := range []int{64, 1000} {
		d, k := find(rows, n, "v6dp-default"), find(rows, n, "kernel-tuned")
		if d == nil || k == nil {
			continue
		}
		_, dv, df := d.spreads()
		_, kv, _ := k.spreads()
		want := 10.0
		if n != 1000 {
			want = 1
		}
		mark := "not met"
		if dv.Median >= want*kv.Median {
			mark = "met"
		}
		fmt.Fprintf(w, "  %s: N=%d v6dp-default answers >= %gx kernel-tuned: %s/s vs %s/s (%s), %s of offered NS answered\n",
			mark, n, want, fmtRate(dv.Median), fmtRate(kv.Median), ratio(dv.Median, kv.Median), pctOf(df.Median))
	}
}
