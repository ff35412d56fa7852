package topo

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"time"

	"github.com/mdlayher/ndp"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NDPConn sends Neighbor Solicitations from a test namespace as the router
// would, and sees every Neighbor Advertisement that arrives on the
// interface as it was on the wire. Solicitations go out through a raw
// ICMPv6 socket (the kernel fills in the checksum); answers are read from a
// packet socket, because the kernel drops ICMPv6 with a bad checksum before
// a raw socket sees it, and hides the hop limit and the Ethernet header: a
// wrong answer must be seen to be caught. It addresses the interface by
// index only: Go's net package resolves interface names through a
// process-wide cache that does not know which namespace a name belongs to,
// and the tests open sockets in many namespaces whose interfaces share
// names and indexes.
type NDPConn struct {
	Iface *net.Interface
	fd    int // raw ICMPv6, for sending
	pfd   int // AF_PACKET, for receiving
	src   netip.Addr
}

// ListenNDP opens the sockets on ifname inside ns, sending from the
// interface's link-local address.
func ListenNDP(ns, ifname string) (*NDPConn, error) {
	var c *NDPConn
	err := InNS(ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMPV6)
		if err != nil {
			return fmt.Errorf("icmpv6 socket in %s: %w", ns, err)
		}
		c = &NDPConn{Iface: ifi, fd: fd, pfd: -1}
		for _, o := range [][2]int{{unix.IPV6_UNICAST_HOPS, 255}, {unix.IPV6_MULTICAST_HOPS, 255}, {unix.IPV6_MULTICAST_LOOP, 0}} {
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, o[0], o[1]); err != nil {
				c.Close()
				return err
			}
		}
		if err := unix.BindToDevice(fd, ifname); err != nil {
			c.Close()
			return err
		}
		proto := int(htons(unix.ETH_P_IPV6))
		if c.pfd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto); err != nil {
			c.Close()
			return fmt.Errorf("packet socket in %s: %w", ns, err)
		}
		if err := unix.Bind(c.pfd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IPV6), Ifindex: ifi.Index}); err != nil {
			c.Close()
			return fmt.Errorf("packet socket on %s in %s: %w", ifname, ns, err)
		}
		// The link-local address may still be tentative right after setup.
		for i := 0; i < 50; i++ {
			if c.src, err = linkLocal(ifi); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			c.Close()
			return fmt.Errorf("%s in %s: %w", ifname, ns, err)
		}
		sa := &unix.SockaddrInet6{Addr: c.src.As16(), ZoneId: uint32(ifi.Index)}
		for i := 0; i < 50; i++ {
			if err = unix.Bind(fd, sa); err == nil {
				return nil
			}
			time.Sleep(100 * time.Millisecond)
		}
		c.Close()
		return fmt.Errorf("binding to %s in %s: %w", c.src, ns, err)
	})
	return c, err
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func linkLocal(ifi *net.Interface) (netip.Addr, error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, err
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Is6() && ip.IsLinkLocalUnicast() {
				return ip, nil
			}
		}
	}
	return netip.Addr{}, errors.New("no link-local address")
}

// Source is the address the solicitations are sent from.
func (c *NDPConn) Source() netip.Addr { return c.src }

// Close closes the sockets.
func (c *NDPConn) Close() error {
	if c.pfd >= 0 {
		unix.Close(c.pfd)
	}
	return unix.Close(c.fd)
}

// InNS runs f on a thread inside network namespace ns. Sockets opened in f
// stay in ns.
func InNS(ns string, f func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	target, err := netns.GetFromName(ns)
	if err != nil {
		return err
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return err
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			panic("cannot return to the original namespace: " + err.Error())
		}
	}()
	return f()
}

// SolicitNodeGroup is the solicited-node multicast group of a.
func SolicitNodeGroup(a netip.Addr) netip.Addr {
	g, err := ndp.SolicitedNodeMulticast(a)
	if err != nil {
		panic(err)
	}
	return g
}

// ErrNoAnswer means no Neighbor Advertisement at all for the target
// arrived: not an answer, not an unsolicited one, not a malformed one.
var ErrNoAnswer = errors.New("no neighbor advertisement")

// ErrOnlyUnsolicited means no answer arrived, only unsolicited
// announcements for the target (S clear, to all-nodes): a daemon
// announcing a new address, not answering the solicitation.
var ErrOnlyUnsolicited = errors.New("no answer, only unsolicited advertisements")

// Answer is a Neighbor Advertisement as it arrived, with every field RFC
// 4861 7.1.2 asks a receiver to check.
type Answer struct {
	NA             *ndp.NeighborAdvertisement // flags, target and the options ndp could parse
	Source, Dest   netip.Addr
	EthSrc, EthDst net.HardwareAddr
	HopLimit       int
	Code           uint8
	ChecksumOK     bool
	// ICMPLen is the ICMPv6 length (the IPv6 payload length, no extension
	// headers).
	ICMPLen int
	// TLLA is the Target Link-Layer Address option's address (nil: none).
	TLLA net.HardwareAddr
	// BadOptions describes options that are malformed (zero length, a
	// link-layer option of the wrong size, running past the end).
	BadOptions []string
	RTT        time.Duration
	// Unsolicited are the advertisements for the same target to the
	// all-nodes group with S clear that arrived before this one (a new
	// address being announced, RFC 4861 7.2.6); each is checked like the
	// answer by Check.
	Unsolicited []*Answer
}

// announcement reports whether a is a well-formed unsolicited NA (to a
// multicast group, S clear), which is not an answer to a solicitation.
func (a *Answer) announcement() bool {
	return a.Dest.IsMulticast() && !a.NA.Solicited && len(a.RFC4861()) == 0
}

// RFC4861 lists what makes a receiver discard the advertisement (RFC 4861
// 7.1.2): hop limit not 255, a bad checksum, code not 0, fewer than 24
// octets, a multicast target, S set on an advertisement to a multicast
// group, an option of length zero.
func (a *Answer) RFC4861() []string {
	var p []string
	if a.HopLimit != 255 {
		p = append(p, fmt.Sprintf("IP hop limit %d, want 255", a.HopLimit))
	}
	if !a.ChecksumOK {
		p = append(p, "ICMPv6 checksum wrong")
	}
	if a.Code != 0 {
		p = append(p, fmt.Sprintf("ICMP code %d, want 0", a.Code))
	}
	if a.ICMPLen < 24 {
		p = append(p, fmt.Sprintf("ICMP length %d, want 24 or more", a.ICMPLen))
	}
	if a.NA.TargetAddress.IsMulticast() {
		p = append(p, "target is a multicast address")
	}
	if a.Dest.IsMulticast() && a.NA.Solicited {
		p = append(p, "S set on an advertisement to a multicast group")
	}
	return append(p, a.BadOptions...)
}

// Expect is what a proxy's answer to one solicitation must carry.
type Expect struct {
	Target netip.Addr
	// To and ToMAC are the soliciting node's address and MAC: a solicited
	// answer is unicast back to the solicitation's source (RFC 4861 7.2.4).
	To    netip.Addr
	ToMAC net.HardwareAddr
	// HostMAC is the proxy's MAC: the Ethernet source and, when present
	// (required when NeedTLLA), the TLLA.
	HostMAC  net.HardwareAddr
	NeedTLLA bool
	// Router is the R flag the host must send (it forwards or it does not).
	Router bool
	// Source, when valid, is the IPv6 source the answer must come from.
	Source netip.Addr
}

// Check validates the whole answer: RFC 4861 7.1.2 (what a receiver would
// discard), then what a proxy's solicited answer must say (S set, O clear
// for a proxy by RFC 4861 7.2.8, R as the host forwards, the target asked
// for, the host's MAC in the TLLA and as the Ethernet source, unicast back
// to the solicitor). Unsolicited advertisements seen on the way are checked
// against RFC 4861 7.1.2 and the host's MAC too.
func (a *Answer) Check(w Expect) error {
	var p []string
	for _, s := range a.RFC4861() {
		p = append(p, s)
	}
	na := a.NA
	if na.TargetAddress != w.Target {
		p = append(p, fmt.Sprintf("target %s, want %s", na.TargetAddress, w.Target))
	}
	if !na.Solicited {
		p = append(p, "S flag clear on a solicited answer")
	}
	if na.Override {
		p = append(p, "O flag set on a proxy answer (RFC 4861 7.2.8)")
	}
	if na.Router != w.Router {
		p = append(p, fmt.Sprintf("R flag %v, want %v (the host forwards: %v)", na.Router, w.Router, w.Router))
	}
	if w.NeedTLLA && a.TLLA == nil {
		p = append(p, "no Target Link-Layer Address option (required for a multicast solicitation, RFC 4861 7.2.4)")
	}
	if a.TLLA != nil && a.TLLA.String() != w.HostMAC.String() {
		p = append(p, fmt.Sprintf("TLLA %s, want the host's %s", a.TLLA, w.HostMAC))
	}
	if a.EthSrc.String() != w.HostMAC.String() {
		p = append(p, fmt.Sprintf("Ethernet source %s, want the host's %s", a.EthSrc, w.HostMAC))
	}
	if w.To.IsValid() && a.Dest != w.To {
		p = append(p, fmt.Sprintf("IPv6 destination %s, want the solicitor %s", a.Dest, w.To))
	}
	if w.ToMAC != nil && a.EthDst.String() != w.ToMAC.String() {
		p = append(p, fmt.Sprintf("Ethernet destination %s, want the solicitor's %s", a.EthDst, w.ToMAC))
	}
	if w.Source.IsValid() && a.Source != w.Source {
		p = append(p, fmt.Sprintf("IPv6 source %s, want %s", a.Source, w.Source))
	}
	for _, u := range a.Unsolicited {
		if u.TLLA != nil && u.TLLA.String() != w.HostMAC.String() {
			p = append(p, fmt.Sprintf("unsolicited NA for %s carries TLLA %s, want the host's %s", w.Target, u.TLLA, w.HostMAC))
		}
	}
	if len(p) == 0 {
		return nil
	}
	return fmt.Errorf("NA for %s from %s: %s", w.Target, a.Source, strings.Join(p, "; "))
}

// Expect returns what a proxy answer to this connection's solicitation for
// target must carry: unicast back to this socket's address and MAC.
func (c *NDPConn) Expect(target netip.Addr, hostMAC net.HardwareAddr, needTLLA, router bool) Expect {
	return Expect{Target: target, To: c.src, ToMAC: c.Iface.HardwareAddr, HostMAC: hostMAC, NeedTLLA: needTLLA, Router: router}
}

// Solicit sends a Neighbor Solicitation for target to dst (the
// solicited-node group for a multicast NS, the target itself for a unicast
// one, which needs a neighbour entry for the target on the sender) and
// waits up to timeout for the answer: the first Neighbor Advertisement for
// target that is not a well-formed unsolicited announcement (those are
// collected in Answer.Unsolicited). Nothing is filtered by its flags or
// validity: a wrong answer is returned, for Check to report.
//
// The error is ErrNoAnswer only if no advertisement at all for target
// arrived, so `errors.Is(err, ErrNoAnswer)` is the "not answered" check
// that any NA for the target, right or wrong, fails.
func (c *NDPConn) Solicit(target, dst netip.Addr, timeout time.Duration) (*Answer, error) {
	ns := &ndp.NeighborSolicitation{
		TargetAddress: target,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: c.Iface.HardwareAddr}},
	}
	b, err := ndp.MarshalMessage(ns)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 2048)
	// What arrived before this solicitation is not its answer.
	for {
		if _, _, err := unix.Recvfrom(c.pfd, buf, unix.MSG_DONTWAIT); err != nil {
			break
		}
	}
	start := time.Now()
	to := &unix.SockaddrInet6{Addr: dst.As16(), ZoneId: uint32(c.Iface.Index)}
	if err := unix.Sendto(c.fd, b, 0, to); err != nil {
		return nil, fmt.Errorf("sending NS for %s: %w", target, err)
	}
	deadline := start.Add(timeout)
	var unsolicited []*Answer
	for {
		left := time.Until(deadline)
		if left <= 0 {
			if len(unsolicited) > 0 {
				return nil, fmt.Errorf("%w for %s within %s: %d (S clear, to %s)", ErrOnlyUnsolicited, target, timeout, len(unsolicited), unsolicited[0].Dest)
			}
			return nil, fmt.Errorf("%w for %s within %s", ErrNoAnswer, target, timeout)
		}
		pfd := []unix.PollFd{{Fd: int32(c.pfd), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, int(left/time.Millisecond)+1)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return nil, err
		}
		if n <= 0 {
			continue
		}
		n, from, err := unix.Recvfrom(c.pfd, buf, unix.MSG_DONTWAIT)
		if err != nil {
			continue
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		a := ParseNA(buf[:n])
		if a == nil || a.NA.TargetAddress != target {
			continue
		}
		a.RTT = time.Since(start)
		if a.announcement() {
			unsolicited = append(unsolicited, a)
			continue
		}
		a.Unsolicited = unsolicited
		return a, nil
	}
}

// ParseNA parses an Ethernet frame carrying an ICMPv6 Neighbor
// Advertisement (type 136, directly after the IPv6 header: advertisements
// carry no extension headers) without judging it; nil if the frame is not
// one. Flags, target and options are read from the bytes (RFC 4861 4.4),
// so a malformed advertisement is still an advertisement.
func ParseNA(f []byte) *Answer {
	const eth, ip6 = 14, 40
	if len(f) < eth+ip6+8 || binary.BigEndian.Uint16(f[12:14]) != unix.ETH_P_IPV6 || f[eth+6] != unix.IPPROTO_ICMPV6 {
		return nil
	}
	plen := int(binary.BigEndian.Uint16(f[eth+4 : eth+6]))
	icmp := f[eth+ip6:]
	if plen < len(icmp) {
		icmp = icmp[:plen]
	}
	// A payload length shorter than the NA (zero, say) leaves no NA.
	if len(icmp) < 24 || icmp[0] != 136 {
		return nil
	}
	a := &Answer{
		EthDst:   net.HardwareAddr(append([]byte(nil), f[0:6]...)),
		EthSrc:   net.HardwareAddr(append([]byte(nil), f[6:12]...)),
		HopLimit: int(f[eth+7]),
		Source:   netip.AddrFrom16([16]byte(f[eth+8 : eth+24])),
		Dest:     netip.AddrFrom16([16]byte(f[eth+24 : eth+40])),
		Code:     icmp[1],
		ICMPLen:  plen,
	}
	a.ChecksumOK = plen == len(icmp) && checksum(a.Source, a.Dest, icmp) == 0
	a.NA = &ndp.NeighborAdvertisement{
		Router:        icmp[4]&0x80 != 0,
		Solicited:     icmp[4]&0x40 != 0,
		Override:      icmp[4]&0x20 != 0,
		TargetAddress: netip.AddrFrom16([16]byte(icmp[8:24])),
	}
	for opts := icmp[24:]; len(opts) > 0; {
		if len(opts) < 2 || opts[1] == 0 || int(opts[1])*8 > len(opts) {
			a.BadOptions = append(a.BadOptions, fmt.Sprintf("malformed option % x", opts))
			break
		}
		o := opts[:int(opts[1])*8]
		opts = opts[len(o):]
		switch o[0] {
		case 1: // source link-layer address: not allowed in an NA
			a.BadOptions = append(a.BadOptions, "Source Link-Layer Address option in an NA")
		case 2:
			if len(o) != 8 {
				a.BadOptions = append(a.BadOptions, fmt.Sprintf("TLLA option of %d octets, want 8 for Ethernet", len(o)))
				continue
			}
			mac := net.HardwareAddr(append([]byte(nil), o[2:8]...))
			a.TLLA = mac
			a.NA.Options = append(a.NA.Options, &ndp.LinkLayerAddress{Direction: ndp.Target, Addr: mac})
		}
	}
	return a
}

// checksum is the Internet checksum of msg over the IPv6 pseudo-header
// (RFC 8200 8.1) with next header ICMPv6: 0 when msg's own checksum is
// right.
func checksum(src, dst netip.Addr, msg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	s, d := src.As16(), dst.As16()
	add(s[:])
	add(d[:])
	var l [8]byte
	binary.BigEndian.PutUint32(l[0:4], uint32(len(msg)))
	l[7] = unix.IPPROTO_ICMPV6
	add(l[:])
	add(msg)
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
