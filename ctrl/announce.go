package ctrl

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/mdlayher/ndp"
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
	conn   *ndp.Conn
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
	c, _, err := ndp.Listen(ifi, ndp.LinkLocal)
	if err != nil {
		return fmt.Errorf("NDP socket on %s: %w", a.uplink, err)
	}
	a.conn, a.mac = c, ifi.HardwareAddr
	return nil
}

// maxUnsolicitedNA and the spacing follow RFC 4861 10
// (MAX_NEIGHBOR_ADVERTISEMENT, RETRANS_TIMER).
const (
	maxUnsolicitedNA = 3
	naSpacing        = time.Second
)

// Announce sends the advertisements for addrs: the first at once, the
// rest in the background.
func (a *Announcer) Announce(addrs []netip.Addr) {
	if a == nil || len(addrs) == 0 {
		return
	}
	a.mu.Lock()
	for _, addr := range addrs {
		a.live[addr] = true
	}
	a.mu.Unlock()
	a.send(addrs)
	go func() {
		for i := 1; i < maxUnsolicitedNA; i++ {
			time.Sleep(naSpacing)
			if !a.send(addrs) {
				return
			}
		}
	}()
}

func (a *Announcer) send(addrs []netip.Addr) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return false
	}
	if err := a.open(); err != nil {
		if !a.warned {
			slog.Warn("unsolicited NAs not sent", "err", err)
			a.warned = true
		}
		return true
	}
	for _, addr := range addrs {
		if !a.live[addr] {
			continue
		}
		na := &ndp.NeighborAdvertisement{
			Router:        a.router,
			Override:      true,
			TargetAddress: addr,
			Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: a.mac}},
		}
		_ = a.conn.WriteTo(na, nil, netip.IPv6LinkLocalAllNodes())
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
