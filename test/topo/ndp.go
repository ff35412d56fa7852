package topo

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"time"

	"github.com/mdlayher/ndp"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NDPConn is a raw ICMPv6 socket opened inside a test namespace and bound
// to one interface, for sending solicitations as the router would and
// reading the answers. It addresses the interface by index only: Go's
// net package resolves interface names through a process-wide cache that
// does not know which namespace a name belongs to, and the tests open
// sockets in many namespaces whose interfaces share names and indexes.
type NDPConn struct {
	Iface *net.Interface
	fd    int
	src   netip.Addr
}

// ListenNDP opens the socket on ifname inside ns, sending from the
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
		c = &NDPConn{Iface: ifi, fd: fd}
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

// Close closes the socket.
func (c *NDPConn) Close() error { return unix.Close(c.fd) }

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

// ErrNoAnswer means no Neighbor Advertisement for the target arrived.
var ErrNoAnswer = errors.New("no neighbor advertisement")

// Answer is a Neighbor Advertisement received for a solicitation.
type Answer struct {
	NA     *ndp.NeighborAdvertisement
	Source netip.Addr
	TLLA   net.HardwareAddr
	RTT    time.Duration
}

// Solicit sends a Neighbor Solicitation for target to dst (the
// solicited-node group for a multicast NS, the target itself for a unicast
// one, which needs a neighbour entry for the target on the sender) and
// waits up to timeout for the solicited advertisement.
func (c *NDPConn) Solicit(target, dst netip.Addr, timeout time.Duration) (*Answer, error) {
	ns := &ndp.NeighborSolicitation{
		TargetAddress: target,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: c.Iface.HardwareAddr}},
	}
	// The kernel fills in the ICMPv6 checksum of raw ICMPv6 sockets.
	b, err := ndp.MarshalMessage(ns)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	to := &unix.SockaddrInet6{Addr: dst.As16(), ZoneId: uint32(c.Iface.Index)}
	if err := unix.Sendto(c.fd, b, 0, to); err != nil {
		return nil, fmt.Errorf("sending NS for %s: %w", target, err)
	}
	deadline := start.Add(timeout)
	buf := make([]byte, 1500)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return nil, fmt.Errorf("%w for %s within %s", ErrNoAnswer, target, timeout)
		}
		tv := unix.NsecToTimeval(left.Nanoseconds())
		if err := unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return nil, err
		}
		n, from, err := unix.Recvfrom(c.fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		msg, err := ndp.ParseMessage(buf[:n])
		if err != nil {
			continue
		}
		na, ok := msg.(*ndp.NeighborAdvertisement)
		// Unsolicited advertisements (S clear, e.g. a new address being
		// announced) are not the answer to this solicitation.
		if !ok || na.TargetAddress != target || !na.Solicited {
			continue
		}
		a := &Answer{NA: na, RTT: time.Since(start)}
		if sa, ok := from.(*unix.SockaddrInet6); ok {
			a.Source = netip.AddrFrom16(sa.Addr)
		}
		for _, o := range na.Options {
			if l, ok := o.(*ndp.LinkLayerAddress); ok && l.Direction == ndp.Target {
				a.TLLA = l.Addr
			}
		}
		return a, nil
	}
}
