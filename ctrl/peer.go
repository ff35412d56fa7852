package ctrl

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// RouteProtocol marks the routes v6dp installs for the switched layout
// (`ip -6 route show proto 118`), so that the reconciler and `v6dp cleanup`
// know which routes are v6dp's without a record that could go stale: a route
// to the same prefix with any other protocol (an operator's static route,
// a routing daemon's) is never touched. 118 is ASCII 'v' and free in
// iproute2's rt_protos.
const RouteProtocol = netlink.RouteProtocol(118)

// PeerRoute is the switched layout's route to another host's container
// prefix via that host's uplink address.
type PeerRoute struct {
	Prefix netip.Prefix `json:"prefix"`
	Via    netip.Addr   `json:"via"`
}

func (p PeerRoute) String() string { return p.Prefix.String() + "=" + p.Via.String() }

// ParsePeer reads one --peer PREFIX=VIA.
func ParsePeer(s string) (PeerRoute, error) {
	pfx, via, ok := strings.Cut(s, "=")
	if !ok {
		return PeerRoute{}, fmt.Errorf("peer: %q: want PREFIX=VIA, e.g. 2001:db8:2::/64=2001:db8::2", s)
	}
	p, err := netip.ParsePrefix(strings.TrimSpace(pfx))
	if err != nil || !p.Addr().Is6() || p.Addr().Is4In6() {
		return PeerRoute{}, fmt.Errorf("peer: %q: %q is not an IPv6 prefix (want e.g. 2001:db8:2::/64)", s, pfx)
	}
	if p.Masked() != p {
		return PeerRoute{}, fmt.Errorf("peer: %q: %s has host bits set; did you mean %s?", s, p, p.Masked())
	}
	if p.Addr().IsLinkLocalUnicast() || p.Addr().IsMulticast() || p.Addr().IsLoopback() || p.Bits() == 0 {
		return PeerRoute{}, fmt.Errorf("peer: %q: %s is not a host's container prefix (global or unique-local, not ::/0)", s, p)
	}
	v, err := netip.ParseAddr(strings.TrimSpace(via))
	if err != nil || !v.Is6() || v.Is4In6() || v.Zone() != "" {
		return PeerRoute{}, fmt.Errorf("peer: %q: %q is not an IPv6 address without zone (want the other host's uplink address, e.g. 2001:db8::2)", s, via)
	}
	if v.IsMulticast() || v.IsUnspecified() || v.IsLoopback() {
		return PeerRoute{}, fmt.Errorf("peer: %q: %s is not a unicast address", s, v)
	}
	if p.Contains(v) {
		return PeerRoute{}, fmt.Errorf("peer: %q: the next hop %s is inside the prefix it leads to", s, v)
	}
	return PeerRoute{Prefix: p, Via: v}, nil
}

// ParsePeers reads every --peer and checks them against the host's own
// prefixes (the container prefix and the announced aggregate, if any): a
// peer route into the host's own containers would take their traffic away.
func ParsePeers(peers []string, own []netip.Prefix, uplink string) ([]PeerRoute, error) {
	var out []PeerRoute
	for _, s := range peers {
		pr, err := ParsePeer(s)
		if err != nil {
			return nil, err
		}
		for _, o := range own {
			if pr.Prefix.Overlaps(o) {
				return nil, fmt.Errorf("peer: %q: %s overlaps this host's own %s", s, pr.Prefix, o)
			}
			if o.Contains(pr.Via) {
				return nil, fmt.Errorf("peer: %q: the next hop %s is inside this host's own %s", s, pr.Via, o)
			}
		}
		for _, prev := range out {
			if pr.Prefix.Overlaps(prev.Prefix) {
				return nil, fmt.Errorf("peer: %q: %s overlaps peer %s", s, pr.Prefix, prev)
			}
		}
		if pr.Via.IsLinkLocalUnicast() && uplink == "" {
			return nil, fmt.Errorf("peer: %q: a link-local next hop needs --uplink (the link it is on)", s)
		}
		out = append(out, pr)
	}
	return out, nil
}

// PeerState is one peer route as `v6dp status` shows it.
type PeerState struct {
	PeerRoute
	// State is installed, or conflict (a route to the prefix that is not
	// v6dp's is there and is left alone), or error.
	State string `json:"state"`
	Error string `json:"error,omitempty"`
}

// SyncPeerRoutes makes v6dp's routes (RouteProtocol, main table) exactly
// want: missing ones are added, wrong ones replaced, ones no longer wanted
// removed. Routes of other protocols are left alone; one to a wanted prefix
// is reported as a conflict instead of being overridden. uplink is the
// ifindex routes go out of (0: the kernel picks by the next hop).
func SyncPeerRoutes(uplink int, want []PeerRoute) ([]PeerState, error) {
	ours, err := netlink.RouteListFiltered(netlink.FAMILY_V6, &netlink.Route{Protocol: RouteProtocol}, netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return nil, fmt.Errorf("listing v6dp's routes: %w", err)
	}
	have := map[netip.Prefix]netlink.Route{}
	for _, r := range ours {
		if p, ok := ipNetPrefix(r); ok {
			have[p] = r
		}
	}
	var errs []error
	states := make([]PeerState, 0, len(want))
	wanted := map[netip.Prefix]bool{}
	for _, w := range want {
		wanted[w.Prefix] = true
		st := PeerState{PeerRoute: w, State: "installed"}
		if r, ok := have[w.Prefix]; ok && routeMatches(r, w, uplink) {
			states = append(states, st)
			continue
		}
		if other, err := foreignRoute(w.Prefix); err != nil {
			st.State, st.Error = "error", err.Error()
		} else if other != "" {
			st.State, st.Error = "conflict", other
		} else if err := netlink.RouteReplace(peerRoute(w, uplink)); err != nil {
			st.State, st.Error = "error", fmt.Sprintf("adding %s via %s: %v", w.Prefix, w.Via, err)
		} else if _, ok := have[w.Prefix]; ok {
			slog.Info("peer route corrected", "dst", w.Prefix, "via", w.Via)
		} else {
			slog.Info("peer route added", "dst", w.Prefix, "via", w.Via)
		}
		if st.Error != "" {
			errs = append(errs, fmt.Errorf("peer %s: %s", w, st.Error))
		}
		states = append(states, st)
	}
	for p, r := range have {
		if wanted[p] {
			continue
		}
		if err := netlink.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("removing peer route %s: %w", p, err))
			continue
		}
		slog.Info("peer route removed", "dst", p)
	}
	sort.Slice(states, func(i, j int) bool { return states[i].Prefix.Addr().Less(states[j].Prefix.Addr()) })
	return states, errors.Join(errs...)
}

// RemovePeerRoutes removes every route v6dp installed for peers.
func RemovePeerRoutes() error {
	_, err := SyncPeerRoutes(0, nil)
	return err
}

func peerRoute(w PeerRoute, uplink int) *netlink.Route {
	return &netlink.Route{Family: netlink.FAMILY_V6, Dst: prefixToIPNet(w.Prefix), Gw: w.Via.AsSlice(),
		LinkIndex: uplink, Protocol: RouteProtocol}
}

func routeMatches(r netlink.Route, w PeerRoute, uplink int) bool {
	gw, ok := netip.AddrFromSlice(r.Gw)
	return ok && gw.Unmap() == w.Via && (uplink == 0 || r.LinkIndex == uplink)
}

// foreignRoute describes a route to p in the main table that is not
// v6dp's, or returns "".
func foreignRoute(p netip.Prefix) (string, error) {
	rs, err := netlink.RouteListFiltered(netlink.FAMILY_V6, &netlink.Route{Dst: prefixToIPNet(p)}, netlink.RT_FILTER_DST)
	if err != nil {
		return "", fmt.Errorf("routes to %s: %w", p, err)
	}
	for _, r := range rs {
		if r.Protocol == RouteProtocol {
			continue
		}
		desc := fmt.Sprintf("a route to %s (proto %s) that is not v6dp's is in the way; left alone", p, r.Protocol)
		return desc, nil
	}
	return "", nil
}

func ipNetPrefix(r netlink.Route) (netip.Prefix, bool) {
	if r.Dst == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(r.Dst.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	bits, _ := r.Dst.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), bits), true
}
