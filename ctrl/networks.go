package ctrl

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/v6dp/v6dp/ctrl/rules"
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
}

// Rules are the network's address rules.
func (n Network) Rules(maxAddrs int) rules.Port {
	return rules.Port{Prefix: n.Prefix, Gateway: n.Gateway, MaxAddrs: maxAddrs}
}

// parseNetworks checks the --network values against each other and the
// first network; the error names the flag (and config key) "network".
func parseNetworks(specs []string, first Network, uplink string) ([]Network, error) {
	out := []Network{first}
	for _, s := range specs {
		br, pfx, ok := strings.Cut(s, "=")
		if !ok || br == "" || pfx == "" {
			return nil, fmt.Errorf("network: %q is not BRIDGE=PREFIX (e.g. br-app=2001:db8:2::/64)", s)
		}
		if !rules.ValidIfName(br) {
			return nil, fmt.Errorf("network: %q: %q is not a valid interface name (1-15 characters, no spaces or slashes)", s, br)
		}
		if br == uplink {
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
		out = append(out, Network{Bridge: br, Prefix: p, Engine: true})
	}
	return out, nil
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
