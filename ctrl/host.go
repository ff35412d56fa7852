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

// EnsureHost creates or adopts the bridge and configures the host for the
// container prefix, journaling every change it makes.
func EnsureHost(r *Resolved, j *Journal) (*Host, error) {
	uplink, err := CheckUplink(r.Uplink)
	if err != nil {
		return nil, err
	}
	br, err := ensureBridge(r.Bridge, j)
	if err != nil {
		return nil, err
	}
	h := &Host{Bridge: br, Uplink: uplink}
	var errs []error
	// The bridge is a router interface for the containers: no RAs from them.
	errs = append(errs, setSysctl(j, ipv6Conf(r.Bridge, "accept_ra"), "0"))
	// The bridge's addresses are the host's own on a link it alone
	// routes for. With DAD, a bridge whose addresses were added before it
	// had a port (as dockerd does) starts DAD when the first container
	// arrives, and the host cannot reach that container for 1-4 s. The
	// kernel also waits a random 0..router_solicitation_delay before DAD.
	errs = append(errs, setSysctl(j, ipv6Conf(r.Bridge, "dad_transmits"), "0"))
	errs = append(errs, setSysctl(j, ipv6Conf(r.Bridge, "router_solicitation_delay"), "0"))
	errs = append(errs, ensureAddr(br, netip.PrefixFrom(BridgeLinkLocal, 64), j))
	if r.DefaultGatewayV6 != "" && r.Prefix.Contains(r.Gateway) {
		// A global gateway (modern Docker's PREFIX::1) lives on the bridge.
		errs = append(errs, ensureAddr(br, netip.PrefixFrom(r.Gateway, r.Prefix.Bits()), j))
	}
	if err := netlink.LinkSetUp(br); err != nil {
		errs = append(errs, fmt.Errorf("bridge %s up: %w", r.Bridge, err))
	}
	errs = append(errs, ensureRoute(br, r.Prefix, j))
	if r.IPForward {
		errs = append(errs, setSysctl(j, "net/ipv6/conf/all/forwarding", "1"))
		errs = append(errs, setSysctl(j, "net/ipv6/conf/default/forwarding", "1"))
		if uplink != nil {
			// With forwarding on, Linux ignores RAs unless accept_ra is 2
			// (the original document's advice); only 1 is raised, an
			// explicit 0 stays 0.
			key := ipv6Conf(r.Uplink, "accept_ra")
			if v, err := ReadSysctl(key); err == nil && v == "1" {
				errs = append(errs, setSysctl(j, key, "2"))
			}
		}
	}
	if r.NDPProxy && uplink != nil {
		errs = append(errs, setSysctl(j, ipv6Conf(r.Uplink, "proxy_ndp"), "1"))
		// The kernel answers unicast NS (the router's reachability probes)
		// for proxy entries only when all.proxy_ndp is set too.
		errs = append(errs, setSysctl(j, "net/ipv6/conf/all/proxy_ndp", "1"))
		// The kernel delays each multicast proxy answer by a random
		// 0..proxy_delay (0.8 s by default); answer at once.
		errs = append(errs, setSysctl(j, ipv6Neigh(r.Uplink, "proxy_delay"), "0"))
		j.ProxyUplink, j.ProxyPrefix = r.Uplink, r.Prefix.String()
	}
	return h, errors.Join(errs...)
}

func ensureBridge(name string, j *Journal) (netlink.Link, error) {
	l, err := netlink.LinkByName(name)
	if err == nil {
		if l.Type() != "bridge" {
			return nil, fmt.Errorf("bridge: %q exists and is a %s, not a bridge", name, l.Type())
		}
		return l, nil
	}
	var nf netlink.LinkNotFoundError
	if !errors.As(err, &nf) {
		return nil, fmt.Errorf("bridge %s: %w", name, err)
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
	if err := netlink.LinkAdd(br); err != nil {
		return nil, fmt.Errorf("creating bridge %s: %w", name, err)
	}
	j.CreatedBridge = name
	slog.Info("bridge created", "bridge", name)
	return netlink.LinkByName(name)
}

func ensureAddr(l netlink.Link, p netip.Prefix, j *Journal) error {
	addrs, err := netlink.AddrList(l, netlink.FAMILY_V6)
	if err != nil {
		return fmt.Errorf("addresses of %s: %w", l.Attrs().Name, err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == p.Addr() {
			return nil
		}
	}
	a := &netlink.Addr{IPNet: prefixToIPNet(p), Flags: unix.IFA_F_NODAD}
	if err := netlink.AddrAdd(l, a); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("adding %s to %s: %w", p, l.Attrs().Name, err)
	}
	j.AddedAddrs = appendUnique(j.AddedAddrs, l.Attrs().Name+" "+p.String())
	slog.Info("address added", "dev", l.Attrs().Name, "addr", p)
	return nil
}

func ensureRoute(l netlink.Link, p netip.Prefix, j *Journal) error {
	rt := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: prefixToIPNet(p), Family: netlink.FAMILY_V6}
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V6, rt, netlink.RT_FILTER_DST|netlink.RT_FILTER_OIF)
	if err != nil {
		return fmt.Errorf("routes of %s: %w", l.Attrs().Name, err)
	}
	if len(routes) > 0 {
		return nil
	}
	if err := netlink.RouteAdd(rt); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("route %s dev %s: %w", p, l.Attrs().Name, err)
	}
	j.AddedRoutes = appendUnique(j.AddedRoutes, l.Attrs().Name+" "+p.String())
	slog.Info("route added", "dst", p, "dev", l.Attrs().Name)
	return nil
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
