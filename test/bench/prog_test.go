package bench

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"

	"github.com/v6dp/v6dp/loader"
	"github.com/v6dp/v6dp/test/topo"
)

type progRow struct {
	Prog, Case  string
	NsPerPacket float64
	Verdict     string
}

// benchProg times the uplink programs alone with BPF_PROG_TEST_RUN. The
// programs are the loader's, attached (XDP generic and TCX) to a dummy
// veth in a namespace of their own, and fetched back from the kernel
// by id: the loader keeps its program handles to itself.
func benchProg(b *testing.B) []progRow {
	const endpoints = 1000
	tp := topo.New(b)
	ns := tp.NS("prog")
	tp.MustRun(ns, "ip", "link", "add", "up0", "type", "veth", "peer", "name", "up1")
	tp.MustRun(ns, "ip", "link", "set", "up0", "up")
	pin := "/sys/fs/bpf/" + topo.Name("bench", tp.Tag) + "-prog"
	tp.Defer(func() { _ = loader.Remove(pin); removePins(pin) })

	pfx := netip.MustParsePrefix(ctPrefix).Addr().As16()
	addr := func(i int) (netip.Addr, net.HardwareAddr) {
		mac := net.HardwareAddr{0x02, 0x42, 0xac, 0x11, byte((i + 2) >> 8), byte(i + 2)}
		a := pfx
		copy(a[10:], mac)
		return netip.AddrFrom16(a), mac
	}
	var progs = map[string]*ebpf.Program{}
	var upIndex int
	err := topo.InNS(ns, func() error {
		ifi, err := net.InterfaceByName("up0")
		if err != nil {
			return err
		}
		upIndex = ifi.Index
		d, err := loader.Open(pin)
		if err != nil {
			return fmt.Errorf("loader.Open: %+v", err)
		}
		defer d.Close()
		if err := d.SetUplink(loader.UplinkConfig{Ifindex: ifi.Index, MAC: ifi.HardwareAddr, LinkLocal: netip.MustParseAddr("fe80::2"), Router: true,
			NDPHooks: loader.HookXDP | loader.HookTC}); err != nil {
			return err
		}
		for i := 0; i < endpoints; i++ {
			a, mac := addr(i)
			// All on up0, a port that exists: the programs answer only
			// for endpoints whose port is in the devmap.
			if err := d.PutEndpoint(loader.Endpoint{Addr: a, Ifindex: uint32(ifi.Index), MAC: mac, HostMAC: ifi.HardwareAddr, MTU: 1500, Flags: loader.EndpointProxy}); err != nil {
				return err
			}
		}
		if _, err := d.AttachXDP(ifi.Index, false); err != nil {
			return err
		}
		if _, err := d.AttachTC(ifi.Index); err != nil {
			return err
		}
		l, err := netlink.LinkByIndex(ifi.Index)
		if err != nil {
			return err
		}
		if l.Attrs().Xdp == nil || l.Attrs().Xdp.ProgId == 0 {
			return fmt.Errorf("no XDP program on up0")
		}
		if progs["xdp_uplink"], err = ebpf.NewProgramFromID(ebpf.ProgramID(l.Attrs().Xdp.ProgId)); err != nil {
			return err
		}
		q, err := link.QueryPrograms(link.QueryOptions{Target: ifi.Index, Attach: ebpf.AttachTCXIngress})
		if err != nil || len(q.Programs) == 0 {
			return fmt.Errorf("no TCX program on up0: %v", err)
		}
		progs["tc_uplink"], err = ebpf.NewProgramFromID(q.Programs[0].ID)
		return err
	})
	for _, p := range progs {
		defer p.Close()
	}
	if err != nil {
		b.Errorf("prog: %v", err)
		return nil
	}
	router := net.HardwareAddr{0x02, 0, 0x5e, 0, 0, 9}
	src := netip.MustParseAddr(routerAddr)
	live, _ := addr(endpoints / 2)
	dead, _ := addr(endpoints + 10)
	hit, _ := nsFrame(router, src, live)
	miss, _ := nsFrame(router, src, dead)

	var rows []progRow
	for _, name := range []string{"xdp_uplink", "tc_uplink"} {
		prog := progs[name]
		b.Run(name, func(b *testing.B) {
			// In up0's namespace, with up0 as the ingress interface: the
			// programs answer only on an uplink they have a config for.
			err := topo.InNS(ns, func() error {
				// Check that a hit is answered: the frame comes back as an NA.
				ret, out, _, err := testRun(prog, hit, upIndex, 1)
				if err != nil {
					return err
				}
				verdict := verdictName(name, ret)
				if t, ok := naTarget(out); ok && t == live {
					verdict += ", NA"
				} else {
					return fmt.Errorf("%s: the live target's NS got %s and no NA: the figure would time something else", name, verdict)
				}
				// A hit rewrites the frame in place, so repeats would time
				// the answer's second pass: one run per call, averaged.
				const calls = 20000
				var total time.Duration
				for i := 0; i < calls; i++ {
					_, _, dur, err := testRun(prog, hit, upIndex, 1)
					if err != nil {
						return err
					}
					total += dur
				}
				hitNs := float64(total.Nanoseconds()) / calls
				mret, _, mdur, err := testRun(prog, miss, upIndex, 200000)
				if err != nil {
					return err
				}
				b.ReportMetric(0, "ns/op")
				b.ReportMetric(hitNs, "ns/answered")
				b.ReportMetric(float64(mdur.Nanoseconds()), "ns/miss")
				rows = append(rows, progRow{name, "answered", hitNs, verdict},
					progRow{name, "miss", float64(mdur.Nanoseconds()), verdictName(name, mret)})
				return nil
			})
			if err != nil {
				b.Error(err)
			}
		})
	}
	return rows
}

func verdictName(prog string, ret uint32) string {
	names := map[uint32]string{0: "XDP_ABORTED", 1: "XDP_DROP", 2: "XDP_PASS", 3: "XDP_TX", 4: "XDP_REDIRECT"}
	if prog == "tc_uplink" {
		names = map[uint32]string{0: "TC_ACT_OK", 2: "TC_ACT_SHOT", 7: "TC_ACT_REDIRECT", 0xffffffff: "TCX_NEXT"}
	}
	if n, ok := names[ret]; ok {
		return n
	}
	return fmt.Sprintf("ret %d", int32(ret))
}
