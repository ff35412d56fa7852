package ctrl

import (
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sort"
	"time"

	"github.com/v6dp/v6dp/ctrl/rules"
)

// kernel is everything the endpoint lifecycle asks of the system. The
// daemon's is sysKernel; the table tests use a fake that records what it
// was asked to do.
type kernel interface {
	// Scan returns every veth port of the bridge as an endpoint (an
	// unresolved one with Err set); an error means no answer at all,
	// never an empty bridge.
	Scan() ([]Endpoint, error)
	// Port resolves one port by host-side ifindex.
	Port(index int) (*Endpoint, error)
	// IsPort asks the kernel whether index is a veth port of a served
	// bridge.
	IsPort(index int) (bool, error)
	// Bridges returns the served bridges that exist, by ifindex.
	Bridges() map[int]string
	// PreparePorts has IPv6 turned off on new ports, all at once (the
	// daemon's beside its loop; it reports only what it could not
	// start).
	PreparePorts(names []string) error
	// Publish makes the BPF maps and the kernel proxy entries hold
	// exactly the addresses of eps (each endpoint's Addrs are those it
	// owns, maybe none), and the ports map an entry for every port in
	// eps: every resolved port, addressed or not, may send as itself.
	Publish(eps map[int]*Endpoint, addrs map[netip.Addr]bool) error
	// Announce sends unsolicited NAs for fresh addresses and withdraws
	// gone ones.
	Announce(fresh, gone []netip.Addr)
	// Conflicts records the addresses claimed by a second port now (for
	// `v6dp status`); called when they change. found names the ports.
	Conflicts(cs []rules.Conflict, found map[int]*Endpoint)
}

// linkEvent is a link message as the lifecycle needs it.
type linkEvent struct {
	Index   int
	Name    string
	Master  int  // master ifindex; 0 when the message has none
	Veth    bool // link kind veth (false also when the message lacks it)
	Deleted bool // RTM_DELLINK
	// BridgePort: the bridge's own notification for one of its ports
	// (AF_BRIDGE), only its index and Blocked valid; not for the
	// lifecycle. Blocked: the port is isolated or locked.
	BridgePort, Blocked bool
	// host is the veth as the message describes it (the daemon's
	// events; nil in tests), so that resolving a new port needs no read
	// of the host's links.
	host *hostLink
}

// lifecycle decides which ports are endpoints and which addresses are
// published, from link events, address events, retries and resyncs. It
// keeps no kernel state of its own: everything it learns comes through
// k, everything it decides goes out through k.
type lifecycle struct {
	k kernel
	// names are the served bridges' names, bridges those that exist by
	// ifindex.
	names   map[string]bool
	bridges map[int]string
	now     func() time.Time

	// found are the resolved ports with their publishable addresses,
	// also those with none (they get a port entry, no address); pending
	// the ports whose far end has no address in the prefix yet, or could
	// not be read yet, retried for a while.
	found   map[int]*Endpoint
	pending map[int]retry
	owners  rules.Owners
	// published is what Publish was last given (every resolved port);
	// live the addresses.
	published map[int]*Endpoint
	live      map[netip.Addr]bool
	// ports are every veth port of a served bridge as the events and
	// scans tell, resolved or not, by ifindex: the ones that get a port
	// guard (no link dump on every apply).
	ports map[int]string
	// unprepared are the new ports whose IPv6 is to be turned off.
	unprepared []string
	// conflicts counts addresses claimed by a second port (issue 9);
	// current is the set last recorded.
	conflicts uint64
	current   []rules.Conflict
}

type retry struct {
	next     time.Time
	deadline time.Time
	delay    time.Duration
}

// Port retries: fast at first (Docker configures the address a few ms
// after the port appears), then slower, then left to the periodic resync.
const (
	retryFirst = 10 * time.Millisecond
	retryMax   = 500 * time.Millisecond
	retryFor   = time.Minute
)

func newLifecycle(k kernel, bridges []string) *lifecycle {
	l := &lifecycle{k: k, names: map[string]bool{}, bridges: k.Bridges(), now: time.Now,
		found: map[int]*Endpoint{}, pending: map[int]retry{}, ports: map[int]string{}, published: map[int]*Endpoint{}, live: map[netip.Addr]bool{}}
	for _, b := range bridges {
		l.names[b] = true
	}
	return l
}

// Link handles one link event and reports whether the endpoint set may
// have changed (Apply is due).
func (l *lifecycle) Link(ev linkEvent) bool { return l.Links([]linkEvent{ev}) }

// Links handles a burst of link events at once: the new ports are
// resolved together (one read of each namespace), not one by one.
func (l *lifecycle) Links(evs []linkEvent) bool {
	changed, due := false, false
	for _, ev := range evs {
		c, d := l.link(ev)
		changed, due = changed || c, due || d
	}
	l.prepare()
	if due {
		changed = l.Retry() || changed
	}
	return changed
}

// link handles one link event; due: a new port waits to be resolved.
func (l *lifecycle) link(ev linkEvent) (changed, due bool) {
	idx := ev.Index
	if _, ok := l.bridges[idx]; ok {
		if ev.Deleted {
			delete(l.bridges, idx)
		}
		// The bridge's MAC and MTU are part of what BPF forwards with.
		return true, false
	}
	if l.names[ev.Name] && !ev.Deleted {
		// A served bridge appeared (an engine made its network): adopt
		// it and whatever ports it already has.
		l.bridges[idx] = ev.Name
		l.Resync(false)
		return true, false
	}
	gone := ev.Deleted
	if _, served := l.bridges[ev.Master]; !gone && (!served || !ev.Veth) {
		// Not (or no longer) a veth port of the bridge, as far as this
		// message says. Some notifications carry only part of a link's
		// attributes (no master, no link kind); withdrawing a live
		// endpoint on one of those cut every container off, so ask the
		// kernel before believing it.
		_, known := l.found[idx]
		_, waiting := l.pending[idx]
		_, port := l.ports[idx]
		if !known && !waiting && !port {
			return false, false
		}
		if is, err := l.k.IsPort(idx); err == nil && is || err != nil && !isGone(err) {
			return false, false
		}
		gone = true
	}
	if gone {
		delete(l.pending, idx)
		delete(l.ports, idx)
		if _, ok := l.found[idx]; ok {
			delete(l.found, idx)
			return true, false
		}
		return false, false
	}
	l.ports[idx] = ev.Name
	if _, known := l.found[idx]; known {
		return false, false
	}
	if _, waiting := l.pending[idx]; waiting {
		return false, false
	}
	// At once (see prepare).
	l.unprepared = append(l.unprepared, ev.Name)
	now := l.now()
	l.pending[idx] = retry{next: now, deadline: now.Add(retryFor), delay: retryFirst}
	return false, true
}

// SetNames sets the names of the served bridges and takes up those that
// exist.
func (l *lifecycle) SetNames(names []string) {
	l.names = map[string]bool{}
	for _, n := range names {
		l.names[n] = true
	}
	l.bridges = l.k.Bridges()
}

// SetBridge records that the served bridge name now has ifindex idx
// (created again).
func (l *lifecycle) SetBridge(idx int, name string) {
	for i, n := range l.bridges {
		if n == name {
			delete(l.bridges, i)
		}
	}
	l.bridges[idx] = name
}

// Addrs handles address changes in the namespaces nsids: every port
// leading there is read again, each namespace once. It reports whether
// Apply is due.
func (l *lifecycle) Addrs(nsids ...int) bool {
	changed := false
	dirty := make(map[int]bool, len(nsids))
	for _, n := range nsids {
		dirty[n] = true
	}
	var idxs []int
	for idx, ep := range l.found {
		if dirty[ep.NetnsID] {
			idxs = append(idxs, idx)
		}
	}
	res := l.reread(idxs)
	for _, idx := range idxs {
		ep := l.found[idx]
		fresh, err := res[idx].ep, res[idx].err
		switch {
		case err != nil && isGone(err):
			delete(l.found, idx)
			changed = true
		case err != nil:
			// Keep what was known; the resync tries again.
			slog.Debug("reading port after an address event", "port", ep.HostIf, "err", err)
		case !sameEndpoint(ep, fresh):
			l.found[idx] = fresh
			changed = true
		}
	}
	// A port still waiting may have just got its first address.
	for idx, r := range l.pending {
		r.next = l.now()
		l.pending[idx] = r
	}
	return l.Retry() || changed
}

func sameEndpoint(a, b *Endpoint) bool {
	if len(a.Addrs) != len(b.Addrs) || len(a.Held) != len(b.Held) || a.MAC.String() != b.MAC.String() || a.MTU != b.MTU ||
		a.LinkLocal != b.LinkLocal {
		return false
	}
	for i := range a.Addrs {
		if a.Addrs[i] != b.Addrs[i] {
			return false
		}
	}
	for i := range a.Held {
		if a.Held[i] != b.Held[i] {
			return false
		}
	}
	return true
}

// Pending reports whether a port is waiting for a retry.
func (l *lifecycle) Pending() bool { return len(l.pending) > 0 }

// Retry resolves the ports that are due and reports whether the endpoint
// set changed. A port resolved without an address in the prefix is found
// at once (its port entry lets it send as itself) and retried until its
// address comes or the retries end.
func (l *lifecycle) Retry() bool {
	now := l.now()
	changed := false
	var due []int
	for idx, r := range l.pending {
		if !now.Before(r.next) {
			due = append(due, idx)
		}
	}
	res := l.resolve(due)
	for _, idx := range due {
		r := l.pending[idx]
		ep, err := res[idx].ep, res[idx].err
		switch {
		case err == nil:
			if old, ok := l.found[idx]; !ok || !sameEndpoint(old, ep) {
				l.found[idx] = ep
				changed = true
			}
			if len(ep.Held) > 0 {
				delete(l.pending, idx)
				continue
			}
		case isGone(err):
			delete(l.pending, idx)
			if _, ok := l.found[idx]; ok {
				delete(l.found, idx)
				changed = true
			}
			continue
		}
		if now.After(r.deadline) {
			// The periodic resync picks it up if it ever gets an address.
			delete(l.pending, idx)
			continue
		}
		r.delay = min(r.delay*2, retryMax)
		r.next = now.Add(r.delay)
		l.pending[idx] = r
	}
	return changed
}

// resolve resolves ports, all at once where the kernel can.
func (l *lifecycle) resolve(idxs []int) map[int]resolution {
	if len(idxs) == 0 {
		return nil
	}
	if bk, ok := l.k.(batchKernel); ok {
		return complete(bk.Resolve(idxs), idxs)
	}
	out := make(map[int]resolution, len(idxs))
	for _, idx := range idxs {
		ep, err := l.k.Port(idx)
		out[idx] = resolution{ep: ep, err: err}
	}
	return out
}

// reread resolves found ports again after address events: only their
// namespaces are read where the kernel can.
func (l *lifecycle) reread(idxs []int) map[int]resolution {
	rk, ok := l.k.(refreshKernel)
	if !ok || len(idxs) == 0 {
		return l.resolve(idxs)
	}
	eps := make(map[int]*Endpoint, len(idxs))
	for _, idx := range idxs {
		eps[idx] = l.found[idx]
	}
	return complete(rk.Refresh(eps), idxs)
}

// complete gives every port of idxs a resolution, an error where the
// kernel gave none.
func complete(out map[int]resolution, idxs []int) map[int]resolution {
	for _, idx := range idxs {
		if r, ok := out[idx]; !ok || r.ep == nil && r.err == nil {
			out[idx] = resolution{err: fmt.Errorf("port ifindex %d: not resolved", idx)}
		}
	}
	return out
}

// Resync rebuilds the endpoint set from a full scan. A failed scan keeps
// the current endpoints: answering for what is known beats answering for
// nothing. It reports whether the scan answered.
func (l *lifecycle) Resync(periodic bool) bool {
	l.bridges = l.k.Bridges()
	eps, err := l.k.Scan()
	if err != nil {
		slog.Warn("scanning the bridge; keeping the current endpoints", "err", err)
		return false
	}
	next := map[int]*Endpoint{}
	l.ports = make(map[int]string, len(eps))
	for i := range eps {
		ep := eps[i]
		if ep.Err == nil || !isGone(ep.Err) {
			l.ports[ep.HostIndex] = ep.HostIf
		}
		if ep.Err != nil {
			// A port that is still there but could not be read this
			// time keeps what was known of it.
			if old, ok := l.found[ep.HostIndex]; ok && !isGone(ep.Err) {
				next[ep.HostIndex] = old
			} else if !periodic {
				slog.Info("port not resolved", "port", ep.HostIf, "err", ep.Err)
			}
			continue
		}
		if _, known := l.found[ep.HostIndex]; !periodic || !known {
			// A port first seen by a periodic scan (its events lost)
			// gets its IPv6 off now, not at the next repair.
			l.unprepared = append(l.unprepared, ep.HostIf)
		}
		if len(ep.Held) > 0 {
			delete(l.pending, ep.HostIndex)
		}
		next[ep.HostIndex] = &ep
	}
	l.found = next
	l.prepare()
	return true
}

// prepare has IPv6 turned off on the new ports, all at once, before they
// are resolved (the daemon's kernel does it beside the loop, see
// portPrep): on a port whose IPv6 is up (its link-local address and
// routes made), turning it off walks the host's routes, and every port
// left on makes the next walk, and the kernel's own link work, slower.
func (l *lifecycle) prepare() {
	if len(l.unprepared) == 0 {
		return
	}
	if err := l.k.PreparePorts(l.unprepared); err != nil {
		slog.Warn("ports' ipv6 off", "ports", len(l.unprepared), "err", err)
	}
	l.unprepared = l.unprepared[:0]
}

// Apply decides ownership and publishes: the BPF map and proxy entries
// first, then the announcements for what is new and withdrawals for what
// went.
func (l *lifecycle) Apply() {
	claims := make(map[int][]netip.Addr, len(l.found))
	for idx, ep := range l.found {
		claims[idx] = ep.Addrs
	}
	owned, conflicts := l.owners.Assign(claims)
	for _, c := range conflicts {
		l.conflicts++
		slog.Warn("address claimed by a second endpoint; the first keeps it", "addr", c.Addr,
			"owner", l.found[c.Owner].HostIf, "claimant", l.found[c.Claimant].HostIf)
	}
	if now := l.owners.Conflicts(); !slices.Equal(now, l.current) {
		l.current = now
		l.k.Conflicts(now, l.found)
	}
	pub := make(map[int]*Endpoint, len(l.found))
	want := map[netip.Addr]bool{}
	for idx, ep := range l.found {
		e := *ep
		e.Addrs = owned[idx]
		pub[idx] = &e
		for _, a := range e.Addrs {
			want[a] = true
		}
	}
	start := time.Now()
	if err := l.k.Publish(pub, want); err != nil {
		slog.Warn("publishing endpoints", "err", err)
	}
	slog.Debug("published", "endpoints", len(pub), "addresses", len(want), "took", time.Since(start))
	var fresh, gone []netip.Addr
	for a := range want {
		if !l.live[a] {
			fresh = append(fresh, a)
		}
	}
	for a := range l.live {
		if !want[a] {
			gone = append(gone, a)
		}
	}
	sort.Slice(fresh, func(i, j int) bool { return fresh[i].Less(fresh[j]) })
	sort.Slice(gone, func(i, j int) bool { return gone[i].Less(gone[j]) })
	for _, a := range fresh {
		slog.Info("endpoint address live", "addr", a)
	}
	for _, a := range gone {
		slog.Info("endpoint address gone", "addr", a)
	}
	l.published, l.live = pub, want
	l.k.Announce(fresh, gone)
}
