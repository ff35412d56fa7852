package loader

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/mdlayher/ndp"
	"golang.org/x/sys/unix"
)

// FuzzXDPUplink feeds arbitrary frames to both uplink programs and checks
// what must hold for any input: the verdict is pass or answer, a passed
// frame is unchanged, and an answer is a valid proxy NA for a live target.
func FuzzXDPUplink(f *testing.F) {
	d := newTestDataplane(f)
	for _, c := range packetCases() {
		if !c.disabled && c.uplink == nil {
			f.Add(c.in)
		}
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		// BPF_PROG_TEST_RUN needs at least an Ethernet header.
		if len(frame) < 14 {
			return
		}
		xdpRet, xdpOut := run(t, d.objs.XdpUplink, append([]byte{}, frame...))
		checkVerdict(t, "xdp", frame, xdpRet, xdpOut, xdpPass, xdpTX)

		opts := &ebpf.RunOptions{Data: append([]byte{}, frame...), DataOut: make([]byte, len(frame)+outputExtra), Repeat: 1}
		tcRet, err := d.objs.TcUplink.Run(opts)
		if errors.Is(err, unix.EINVAL) {
			// The skb test runner refuses frames whose IPv4/IPv6 header is short.
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		checkVerdict(t, "tc", frame, tcRet, opts.DataOut, tcNext, tcRedirect)
		if (xdpRet == xdpTX) != (tcRet == tcRedirect) || !bytes.Equal(xdpOut, opts.DataOut) {
			t.Errorf("xdp (%d) and tc (%d) disagree:\n xdp % x\n  tc % x", xdpRet, int32(tcRet), xdpOut, opts.DataOut)
		}
	})
}

func checkVerdict(t *testing.T, name string, in []byte, ret uint32, out []byte, pass, answer uint32) {
	t.Helper()
	switch ret {
	case pass:
		if !bytes.Equal(in, out) {
			t.Fatalf("%s: passed frame changed:\n  in % x\n out % x", name, in, out)
		}
	case answer:
		checkAnswer(t, name, in, out)
	default:
		t.Fatalf("%s: verdict %d is neither pass nor answer", name, int32(ret))
	}
}

func checkAnswer(t *testing.T, name string, in, out []byte) {
	t.Helper()
	p, err := parseNA(out)
	if err != nil {
		t.Fatalf("%s: answer to % x is no valid NA: %v\n% x", name, in, err, out)
	}
	if len(out) != 86 {
		t.Errorf("%s: answer is %d bytes, want 86", name, len(out))
	}
	if p.NA.TargetAddress != liveAddr {
		t.Errorf("%s: answered for %s, which is not a live endpoint", name, p.NA.TargetAddress)
	}
	if p.NA.Override {
		t.Errorf("%s: O=1 in a proxy NA (RFC 4861 7.2.8)", name)
	}
	if p.NA.Solicited == (p.Dst == allNodes) {
		t.Errorf("%s: S=%v with destination %s", name, p.NA.Solicited, p.Dst)
	}
	if !bytes.Equal(p.EthSrc, uplinkMAC) {
		t.Errorf("%s: Ethernet source %s, want the uplink's", name, p.EthSrc)
	}
	var tlla bool
	for _, o := range p.NA.Options {
		if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Target && bytes.Equal(lla.Addr, uplinkMAC) {
			tlla = true
		}
	}
	if !tlla {
		t.Errorf("%s: no TLLA option with the uplink MAC: %v", name, p.NA.Options)
	}
}

// FuzzPortProgram feeds arbitrary frames from endpoint A's port to the
// port program and checks what must hold for any input: the verdict is
// pass, drop or redirect; a passed frame is unchanged; and only a frame
// that is A's own (its MAC, and an IPv6 source A owns, or :: for DAD) is
// ever redirected, with nothing changed but the MACs and, routed, the hop
// limit lowered by one.
func FuzzPortProgram(f *testing.F) {
	d := newForwardDataplane(f)
	// What A's port owns: its link-local address, :: for DAD, and every
	// address the endpoints map gives its port (the fixtures put several
	// endpoints on ifindex 1).
	owned := map[netip.Addr]bool{epALL: true, netip.IPv6Unspecified(): true}
	eps, err := d.Endpoints()
	if err != nil {
		f.Fatal(err)
	}
	for a, e := range eps {
		if e.Ifindex == 1 {
			owned[a] = true
		}
	}
	for _, c := range append(egressCases(), guardEgressCases()...) {
		if c.setup == nil {
			f.Add(c.in)
		}
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) < 14 {
			return
		}
		opts := &ebpf.RunOptions{Data: append([]byte{}, frame...), DataOut: make([]byte, len(frame)+outputExtra), Repeat: 1}
		ret, err := d.egress.TcEndpoint.Run(opts)
		if errors.Is(err, unix.EINVAL) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		out := opts.DataOut
		switch ret {
		case tcNext:
			if !bytes.Equal(frame, out) {
				t.Fatalf("passed frame changed:\n  in % x\n out % x", frame, out)
			}
		case tcShot:
		case tcRedirect:
			checkPortRedirect(t, frame, out, owned)
		default:
			t.Fatalf("verdict %d is neither pass, drop nor redirect", int32(ret))
		}
	})
}

func checkPortRedirect(t *testing.T, in, out []byte, owned map[netip.Addr]bool) {
	t.Helper()
	if !bytes.Equal(in[6:12], epAMAC) {
		t.Fatalf("redirected a frame from MAC % x, not A's:\n% x", in[6:12], in)
	}
	if len(in) < 14+40 || in[12] != 0x86 || in[13] != 0xdd {
		t.Fatalf("redirected a frame that is not IPv6:\n% x", in)
	}
	src, _ := netip.AddrFromSlice(in[14+8 : 14+24])
	if !owned[src] {
		t.Fatalf("redirected a frame from %s, not one of A's addresses:\n% x", src, in)
	}
	if len(out) != len(in) || !bytes.Equal(in[12:14+7], out[12:14+7]) || !bytes.Equal(in[14+8:], out[14+8:]) {
		t.Fatalf("redirect changed more than MACs and hop limit:\n  in % x\n out % x", in, out)
	}
	if hin, hout := in[14+7], out[14+7]; hout != hin && hout != hin-1 {
		t.Fatalf("hop limit %d became %d", hin, hout)
	}
}
