package ctrl

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Host is the host side of the configuration: the bridge, its address and
// route, the uplink and the sysctls. EnsureHost is idempotent.
type Host struct {
	Bridge netlink.Link
	Uplink netlink.Link // nil without --uplink
	// Extra are the further uplinks of networks given BRIDGE=PREFIX@UPLINK,
	// in uplink slot order (1 on).
	Extra []netlink.Link
}

// CheckUplink fails with a clear error if the uplink does not exist, before
// anything is changed on the host.
func CheckUplink(name string) (netlink.Link, error) {
	if name == "" {
		return nil, nil
	}
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil, fmt.Errorf("uplink: interface %q does not exist", name)
		}
		return nil, fmt.Errorf("uplink: %q: %w", name, err)
	}
	return l, nil
}

// hostChange is one thing EnsureHost changed: logged as msg at start, and
// as a repair ("repaired", what) when the daemon puts it back later.
type hostChange struct {
	msg, what string
	attrs     []any
}

func (c *hostChange) log(repair bool) {
	if repair {
		slog.Info("repaired", append([]any{"what", c.what}, c.attrs...)...)
		return
	}
	slog.Info(c.msg, c.attrs...)
}

// EnsureHost creates or adopts the bridge and configures the host for the
// container prefix, journaling every change it makes.
func EnsureHost(r *Resolved, j *Journal) (*Host, error) {
	h, changes, err := ensureHost(r, j)
	for _, c := range changes {
		c.log(false)
	}
	return h, err
}

// ensureHost is EnsureHost without the logging: it returns what it
// changed, which the repair pass logs as repairs.
func ensureHost(r *Resolved, j *Journal) (*Host, []*hostChange, error) {
	uplink, err := CheckUplink(r.Uplink)
	if err != nil {
		return nil, nil, err
	}
	var changes []*hostChange
	var errs []error
	note := func(c *hostChange, err error) {
		if c != nil {
			changes = append(changes, c)
		}
		errs = append(errs, err)
	}
	br, created, err := ensureBridge(r.Bridge, j)
	if err != nil {
		return nil, nil, err
	}
	if created {
		changes = append(changes, &hostChange{msg: "bridge created", what: "bridge created", attrs: []any{"bridge", r.Bridge}})
	}
	h := &Host{Bridge: br, Uplink: uplink}
	// The bridge is a router interface for the containers: no RAs from them.
	note(setSysctl(j, ipv6Conf(r.Bridge, "accept_ra"), "0"))
	// The bridge's addresses are the host's own on a link it alone
	// routes for. With DAD, a bridge whose addresses were added before it
	// had a port (as dockerd does) starts DAD when the first container
	// arrives, and the host cannot reach that container for 1-4 s. The
	// kernel also waits a random 0..router_solicitation_delay before DAD.
	note(setSysctl(j, ipv6Conf(r.Bridge, "dad_transmits"), "0"))
	note(setSysctl(j, ipv6Conf(r.Bridge, "router_solicitation_delay"), "0"))
	note(ensureAddr(br, netip.PrefixFrom(BridgeLinkLocal, 64), "bridge address", j))
	if r.DefaultGatewayV6 != "" && r.Prefix.Contains(r.Gateway) {
		// A global gateway (modern Docker's PREFIX::1) lives on the bridge.
		note(ensureAddr(br, netip.PrefixFrom(r.Gateway, r.Prefix.Bits()), "gateway address", j))
	}
	if br.Attrs().Flags&net.FlagUp == 0 {
		if err := netlink.LinkSetUp(br); err != nil {
			errs = append(errs, fmt.Errorf("bridge %s up: %w", r.Bridge, err))
		} else {
			changes = append(changes, &hostChange{msg: "bridge up", what: "bridge up", attrs: []any{"bridge", r.Bridge}})
		}
	}
	note(ensureRoute(br, r.Prefix, j))
	if r.IPForward {
		note(setSysctl(j, "net/ipv6/conf/all/forwarding", "1"))
		note(setSysctl(j, "net/ipv6/conf/default/forwarding", "1"))
		if uplink != nil {
			// With forwarding on, Linux ignores RAs unless accept_ra is 2
			// (the original document's advice); only 1 is raised, an
			// explicit 0 stays 0.
			key := ipv6Conf(r.Uplink, "accept_ra")
			if v, err := ReadSysctl(key); err == nil && v == "1" {
				note(setSysctl(j, key, "2"))
			}
		}
	}
	if r.NDPProxy && uplink != nil {
		note(setSysctl(j, ipv6Conf(r.Uplink, "proxy_ndp"), "1"))
		// The kernel answers unicast NS (the router's reachability probes)
		// for proxy entries only when all.proxy_ndp is set too.
		note(setSysctl(j, "net/ipv6/conf/all/proxy_ndp", "1"))
		// The kernel delays each multicast proxy answer by a random
		// 0..proxy_delay (0.8 s by default); answer at once.
		note(setSysctl(j, ipv6Neigh(r.Uplink, "proxy_delay"), "0"))
		j.ProxyUplink, j.ProxyPrefix = r.Uplink, r.Prefix.String()
	}
	for _, name := range r.ExtraUplinks() {
		l, err := CheckUplink(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		h.Extra = append(h.Extra, l)
		if r.IPForward {
			key := ipv6Conf(name, "accept_ra")
			if v, err := ReadSysctl(key); err == nil && v == "1" {
				note(setSysctl(j, key, "2"))
			}
		}
		if r.NDPProxy {
			note(setSysctl(j, ipv6Conf(name, "proxy_ndp"), "1"))
			note(setSysctl(j, ipv6Neigh(name, "proxy_delay"), "0"))
			for _, n := range r.Networks {
				if n.Uplink == name {
					j.ExtraProxies = appendUnique(j.ExtraProxies, name+" "+n.Prefix.String())
				}
			}
		}
	}
	return h, changes, errors.Join(errs...)
}

func ensureBridge(name string, j *Journal) (l netlink.Link, created bool, err error) {
	l, err = netlink.LinkByName(name)
	if err == nil {
		if l.Type() != "bridge" {
			return nil, false, fmt.Errorf("bridge: %q exists and is a %s, not a bridge", name, l.Type())
		}
		return l, false, nil
	}
	var nf netlink.LinkNotFoundError
	if !errors.As(err, &nf) {
		return nil, false, fmt.Errorf("bridge %s: %w", name, err)
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
	if err := netlink.LinkAdd(br); err != nil {
		return nil, false, fmt.Errorf("creating bridge %s: %w", name, err)
	}
	j.CreatedBridge = name
	l, err = netlink.LinkByName(name)
	return l, err == nil, err
}

func ensureAddr(l netlink.Link, p netip.Prefix, what string, j *Journal) (*hostChange, error) {
	addrs, err := netlink.AddrList(l, netlink.FAMILY_V6)
	if err != nil {
		return nil, fmt.Errorf("addresses of %s: %w", l.Attrs().Name, err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == p.Addr() {
			return nil, nil
		}
	}
	a := &netlink.Addr{IPNet: prefixToIPNet(p), Flags: unix.IFA_F_NODAD}
	if err := netlink.AddrAdd(l, a); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("adding %s to %s: %w", p, l.Attrs().Name, err)
	}
	j.AddedAddrs = appendUnique(j.AddedAddrs, l.Attrs().Name+" "+p.String())
	return &hostChange{msg: "address added", what: what, attrs: []any{"dev", l.Attrs().Name, "addr", p}}, nil
}

func ensureRoute(l netlink.Link, p netip.Prefix, j *Journal) (*hostChange, error) {
	rt := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: prefixToIPNet(p), Family: netlink.FAMILY_V6}
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V6, rt, netlink.RT_FILTER_DST|netlink.RT_FILTER_OIF)
	if err != nil {
		return nil, fmt.Errorf("routes of %s: %w", l.Attrs().Name, err)
	}
	if len(routes) > 0 {
		return nil, nil
	}
	if err := netlink.RouteAdd(rt); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("route %s dev %s: %w", p, l.Attrs().Name, err)
	}
	j.AddedRoutes = appendUnique(j.AddedRoutes, l.Attrs().Name+" "+p.String())
	return &hostChange{msg: "route added", what: "prefix route", attrs: []any{"dst", p, "dev", l.Attrs().Name}}, nil
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func appendUnique(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}
