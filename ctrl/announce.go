package ctrl

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/mdlayher/ndp"
	"golang.org/x/sys/unix"
)

// Announcer sends unsolicited Neighbor Advertisements (RFC 4861 7.2.6) on
// the uplink for container addresses that just appeared, so a router that
// already has an entry for the address (a reused address, a STALE or
// INCOMPLETE entry) points it at the host at once. Routers only update
// existing entries from them (RFC 4861 7.2.5; Linux creates none unless
// accept_untracked_na is set); new entries come from the answered NS.
type Announcer struct {
	uplink string
	router bool
	conn   *naConn
	mac    net.HardwareAddr
	warned bool

	mu     sync.Mutex
	closed bool
	// live are the addresses still worth repeating: an address withdrawn
	// before its last repetition is not announced again.
	live map[netip.Addr]bool
}

// NewAnnouncer returns an announcer for the uplink. Its ICMPv6 socket is
// opened on first use: at boot the uplink's link-local address may still be
// tentative (DAD), and binding to it fails until DAD is done.
func NewAnnouncer(uplink string, router bool) *Announcer {
	return &Announcer{uplink: uplink, router: router, live: map[netip.Addr]bool{}}
}

func (a *Announcer) open() error {
	if a.conn != nil {
		return nil
	}
	ifi, err := net.InterfaceByName(a.uplink)
	if err != nil {
		return fmt.Errorf("uplink %s: %w", a.uplink, err)
	}
	c, err := listenNA(ifi)
	if err != nil {
		return fmt.Errorf("NDP socket on %s: %w", a.uplink, err)
	}
	a.conn, a.mac = c, ifi.HardwareAddr
	return nil
}

// naConn sends advertisements to the all-nodes group on one interface
// from its link-local address, and does not hear them itself: a looped
// back NA costs the host a walk of its proxy entries (measured: 400 us a
// send at 10,000 entries, 5 us without the loop), and 10,000 containers
// are 30,000 NAs.
type naConn struct {
	ifindex int
	// mu keeps Close from freeing fd (for reuse by another socket) while
	// a send is on it.
	mu     sync.Mutex
	fd     int
	closed bool
}

func listenNA(ifi *net.Interface) (*naConn, error) {
	var src netip.Addr
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, err
	}
	for _, ad := range addrs {
		if ipn, ok := ad.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(ipn.IP); ok && ip.Is6() && ip.IsLinkLocalUnicast() {
				src = ip
				break
			}
		}
	}
	if !src.IsValid() {
		return nil, fmt.Errorf("%s has no link-local address", ifi.Name)
	}
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMPV6)
	if err != nil {
		return nil, err
	}
	c := &naConn{fd: fd, ifindex: ifi.Index}
	for _, o := range [][2]int{{unix.IPV6_MULTICAST_HOPS, 255}, {unix.IPV6_UNICAST_HOPS, 255},
		{unix.IPV6_MULTICAST_IF, ifi.Index}, {unix.IPV6_MULTICAST_LOOP, 0}} {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, o[0], o[1]); err != nil {
			c.Close()
			return nil, err
		}
	}
	// No receiving: nothing is read from this socket.
	var f unix.ICMPv6Filter
	for i := range f.Data {
		f.Data[i] = ^uint32(0)
	}
	if err := unix.SetsockoptICMPv6Filter(fd, unix.SOL_ICMPV6, unix.ICMPV6_FILTER, &f); err != nil {
		c.Close()
		return nil, err
	}
	// Binding fails while the address is tentative (DAD at boot): the
	// next announcement tries again.
	if err := unix.Bind(fd, &unix.SockaddrInet6{Addr: src.As16(), ZoneId: uint32(ifi.Index)}); err != nil {
		c.Close()
		return nil, fmt.Errorf("binding to %s: %w", src, err)
	}
	return c, nil
}

// WriteTo sends m to dst on the interface (the kernel sums it).
func (c *naConn) WriteTo(m ndp.Message, dst netip.Addr) error {
	b, err := ndp.MarshalMessage(m)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return net.ErrClosed
	}
	return unix.Sendto(c.fd, b, 0, &unix.SockaddrInet6{Addr: dst.As16(), ZoneId: uint32(c.ifindex)})
}

func (c *naConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	return unix.Close(c.fd)
}

// maxUnsolicitedNA and the spacing follow RFC 4861 10
// (MAX_NEIGHBOR_ADVERTISEMENT, RETRANS_TIMER).
const (
	maxUnsolicitedNA = 3
	naSpacing        = time.Second
)

// Announce sends the advertisements for addrs in the background, the
// first round at once: thousands of containers starting together are
// thousands of sends, which must not hold up the next endpoints.
func (a *Announcer) Announce(addrs []netip.Addr) {
	if a == nil || len(addrs) == 0 {
		return
	}
	a.mu.Lock()
	for _, addr := range addrs {
		a.live[addr] = true
	}
	a.mu.Unlock()
	go func() {
		for i := 0; i < maxUnsolicitedNA; i++ {
			if i > 0 {
				time.Sleep(naSpacing)
			}
			if !a.send(addrs) {
				return
			}
		}
	}()
}

func (a *Announcer) send(addrs []netip.Addr) bool {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return false
	}
	if err := a.open(); err != nil {
		if !a.warned {
			slog.Warn("unsolicited NAs not sent", "err", err)
			a.warned = true
		}
		a.mu.Unlock()
		return true
	}
	conn, mac := a.conn, a.mac
	a.mu.Unlock()
	// The lock is taken per address, not for the whole round: Withdraw
	// and the next Announce (the daemon's loop) never wait for a round of
	// thousands.
	for _, addr := range addrs {
		a.mu.Lock()
		live, closed := a.live[addr], a.closed
		a.mu.Unlock()
		if closed {
			return false
		}
		if !live {
			continue
		}
		na := &ndp.NeighborAdvertisement{
			Router:        a.router,
			Override:      true,
			TargetAddress: addr,
			Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: mac}},
		}
		_ = conn.WriteTo(na, netip.IPv6LinkLocalAllNodes())
	}
	return true
}

// Reset closes the socket so that the next announcement opens a new one
// on the uplink as it is now: with its new MAC, or on the interface that
// took the uplink's name after it was deleted.
func (a *Announcer) Reset() {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.conn != nil {
		a.conn.Close()
		a.conn = nil
	}
	a.warned = false
}

// Withdraw stops the repetitions for addresses that went away.
func (a *Announcer) Withdraw(addrs []netip.Addr) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, addr := range addrs {
		delete(a.live, addr)
	}
}

// Close closes the socket.
func (a *Announcer) Close() error {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	if a.conn == nil {
		return nil
	}
	return a.conn.Close()
}
