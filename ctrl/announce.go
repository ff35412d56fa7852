package ctrl

import (
	"encoding/binary"
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
// from its link-local address, as whole frames on a packet socket: no
// route lookup and no loopback. A raw ICMPv6 socket's multicast send looks
// up the route of ff02::1 on the interface, a walk of every interface's
// ff00::/8 route while thousands of new ports still have IPv6 on (275 us a
// send in a burst of 8,000 ports, 30,000 NAs), and a looped back NA costs
// the host a walk of its proxy entries (400 us a send at 10,000 entries).
// Like the BPF answers, these frames do not pass the host's netfilter.
type naConn struct {
	ifindex int
	src     netip.Addr
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
	// Protocol 0: a socket that sends only, and receives nothing.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return &naConn{fd: fd, ifindex: ifi.Index, src: src}, nil
}

// WriteTo sends m to the multicast group dst on the interface: an IPv6
// header, hop limit 255, and the message with its checksum.
func (c *naConn) WriteTo(m ndp.Message, dst netip.Addr) error {
	if !dst.IsMulticast() {
		return fmt.Errorf("NA to %s: only multicast destinations", dst)
	}
	body, err := ndp.MarshalMessage(m)
	if err != nil {
		return err
	}
	pkt := make([]byte, 40+len(body))
	pkt[0] = 0x60
	binary.BigEndian.PutUint16(pkt[4:6], uint16(len(body)))
	pkt[6], pkt[7] = unix.IPPROTO_ICMPV6, 255
	src16, dst16 := c.src.As16(), dst.As16()
	copy(pkt[8:24], src16[:])
	copy(pkt[24:40], dst16[:])
	copy(pkt[40:], body)
	binary.BigEndian.PutUint16(pkt[42:44], 0)
	binary.BigEndian.PutUint16(pkt[42:44], icmp6Checksum(pkt[8:24], pkt[24:40], pkt[40:]))
	// 33:33 and the group's last 32 bits (RFC 2464 7).
	ll := &unix.SockaddrLinklayer{Ifindex: c.ifindex, Protocol: htons(unix.ETH_P_IPV6), Halen: 6}
	ll.Addr[0], ll.Addr[1] = 0x33, 0x33
	copy(ll.Addr[2:6], dst16[12:16])
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return net.ErrClosed
	}
	return unix.Sendto(c.fd, pkt, 0, ll)
}

// icmp6Checksum is the ICMPv6 checksum over the pseudo-header (RFC 8200
// 8.1) and msg, whose checksum field is zero.
func icmp6Checksum(src, dst, msg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(src)
	add(dst)
	var l [8]byte
	binary.BigEndian.PutUint32(l[0:4], uint32(len(msg)))
	l[7] = unix.IPPROTO_ICMPV6
	add(l[:])
	add(msg)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// htons is v in network byte order, as the packet socket address takes it.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
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
