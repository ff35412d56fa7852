package loader

import (
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

// benchmarkUplink reports the in-kernel time per packet (ns/packet).
//
// An answered NS is rewritten in place, and BPF_PROG_TEST_RUN with a
// repeat count reruns the program on its own output, so the answer is
// timed one run per call and the per-run durations are averaged. A miss
// leaves the frame alone and is timed with one call of b.N repeats.
func benchmarkUplink(b *testing.B, prog func(*Dataplane) *ebpf.Program) {
	d := newTestDataplane(b)
	b.Run("answered", func(b *testing.B) {
		in := multicastNS(liveAddr).frame()
		var total time.Duration
		for b.Loop() {
			_, dur, err := prog(d).Benchmark(in, 1, nil)
			if err != nil {
				b.Fatal(err)
			}
			total += dur
		}
		b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/packet")
	})
	b.Run("miss", func(b *testing.B) {
		in := multicastNS(deadAddr).frame()
		_, dur, err := prog(d).Benchmark(in, b.N, b.ResetTimer)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(dur.Nanoseconds()), "ns/packet")
	})
}

func BenchmarkXDPUplink(b *testing.B) {
	benchmarkUplink(b, func(d *Dataplane) *ebpf.Program { return d.objs.XdpUplink })
}

func BenchmarkTCUplink(b *testing.B) {
	benchmarkUplink(b, func(d *Dataplane) *ebpf.Program { return d.objs.TcUplink })
}
