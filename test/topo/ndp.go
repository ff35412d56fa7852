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
)

// NDPConn is an ICMPv6 NDP socket opened inside a test namespace, for
// sending solicitations as the router would and reading the answers.
type NDPConn struct {
	*ndp.Conn
	Iface *net.Interface
	ns    string
}

// ListenNDP opens an NDP socket on ifname inside ns. The socket stays in
// ns; the calling goroutine's thread returns to its own namespace.
func ListenNDP(ns, ifname string) (*NDPConn, error) {
	var c *NDPConn
	err := InNS(ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		var conn *ndp.Conn
		// The link-local address may still be tentative right after setup.
		for i := 0; i < 50; i++ {
			if conn, _, err = ndp.Listen(ifi, ndp.LinkLocal); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			return fmt.Errorf("ndp listen on %s in %s: %w", ifname, ns, err)
		}
		c = &NDPConn{Conn: conn, Iface: ifi, ns: ns}
		return nil
	})
	return c, err
}

// InNS runs f on a thread inside network namespace ns. Sockets opened in f
// stay in ns; interface names in f resolve in ns.
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
// waits up to timeout for the advertisement.
func (c *NDPConn) Solicit(target, dst netip.Addr, timeout time.Duration) (*Answer, error) {
	ns := &ndp.NeighborSolicitation{
		TargetAddress: target,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: c.Iface.HardwareAddr}},
	}
	start := time.Now()
	// The zone of dst is an interface name, resolved in the namespace of
	// the writing thread: write from inside the socket's namespace.
	if err := InNS(c.ns, func() error { return c.WriteTo(ns, nil, dst) }); err != nil {
		return nil, fmt.Errorf("sending NS for %s: %w", target, err)
	}
	deadline := start.Add(timeout)
	for {
		if err := c.SetReadDeadline(deadline); err != nil {
			return nil, err
		}
		msg, _, from, err := c.ReadFrom()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil, fmt.Errorf("%w for %s within %s", ErrNoAnswer, target, timeout)
			}
			return nil, err
		}
		na, ok := msg.(*ndp.NeighborAdvertisement)
		// Unsolicited advertisements (S clear, e.g. a new address being
		// announced) are not the answer to this solicitation.
		if !ok || na.TargetAddress != target || !na.Solicited {
			continue
		}
		a := &Answer{NA: na, Source: from.WithZone(""), RTT: time.Since(start)}
		for _, o := range na.Options {
			if l, ok := o.(*ndp.LinkLayerAddress); ok && l.Direction == ndp.Target {
				a.TLLA = l.Addr
			}
		}
		return a, nil
	}
}
