package loader

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/mdlayher/ndp"
)

// Fixtures use documentation addresses (RFC 3849) and locally administered MACs.
var (
	uplinkMAC = net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x00, 0x01}
	peerMAC   = net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x00, 0x02}
	uplinkLL  = netip.MustParseAddr("fe80::5eff:fe00:1")
	peerAddr  = netip.MustParseAddr("2001:db8::1")
	peerLL    = netip.MustParseAddr("fe80::2")
	liveAddr  = netip.MustParseAddr("2001:db8::a:10")
	deadAddr  = netip.MustParseAddr("2001:db8::a:20")
	// noProxyAddr is in the map but without EndpointProxy.
	noProxyAddr = netip.MustParseAddr("2001:db8::a:30")
	allNodes    = netip.MustParseAddr("ff02::1")
	allNodesMAC = net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}
	unspecified = netip.IPv6Unspecified()
)

const (
	ethTypeIPv6 = 0x86dd
	ethTypeIPv4 = 0x0800
	ethTypeARP  = 0x0806
	protoICMPv6 = 58
	protoHopOpt = 0
)

// Verdicts of the two programs.
const (
	xdpPass     = 2
	xdpTX       = 3
	tcNext      = 0xffffffff // TC_ACT_UNSPEC (-1): TCX_NEXT
	tcRedirect  = 7
	outputExtra = 256 + 2
)

func testUplink() UplinkConfig {
	// Both programs do both jobs, so that each case runs against either.
	return UplinkConfig{Ifindex: 1, MAC: uplinkMAC, LinkLocal: uplinkLL, Router: true,
		NDPHooks: HookXDP | HookTC, ForwardHooks: HookXDP | HookTC, EgressForward: true}
}

// newTestDataplane opens a Dataplane pinned in a directory of its own and
// removes everything in t.Cleanup, also when the test fails.
func newTestDataplane(tb testing.TB) *Dataplane {
	tb.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	pinDir := "/sys/fs/bpf/v6dp-test-" + hex.EncodeToString(b)
	d, err := Open(pinDir)
	if err != nil {
		// Open may have pinned maps before it failed (a verifier error).
		_ = Remove(pinDir)
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			tb.Fatalf("Open: %+v", ve)
		}
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := d.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
		if err := Remove(pinDir); err != nil {
			tb.Errorf("Remove: %v", err)
		}
	})
	if err := d.SetUplink(testUplink()); err != nil {
		tb.Fatal(err)
	}
	for _, e := range []Endpoint{
		{Addr: liveAddr, Ifindex: 1, MAC: peerMAC, HostMAC: uplinkMAC, MTU: 1500, Flags: EndpointProxy},
		{Addr: noProxyAddr, Ifindex: 1, MAC: peerMAC, HostMAC: uplinkMAC, MTU: 1500},
	} {
		if err := d.PutEndpoint(e); err != nil {
			tb.Fatal(err)
		}
	}
	return d
}

// run runs prog once over frame and returns its verdict and output frame.
func run(tb testing.TB, prog *ebpf.Program, frame []byte) (uint32, []byte) {
	tb.Helper()
	opts := &ebpf.RunOptions{Data: frame, DataOut: make([]byte, len(frame)+outputExtra), Repeat: 1}
	ret, err := prog.Run(opts)
	if err != nil {
		tb.Fatalf("running %v: %v", prog, err)
	}
	return ret, opts.DataOut
}

func ethHeader(dst, src net.HardwareAddr, ethType uint16) []byte {
	b := make([]byte, 0, 14)
	b = append(b, dst...)
	b = append(b, src...)
	return binary.BigEndian.AppendUint16(b, ethType)
}

func ipv6Header(src, dst netip.Addr, nextHdr, hopLimit uint8, payloadLen int) []byte {
	b := binary.BigEndian.AppendUint32(nil, 0x60000000)
	b = binary.BigEndian.AppendUint16(b, uint16(payloadLen))
	b = append(b, nextHdr, hopLimit)
	b = append(b, src.AsSlice()...)
	return append(b, dst.AsSlice()...)
}

// icmp6Checksum is the RFC 4443 2.3 checksum of msg (checksum field
// included as it is) between src and dst.
func icmp6Checksum(src, dst netip.Addr, msg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(src.AsSlice())
	add(dst.AsSlice())
	add(binary.BigEndian.AppendUint32(nil, uint32(len(msg))))
	add([]byte{0, 0, 0, protoICMPv6})
	add(msg)
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// setICMPChecksum writes the correct checksum into an ICMPv6 message.
func setICMPChecksum(src, dst netip.Addr, msg []byte) {
	msg[2], msg[3] = 0, 0
	binary.BigEndian.PutUint16(msg[2:], icmp6Checksum(src, dst, msg))
}

// ns describes a Neighbor Solicitation frame.
type ns struct {
	ethSrc, ethDst   net.HardwareAddr
	src, dst, target netip.Addr
	hopLimit         uint8
	options          []ndp.Option
	// mangle edits the ICMPv6 message before the checksum is set.
	mangle func(msg []byte)
}

// solicitedNode returns the solicited-node group of a and its MAC.
func solicitedNode(a netip.Addr) (netip.Addr, net.HardwareAddr) {
	g, err := ndp.SolicitedNodeMulticast(a)
	if err != nil {
		panic(err)
	}
	b := g.As16()
	return g, net.HardwareAddr{0x33, 0x33, b[12], b[13], b[14], b[15]}
}

func sllao(mac net.HardwareAddr) ndp.Option {
	return &ndp.LinkLayerAddress{Direction: ndp.Source, Addr: mac}
}

// multicastNS is the usual address resolution NS of the peer for target.
func multicastNS(target netip.Addr) ns {
	group, groupMAC := solicitedNode(target)
	return ns{
		ethSrc: peerMAC, ethDst: groupMAC, src: peerAddr, dst: group, target: target,
		hopLimit: 255, options: []ndp.Option{sllao(peerMAC)},
	}
}

// dadNS is a Duplicate Address Detection probe for target.
func dadNS(target netip.Addr, options ...ndp.Option) ns {
	group, groupMAC := solicitedNode(target)
	return ns{
		ethSrc: peerMAC, ethDst: groupMAC, src: unspecified, dst: group, target: target,
		hopLimit: 255, options: options,
	}
}

func (n ns) frame() []byte {
	msg, err := ndp.MarshalMessage(&ndp.NeighborSolicitation{TargetAddress: n.target, Options: n.options})
	if err != nil {
		panic(fmt.Sprintf("marshaling NS: %v", err))
	}
	if n.mangle != nil {
		n.mangle(msg)
	}
	setICMPChecksum(n.src, n.dst, msg)
	b := ethHeader(n.ethDst, n.ethSrc, ethTypeIPv6)
	b = append(b, ipv6Header(n.src, n.dst, protoICMPv6, n.hopLimit, len(msg))...)
	return append(b, msg...)
}

// na describes the Neighbor Advertisement expected as an answer.
type na struct {
	ethDst                     net.HardwareAddr
	src, dst, target           netip.Addr
	router, solicited, overide bool
}

// frame builds the answer independently of the BPF code: ndp marshals the
// message, the headers are built by hand.
func (n na) frame() []byte {
	m := &ndp.NeighborAdvertisement{
		Router: n.router, Solicited: n.solicited, Override: n.overide, TargetAddress: n.target,
		Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: uplinkMAC}},
	}
	msg, err := ndp.MarshalMessage(m)
	if err != nil {
		panic(fmt.Sprintf("marshaling NA: %v", err))
	}
	setICMPChecksum(n.src, n.dst, msg)
	b := ethHeader(n.ethDst, uplinkMAC, ethTypeIPv6)
	b = append(b, ipv6Header(n.src, n.dst, protoICMPv6, 255, len(msg))...)
	return append(b, msg...)
}

// parsedNA is what checkNA extracts from an answer frame.
type parsedNA struct {
	EthDst, EthSrc net.HardwareAddr
	Src, Dst       netip.Addr
	NA             *ndp.NeighborAdvertisement
}

// parseNA checks that frame is a well-formed NA (RFC 4861 7.1.2: hop limit
// 255, correct checksum, code 0, at least 24 bytes) and returns its fields.
func parseNA(frame []byte) (*parsedNA, error) {
	if len(frame) < 14+40+24 {
		return nil, fmt.Errorf("frame of %d bytes is too short for an NA", len(frame))
	}
	if t := binary.BigEndian.Uint16(frame[12:]); t != ethTypeIPv6 {
		return nil, fmt.Errorf("ethertype %#x", t)
	}
	ip := frame[14:54]
	if ip[0]>>4 != 6 || ip[6] != protoICMPv6 || ip[7] != 255 {
		return nil, fmt.Errorf("IPv6 header % x: want version 6, next header 58, hop limit 255", ip[:8])
	}
	plen := int(binary.BigEndian.Uint16(ip[4:]))
	if 54+plen != len(frame) {
		return nil, fmt.Errorf("payload length %d in a frame of %d bytes", plen, len(frame))
	}
	src, _ := netip.AddrFromSlice(ip[8:24])
	dst, _ := netip.AddrFromSlice(ip[24:40])
	msg := frame[54:]
	if c := icmp6Checksum(src, dst, msg); c != 0 {
		return nil, fmt.Errorf("bad ICMPv6 checksum %#04x (residue %#04x)", binary.BigEndian.Uint16(msg[2:]), c)
	}
	if msg[1] != 0 {
		return nil, fmt.Errorf("ICMPv6 code %d", msg[1])
	}
	m, err := ndp.ParseMessage(msg)
	if err != nil {
		return nil, err
	}
	adv, ok := m.(*ndp.NeighborAdvertisement)
	if !ok {
		return nil, fmt.Errorf("got %T, want NA", m)
	}
	return &parsedNA{
		EthDst: net.HardwareAddr(frame[0:6]), EthSrc: net.HardwareAddr(frame[6:12]),
		Src: src, Dst: dst, NA: adv,
	}, nil
}

// counterDelta returns the counters that changed between two snapshots.
func counterDelta(before, after map[string]uint64) map[string]uint64 {
	out := make(map[string]uint64)
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}
