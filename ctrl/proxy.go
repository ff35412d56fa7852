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
