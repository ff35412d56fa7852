// Package rules holds v6dp's addressing rules as pure functions of
// addresses and prefixes: which addresses of a container port may be
// published (answered for and forwarded to), and which port owns an
// address that two claim. It imports nothing that touches the kernel, so
// the daemon, the planner and the CLI share it and it is tested without
// root.
package rules

import (
	"fmt"
	"net/netip"
	"sort"
)

// Address flags as the kernel reports them (IFA_F_* in linux/if_addr.h).
const (
	FlagDADFailed = 0x08
	FlagTentative = 0x40
)

// DefaultMaxAddrs is the default per-port cap on published addresses: a
// container has one address per network, a few more with SLAAC privacy
// addresses; more is a container filling the tables.
const DefaultMaxAddrs = 16

// Addr is one address as read from a port's far end.
type Addr struct {
	Addr  netip.Addr
	Flags uint32
}

// Port says which addresses of one network a port may publish.
type Port struct {
	Prefix  netip.Prefix
	Gateway netip.Addr
	// Reserved are the host's own addresses (the bridge's among them):
	// never an endpoint's.
	Reserved map[netip.Addr]bool
	// MaxAddrs caps the published addresses per port; 0 means
	// DefaultMaxAddrs.
	MaxAddrs int
}

// Refusal is an address a port holds but may not publish, and why.
type Refusal struct {
	Addr   netip.Addr `json:"addr"`
	Reason string     `json:"reason"`
}

// Publishable returns the addresses in the prefix the port may publish,
// sorted, and the refused ones with their reasons. Refused are: tentative
// addresses (DAD not finished, RFC 4862 5.4: not yet the port's) and
// DAD-failed ones; the prefix's subnet-router anycast address (RFC 4291
// 2.6.1, the routers'); the gateway; the host's own addresses; and those
// over the cap (the highest addresses go first, so the choice is stable).
func (p Port) Publishable(addrs []Addr) (ok []netip.Addr, refused []Refusal) {
	max := p.MaxAddrs
	if max <= 0 {
		max = DefaultMaxAddrs
	}
	seen := map[netip.Addr]bool{}
	sorted := append([]Addr(nil), addrs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Addr.Less(sorted[j].Addr) })
	for _, a := range sorted {
		ip := a.Addr.Unmap().WithZone("")
		if !p.Prefix.Contains(ip) || seen[ip] {
			continue
		}
		seen[ip] = true
		why := ""
		switch {
		case a.Flags&FlagDADFailed != 0:
			why = "duplicate address detection failed"
		case a.Flags&FlagTentative != 0:
			why = "tentative (duplicate address detection not finished)"
		case ip == p.Prefix.Masked().Addr():
			why = fmt.Sprintf("the subnet-router anycast address of %s", p.Prefix.Masked())
		case ip == p.Gateway:
			why = "the containers' gateway"
		case p.Reserved[ip]:
			why = "an address of the host"
		case len(ok) >= max:
			why = fmt.Sprintf("over the cap of %d addresses per port", max)
		}
		if why != "" {
			refused = append(refused, Refusal{Addr: ip, Reason: why})
			continue
		}
		ok = append(ok, ip)
	}
	return ok, refused
}

// Conflict is an address held by a second port while its owner holds it.
type Conflict struct {
	Addr     netip.Addr
	Owner    int // port (host-side ifindex) that keeps it
	Claimant int // port that gets nothing for it
}

// Owners remembers which port owns each address: the first port seen
// holding it keeps it for as long as it holds it, whoever else claims it
// later (RFC 4862's first-come rule, which DAD enforces between honest
// nodes and v6dp enforces against dishonest ones). Ports that appear
// together are ordered by ifindex, the kernel's creation order.
type Owners struct {
	owner    map[netip.Addr]int
	reported map[Conflict]bool
}

// Assign takes every port's publishable addresses and returns what each
// port owns, and the conflicts not returned by an earlier call.
func (o *Owners) Assign(held map[int][]netip.Addr) (owned map[int][]netip.Addr, fresh []Conflict) {
	if o.owner == nil {
		o.owner, o.reported = map[netip.Addr]int{}, map[Conflict]bool{}
	}
	holders := map[netip.Addr][]int{}
	ports := make([]int, 0, len(held))
	for p := range held {
		ports = append(ports, p)
	}
	sort.Ints(ports)
	for _, p := range ports {
		for _, a := range held[p] {
			holders[a] = append(holders[a], p)
		}
	}
	next := make(map[netip.Addr]int, len(holders))
	owned = map[int][]netip.Addr{}
	var conflicts []Conflict
	for a, hs := range holders {
		owner := hs[0]
		if old, ok := o.owner[a]; ok && contains(hs, old) {
			owner = old
		}
		next[a] = owner
		owned[owner] = append(owned[owner], a)
		for _, h := range hs {
			if h != owner {
				conflicts = append(conflicts, Conflict{Addr: a, Owner: owner, Claimant: h})
			}
		}
	}
	reported := make(map[Conflict]bool, len(conflicts))
	for _, c := range conflicts {
		reported[c] = true
		if !o.reported[c] {
			fresh = append(fresh, c)
		}
	}
	o.owner, o.reported = next, reported
	for p := range owned {
		sort.Slice(owned[p], func(i, j int) bool { return owned[p][i].Less(owned[p][j]) })
	}
	sort.Slice(fresh, func(i, j int) bool {
		return fresh[i].Addr.Less(fresh[j].Addr) || fresh[i].Addr == fresh[j].Addr && fresh[i].Claimant < fresh[j].Claimant
	})
	return owned, fresh
}

// Conflicts returns the conflicts of the last Assign, sorted.
func (o *Owners) Conflicts() []Conflict {
	out := make([]Conflict, 0, len(o.reported))
	for c := range o.reported {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Addr.Less(out[j].Addr) || out[i].Addr == out[j].Addr && out[i].Claimant < out[j].Claimant
	})
	return out
}

// Owner returns the port that owns a, if any.
func (o *Owners) Owner(a netip.Addr) (int, bool) {
	p, ok := o.owner[a]
	return p, ok
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
