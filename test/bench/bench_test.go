package bench

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
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
		if bin := os.Getenv("V6DP_BENCH_BIN"); bin != "" {
			// Another build of the daemon, for a before and after.
			v6dpBin = bin
			return func() { os.RemoveAll(dir) }, nil
		}
		if out, err := exec.Command("go", "build", "-o", v6dpBin, "../../cmd/v6dp").CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("building v6dp: %v\n%s", err, out)
		}
		return func() { os.RemoveAll(dir) }, nil
	}))
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
		if err := d.SetUplink(loader.UplinkConfig{Ifindex: ifi.Index, MAC: ifi.HardwareAddr, LinkLocal: ll, Router: true,
			NDPHooks: loader.HookXDP | loader.HookTC}); err != nil {
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
