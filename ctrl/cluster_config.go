package ctrl

import (
	"errors"
	"fmt"
	"net/netip"
)

// Cluster is the configuration of the two multi-host layouts of the
// original document: static routes to the other hosts' container prefixes
// (switched), or an embedded BGP speaker announcing this host's prefix to
// the router (routed). Its fields are part of Config; the JSON keys are the
// flags' names (plural for the repeatable ones).
type Cluster struct {
	// Peers are PREFIX=VIA routes to other hosts' container prefixes.
	Peers []string `json:"peers,omitempty"`
	// BGPRouters are the routers the speaker peers with.
	BGPRouters []string `json:"bgp-routers,omitempty"`
	// BGPASN is this host's AS number, BGPPeerASN the routers'.
	BGPASN     int64 `json:"bgp-asn,omitempty"`
	BGPPeerASN int64 `json:"bgp-peer-asn,omitempty"`
	// BGPRouterID is a dotted quad; derived from the uplink address when
	// empty.
	BGPRouterID string `json:"bgp-router-id,omitempty"`
	// BGPAnnounceAggregate is a prefix holding fixed-cidr-v6 (the host's
	// /48), announced besides it.
	BGPAnnounceAggregate string `json:"bgp-announce-aggregate,omitempty"`
}

// BGP reports whether the routed layout's speaker is configured.
func (c Cluster) BGP() bool { return len(c.BGPRouters) > 0 }

// own returns the prefixes this host's containers live in: every
// network's (the first is fixed-cidr-v6), and the announced aggregate.
// Valid after Validate has parsed the networks.
func (c Cluster) own(r *Resolved) []netip.Prefix { return c.ownWith(r, r.Networks) }

// ownWith is own for the networks served now (with those found under
// --network-parent).
func (c Cluster) ownWith(r *Resolved, nets []Network) []netip.Prefix {
	own := []netip.Prefix{r.Prefix}
	for _, n := range nets {
		if n.Prefix != r.Prefix {
			own = append(own, n.Prefix)
		}
	}
	if a, err := netip.ParsePrefix(c.BGPAnnounceAggregate); err == nil {
		own = append(own, a)
	}
	return own
}

// ASN limits: 0 is reserved (RFC 7607), 23456 is AS_TRANS (RFC 6793),
// 4294967295 is reserved (RFC 7300).
const (
	minASN   = 1
	maxASN   = 4294967294
	asTrans  = 23456
	maxASN16 = 65535
)

func validASN(field string, n int64) error {
	if n < minASN || n > maxASN {
		return fmt.Errorf("%s: %d is out of range (1-%d)", field, n, int64(maxASN))
	}
	if n == asTrans || n == maxASN16 {
		return fmt.Errorf("%s: %d is reserved (RFC 6793, RFC 7300)", field, n)
	}
	return nil
}

func (c Cluster) validate(r *Resolved) error {
	prefix, uplink := r.Prefix, r.Uplink
	if c.BGPAnnounceAggregate != "" {
		a, err := netip.ParsePrefix(c.BGPAnnounceAggregate)
		if err != nil || !a.Addr().Is6() || a.Addr().Is4In6() {
			return fmt.Errorf("bgp-announce-aggregate: %q is not an IPv6 prefix (want e.g. 2001:db8:1::/48)", c.BGPAnnounceAggregate)
		}
		if a.Masked() != a {
			return fmt.Errorf("bgp-announce-aggregate: %s has host bits set; did you mean %s?", a, a.Masked())
		}
		if a.Bits() >= prefix.Bits() || !a.Contains(prefix.Addr()) {
			return fmt.Errorf("bgp-announce-aggregate: %s must be shorter than and contain fixed-cidr-v6 %s", a, prefix)
		}
		if !c.BGP() {
			return errors.New("bgp-announce-aggregate: needs bgp-router (it is announced by BGP)")
		}
	}
	if _, err := ParsePeers(c.Peers, c.own(r), uplink); err != nil {
		return err
	}
	if !c.BGP() {
		if c.BGPASN != 0 || c.BGPPeerASN != 0 || c.BGPRouterID != "" {
			return errors.New("bgp-router: required with bgp-asn, bgp-peer-asn or bgp-router-id")
		}
		return nil
	}
	seen := map[netip.Addr]bool{}
	for _, s := range c.BGPRouters {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" || !a.Is6() || a.Is4In6() {
			return fmt.Errorf("bgp-router: %q is not an IPv6 address without zone (want the router's address on the uplink, e.g. 2001:db8::ffff)", s)
		}
		if a.IsMulticast() || a.IsUnspecified() || a.IsLoopback() || a.IsLinkLocalUnicast() {
			return fmt.Errorf("bgp-router: %s is not a global or unique-local unicast address", a)
		}
		for _, o := range c.own(r) {
			if o.Contains(a) {
				return fmt.Errorf("bgp-router: %s is inside this host's own %s", a, o)
			}
		}
		if seen[a] {
			return fmt.Errorf("bgp-router: %s is given twice", a)
		}
		seen[a] = true
	}
	if uplink == "" {
		return errors.New("uplink: required with bgp-router: its global address is the announced next hop")
	}
	if c.BGPASN == 0 {
		return errors.New("bgp-asn: required with bgp-router: this host's AS number")
	}
	if err := validASN("bgp-asn", c.BGPASN); err != nil {
		return err
	}
	if c.BGPPeerASN == 0 {
		return errors.New("bgp-peer-asn: required with bgp-router: the router's AS number")
	}
	if err := validASN("bgp-peer-asn", c.BGPPeerASN); err != nil {
		return err
	}
	if c.BGPRouterID != "" {
		id, err := netip.ParseAddr(c.BGPRouterID)
		if err != nil || !id.Is4() || id.IsUnspecified() {
			return fmt.Errorf("bgp-router-id: %q is not a non-zero dotted quad such as 10.0.0.1", c.BGPRouterID)
		}
	}
	return nil
}
