package main

import (
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/v6dp/v6dp/ctrl/plan"
)

func cmdPlan(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("plan", "plan PREFIX [--hosts N] [--role ROLE] [--json]", stderr)
	var opts plan.Options
	fs.IntVar(&opts.Hosts, "hosts", 0, "number of hosts (default: the role's)")
	fs.StringVar(&opts.Role, "role", "", "layout: "+strings.Join(plan.Roles(), ", ")+" (default: chosen from the prefix length)")
	fs.StringVar(&opts.Addressing, "addressing", "", "auto, mac or sequential")
	fs.BoolVar(&opts.RouterRoutes, "router-routes", false, "the router routes each container prefix to its host (no NDP proxy)")
	fs.StringVar(&opts.Uplink, "uplink", "", "the hosts' uplink name (default eth0)")
	fs.StringVar(&opts.Bridge, "bridge", "", "the hosts' bridge name (default docker0)")
	fs.Int64Var(&opts.ASN, "bgp-asn", 0, fmt.Sprintf("routed: the hosts' AS number (default %d)", plan.DefaultHostASN))
	fs.Int64Var(&opts.RouterASN, "bgp-peer-asn", 0, fmt.Sprintf("routed: the router's AS number (default %d)", plan.DefaultRouterASN))
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("plan: want exactly one PREFIX, e.g. v6dp plan 2001:db8:23:42::/64")
	}
	p, err := netip.ParsePrefix(pos[0])
	if err != nil {
		return fmt.Errorf("plan: %q is not a prefix (want e.g. 2001:db8:23:42::/64)", pos[0])
	}
	pl, err := plan.Compute(p, opts)
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	if *asJSON {
		return writeJSON(stdout, pl)
	}
	return pl.Format(stdout)
}
