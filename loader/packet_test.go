package loader

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strconv"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/ndp"
)

// packetCase is one BPF fixture: input frame, expected answer (nil: the
// frame must pass unchanged) and the counter that must move by one.
type packetCase struct {
	name string
	in   []byte
	want []byte
	// uplink replaces testUplink(); disabled writes an all-zero config.
	uplink   *UplinkConfig
	disabled bool
	counter  string
	xdpOnly  bool
}

func unicastNS(target netip.Addr, options ...ndp.Option) ns {
	return ns{
		ethSrc: peerMAC, ethDst: uplinkMAC, src: peerAddr, dst: target, target: target,
		hopLimit: 255, options: options,
	}
}

// answer is the NA expected for a (non-DAD) NS from the peer.
func answer(target netip.Addr) na {
	return na{ethDst: peerMAC, src: target, dst: peerAddr, target: target, router: true, solicited: true}
}

func packetCases() []packetCase {
	nonce := ndp.NewNonce()
	llSource := testUplink()
	llSource.NASourceLinkLocal = true
	host := testUplink()
	host.Router = false

	hopByHop := func() []byte {
		f := multicastNS(liveAddr).frame()
		// Hop-by-hop header (8 bytes: next header 58, length 0, PadN) before the NS.
		hbh := []byte{protoICMPv6, 0, 1, 4, 0, 0, 0, 0}
		out := append([]byte{}, f[:54]...)
		out[14+6] = protoHopOpt
		binary.BigEndian.PutUint16(out[14+4:], uint16(len(f)-54+len(hbh)))
		out = append(out, hbh...)
		return append(out, f[54:]...)
	}
	echo := func() []byte {
		msg := []byte{128, 0, 0, 0, 0, 1, 0, 1, 'v', '6', 'd', 'p'}
		setICMPChecksum(peerAddr, liveAddr, msg)
		f := ethHeader(uplinkMAC, peerMAC, ethTypeIPv6)
		f = append(f, ipv6Header(peerAddr, liveAddr, protoICMPv6, 64, len(msg))...)
		return append(f, msg...)
	}
	withHop := func(n ns, hop uint8) ns { n.hopLimit = hop; return n }
	withMangle := func(n ns, f func([]byte)) ns { n.mangle = f; return n }
	badChecksum := func() []byte {
		f := multicastNS(liveAddr).frame()
		f[54+2] ^= 0x55
		return f
	}
	arp := append(ethHeader(allNodesMAC, peerMAC, ethTypeARP), make([]byte, 28)...)
	ipv4 := append(ethHeader(uplinkMAC, peerMAC, ethTypeIPv4), 0x45, 0, 0, 20, 0, 0, 0, 0, 64, 1, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2)
	full := multicastNS(liveAddr).frame()
	dadGroup, _ := solicitedNode(deadAddr)

	cases := []packetCase{
		{
			name: "multicast NS with SLLAO", in: multicastNS(liveAddr).frame(),
			want: answer(liveAddr).frame(), counter: "ns_answered",
		},
		{
			name: "unicast NS with SLLAO", in: unicastNS(liveAddr, sllao(peerMAC)).frame(),
			want: answer(liveAddr).frame(), counter: "ns_answered",
		},
		{
			name: "unicast NS without options grows", in: unicastNS(liveAddr).frame(),
			want: answer(liveAddr).frame(), counter: "ns_answered",
		},
		{
			name: "NS with two options shrinks", in: unicastNS(liveAddr, sllao(peerMAC), nonce).frame(),
			want: answer(liveAddr).frame(), counter: "ns_answered",
		},
		{
			name: "DAD NS", in: dadNS(liveAddr).frame(),
			want:    na{ethDst: allNodesMAC, src: liveAddr, dst: allNodes, target: liveAddr, router: true}.frame(),
			counter: "ns_dad_answered",
		},
		{
			name: "DAD NS with nonce", in: dadNS(liveAddr, nonce).frame(),
			want:    na{ethDst: allNodesMAC, src: liveAddr, dst: allNodes, target: liveAddr, router: true}.frame(),
			counter: "ns_dad_answered",
		},
		{
			name: "NA sourced from link-local", in: multicastNS(liveAddr).frame(), uplink: &llSource,
			want:    na{ethDst: peerMAC, src: uplinkLL, dst: peerAddr, target: liveAddr, router: true, solicited: true}.frame(),
			counter: "ns_answered",
		},
		{
			// The kernel proxies only while the host forwards.
			name: "host not forwarding", in: multicastNS(liveAddr).frame(), uplink: &host,
			counter: "pass_no_forwarding",
		},
		{
			name: "NS from link-local source", in: func() []byte {
				n := multicastNS(liveAddr)
				n.src = peerLL
				return n.frame()
			}(),
			want:    na{ethDst: peerMAC, src: liveAddr, dst: peerLL, target: liveAddr, router: true, solicited: true}.frame(),
			counter: "ns_answered",
		},
		{
			name: "trailing padding is dropped", in: append(multicastNS(liveAddr).frame(), 0, 0, 0, 0),
			want: answer(liveAddr).frame(), counter: "ns_answered",
		},
		{name: "target not live", in: multicastNS(deadAddr).frame(), counter: "ns_not_live"},
		{name: "target without proxy flag", in: multicastNS(noProxyAddr).frame(), counter: "ns_not_live"},
		{name: "hop limit 254", in: withHop(multicastNS(liveAddr), 254).frame(), counter: "ns_malformed"},
		{name: "hop limit 1", in: withHop(multicastNS(liveAddr), 1).frame(), counter: "ns_malformed"},
		{name: "bad checksum", in: badChecksum(), counter: "ns_malformed"},
		{
			name: "zero-length option", counter: "ns_malformed",
			in: withMangle(multicastNS(liveAddr), func(m []byte) { m[25] = 0 }).frame(),
		},
		{
			name: "option overruns the message", counter: "ns_malformed",
			in: withMangle(multicastNS(liveAddr), func(m []byte) { m[25] = 2 }).frame(),
		},
		{
			name: "code 1", counter: "ns_malformed",
			in: withMangle(multicastNS(liveAddr), func(m []byte) { m[1] = 1 }).frame(),
		},
		{
			name: "target multicast", counter: "ns_malformed",
			in: ns{
				ethSrc: peerMAC, ethDst: uplinkMAC, src: peerAddr, dst: liveAddr, target: allNodes,
				hopLimit: 255, options: []ndp.Option{sllao(peerMAC)},
			}.frame(),
		},
		{name: "DAD NS with SLLAO", in: dadNS(liveAddr, sllao(peerMAC)).frame(), counter: "ns_malformed"},
		{
			name: "DAD NS to another solicited-node group", counter: "ns_malformed",
			in: func() []byte {
				n := dadNS(liveAddr)
				n.dst = dadGroup
				return n.frame()
			}(),
		},
		{
			name: "DAD NS to all-nodes", counter: "ns_malformed",
			in: func() []byte {
				n := dadNS(liveAddr)
				n.dst = allNodes
				return n.frame()
			}(),
		},
		{name: "hop-by-hop header before ICMPv6", in: hopByHop(), counter: "pass_exthdr"},
		{name: "echo request", in: echo(), counter: "pass_not_ns"},
		{name: "ARP", in: arp, counter: "pass_not_ipv6"},
		{name: "IPv4", in: ipv4, counter: "pass_not_ipv6"},
		{name: "disabled", in: multicastNS(liveAddr).frame(), disabled: true, counter: "pass_disabled"},
		{name: "truncated NS body", in: full[:54+20], counter: "pass_truncated"},
		{name: "truncated option", in: full[:len(full)-4], counter: "pass_truncated"},
	}
	for _, n := range []int{14, 20, 53} {
		cases = append(cases, packetCase{
			name: "truncated at " + strconv.Itoa(n), in: append([]byte{}, full[:n]...), counter: "pass_truncated",
			// BPF_PROG_TEST_RUN for skb programs rejects an IPv6 frame
			// without a whole IPv6 header (EINVAL) before the program runs.
			xdpOnly: true,
		})
	}
	return cases
}

// progUnderTest is one of the two uplink programs with its verdicts.
type progUnderTest struct {
	name         string
	prog         func(*Dataplane) *ebpf.Program
	pass, answer uint32
}

var uplinkProgs = []progUnderTest{
	{name: "xdp", prog: func(d *Dataplane) *ebpf.Program { return d.objs.XdpUplink }, pass: xdpPass, answer: xdpTX},
	{name: "tc", prog: func(d *Dataplane) *ebpf.Program { return d.objs.TcUplink }, pass: tcNext, answer: tcRedirect},
}

func TestUplinkPackets(t *testing.T) {
	d := newTestDataplane(t)
	for _, p := range uplinkProgs {
		for _, tc := range packetCases() {
			if tc.xdpOnly && p.name != "xdp" {
				continue
			}
			t.Run(p.name+"/"+tc.name, func(t *testing.T) {
				cfg := testUplink()
				if tc.uplink != nil {
					cfg = *tc.uplink
				}
				if err := d.SetUplink(cfg); err != nil {
					t.Fatal(err)
				}
				if tc.disabled {
					if err := d.objs.V6dpUplinkCfg.Put(uint32(0), &uplinkUplinkConfig{}); err != nil {
						t.Fatal(err)
					}
				}
				before, err := d.Counters()
				if err != nil {
					t.Fatal(err)
				}

				in := append([]byte{}, tc.in...)
				ret, out := run(t, p.prog(d), in)

				after, err := d.Counters()
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(map[string]uint64{tc.counter: 1}, counterDelta(before, after)); diff != "" {
					t.Errorf("counters (-want +got):\n%s", diff)
				}
				if tc.want == nil {
					if ret != p.pass {
						t.Errorf("verdict %d, want pass (%d)", int32(ret), int32(p.pass))
					}
					if !bytes.Equal(out, tc.in) {
						t.Errorf("passed frame changed:\n got % x\nwant % x", out, tc.in)
					}
					return
				}
				if ret != p.answer {
					t.Fatalf("verdict %d, want answer (%d)", int32(ret), int32(p.answer))
				}
				if diff := cmp.Diff(tc.want, out); diff != "" {
					t.Errorf("answer frame (-want +got):\n%s", diff)
				}
				if _, err := parseNA(out); err != nil {
					t.Errorf("answer is not a valid NA: %v", err)
				}
			})
		}
	}
}
