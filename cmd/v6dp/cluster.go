package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/v6dp/v6dp/ctrl"
)

// clusterFlags registers the multi-host layouts' flags.
func clusterFlags(fs *flag.FlagSet, c *ctrl.Cluster) {
	fs.Var(&listFlag{list: &c.Peers}, "peer", "switched layout: PREFIX=VIA, a route to another host's container prefix via its uplink address (repeatable)")
	fs.Var(&listFlag{list: &c.BGPRouters}, "bgp-router", "routed layout: a BGP router's address to announce the container prefix to (repeatable)")
	fs.Int64Var(&c.BGPASN, "bgp-asn", c.BGPASN, "this host's AS number (with --bgp-router)")
	fs.Int64Var(&c.BGPPeerASN, "bgp-peer-asn", c.BGPPeerASN, "the routers' AS number (with --bgp-router)")
	fs.StringVar(&c.BGPRouterID, "bgp-router-id", c.BGPRouterID, "BGP router id, a dotted quad (default: the low 32 bits of the uplink's global address)")
	fs.StringVar(&c.BGPAnnounceAggregate, "bgp-announce-aggregate", c.BGPAnnounceAggregate, "also announce this prefix holding --fixed-cidr-v6 (the host's /48)")
}

// listFlag is a repeatable flag. The first Set replaces what the config
// file gave, later ones append; a value may also hold a comma-separated
// list, which is how flags are replayed over the file.
type listFlag struct {
	list *[]string
	set  bool
}

func (l *listFlag) String() string {
	if l.list == nil {
		return ""
	}
	return strings.Join(*l.list, ",")
}

func (l *listFlag) Set(s string) error {
	if !l.set {
		*l.list, l.set = nil, true
	}
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l.list = append(*l.list, v)
		}
	}
	return nil
}

// printCluster adds the multi-host lines to `v6dp status`.
func printCluster(w io.Writer, c *ctrl.ClusterStatus) {
	if c == nil {
		return
	}
	for _, p := range c.Peers {
		fmt.Fprintf(w, "peer:\t%s via %s: %s", p.Prefix, p.Via, p.State)
		if p.Error != "" {
			fmt.Fprintf(w, " (%s)", p.Error)
		}
		fmt.Fprintln(w)
	}
}
