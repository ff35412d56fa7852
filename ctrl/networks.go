package ctrl

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/v6dp/v6dp/ctrl/rules"
	"github.com/v6dp/v6dp/loader"
)

// Network is one (bridge, prefix) pair the daemon serves. The first is
// the one --bridge and --fixed-cidr-v6 name, which v6dp sets up (and
// creates if missing); the others come from --network BRIDGE=PREFIX and
// belong to a container engine (Docker's user-defined networks, Podman's
// netavark bridges): v6dp waits for such a bridge and adopts it, never
// creates it or changes its addresses, since the engine puts its gateway
// there only on a bridge it made itself.
type Network struct {
	Bridge string
	Prefix netip.Prefix
	// Gateway is the containers' gateway (the first network's); zero
	// for an engine's network, whose gateway is on its bridge and so
	// among the host's addresses.
	Gateway netip.Addr
	// Engine: the bridge is an engine's, waited for and adopted.
	Engine bool
	// Found: an engine's bridge found under --network-parent.
	Found bool
	// Uplink is the interface the network's prefix is reached by, when
	// it is not the daemon's --uplink (BRIDGE=PREFIX@UPLINK): its proxy
	// entries and answers go there, and its endpoints' traffic leaves
	// by it. Empty: the daemon's uplink.
	Uplink string
}

// UplinkOf returns the name of the network's uplink: its own, or the
// daemon's (main).
func (n Network) UplinkOf(main string) string {
	if n.Uplink != "" {
		return n.Uplink
	}
	return main
}

// Rules are the network's address rules.
func (n Network) Rules(maxAddrs int) rules.Port {
	return rules.Port{Prefix: n.Prefix, Gateway: n.Gateway, MaxAddrs: maxAddrs}
}

// parseNetworks checks the --network values against each other and the
// first network; the error names the flag (and config key) "network".
func parseNetworks(specs []string, first Network, uplink string) ([]Network, error) {
	out := []Network{first}
	uplinks := map[string]bool{}
	for _, s := range specs {
		br, pfx, ok := strings.Cut(s, "=")
		if !ok || br == "" || pfx == "" {
			return nil, fmt.Errorf("network: %q is not BRIDGE=PREFIX[@UPLINK] (e.g. br-app=2001:db8:2::/64)", s)
		}
		pfx, up, hasUplink := strings.Cut(pfx, "@")
		if hasUplink {
			switch {
			case !rules.ValidIfName(up):
				return nil, fmt.Errorf("network: %q: uplink %q is not a valid interface name (1-15 characters, no spaces or slashes)", s, up)
			case uplink == "":
				return nil, fmt.Errorf("network: %q: an uplink of its own needs the daemon's --uplink too", s)
			case up == uplink:
				up = "" // the daemon's own: nothing extra
			case up == br || up == first.Bridge:
				return nil, fmt.Errorf("network: %q: uplink %s is a served bridge", s, up)
			}
			for _, o := range out {
				if o.Bridge == up {
					return nil, fmt.Errorf("network: %q: uplink %s is a served bridge", s, up)
				}
			}
			if up != "" && !uplinks[up] && len(uplinks)+1 >= loader.MaxUplinks {
				return nil, fmt.Errorf("network: %q: at most %d uplinks (the daemon's and %d more)", s, loader.MaxUplinks, loader.MaxUplinks-1)
			}
			if up != "" {
				uplinks[up] = true
			}
		}
		if !rules.ValidIfName(br) {
			return nil, fmt.Errorf("network: %q: %q is not a valid interface name (1-15 characters, no spaces or slashes)", s, br)
		}
		if br == uplink || uplinks[br] {
			return nil, fmt.Errorf("network: %q: bridge %s is the uplink", s, br)
		}
		p, err := netip.ParsePrefix(pfx)
		if err != nil || !p.Addr().Is6() || p.Addr().Is4In6() {
			return nil, fmt.Errorf("network: %q: %q is not an IPv6 prefix", s, pfx)
		}
		if p.Masked() != p {
			return nil, fmt.Errorf("network: %q: %s has host bits set; did you mean %s?", s, p, p.Masked())
		}
		if p.Addr().IsLinkLocalUnicast() || p.Addr().IsMulticast() || p.Addr().IsLoopback() {
			return nil, fmt.Errorf("network: %q: %s is not a global or unique-local unicast prefix", s, p)
		}
		for _, o := range out {
			if o.Bridge == br {
				return nil, fmt.Errorf("network: %q: bridge %s is already served", s, br)
			}
			if o.Prefix.Overlaps(p) {
				return nil, fmt.Errorf("network: %q: %s overlaps %s of bridge %s", s, p, o.Prefix, o.Bridge)
			}
		}
		out = append(out, Network{Bridge: br, Prefix: p, Engine: true, Uplink: up})
	}
	for _, n := range out {
		if uplinks[n.Bridge] {
			return nil, fmt.Errorf("network: bridge %s is another network's uplink", n.Bridge)
		}
	}
	return out, nil
}

// ExtraUplinks are the uplinks of the networks other than the daemon's
// own, each once, in the order the networks name them: uplink slots 1 on.
func (r *Resolved) ExtraUplinks() []string {
	var out []string
	for _, n := range r.Networks {
		if n.Uplink != "" && !slices.Contains(out, n.Uplink) {
			out = append(out, n.Uplink)
		}
	}
	return out
}

// networkOf returns the network whose bridge is named br.
func (r *Resolved) networkOf(br string) (Network, bool) {
	for _, n := range r.Networks {
		if n.Bridge == br {
			return n, true
		}
	}
	return Network{}, false
}

// parentNetworks finds the networks under the parent prefix
// (--network-parent): every bridge, other than those already served,
// with a global address inside parent that is not tentative (the gateway
// an engine puts on the bridge it made for a network), served with that
// address's prefix. This is how a Docker host with user-defined IPv6
// networks, each on its own br-<id>, is served without naming them.
func parentNetworks(parent netip.Prefix, served []Network) ([]Network, error) {
	if !parent.IsValid() {
		return nil, nil
	}
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("listing links: %w", err)
	}
	taken := map[string]bool{}
	for _, n := range served {
		taken[n.Bridge] = true
	}
	var out []Network
	for _, l := range links {
		name := l.Attrs().Name
		if l.Type() != "bridge" || taken[name] {
			continue
		}
		addrs, err := netlink.AddrList(l, netlink.FAMILY_V6)
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ip, ok := netip.AddrFromSlice(a.IP)
			bits, _ := a.Mask.Size()
			if !ok || a.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) != 0 || !parent.Contains(ip.Unmap()) || bits < parent.Bits() {
				continue
			}
			p := netip.PrefixFrom(ip.Unmap(), bits).Masked()
			clash := false
			for _, o := range append(served, out...) {
				clash = clash || o.Prefix.Overlaps(p)
			}
			if !clash {
				out = append(out, Network{Bridge: name, Prefix: p, Engine: true, Found: true})
			}
			break
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Bridge < out[j].Bridge })
	return out, nil
}

// allNetworks is the configured networks and those found under the
// parent prefix now.
func (r *Resolved) allNetworks() []Network {
	found, err := parentNetworks(r.Parent, r.Networks)
	if err != nil {
		return r.Networks
	}
	return append(append([]Network(nil), r.Networks...), found...)
}
