package loader

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netns"
)

// benchmarkUplink reports the in-kernel time per packet (ns/packet).
//
// An answered NS is rewritten in place, and BPF_PROG_TEST_RUN with a
// repeat count reruns the program on its own output, so the answer is
// timed one run per call and the per-run durations are averaged. A miss
// leaves the frame alone and is timed with one call of b.N repeats.
func benchmarkUplink(b *testing.B, prog func(*Dataplane) *ebpf.Program) {
	d := newTestDataplane(b)
	b.Run("answered", func(b *testing.B) { benchPacket(b, prog(d), multicastNS(liveAddr).frame(), true) })
	b.Run("miss", func(b *testing.B) { benchPacket(b, prog(d), multicastNS(deadAddr).frame(), false) })
}

// benchPacket reports ns/packet for one frame. A frame the program rewrites
// is timed one run per call (a repeat would rerun it on its own output);
// one it leaves alone runs b.N repeats in one call.
func benchPacket(b *testing.B, prog *ebpf.Program, in []byte, rewritten bool) {
	if !rewritten {
		_, dur, err := prog.Benchmark(in, b.N, b.ResetTimer)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(dur.Nanoseconds()), "ns/packet")
		return
	}
	var total time.Duration
	for b.Loop() {
		_, dur, err := prog.Benchmark(in, 1, nil)
		if err != nil {
			b.Fatal(err)
		}
		total += dur
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/packet")
}

func BenchmarkXDPUplink(b *testing.B) {
	benchmarkUplink(b, func(d *Dataplane) *ebpf.Program { return d.objs.XdpUplink })
}

func BenchmarkTCUplink(b *testing.B) {
	benchmarkUplink(b, func(d *Dataplane) *ebpf.Program { return d.objs.TcUplink })
}

// benchmarkForward reports ns/packet for one forwarding verdict. A
// forwarded frame leaves with its hop limit lowered, so, like an answered
// NS, it is timed one run per call; a frame left alone (drop, pass) runs
// b.N repeats in one call. It runs on a thread in fwdNetns, whose FIB the
// endpoint program consults.
func benchmarkForward(b *testing.B, prog func(*Dataplane) *ebpf.Program, in []byte, verdict uint32, counter string) {
	ns := fwdNetns(b)
	d := newForwardDataplane(b)
	// The frame's interface in a test run (lo) for the uplink programs,
	// the FIB's output interface for the port program.
	suiteUplinkIndex = fwdUplinkIndex
	if p := prog(d); p.Type() == ebpf.XDP || p == d.objs.TcUplink {
		suiteUplinkIndex = 1
	}
	if err := d.SetUplink(forwardUplink()); err != nil {
		b.Fatal(err)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		b.Fatal(err)
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			panic(err) // a locked thread in the wrong namespace: stop
		}
	}()
	// The verdict the figure is for, checked once.
	if err := checkVerdictOnly(d, prog(d), in, verdict, counter); err != nil {
		b.Fatal(err)
	}
	benchPacket(b, prog(d), in, verdict == tcRedirect || verdict == xdpRedirect)
}

// checkVerdictOnly runs in once and checks its verdict and counter.
func checkVerdictOnly(d *Dataplane, prog *ebpf.Program, in []byte, verdict uint32, counter string) error {
	before, err := d.Counters()
	if err != nil {
		return err
	}
	ret, _, err := runIn(prog, in)
	if err != nil {
		return err
	}
	after, err := d.Counters()
	if err != nil {
		return err
	}
	if delta := counterDelta(before, after); ret != verdict || delta[counter] != 1 {
		return fmt.Errorf("verdict %d, counters %v: want %d and %s", int32(ret), delta, int32(verdict), counter)
	}
	return nil
}

func BenchmarkForward(b *testing.B) {
	xdp := func(d *Dataplane) *ebpf.Program { return d.objs.XdpUplink }
	tc := func(d *Dataplane) *ebpf.Program { return d.objs.TcUplink }
	ep := func(d *Dataplane) *ebpf.Program { return d.egress.TcEndpoint }
	toA := fromRouter(epA, protoUDP, 64, udp(1000)).bytes()
	spoofed := fromA(remote, protoUDP, 64, udp(1000))
	spoofed.src = epOther
	for _, c := range []struct {
		name    string
		prog    func(*Dataplane) *ebpf.Program
		in      []byte
		verdict uint32
		counter string
	}{
		{"xdp_uplink/redirect", xdp, toA, xdpRedirect, "fwd_redirected"},
		{"xdp_uplink/not_local", xdp, fromRouter(deadAddr, protoUDP, 64, udp(1000)).bytes(), xdpPass, "fwd_pass_not_local"},
		{"tc_uplink/redirect_peer", tc, toA, tcRedirect, "fwd_redirected"},
		{"tc_uplink/not_local", tc, fromRouter(deadAddr, protoUDP, 64, udp(1000)).bytes(), tcNext, "fwd_pass_not_local"},
		{"tc_endpoint/local", ep, fromA(epB, protoUDP, 64, udp(1000)).bytes(), tcRedirect, "egress_local"},
		{"tc_endpoint/fib", ep, fromA(remote, protoUDP, 64, udp(1000)).bytes(), tcRedirect, "egress_fib"},
		{"tc_endpoint/spoof_drop", ep, spoofed.bytes(), tcShot, "egress_spoof_drop"},
	} {
		b.Run(c.name, func(b *testing.B) { benchmarkForward(b, c.prog, c.in, c.verdict, c.counter) })
	}
}
