package ctrl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/v6dp/v6dp/ctrl/rules"
)

// Daemon keeps the kernel (and the BPF maps) in line with the endpoints on
// the bridge until its context ends. It leaves everything in place when it
// stops, so traffic and NDP answers go on while no daemon runs. What is an
// endpoint and which addresses are published is decided by its lifecycle
// (lifecycle.go); the daemon feeds it events and gives it sysKernel.
type Daemon struct {
	cfg   *Resolved
	store Store
	// bpfAnswers: a BPF dataplane answers NS (not --dataplane kernel, nor
	// a failed BPF start).
	bpfAnswers bool
	// later attaches the programs of a burst's ports between event batches.
	later *later
	// prep turns new ports' IPv6 off beside the loop; served are the
	// served bridges that exist, by ifindex, for the link event reader
	// (noteBridges).
	prep   *portPrep
	served atomic.Pointer[map[int]bool]
	// nets are the networks served now: the configured ones and those
	// found under --network-parent; discs has a discoverer for each, by
	// bridge name.
	nets  []Network
	discs map[string]*Discoverer
	own   map[netip.Addr]bool // the host's addresses, last read
	host  *Host
	accel accel
	ann   *Announcer
	// extraAnn announce on the further uplinks, in slot order (1 on).
	extraAnn []*Announcer
	ops      *ops // repairs, following the uplink and bridge (repair.go)

	eps   *lifecycle
	proxy proxyTables
	// fresh are the veths of the link events being handled, as their
	// messages describe them (Resolve uses them instead of reading).
	fresh   map[int]linkEvent
	metrics *metrics // nil without --metrics-addr
	// cluster announces the networks' prefixes (nil: no BGP, no peers).
	cluster *cluster
	neigh   *neighTable
}

// RunDaemon sets the host up, then reconciles until ctx ends.
func RunDaemon(ctx context.Context, r *Resolved) error {
	defer startCPUProfile()()
	st := Store{Dir: r.StateDir}
	// Check what can be checked before changing anything.
	if _, err := CheckUplink(r.Uplink); err != nil {
		return err
	}
	for _, name := range r.ExtraUplinks() {
		if _, err := CheckUplink(name); err != nil {
			return fmt.Errorf("network: %w", err)
		}
	}
	if err := checkCluster(r); err != nil {
		return err
	}
	lock, err := lockDaemon(st, r.Bridges()...)
	if err != nil {
		return err
	}
	defer lock.release()
	if rt, err := st.Runtime(); err == nil && rt.PID != os.Getpid() {
		return fmt.Errorf("state-dir: a daemon (pid %d) already runs with %s", rt.PID, r.StateDir)
	}
	j, err := st.Journal()
	if err != nil {
		return err
	}
	host, err := EnsureHost(r, j)
	for _, n := range r.Networks[1:] {
		if r.NDPProxy && !slices.Contains(j.EnginePrefixes, n.Prefix.String()) {
			j.EnginePrefixes = append(j.EnginePrefixes, n.Prefix.String())
		}
	}
	if serr := st.SaveJournal(j); serr != nil {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return err
	}
	d := &Daemon{cfg: r, store: st, host: host, discs: map[string]*Discoverer{}, neigh: newNeighTable(sysctlRoot),
		proxy: proxyTables{}, fresh: map[int]linkEvent{}}
	d.setNetworks(r.Networks)
	d.eps = newLifecycle(sysKernel{d}, d.bridgeNames())
	rt := &Runtime{PID: os.Getpid(), Started: time.Now().UTC(), Config: r.Config, Addressing: r.Addressing}
	d.accel, rt.Dataplane, rt.Attach, rt.Reason, rt.Hooks = startAccel(r, host, j)
	d.bpfAnswers = rt.Dataplane != DataplaneKernel
	d.prep = newPortPrep(d.portsIPv6Off)
	defer d.prep.stop(0)
	d.later = newLater(func(idx int, name string) error {
		if b, ok := d.accel.(*bpfAccel); ok {
			return b.fwd.attachPort(idx, name)
		}
		return nil
	})
	if b, ok := d.accel.(*bpfAccel); ok {
		b.fwd.later = d.later.guard
	}
	if serr := st.SaveJournal(j); serr != nil {
		slog.Warn("saving journal", "err", serr)
	}
	slog.Info("dataplane selected", "dataplane", rt.Dataplane, "attach", rt.Attach, "reason", rt.Reason)
	if !r.NDPProxy && host.Uplink != nil {
		slog.Info("no --ndp-proxy: no NS is answered for the container addresses on the uplink, by BPF or the kernel; the prefix must be routed to the host")
	}
	if r.NDPProxy && host.Uplink != nil {
		d.ann = NewAnnouncer(r.Uplink, r.IPForward)
		for _, name := range r.ExtraUplinks() {
			d.extraAnn = append(d.extraAnn, NewAnnouncer(name, r.IPForward))
		}
	}
	defer d.ann.Close()
	defer d.closeExtraAnnouncers()
	d.ops = newOps(d, rt)
	defer d.ops.close()
	if d.accel != nil {
		defer d.accel.Close()
	}
	if err := st.SaveRuntime(rt); err != nil {
		return fmt.Errorf("state-dir: %w", err)
	}
	if r.MetricsAddr != "" {
		d.metrics = newMetrics(r.PinDir, rt.Dataplane)
		d.metrics.later.Store(d.later)
		d.metrics.prep.Store(d.prep)
		if err := serveMetrics(ctx, r.MetricsAddr, d.metrics); err != nil {
			return fmt.Errorf("metrics-addr: %w", err)
		}
	}
	defer os.Remove(st.path("daemon.json"))
	defer os.Remove(st.path("conflicts.json"))
	cl, err := startCluster(ctx, r, st, d.metrics)
	if err != nil {
		return err
	}
	defer cl.Close()
	d.cluster = cl

	d.noteBridges()
	sub, err := subscribeLinks(d.earlyPort)
	if err != nil {
		return err
	}
	defer func() { sub.close() }()
	addrs, err := subscribeAddrs(d.hostLinkLocal)
	if err != nil {
		return err
	}
	defer func() { addrs.close() }()
	d.resync(false)
	slog.Info("daemon running", "bridge", r.Bridge, "uplink", r.Uplink, "prefix", r.Prefix,
		"addressing", r.Addressing, "endpoints", len(d.eps.published), "addresses", len(d.eps.live))

	full := time.NewTicker(r.Resync.Duration)
	defer full.Stop()
	fast := time.NewTicker(retryFirst)
	defer fast.Stop()
	for {
		// The served bridges may have changed in the last step (a link
		// event, a resync, a network found under --network-parent): the
		// one place the event reader's copy is refreshed.
		d.noteBridges()
		select {
		case <-ctx.Done():
			d.prep.stop(laterDrain)
			d.later.drain(laterDrain)
			slog.Info("daemon stopping; dataplane stays in place", "addresses", len(d.eps.live))
			return nil
		case err := <-sub.errs:
			// Lost events (ENOBUFS under a burst of thousands of ports):
			// the library closes the subscription; open a new one, then
			// a full resync repairs whatever was missed.
			slog.Warn("link events lost; resubscribing and resyncing", "err", err)
			sub.close()
			next, err := subscribeLinks(d.earlyPort)
			if err != nil {
				return err
			}
			sub = next
			d.resync(true)
		case err := <-addrs.errs:
			slog.Warn("address events lost; resubscribing and resyncing", "err", err)
			addrs.close()
			next, err := subscribeAddrs(d.hostLinkLocal)
			if err != nil {
				return err
			}
			addrs = next
			d.resync(true)
		case nsid, ok := <-addrs.nsids:
			if !ok {
				// Closed after an error; the error case resubscribes.
				addrs.nsids = nil
				continue
			}
			// A container adds its addresses in a burst: one read of
			// each namespace for all of it.
			dirty := map[int]bool{nsid: true}
			for more := true; more; {
				select {
				case n, ok := <-addrs.nsids:
					if !ok {
						addrs.nsids, more = nil, false
						break
					}
					dirty[n] = true
				default:
					more = false
				}
			}
			changed := false
			nsids := make([]int, 0, len(dirty))
			for n := range dirty {
				if n == hostNsid {
					// The host's own addresses: the reserved ones, and
					// networks appearing under --network-parent.
					if d.hostChanged() {
						d.eps.Resync(false)
					}
					changed = true
					continue
				}
				nsids = append(nsids, n)
			}
			if len(nsids) > 0 {
				changed = d.eps.Addrs(nsids...) || changed
			}
			if changed {
				d.eps.Apply()
			}
		case u, ok := <-sub.updates:
			if !ok {
				// Closed after an error; the error case resubscribes.
				sub.updates = nil
				continue
			}
			// Drain what is queued so a burst costs one resolution of
			// the new ports and one apply.
			evs := []linkEvent{u}
			for more := true; more && len(evs) < cap(sub.updates); {
				select {
				case u, ok := <-sub.updates:
					if !ok {
						sub.updates, more = nil, false
						break
					}
					evs = append(evs, u)
				default:
					more = false
				}
			}
			// A bridge port's flags (isolated, locked) changed, or may
			// have: the bridge's own port messages say so.
			brports := map[int]bool{}
			links := evs[:0]
			for _, ev := range evs {
				if ev.BridgePort {
					brports[ev.Index] = ev.Blocked
					continue
				}
				links = append(links, ev)
			}
			evs = links
			b, _ := d.accel.(*bpfAccel)
			for _, ev := range evs {
				if b != nil {
					b.hostChanged(ev.Index)
				}
				if ev.host != nil {
					d.fresh[ev.Index] = ev
				} else {
					delete(d.fresh, ev.Index)
				}
			}
			start := time.Now()
			changed := d.eps.Links(evs)
			clear(d.fresh)
			if len(brports) > 0 {
				d.bridgePortsChanged(brports, changed)
			}
			handled := time.Now()
			if changed {
				d.eps.Apply()
			}
			slog.Debug("link events", "events", len(evs), "bridge_ports", len(brports),
				"handled", handled.Sub(start), "applied", time.Since(handled))
		case <-d.later.ready(len(sub.updates) > 0 || len(addrs.nsids) > 0 || d.prep.queued.Load() > 0):
			d.later.run()
		case <-fast.C:
			if d.eps.Pending() && d.eps.Retry() {
				d.eps.Apply()
			}
		case <-d.ops.kick:
			d.ops.repair(false)
		case <-full.C:
			d.ops.repair(true)
			d.resync(true)
		}
	}
}

// hostAddrs returns every IPv6 address of this namespace's interfaces.
func hostAddrs() (map[netip.Addr]bool, error) {
	list, err := netlink.AddrList(nil, netlink.FAMILY_V6)
	if err != nil {
		return nil, fmt.Errorf("listing the host's addresses: %w", err)
	}
	out := make(map[netip.Addr]bool, len(list))
	for _, a := range list {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			out[ip.Unmap()] = true
		}
	}
	return out, nil
}

// resync re-applies the host configuration (periodic only) and rebuilds
// the endpoint set from the kernel: the repair for lost events, crashed
// daemons and hands that changed things behind v6dp's back.
func (d *Daemon) resync(periodic bool) {
	if periodic {
		j, err := d.store.Journal()
		if err == nil {
			forgetGonePorts(j)
			d.store.forgetGonePortFiles()
			if h, err := d.ops.ensureHost(j); err != nil {
				slog.Warn("host configuration", "err", err)
			} else {
				d.host = h
			}
			_ = d.store.SaveJournal(j)
		}
	}
	d.hostChanged()
	d.proxy.relist()
	if b, ok := d.accel.(*bpfAccel); ok && periodic {
		// Compare against the kernel's maps this once, not against
		// what the daemon wrote: repairs what changed behind its back.
		b.dp.Reread()
		b.fwd.pinsRead = false
	}
	// The bridge ports' flags, read whole: a notice may have been lost.
	// A change for a port with an entry rewrites the ports map, in the
	// publish if there is one.
	b, _ := d.accel.(*bpfAccel)
	flagsChanged := b != nil && b.flags.refresh(b.synced)
	if d.eps.Resync(periodic) {
		d.eps.Apply()
	} else if flagsChanged && b.synced != nil {
		if err := b.syncPorts(b.synced); err != nil {
			slog.Warn("rewriting the ports after reading the bridge port flags", "err", err)
		}
	}
}

// hostLinkLocal is told of each change of the host's link-local
// addresses: the port guard's reserved ones may have changed. Called from
// the address reader.
func (d *Daemon) hostLinkLocal(ifindex int) {
	if b, ok := d.accel.(*bpfAccel); ok {
		b.hostChanged(ifindex)
	}
}

// hostChanged re-reads the host's addresses (never an endpoint's) and,
// with --network-parent, the networks under it; it reports whether the
// set of networks changed.
func (d *Daemon) hostChanged() bool {
	if b, ok := d.accel.(*bpfAccel); ok {
		b.hostChanged(0)
	}
	if own, err := hostAddrs(); err == nil {
		d.own = own
		for _, disc := range d.discs {
			disc.Rules.Reserved = own
		}
	} else {
		slog.Warn("host addresses; keeping the last list", "err", err)
	}
	if !d.cfg.Parent.IsValid() {
		return false
	}
	nets := d.cfg.allNetworks()
	if slices.Equal(nets, d.nets) {
		return false
	}
	for _, n := range nets[len(d.cfg.Networks):] {
		if !slices.Contains(d.nets, n) {
			slog.Info("network found under the parent prefix", "bridge", n.Bridge, "prefix", n.Prefix, "parent", d.cfg.Parent)
		}
	}
	d.setNetworks(nets)
	d.cluster.networksChanged(nets)
	d.eps.SetNames(d.bridgeNames())
	if j, err := d.store.Journal(); err == nil {
		for _, n := range nets[1:] {
			if d.cfg.NDPProxy && !slices.Contains(j.EnginePrefixes, n.Prefix.String()) {
				j.EnginePrefixes = append(j.EnginePrefixes, n.Prefix.String())
			}
		}
		if err := d.store.SaveJournal(j); err != nil {
			slog.Warn("saving journal", "err", err)
		}
	}
	return true
}

// setNetworks makes nets the served networks, with a discoverer each.
func (d *Daemon) setNetworks(nets []Network) {
	d.nets = nets
	for _, n := range nets {
		disc, ok := d.discs[n.Bridge]
		if !ok || disc.Prefix != n.Prefix {
			disc = &Discoverer{Bridge: n.Bridge, Prefix: n.Prefix, Dirs: d.cfg.NetnsDirs, Rules: n.Rules(d.cfg.MaxAddrsPerPort)}
			disc.Rules.Reserved = d.own
			d.discs[n.Bridge] = disc
		}
	}
}

func (d *Daemon) bridgeNames() []string {
	out := make([]string, len(d.nets))
	for i, n := range d.nets {
		out[i] = n.Bridge
	}
	return out
}

// sysKernel is the lifecycle's kernel: the discoverers, the BPF
// dataplane, the kernel proxy entries and the announcer.
type sysKernel struct{ d *Daemon }

// Scan scans every network; an engine's bridge that does not exist yet
// has no ports (it is adopted when it appears).
func (k sysKernel) Scan() ([]Endpoint, error) {
	// One dump of the host's links and one read of each container's
	// namespace for all networks.
	links, err := linkList()
	if err != nil {
		return nil, err
	}
	var views *nsViews
	var all []Endpoint
	for _, n := range k.d.nets {
		disc := k.d.discs[n.Bridge]
		if views == nil {
			if views, err = disc.views(); err != nil {
				return nil, err
			}
		}
		eps, err := disc.scanIn(links, views)
		var nf netlink.LinkNotFoundError
		if n.Engine && errors.As(err, &nf) {
			continue
		}
		if err != nil {
			return nil, err
		}
		all = append(all, eps...)
	}
	return all, nil
}

func (k sysKernel) Bridges() map[int]string {
	out := map[int]string{}
	for _, n := range k.d.nets {
		if l, err := netlink.LinkByName(n.Bridge); err == nil {
			out[l.Attrs().Index] = n.Bridge
		}
	}
	return out
}

// Port resolves a port with the discoverer of the bridge it is on.
func (k sysKernel) Port(index int) (*Endpoint, error) {
	disc, err := k.discOf(index)
	if err != nil {
		return nil, err
	}
	return disc.Port(index)
}

func (k sysKernel) discOf(index int) (*Discoverer, error) {
	l, err := netlink.LinkByIndex(index)
	if err != nil {
		return nil, err
	}
	if l.Type() == "veth" && l.Attrs().MasterIndex > 0 {
		if br, err := netlink.LinkByIndex(l.Attrs().MasterIndex); err == nil {
			if disc, ok := k.d.discs[br.Attrs().Name]; ok {
				return disc, nil
			}
		}
	}
	return nil, fmt.Errorf("%s: %w", l.Attrs().Name, ErrNotPort)
}

func (k sysKernel) IsPort(index int) (bool, error) {
	_, err := k.discOf(index)
	if errors.Is(err, ErrNotPort) {
		return false, nil
	}
	return err == nil, err
}

// PreparePorts has the new ports' IPv6 turned off at once, beside the
// loop (see portPrep).
func (k sysKernel) PreparePorts(names []string) error {
	k.d.prep.add(names)
	return nil
}

// Publish puts the kernel proxy entries first, per network prefix: they
// are quick, the kernel answers from them at once, and each makes the
// uplink join the address's solicited-node group, which BPF's answers
// rely on too. The BPF map follows (its entries go in before the port
// programs are attached, which takes about 17 ms a port: measured at
// 2,000 endpoints, answers came 5 s after the last port joined this way,
// 24 s with the BPF side first).
func (k sysKernel) Publish(eps map[int]*Endpoint, want map[netip.Addr]bool) error {
	d := k.d
	var errs []error
	// The kernel's proxy entries go before BPF's entries and come after
	// them: where BPF answers, the answers stay its own (flags, source)
	// through a change.
	// On the kernel dataplane the entries are the answers: first.
	start := time.Now()
	proxy := d.cfg.NDPProxy && d.host.Uplink != nil
	if proxy && !d.bpfAnswers {
		errs = append(errs, d.proxy.sync(d.nets, d.uplinkIndex, want))
		proxy = false
	}
	if proxy {
		errs = append(errs, d.proxy.withdraw(want))
	}
	if d.accel != nil {
		if err := d.accel.Sync(eps, d.eps.ports); err != nil {
			errs = append(errs, fmt.Errorf("bpf endpoints: %w", err))
		}
	}
	synced := time.Now()
	if proxy {
		errs = append(errs, d.proxy.sync(d.nets, d.uplinkIndex, want))
	}
	slog.Debug("publish steps", "bpf", synced.Sub(start), "proxy", time.Since(synced))
	n, held := 0, 0
	for _, ep := range eps {
		if len(ep.Addrs) > 0 {
			n++
		}
		held += max(len(ep.Held), len(ep.Addrs))
	}
	d.neigh.ensure(d.store, len(eps), held)
	if d.metrics != nil {
		d.metrics.addresses.Store(int64(len(want)))
		d.metrics.endpoints.Store(int64(n))
		d.metrics.conflicts.Store(int64(d.eps.conflicts))
	}
	return errors.Join(errs...)
}

// Conflicts writes the conflicts into the state directory for status.
func (k sysKernel) Conflicts(cs []rules.Conflict, found map[int]*Endpoint) {
	recs := make([]ConflictRecord, 0, len(cs))
	for _, c := range cs {
		recs = append(recs, ConflictRecord{Addr: c.Addr, Owner: found[c.Owner].HostIf, Claimant: found[c.Claimant].HostIf})
	}
	if err := k.d.store.SaveConflicts(recs); err != nil {
		slog.Warn("recording address conflicts", "err", err)
	}
}

func (k sysKernel) Announce(fresh, gone []netip.Addr) {
	k.d.announce(fresh, gone)
}
