package plan

import (
	"fmt"
	"net/netip"
	"strings"
)

// Default AS numbers of the routed layout: private ones (RFC 6996), one for
// every host, one for the router, so the router takes the hosts as
// external neighbours from one neighbour range.
const (
	DefaultHostASN   = 65001
	DefaultRouterASN = 65000
)

// routerHostNumber is the router's place on the hosts' link, the top of the
// 16-bit group host numbers use (2001:db8::ffff); the Vagrantfile uses the
// same address.
const routerHostNumber = 0xffff

// clusterRouter is the router's address on a cluster's link.
func clusterRouter(link netip.Prefix) netip.Addr { return offset(link, routerHostNumber) }

// clusterFlags adds the cluster layouts' daemon flags: a --peer per other
// host (switched), the BGP speaker's (routed).
func clusterFlags(p *Plan, opts Options) {
	for i := range p.Hosts {
		h := &p.Hosts[i]
		switch p.Role {
		case RoleSwitched:
			for _, r := range h.Routes {
				h.Daemon = append(h.Daemon, "--peer", r.Prefix.String()+"="+r.Via.String())
			}
		case RoleRouted:
			h.Daemon = append(h.Daemon, "--bgp-router", p.Router.String(),
				"--bgp-asn", fmt.Sprint(opts.ASN), "--bgp-peer-asn", fmt.Sprint(opts.RouterASN),
				"--bgp-announce-aggregate", h.Block.String())
		}
	}
	if p.Role == RoleRouted {
		p.BIRD = birdConfig(p, opts)
	}
}

// birdConfig is the router's part of the routed layout for BIRD 2, the
// same as the namespace tests run: every host on the link is accepted as
// a dynamic neighbour, so a new host needs no change here; graceful restart
// keeps a host's routes while its daemon restarts; what is learned goes
// into the kernel.
func birdConfig(p *Plan, opts Options) string {
	var b strings.Builder
	fmt.Fprintf(&b, "protocol device { }\n")
	fmt.Fprintf(&b, "protocol kernel {\n\tipv6 { import none; export all; };\n}\n")
	fmt.Fprintf(&b, "protocol bgp hosts {\n")
	fmt.Fprintf(&b, "\tlocal %s as %d;\n", p.Router, opts.RouterASN)
	fmt.Fprintf(&b, "\tneighbor range %s as %d;\n", p.Link, opts.ASN)
	fmt.Fprintf(&b, "\tdynamic name \"host\";\n")
	fmt.Fprintf(&b, "\tgraceful restart on;\n")
	fmt.Fprintf(&b, "\tipv6 { import all; export none; };\n")
	fmt.Fprintf(&b, "}\n")
	return b.String()
}

func checkASN(name string, n int64) error {
	if n < 1 || n > 4294967294 || n == 23456 || n == 65535 {
		return fmt.Errorf("%s %d: not a usable AS number (1-4294967294, not 23456 or 65535)", name, n)
	}
	return nil
}
