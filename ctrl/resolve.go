package ctrl

import (
	"fmt"

	"github.com/vishvananda/netlink"
)

// resolution is one port resolved: its endpoint, or why not.
type resolution struct {
	ep  *Endpoint
	err error
}

// batchKernel is a kernel that resolves many ports at once; the lifecycle
// uses it where it has one (the daemon's), else Port for each.
type batchKernel interface {
	Resolve(indexes []int) map[int]resolution
}

// resolveDump is the batch size from which the host's links are read in
// one dump rather than one request each.
const resolveDump = 64

// Resolve resolves ports by host-side ifindex, reading the host's links
// once (one dump for a large batch, else one request each) and each far
// end's namespace once, however many ports lead there: a burst of
// thousands of containers costs a dump per namespace, not per port. A
// link that is not (or no longer) a veth port of a served bridge is
// ErrNotPort, one that is gone LinkNotFoundError.
func (k sysKernel) Resolve(indexes []int) map[int]resolution {
	out := make(map[int]resolution, len(indexes))
	links := make(map[int]netlink.Link, len(indexes))
	var read []int
	for _, idx := range indexes {
		if ev, ok := k.d.fresh[idx]; ok {
			links[idx] = ev.host.link(ev)
		} else {
			read = append(read, idx)
		}
	}
	if len(read) >= resolveDump {
		all, err := linkList()
		if err != nil {
			for _, idx := range read {
				out[idx] = resolution{err: err}
			}
		}
		for _, l := range all {
			if _, ok := links[l.Attrs().Index]; !ok {
				links[l.Attrs().Index] = l
			}
		}
	} else {
		for _, idx := range read {
			l, err := netlink.LinkByIndex(idx)
			if err != nil {
				out[idx] = resolution{err: err}
				continue
			}
			links[idx] = l
		}
	}
	bridges := k.Bridges()
	byDisc := map[*Discoverer][]netlink.Link{}
	var views *nsViews
	for _, idx := range indexes {
		if _, done := out[idx]; done {
			continue
		}
		l, ok := links[idx]
		if !ok {
			out[idx] = resolution{err: netlink.LinkNotFoundError{}}
			continue
		}
		disc := k.d.discs[bridges[l.Attrs().MasterIndex]]
		if l.Type() != "veth" || disc == nil {
			out[idx] = resolution{err: fmt.Errorf("%s: %w", l.Attrs().Name, ErrNotPort)}
			continue
		}
		if views == nil {
			v, err := disc.views()
			if err != nil {
				out[idx] = resolution{err: err}
				continue
			}
			views = v
		}
		byDisc[disc] = append(byDisc[disc], l)
	}
	for disc, ls := range byDisc {
		for _, ep := range disc.resolveAll(ls, views) {
			out[ep.HostIndex] = resolution{ep: ep, err: ep.Err}
		}
	}
	return out
}

// refreshKernel re-reads the far ends of known endpoints: after address
// events in their namespaces the host side is as it was, so only each
// namespace is read again (once).
type refreshKernel interface {
	Refresh(eps map[int]*Endpoint) map[int]resolution
}

// Refresh resolves the endpoints again from their namespaces, keeping
// what they say of the host side.
func (k sysKernel) Refresh(eps map[int]*Endpoint) map[int]resolution {
	out := make(map[int]resolution, len(eps))
	byDisc := map[*Discoverer][]netlink.Link{}
	var views *nsViews
	for idx, ep := range eps {
		disc := k.d.discs[ep.Network]
		if disc == nil {
			out[idx] = resolution{err: fmt.Errorf("%s: %w", ep.HostIf, ErrNotPort)}
			continue
		}
		if views == nil {
			v, err := disc.views()
			if err != nil {
				out[idx] = resolution{err: err}
				continue
			}
			views = v
		}
		byDisc[disc] = append(byDisc[disc], &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Index: ep.HostIndex, Name: ep.HostIf,
			MasterIndex: ep.Bridge, HardwareAddr: ep.HostMAC, ParentIndex: ep.PeerIndex, NetNsID: ep.NetnsID}})
	}
	for disc, ls := range byDisc {
		for _, ep := range disc.resolveAll(ls, views) {
			out[ep.HostIndex] = resolution{ep: ep, err: ep.Err}
		}
	}
	return out
}
