package ctrl

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ProxyEntries returns the kernel proxy neighbour entries (NTF_PROXY) on
// the uplink that fall inside prefix.
func ProxyEntries(uplinkIndex int, prefix netip.Prefix) (map[netip.Addr]bool, error) {
	neighs, err := netlink.NeighProxyList(uplinkIndex, netlink.FAMILY_V6)
	if err != nil {
		return nil, fmt.Errorf("listing proxy entries: %w", err)
	}
	out := map[netip.Addr]bool{}
	for _, n := range neighs {
		if n.LinkIndex != uplinkIndex || n.Flags&netlink.NTF_PROXY == 0 {
			continue
		}
		if ip, ok := netip.AddrFromSlice(n.IP); ok && prefix.Contains(ip.Unmap()) {
			out[ip.Unmap()] = true
		}
	}
	return out, nil
}

func proxyNeigh(uplinkIndex int, a netip.Addr) *netlink.Neigh {
	return &netlink.Neigh{LinkIndex: uplinkIndex, Family: netlink.FAMILY_V6, Flags: netlink.NTF_PROXY, IP: a.AsSlice()}
}

// SyncProxy makes the kernel proxy entries on the uplink for prefix equal
// to want: adds first, then removes the stale ones (also those left behind
// by a daemon that died). Each entry also makes the uplink join the
// address's solicited-node group, which the BPF responder relies on too.
func SyncProxy(uplinkIndex int, prefix netip.Prefix, want map[netip.Addr]bool) (added, removed int, err error) {
	have, err := ProxyEntries(uplinkIndex, prefix)
	if err != nil {
		return 0, 0, err
	}
	var errs []error
	for a := range want {
		if have[a] {
			continue
		}
		if err := netlink.NeighAdd(proxyNeigh(uplinkIndex, a)); err != nil && !errors.Is(err, unix.EEXIST) {
			errs = append(errs, fmt.Errorf("proxy entry %s: %w", a, err))
			continue
		}
		added++
	}
	for a := range have {
		if want[a] {
			continue
		}
		if err := netlink.NeighDel(proxyNeigh(uplinkIndex, a)); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("removing proxy entry %s: %w", a, err))
			continue
		}
		removed++
	}
	if added+removed > 0 {
		slog.Debug("proxy entries synced", "added", added, "removed", removed, "total", len(want))
	}
	return added, removed, errors.Join(errs...)
}

// proxyTable keeps the kernel proxy entries on the uplink equal to the
// live addresses without listing them each time: it remembers what it
// put in, adds and removes the difference, and lists (and prunes what is
// stale, per prefix) only on its first sync and when asked (the periodic
// resync). An entry someone else deletes comes back through the repairs
// (ops.repairProxies, on the kernel's delete event).
type proxyTable struct {
	uplink int
	have   map[netip.Addr]bool
	full   bool // list and prune at the next sync
	h      *netlink.Handle
}

func newProxyTable() *proxyTable { return &proxyTable{full: true} }

// relist makes the next sync list the kernel's entries.
func (p *proxyTable) relist() { p.full = true }

// sync makes the entries on uplink equal to want; prefixes are the
// networks' (a full sync prunes stale entries inside them).
func (p *proxyTable) sync(uplink int, prefixes []netip.Prefix, want map[netip.Addr]bool) error {
	if uplink != p.uplink {
		p.uplink, p.full = uplink, true
	}
	if p.full {
		var errs []error
		for _, pfx := range prefixes {
			in := map[netip.Addr]bool{}
			for a := range want {
				if pfx.Contains(a) {
					in[a] = true
				}
			}
			if _, _, err := SyncProxy(uplink, pfx, in); err != nil {
				errs = append(errs, fmt.Errorf("proxy entries of %s: %w", pfx, err))
			}
		}
		p.have = make(map[netip.Addr]bool, len(want))
		for a := range want {
			p.have[a] = true
		}
		p.full = len(errs) > 0
		return errors.Join(errs...)
	}
	if p.h == nil {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("proxy entries: %w", err)
		}
		p.h = h
	}
	var errs []error
	added, removed := 0, 0
	for a := range want {
		if p.have[a] {
			continue
		}
		if err := p.h.NeighAdd(proxyNeigh(uplink, a)); err != nil && !errors.Is(err, unix.EEXIST) {
			errs = append(errs, fmt.Errorf("proxy entry %s: %w", a, err))
			continue
		}
		p.have[a] = true
		added++
	}
	removed, err := p.remove(want)
	errs = append(errs, err)
	if added+removed > 0 {
		slog.Debug("proxy entries synced", "added", added, "removed", removed, "total", len(want))
	}
	if err := errors.Join(errs...); err != nil {
		p.full = true // list next time: what failed is unknown
		return err
	}
	return nil
}

// remove deletes the entries of the addresses that are not in want, and
// reports how many went.
func (p *proxyTable) remove(want map[netip.Addr]bool) (int, error) {
	var errs []error
	removed := 0
	for a := range p.have {
		if want[a] {
			continue
		}
		if err := p.h.NeighDel(proxyNeigh(p.uplink, a)); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("removing proxy entry %s: %w", a, err))
			continue
		}
		delete(p.have, a)
		removed++
	}
	return removed, errors.Join(errs...)
}

// proxyTables are the proxy entries of every uplink, each network's on
// its own uplink (--network BRIDGE=PREFIX@UPLINK).
type proxyTables map[int]*proxyTable

// sync makes each uplink's entries the addresses of want in the prefixes
// of its networks (uplinkOf names a network's uplink ifindex).
func (t proxyTables) sync(nets []Network, uplinkOf func(Network) int, want map[netip.Addr]bool) error {
	prefixes := map[int][]netip.Prefix{}
	for _, n := range nets {
		idx := uplinkOf(n)
		prefixes[idx] = append(prefixes[idx], n.Prefix)
	}
	var errs []error
	for idx, pfxs := range prefixes {
		in := make(map[netip.Addr]bool, len(want))
		for a := range want {
			for _, p := range pfxs {
				if p.Contains(a) {
					in[a] = true
					break
				}
			}
		}
		pt := t[idx]
		if pt == nil {
			pt = newProxyTable()
			t[idx] = pt
		}
		errs = append(errs, pt.sync(idx, pfxs, in))
	}
	return errors.Join(errs...)
}

// withdraw removes the entries of the addresses that left want, and adds
// none: Publish withdraws before the BPF maps change and adds after them,
// so that the kernel never answers for an address BPF does not (yet, or
// any more) answer for itself. A table due for a full listing is left to
// its sync.
func (t proxyTables) withdraw(want map[netip.Addr]bool) error {
	var errs []error
	for idx, pt := range t {
		if pt.full || pt.h == nil || idx != pt.uplink {
			continue
		}
		if _, err := pt.remove(want); err != nil {
			errs = append(errs, err)
			pt.full = true
		}
	}
	return errors.Join(errs...)
}

// relist makes every uplink's next sync list the kernel's entries.
func (t proxyTables) relist() {
	for _, pt := range t {
		pt.relist()
	}
}
