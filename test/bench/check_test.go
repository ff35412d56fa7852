package bench

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/v6dp/v6dp/test/topo"
)

// The bench's correctness gates count in BPF, at line rate, what arrives
// at the far end: valid Neighbor Advertisements for live targets at the
// router (every other NA is a wrong answer), and intact datagrams at each
// container. Both programs are assembled here (no clang at bench time) and
// tested in checks_test.go with hand-made frames, right and wrong.

// __sk_buff offsets (uapi linux/bpf.h).
const (
	skbLen     = 0
	skbData    = 76
	skbDataEnd = 80
	tcActOK    = 0
	tcActShot  = 2
)

// le reads b (1, 2, 4 or 8 bytes) as the CPU does a load of that size from
// packet memory.
func le(b []byte) uint64 {
	switch len(b) {
	case 1:
		return uint64(b[0])
	case 2:
		return uint64(binary.NativeEndian.Uint16(b))
	case 4:
		return uint64(binary.NativeEndian.Uint32(b))
	}
	return binary.NativeEndian.Uint64(b)
}

func size(n int) asm.Size {
	switch n {
	case 1:
		return asm.Byte
	case 2:
		return asm.Half
	case 4:
		return asm.Word
	}
	return asm.DWord
}

// expectBytes jumps to fail unless the packet (R7) holds want at off
// (1, 2, 4 or 8 bytes). R3 and R5 are scratch.
func expectBytes(off int, want []byte, fail string) asm.Instructions {
	return asm.Instructions{
		asm.LoadMem(asm.R3, asm.R7, int16(off), size(len(want))),
		asm.LoadImm(asm.R5, int64(le(want)), asm.DWord),
		asm.JNE.Reg(asm.R3, asm.R5, fail),
	}
}

// count adds one to the per-CPU slot key of m and returns verdict.
func count(m *ebpf.Map, key int32, verdict int32, symbol string) asm.Instructions {
	return asm.Instructions{
		asm.StoreImm(asm.RFP, -4, int64(key), asm.Word).WithSymbol(symbol),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.LoadMapPtr(asm.R1, m.FD()),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, symbol+"_out"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R0, verdict).WithSymbol(symbol + "_out"),
		asm.Return(),
	}
}

// naCheck counts, at the router's eth0 TC ingress, the Neighbor
// Advertisements that answer the flood correctly and those that do not,
// and drops both (the router's own kernel need not process the answers;
// that is the same for every row). Everything else passes.
type naCheck struct {
	counts, live *ebpf.Map
	last         *ebpf.Map // the last wrong NA's first bytes, for the report
	prog         *ebpf.Program
}

// naLastSize is the room for the last wrong NA: a whole proxy answer.
const naLastSize = 128

// NA counter slots.
const (
	naValid = 0 // a proxy's answer as RFC 4861 wants it, for a live target
	naWrong = 1 // any other NA: invalid, for a target not live, to elsewhere
)

// newNACheck builds the program for a flood from routerMAC/routerAddr that
// the host (hostMAC) answers for live. A valid answer is exactly what
// RFC 4861 7.1.2 and 7.2.4 ask of a proxy's solicited NA without options
// other than the TLLA: 86 bytes, hop limit 255, ICMPv6 type 136 code 0,
// checksum right, S set, O clear, the target live, one TLLA option
// carrying hostMAC, sent from hostMAC to the router's MAC and address.
// NAs for targets outside prefix (the host's own addresses, answered to
// the router's reachability probes) pass uncounted; prefix must be a /80
// (the containers' addresses differ in their last 48 bits only).
func newNACheck(routerMAC, hostMAC net.HardwareAddr, routerAddr netip.Addr, prefix netip.Prefix, live []netip.Addr) (*naCheck, error) {
	if prefix.Bits() != 80 {
		return nil, fmt.Errorf("NA check: prefix %s is not a /80", prefix)
	}
	pfx := prefix.Addr().As16()
	c := &naCheck{}
	var err error
	if c.counts, err = ebpf.NewMap(&ebpf.MapSpec{Name: "bench_na", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 2}); err != nil {
		return nil, err
	}
	if c.last, err = ebpf.NewMap(&ebpf.MapSpec{Name: "bench_na_last", Type: ebpf.Array, KeySize: 4, ValueSize: naLastSize, MaxEntries: 1}); err != nil {
		c.Close()
		return nil, err
	}
	if c.live, err = ebpf.NewMap(&ebpf.MapSpec{Name: "bench_live", Type: ebpf.Hash, KeySize: 16, ValueSize: 4, MaxEntries: uint32(len(live) + 1)}); err != nil {
		c.Close()
		return nil, err
	}
	for _, a := range live {
		if err := c.live.Put(a.As16(), uint32(1)); err != nil {
			c.Close()
			return nil, err
		}
	}
	const (
		eth  = 14
		ip6  = eth
		icmp = eth + 40
		full = icmp + 32
	)
	dst := routerAddr.As16()
	be16 := func(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R7, asm.R6, skbData, asm.Word),
		asm.LoadMem(asm.R8, asm.R6, skbDataEnd, asm.Word),
		// An NA at all? Else not ours.
		asm.Mov.Reg(asm.R2, asm.R7),
		asm.Add.Imm(asm.R2, icmp+1),
		asm.JGT.Reg(asm.R2, asm.R8, "pass"),
	}
	insns = append(insns, expectBytes(12, be16(0x86dd), "pass")...)
	insns = append(insns, expectBytes(ip6+6, []byte{58}, "pass")...)
	insns = append(insns, expectBytes(icmp, []byte{136}, "pass")...)
	insns = append(insns,
		asm.Mov.Reg(asm.R2, asm.R7),
		asm.Add.Imm(asm.R2, icmp+18),
		asm.JGT.Reg(asm.R2, asm.R8, "wrong"),
	)
	insns = append(insns, expectBytes(icmp+8, pfx[0:8], "pass")...)
	insns = append(insns, expectBytes(icmp+16, pfx[8:10], "pass")...)
	// From here every mismatch is a wrong answer.
	insns = append(insns,
		asm.Mov.Reg(asm.R2, asm.R7),
		asm.Add.Imm(asm.R2, full),
		asm.JGT.Reg(asm.R2, asm.R8, "wrong"),
		// An unsolicited advertisement (to a multicast group, S clear:
		// a daemon announcing new addresses) answers nothing.
		asm.LoadMem(asm.R3, asm.R7, 0, asm.Byte),
		asm.And.Imm(asm.R3, 1),
		asm.JEq.Imm(asm.R3, 0, "unicast"),
		asm.LoadMem(asm.R3, asm.R7, icmp+4, asm.Byte),
		asm.And.Imm(asm.R3, 0x40),
		asm.JEq.Imm(asm.R3, 0, "pass"),
		asm.LoadMem(asm.R3, asm.R6, skbLen, asm.Word).WithSymbol("unicast"),
		asm.JNE.Imm(asm.R3, full, "wrong"),
	)
	insns = append(insns, expectBytes(0, routerMAC[0:4], "wrong")...)
	insns = append(insns, expectBytes(4, routerMAC[4:6], "wrong")...)
	insns = append(insns, expectBytes(6, hostMAC[0:4], "wrong")...)
	insns = append(insns, expectBytes(10, hostMAC[4:6], "wrong")...)
	insns = append(insns, expectBytes(ip6+4, be16(32), "wrong")...)    // payload length
	insns = append(insns, expectBytes(ip6+7, []byte{255}, "wrong")...) // hop limit
	insns = append(insns, expectBytes(ip6+24, dst[0:8], "wrong")...)
	insns = append(insns, expectBytes(ip6+32, dst[8:16], "wrong")...)
	insns = append(insns, expectBytes(icmp+1, []byte{0}, "wrong")...) // code
	insns = append(insns,
		// S set, O clear (R as the host forwards or not).
		asm.LoadMem(asm.R3, asm.R7, icmp+4, asm.Byte),
		asm.And.Imm(asm.R3, 0x60),
		asm.JNE.Imm(asm.R3, 0x40, "wrong"),
	)
	insns = append(insns, expectBytes(icmp+24, []byte{2, 1}, "wrong")...) // one TLLA option
	insns = append(insns, expectBytes(icmp+26, hostMAC[0:4], "wrong")...)
	insns = append(insns, expectBytes(icmp+30, hostMAC[4:6], "wrong")...)
	insns = append(insns,
		// The target is live.
		asm.LoadMem(asm.R3, asm.R7, icmp+8, asm.DWord),
		asm.StoreMem(asm.RFP, -16, asm.R3, asm.DWord),
		asm.LoadMem(asm.R3, asm.R7, icmp+16, asm.DWord),
		asm.StoreMem(asm.RFP, -8, asm.R3, asm.DWord),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -16),
		asm.LoadMapPtr(asm.R1, c.live.FD()),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "wrong"),
		// The checksum: source and destination, the rest of the
		// pseudo-header (RFC 8200 8.1), the message; a right one sums
		// to all ones.
		asm.Mov.Imm(asm.R1, 0),
		asm.Mov.Imm(asm.R2, 0),
		asm.Mov.Reg(asm.R3, asm.R7),
		asm.Add.Imm(asm.R3, ip6+8),
		asm.Mov.Imm(asm.R4, 32),
		asm.Mov.Imm(asm.R5, 0),
		asm.FnCsumDiff.Call(),
		asm.LoadImm(asm.R1, int64(le(binary.BigEndian.AppendUint32(nil, 32))), asm.DWord),
		asm.StoreMem(asm.RFP, -24, asm.R1, asm.Word),
		asm.LoadImm(asm.R1, int64(le(binary.BigEndian.AppendUint32(nil, 58))), asm.DWord),
		asm.StoreMem(asm.RFP, -20, asm.R1, asm.Word),
		asm.Mov.Reg(asm.R5, asm.R0),
		asm.Mov.Imm(asm.R1, 0),
		asm.Mov.Imm(asm.R2, 0),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, -24),
		asm.Mov.Imm(asm.R4, 8),
		asm.FnCsumDiff.Call(),
		asm.Mov.Reg(asm.R5, asm.R0),
		asm.Mov.Imm(asm.R1, 0),
		asm.Mov.Imm(asm.R2, 0),
		asm.Mov.Reg(asm.R3, asm.R7),
		asm.Add.Imm(asm.R3, icmp),
		asm.Mov.Imm(asm.R4, 32),
		asm.FnCsumDiff.Call(),
	)
	// Fold the 32-bit sum to 16 bits, twice.
	for i := 0; i < 2; i++ {
		insns = append(insns,
			asm.LoadImm(asm.R1, 0xffffffff, asm.DWord),
			asm.And.Reg(asm.R0, asm.R1),
			asm.Mov.Reg(asm.R1, asm.R0),
			asm.And.Imm(asm.R1, 0xffff),
			asm.RSh.Imm(asm.R0, 16),
			asm.Add.Reg(asm.R0, asm.R1),
		)
	}
	insns = append(insns, asm.JNE.Imm(asm.R0, 0xffff, "wrong"))
	insns = append(insns, count(c.counts, naValid, tcActShot, "valid")...)
	// A wrong one is kept (its first full bytes) for the report.
	insns = append(insns,
		asm.StoreImm(asm.RFP, -4, 0, asm.Word).WithSymbol("wrong"),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.LoadMapPtr(asm.R1, c.last.FD()),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "wrongcount"),
		asm.Mov.Reg(asm.R3, asm.R0),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, 0),
		asm.Mov.Imm(asm.R4, full),
		asm.LoadMem(asm.R5, asm.R6, skbLen, asm.Word),
		asm.JGE.Imm(asm.R5, full, "keep"),
		asm.Mov.Imm(asm.R4, icmp+1),
		asm.FnSkbLoadBytes.Call().WithSymbol("keep"),
	)
	insns = append(insns, count(c.counts, naWrong, tcActShot, "wrongcount")...)
	insns = append(insns, asm.Mov.Imm(asm.R0, tcActOK).WithSymbol("pass"), asm.Return())
	c.prog, err = ebpf.NewProgram(&ebpf.ProgramSpec{Name: "bench_na", Type: ebpf.SchedCLS, AttachType: ebpf.AttachTCXIngress, License: "GPL", Instructions: insns})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("NA check program: %w", err)
	}
	return c, nil
}

func (c *naCheck) Close() {
	if c.last != nil {
		c.last.Close()
	}
	if c.prog != nil {
		c.prog.Close()
	}
	if c.live != nil {
		c.live.Close()
	}
	if c.counts != nil {
		c.counts.Close()
	}
}

// attach puts the check on ifname's TC ingress in ns, first.
func (c *naCheck) attach(ns, ifname string) (detach func(), err error) {
	var l link.Link
	err = topo.InNS(ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		l, err = link.AttachTCX(link.TCXOptions{Interface: ifi.Index, Program: c.prog, Attach: ebpf.AttachTCXIngress, Anchor: link.Head()})
		return err
	})
	if err != nil {
		return nil, err
	}
	return func() { l.Close() }, nil
}

// read returns the valid and wrong NAs counted so far.
func (c *naCheck) read() (valid, wrong uint64, err error) {
	v, err := perCPUSum(c.counts, naValid)
	if err != nil {
		return 0, 0, err
	}
	w, err := perCPUSum(c.counts, naWrong)
	return v, w, err
}

// lastWrong describes the last wrong NA counted.
func (c *naCheck) lastWrong() string {
	b := make([]byte, naLastSize)
	if err := c.last.Lookup(uint32(0), &b); err != nil {
		return err.Error()
	}
	a := topo.ParseNA(b[:86])
	if a == nil {
		return fmt.Sprintf("% x", b[:86])
	}
	return fmt.Sprintf("target %s from %s (%s) to %s (%s), S=%v O=%v, TLLA %s, hop limit %d, RFC 4861 problems %v; bytes % x",
		a.NA.TargetAddress, a.Source, a.EthSrc, a.Dest, a.EthDst, a.NA.Solicited, a.NA.Override, a.TLLA, a.HopLimit, a.RFC4861(), b[:86])
}

func perCPUSum(m *ebpf.Map, key uint32) (uint64, error) {
	var per []uint64
	if err := m.Lookup(key, &per); err != nil {
		return 0, err
	}
	var sum uint64
	for _, v := range per {
		sum += v
	}
	return sum, nil
}

// udpCheck counts, at each container's eth0 TC ingress, the flood's
// datagrams that arrive intact (every byte as sent, the Ethernet source
// aside, which each dataplane sets its own way, and the hop limit one
// less) and those that do not, per container. Its verdict is a switch:
// pass (into the container's stack) or drop (the host-cost measurement,
// where the containers' own stacks must cost nothing).
type udpCheck struct {
	counts, verdict *ebpf.Map
	progs           []*ebpf.Program // one per container, in port order
}

// newUDPCheck builds one program per flood frame (one per container, whose
// MAC the dataplane puts in the Ethernet destination).
func newUDPCheck(frames [][]byte, macs []net.HardwareAddr) (*udpCheck, error) {
	c := &udpCheck{}
	var err error
	if c.counts, err = ebpf.NewMap(&ebpf.MapSpec{Name: "bench_udp", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: uint32(2 * len(frames))}); err != nil {
		return nil, err
	}
	if c.verdict, err = ebpf.NewMap(&ebpf.MapSpec{Name: "bench_verdict", Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1}); err != nil {
		c.Close()
		return nil, err
	}
	for k, f := range frames {
		want := append([]byte(nil), f...)
		copy(want[0:6], macs[k])
		want[14+7]-- // one router hop: the host
		insns := asm.Instructions{
			asm.Mov.Reg(asm.R6, asm.R1),
			asm.LoadMem(asm.R7, asm.R6, skbData, asm.Word),
			asm.LoadMem(asm.R8, asm.R6, skbDataEnd, asm.Word),
			// The kernel's own forwarding may hand over a frame whose
			// linear part is shorter than the frame: make it whole.
			asm.Mov.Reg(asm.R2, asm.R7),
			asm.Add.Imm(asm.R2, int32(len(want))),
			asm.JLE.Reg(asm.R2, asm.R8, "linear"),
			asm.Mov.Reg(asm.R1, asm.R6),
			asm.Mov.Imm(asm.R2, int32(len(want))),
			asm.FnSkbPullData.Call(),
			asm.LoadMem(asm.R7, asm.R6, skbData, asm.Word),
			asm.LoadMem(asm.R8, asm.R6, skbDataEnd, asm.Word),
			// The flood's (UDP from its source port)? Else not ours:
			// passed, uncounted (TCP, NDP).
			asm.Mov.Reg(asm.R2, asm.R7).WithSymbol("linear"),
			asm.Add.Imm(asm.R2, 14+40+8),
			asm.JGT.Reg(asm.R2, asm.R8, "other"),
		}
		insns = append(insns, expectBytes(12, want[12:14], "other")...)
		insns = append(insns, expectBytes(14+6, want[14+6:14+7], "other")...)
		insns = append(insns, expectBytes(14+40, want[14+40:14+42], "other")...)
		insns = append(insns,
			asm.Mov.Reg(asm.R2, asm.R7),
			asm.Add.Imm(asm.R2, int32(len(want))),
			asm.JGT.Reg(asm.R2, asm.R8, "bad"),
			asm.LoadMem(asm.R3, asm.R6, skbLen, asm.Word),
			asm.JNE.Imm(asm.R3, int32(len(want)), "bad"),
		)
		insns = append(insns, expectBytes(0, want[0:4], "bad")...)
		insns = append(insns, expectBytes(4, want[4:6], "bad")...)
		// 6..12 is the Ethernet source.
		off := 12
		for ; off+8 <= len(want); off += 8 {
			insns = append(insns, expectBytes(off, want[off:off+8], "bad")...)
		}
		for _, n := range []int{4, 2, 1} {
			if off+n <= len(want) {
				insns = append(insns, expectBytes(off, want[off:off+n], "bad")...)
				off += n
			}
		}
		insns = append(insns,
			// The verdict for both outcomes, into R9.
			asm.Mov.Imm(asm.R9, tcActOK),
			asm.StoreImm(asm.RFP, -8, 0, asm.Word),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -8),
			asm.LoadMapPtr(asm.R1, c.verdict.FD()),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "good"),
			asm.LoadMem(asm.R9, asm.R0, 0, asm.Word),
		)
		goodKey, badKey := int32(2*k), int32(2*k+1)
		insns = append(insns, countTo(c.counts, goodKey, "good")...)
		insns = append(insns, asm.Mov.Imm(asm.R9, tcActOK).WithSymbol("bad"))
		insns = append(insns, countTo(c.counts, badKey, "badcount")...)
		insns = append(insns, asm.Mov.Imm(asm.R0, tcActOK).WithSymbol("other"), asm.Return())
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "bench_udp", Type: ebpf.SchedCLS, AttachType: ebpf.AttachTCXIngress, License: "GPL", Instructions: insns})
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("UDP check program %d: %w", k, err)
		}
		c.progs = append(c.progs, prog)
	}
	return c, nil
}

// countTo adds one to the per-CPU slot key and returns the verdict in R9.
func countTo(m *ebpf.Map, key int32, symbol string) asm.Instructions {
	return asm.Instructions{
		asm.StoreImm(asm.RFP, -4, int64(key), asm.Word).WithSymbol(symbol),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.LoadMapPtr(asm.R1, m.FD()),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, symbol+"_out"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		asm.Mov.Reg(asm.R0, asm.R9).WithSymbol(symbol + "_out"),
		asm.Return(),
	}
}

func (c *udpCheck) Close() {
	for _, p := range c.progs {
		p.Close()
	}
	if c.verdict != nil {
		c.verdict.Close()
	}
	if c.counts != nil {
		c.counts.Close()
	}
}

// setDrop switches the verdict for intact datagrams: drop or pass.
func (c *udpCheck) setDrop(drop bool) error {
	v := uint32(tcActOK)
	if drop {
		v = tcActShot
	}
	return c.verdict.Put(uint32(0), v)
}

// attach puts program k on ports[k]'s container side (eth0 TC ingress).
func (c *udpCheck) attach(ft *fwdTopo) (detach func(), err error) {
	var links []link.Link
	detach = func() {
		for _, l := range links {
			l.Close()
		}
		links = nil
	}
	for k, p := range ft.Ports {
		err := topo.InNS(p.NS, func() error {
			ifi, err := net.InterfaceByName(p.PeerIf)
			if err != nil {
				return err
			}
			l, err := link.AttachTCX(link.TCXOptions{Interface: ifi.Index, Program: c.progs[k], Attach: ebpf.AttachTCXIngress, Anchor: link.Head()})
			if err != nil {
				return fmt.Errorf("%s in %s: %w", p.PeerIf, p.NS, err)
			}
			links = append(links, l)
			return nil
		})
		if err != nil {
			detach()
			return nil, err
		}
	}
	return detach, nil
}

// udpCounts are the per-container counts of a udpCheck.
type udpCounts struct {
	intact, bad []uint64
}

func (c *udpCheck) read() (udpCounts, error) {
	n := len(c.progs)
	r := udpCounts{intact: make([]uint64, n), bad: make([]uint64, n)}
	for k := 0; k < n; k++ {
		var err error
		if r.intact[k], err = perCPUSum(c.counts, uint32(2*k)); err != nil {
			return r, err
		}
		if r.bad[k], err = perCPUSum(c.counts, uint32(2*k+1)); err != nil {
			return r, err
		}
	}
	return r, nil
}

func (u udpCounts) sum() (intact, bad uint64) {
	for k := range u.intact {
		intact += u.intact[k]
		bad += u.bad[k]
	}
	return
}
