package ctrl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/v6dp/v6dp/loader"
)

// forwarder runs BPF forwarding on the ports of the bridge: the endpoint
// program on each port's host side, the XDP program that native XDP
// redirects need on each port's far end, and the endpoints' forwarding
// flag, which it grants only to endpoints whose port is ready.
type forwarder struct {
	dp *loader.Dataplane
	// enabled: BPF forwards at all (--ip-forward and a dataplane with a
	// forwarding job). Without it the port programs only guard.
	enabled bool
	// mu guards uplink, policy and the networks: the watcher rewrites
	// the config when the host's forwarding or firewall changes, the
	// daemon when the bridge does.
	mu sync.Mutex
	// uplink is the config as the dataplane plan and the daemon want it;
	// policy, the host's, is applied over it when it is written.
	uplink loader.UplinkConfig
	policy hostPolicy
	// peerXDP: the uplink runs native XDP, so frames it redirects into a
	// veth are lost unless the far end has an XDP program.
	peerXDP bool
	// ports holds the ports whose endpoint program this daemon attached
	// or adopted, by host-side ifindex.
	ports map[int]bool
	// pinsRead: the pinned port links were read (see attach).
	pinsRead bool
	// guard are the ports to be guarded as of the last attach; later, if
	// set, is handed each that lacks its program instead of attaching
	// it at once (the daemon's deferred work).
	guard map[int]string
	later func(idx int, name string)
	// seenBridges are the bridges of the endpoints of every network seen.
	seenBridges map[int]bool
	// firstBridge is the first network's bridge (--bridge): network 0.
	firstBridge int
	// nets are the networks of the endpoints synced last, by bridge
	// ifindex; ids keeps each bridge's network id while the daemon runs
	// (and adopts the ids a previous run pinned).
	nets map[int]*fwdNetwork
	ids  map[int]uint32
	// slotOf is the uplink slot of each network's bridge, by name (absent:
	// slot 0, the daemon's uplink).
	slotOf map[string]uint32
	// extras are the further uplinks (slots 1 on), each with its config
	// and the host policy read for it last.
	extras []*extraUplink
}

// extraUplink is one further uplink as the forwarder keeps it.
type extraUplink struct {
	slot   uint32
	name   string
	cfg    loader.UplinkConfig
	policy hostPolicy
	// tc, xdp, native: what is attached to it.
	tc, xdp, native bool
}

// fwdNetwork is one network (bridge) as BPF forwards for it.
type fwdNetwork struct {
	id  uint32
	mac net.HardwareAddr
	// mtu caps its endpoints' MTU: the kernel sends Packet Too Big for
	// the bridge's MTU, so BPF must pass anything larger to it.
	mtu int
	// vlanFiltering: the bridge filters VLANs, so it decides which ports
	// reach each other; BPF switches nothing between them.
	vlanFiltering bool
}

func newForwarder(dp *loader.Dataplane, uplink loader.UplinkConfig, bridge int, peerXDP, enabled bool) *forwarder {
	enabled = enabled && (uplink.ForwardHooks != 0 || uplink.EgressForward)
	f := &forwarder{dp: dp, uplink: uplink, enabled: enabled, peerXDP: peerXDP, firstBridge: bridge,
		ports: map[int]bool{}, seenBridges: map[int]bool{}, nets: map[int]*fwdNetwork{}, ids: map[int]uint32{}}
	// The ids the pinned endpoints and ports refer to, until rewritten.
	if pinned, err := dp.Networks(); err == nil {
		for id, n := range pinned {
			if id != 0 && n.BridgeIndex != bridge {
				f.ids[n.BridgeIndex] = id
			}
		}
	}
	f.ids[bridge] = 0
	// On every dataplane: the gateway's MAC must not change under the
	// endpoints as ports come and go, whoever forwards.
	if err := pinBridgeMAC(bridge); err != nil {
		slog.Warn("fixing the bridge MAC", "err", err)
	}
	return f
}

// pinBridgeMAC sets the bridge's MAC to its current value, unless it was
// set already (Docker sets its own). A bridge with an automatic MAC takes
// the lowest MAC of its ports, so it changes as containers come and go;
// the endpoints keep the old one as their router's for a while, and BPF,
// which recognises routed frames by the bridge MAC, would leave their
// traffic to the kernel, where frames for a MAC that has left the bridge
// are lost (measured: 4-13% of a ping during container churn).
func pinBridgeMAC(index int) error {
	br, err := netlink.LinkByIndex(index)
	if err != nil {
		return err
	}
	// NET_ADDR_SET (3): set from user space, never recalculated.
	b, err := os.ReadFile("/sys/class/net/" + br.Attrs().Name + "/addr_assign_type")
	if err == nil && strings.TrimSpace(string(b)) == "3" {
		return nil
	}
	return netlink.LinkSetHardwareAddr(br, br.Attrs().HardwareAddr)
}

// refreshNetworks reads the bridges of the first network and of the
// endpoints (MAC, MTU, VLAN filtering) and writes the networks map: one
// id per bridge, 0 for the first. A bridge without a fixed MAC takes the
// lowest of its ports', so its MAC is followed here at every sync.
func (f *forwarder) refreshNetworks(eps map[int]*Endpoint) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	bridges := map[int]bool{f.firstBridge: true}
	slots := map[int]uint32{}
	for _, ep := range eps {
		if ep.Bridge != 0 {
			bridges[ep.Bridge] = true
			slots[ep.Bridge] = f.slotOf[ep.Network]
		}
	}
	var errs []error
	nets := make(map[int]*fwdNetwork, len(bridges))
	for idx := range bridges {
		l, err := netlink.LinkByIndex(idx)
		if err != nil {
			if idx == f.firstBridge {
				errs = append(errs, fmt.Errorf("bridge: %w", err))
			}
			continue
		}
		n := &fwdNetwork{mac: l.Attrs().HardwareAddr, mtu: l.Attrs().MTU}
		if br, ok := l.(*netlink.Bridge); ok && br.VlanFiltering != nil {
			n.vlanFiltering = *br.VlanFiltering
		}
		if len(n.mac) != 6 {
			continue
		}
		if old := f.nets[idx]; old != nil && !bytes.Equal(old.mac, n.mac) {
			slog.Info("bridge MAC changed", "bridge", l.Attrs().Name, "old", old.mac.String(), "new", n.mac.String())
		}
		nets[idx] = n
	}
	// Ids: kept for bridges still here, the lowest free one for new ones.
	taken := map[uint32]bool{}
	for idx, id := range f.ids {
		if nets[idx] == nil && idx != f.firstBridge {
			delete(f.ids, idx)
			continue
		}
		taken[id] = true
	}
	want := make(map[uint32]loader.Network, len(nets))
	next := uint32(1)
	for idx, n := range nets {
		id, ok := f.ids[idx]
		if !ok {
			for taken[next] {
				next++
			}
			if next >= uint32(loader.MaxNetworks) {
				errs = append(errs, fmt.Errorf("bridge ifindex %d: more than %d networks; its endpoints are forwarded by the kernel", idx, loader.MaxNetworks))
				delete(nets, idx)
				continue
			}
			id = next
			taken[id] = true
			f.ids[idx] = id
		}
		n.id = id
		want[id] = loader.Network{BridgeIndex: idx, BridgeMAC: n.mac, Uplink: slots[idx]}
	}
	f.nets = nets
	return errors.Join(append(errs, f.dp.SyncNetworks(want))...)
}

// network returns the network of a bridge, nil if BPF has none for it.
func (f *forwarder) network(bridge int) *fwdNetwork {
	f.mu.Lock()
	defer f.mu.Unlock()
	if bridge == 0 {
		bridge = f.firstBridge
	}
	return f.nets[bridge]
}

// setFirstBridge takes up a re-created first bridge: network 0.
func (f *forwarder) setFirstBridge(idx int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if idx == f.firstBridge {
		return
	}
	delete(f.ids, f.firstBridge)
	for b, id := range f.ids {
		if id == 0 {
			delete(f.ids, b)
		}
	}
	f.firstBridge = idx
	f.ids[idx] = 0
}

// setPolicy applies the host's forwarding and firewall state to the
// config, logging what changed for the fast path.
func (f *forwarder) setPolicy(p hostPolicy) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.write(f.uplink, p); err != nil {
		return err
	}
	old := f.policy
	f.policy = p
	if old.Forwarding != p.Forwarding {
		slog.Info("host forwarding changed: BPF follows", "forwarding", p.Forwarding)
	}
	if old.Filtered != p.Filtered || old.FilterWhy != p.FilterWhy {
		if p.Filtered {
			slog.Info("host firewall filters forwarded IPv6: fast path off, the kernel forwards", "why", p.FilterWhy)
		} else {
			slog.Info("host firewall has no forwarding rules: fast path on")
		}
	}
	if old.NDPFiltered != p.NDPFiltered || old.NDPFilterWhy != p.NDPFilterWhy {
		if p.NDPFiltered {
			slog.Info("host firewall filters the NDP answer path: the kernel answers NS through it", "why", p.NDPFilterWhy)
		} else {
			slog.Info("host firewall has no rules on the NDP answer path: BPF answers NS")
		}
	}
	return nil
}

// currentPolicy returns the host policy applied last.
func (f *forwarder) currentPolicy() hostPolicy {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.policy
}

// write writes cfg with the host policy p over it: forwarding off clears
// the router flag (no answers, no forwarding), filtering stops BPF
// delivery, filtering of the NDP path BPF's answers. Called with mu held.
func (f *forwarder) write(cfg loader.UplinkConfig, p hostPolicy) error {
	return f.writeAt(0, cfg, p)
}

func (f *forwarder) writeAt(slot uint32, cfg loader.UplinkConfig, p hostPolicy) error {
	cfg.Router = cfg.Router && p.Forwarding
	cfg.Filtered = p.Filtered
	cfg.NDPFiltered = p.NDPFiltered
	cfg.PolicyFor = policyHolds
	return f.dp.SetUplinkAt(slot, cfg)
}

// endpoint returns the map entry for one address of ep: forwarded when
// its port is ready, else only proxied (the kernel forwards it).
func (f *forwarder) endpoint(ep *Endpoint, a netip.Addr, ready bool) loader.Endpoint {
	e := loader.Endpoint{Addr: a, Ifindex: uint32(ep.HostIndex), MAC: ep.MAC, HostMAC: ep.HostMAC,
		MTU: uint32(ep.MTU), Flags: loader.EndpointProxy}
	n := f.network(ep.Bridge)
	if n == nil {
		// No network entry: answered, and forwarded by the kernel.
		return e
	}
	e.Net = n.id
	if n.mtu > 0 && n.mtu < ep.MTU {
		e.MTU = uint32(n.mtu)
	}
	if ready {
		e.Flags |= loader.EndpointForward
	}
	return e
}

// prepare makes each port ready for forwarded traffic before its
// addresses get the forwarding flag: with native XDP, the far end's XDP
// program. It returns the ports that are ready.
func (f *forwarder) prepare(eps map[int]*Endpoint) (map[int]bool, error) {
	ready := make(map[int]bool, len(eps))
	if !f.enabled {
		return ready, nil
	}
	var errs []error
	for idx, ep := range eps {
		if !f.peerXDP {
			ready[idx] = true
			continue
		}
		if ep.Netns == "" || ep.PeerIf == "" {
			continue
		}
		if err := f.dp.AttachPeerXDP(idx, ep.Netns, ep.PeerIf); err != nil {
			if !isGone(err) {
				errs = append(errs, fmt.Errorf("port %s: %w", ep.HostIf, err))
			}
			continue
		}
		ready[idx] = true
	}
	return ready, errors.Join(errs...)
}

// attach puts the endpoint program on the ports that lack it, after their
// addresses are in the map (source validation needs them), and removes
// what is left of ports that went.
//
// Every veth port of the bridge gets the program, whether or not its
// endpoint has an address yet: a port without an entry in the ports map
// may send no IPv6 at all (default deny), so a container cannot spoof
// before v6dp knows it.
//
// ports are every veth port of the served bridges, resolved or not, as
// the lifecycle knows them from the link events and scans.
func (f *forwarder) attach(eps map[int]*Endpoint, ports map[int]string) error {
	var errs []error
	for _, ep := range eps {
		if ep.Bridge != 0 {
			f.seenBridges[ep.Bridge] = true
		}
	}
	guard := make(map[int]string, len(ports)+len(eps))
	for idx, name := range ports {
		guard[idx] = name
	}
	for idx, ep := range eps {
		guard[idx] = ep.HostIf
	}
	f.guard = guard
	missing := 0
	for idx := range guard {
		if !f.ports[idx] {
			missing++
		}
	}
	for idx, name := range guard {
		if f.ports[idx] {
			continue
		}
		if f.later != nil && missing > laterGuardChunk {
			// A burst: the daemon attaches them between event
			// batches (see later); a few ports get theirs at once.
			f.later(idx, name)
			continue
		}
		errs = append(errs, f.attachPort(idx, name))
	}
	if !f.pinsRead {
		// What an earlier run pinned for ports that are no longer
		// there: read at the start and at each periodic resync, not on
		// every apply (with native XDP every port has a pin).
		pinned, err := f.dp.Ports()
		errs = append(errs, err)
		f.pinsRead = err == nil
		for _, idx := range pinned {
			if _, ok := guard[idx]; !ok {
				f.ports[idx] = true
			}
		}
	}
	for idx := range f.ports {
		if _, ok := guard[idx]; ok {
			continue
		}
		if err := f.dp.DetachPort(idx); err != nil {
			errs = append(errs, fmt.Errorf("port ifindex %d: %w", idx, err))
			continue
		}
		delete(f.ports, idx)
	}
	return errors.Join(errs...)
}

// attachPort attaches the endpoint program to one port, unless it has it
// or is no longer to be guarded; a port that went is no error.
func (f *forwarder) attachPort(idx int, name string) error {
	if _, ok := f.guard[idx]; !ok || f.ports[idx] {
		return nil
	}
	if _, err := f.dp.AttachPort(idx); err != nil {
		if isGone(err) {
			return nil
		}
		return fmt.Errorf("port %s: %w", name, err)
	}
	f.ports[idx] = true
	slog.Debug("endpoint program attached", "port", name)
	return nil
}

// bridges returns the ifindexes of the bridges whose ports are guarded:
// the first network's and those of every other network seen.
func (f *forwarder) bridges() []int {
	out := []int{f.firstBridge}
	for idx := range f.seenBridges {
		if idx != f.firstBridge {
			out = append(out, idx)
		}
	}
	return out
}

// policyPoll is how often the watcher re-reads the host's forwarding and
// firewall besides the events: nftables and netconf changes arrive at
// once; legacy ip6tables sends none.
const policyPoll = time.Second

// policyHolds is how long a policy read holds in BPF without a renewal:
// while no daemon runs, nobody watches the host's firewall, so BPF stops
// forwarding and answering a few seconds after the daemon's end and the
// kernel, which applies the firewall as it is then, forwards and answers
// instead.
const policyHolds = 3 * time.Second

// watch keeps the uplink config in line with the host's forwarding and
// firewall until ctx ends.
func (b *bpfAccel) watch(ctx context.Context, uplink string) {
	defer close(b.done)
	netconf, nft := subscribeNetconf(ctx), subscribeNftables(ctx)
	t := time.NewTicker(policyPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-netconf:
		case <-nft:
		case <-t.C:
		}
		// Written every time, changed or not: the write renews it. One
		// reading of the firewall serves every uplink.
		fw := readFirewall()
		if err := b.fwd.setPolicy(fw.policy(uplink)); err != nil {
			slog.Warn("applying the host policy", "err", err)
		}
		b.fwd.renewExtras(fw)
	}
}

// bridgePortsBlocked returns every bridge port, by ifindex, and whether
// the bridge keeps it from reaching other ports (isolated or locked). One
// dump of every bridge port (AF_BRIDGE), not one read per port.
func bridgePortsBlocked() (map[int]bool, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_DUMP)
	req.AddData(nl.NewIfInfomsg(unix.AF_BRIDGE))
	msgs, err := req.Execute(unix.NETLINK_ROUTE, 0)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, fmt.Errorf("dumping bridge ports: %w", err)
	}
	out := make(map[int]bool, len(msgs))
	for _, m := range msgs {
		info := nl.DeserializeIfInfomsg(m)
		out[int(info.Index)] = brportBlocked(m[info.Len():])
	}
	return out, nil
}

// bridgePortsChanged takes the flags of the ports the bridge sent its own
// notices for (AF_BRIDGE: a port joined, or its flags changed) and,
// unless an apply follows anyway, rewrites the ports' entries at once: an
// isolated or locked port stops being switched by BPF within
// milliseconds, not at the next resync.
func (d *Daemon) bridgePortsChanged(blocked map[int]bool, apply bool) {
	b, ok := d.accel.(*bpfAccel)
	if !ok {
		return
	}
	// A port joining brings a notice too (not blocked, as most are):
	// rewrite the entries only when a port that has one changes, not on
	// every notice of a burst of thousands of joins.
	if !b.flags.set(blocked, b.synced) || apply || b.synced == nil {
		return
	}
	if err := b.syncPorts(b.synced); err != nil {
		slog.Warn("rewriting the ports after a bridge port change", "err", err)
	}
}

// portFlags caches which bridge ports the bridge keeps from reaching
// other ports itself (isolated ports reach only non-isolated ones, locked
// ports pass frames only from MACs the bridge authorised): BPF must not
// switch their frames. The bridge's notices keep it current (one comes
// when a port joins, and one whenever its flags change); one dump of
// every port fills it at the first sync and refreshes it at every resync
// (periodic, and after lost events), in case a notice was lost. The
// publish path itself never dumps: at 10,000 ports a dump took 100-500 ms
// of a burst's sync, once a second.
type portFlags struct {
	known map[int]bool
	read  bool      // filled by a dump once
	tried time.Time // the last dump that failed, before the first read
}

// set records the flags of the ports in blocked and reports whether one of
// the ports of entries (those with an entry in the ports map) changed, as
// blocked reads it (unknown counts as blocked).
func (f *portFlags) set(blocked map[int]bool, entries map[int]*Endpoint) bool {
	if f.known == nil {
		f.known = map[int]bool{}
	}
	changed := false
	for idx, v := range blocked {
		old, ok := f.known[idx]
		if _, has := entries[idx]; has && v != (old || !ok) {
			changed = true
		}
		f.known[idx] = v
	}
	return changed
}

// refresh reads every bridge port's flags (one dump) in place of what the
// notices said, and reports whether a port of entries changed as blocked
// reads it.
func (f *portFlags) refresh(entries map[int]*Endpoint) bool {
	all, err := bridgePortsBlocked()
	if err != nil {
		f.tried = time.Now()
		slog.Warn("reading bridge port flags; BPF switches no unknown port", "err", err)
		return false
	}
	changed := false
	for idx := range entries {
		old, ok := f.known[idx]
		v, now := all[idx]
		if (old || !ok) != (v || !now) {
			changed = true
		}
	}
	f.known, f.read = all, true
	return changed
}

// blocked returns, for the ports of eps, whether each is blocked. A port
// the cache knows nothing of counts as blocked (the safe answer: the
// kernel's bridge switches its frames) until its notice or the next
// refresh. The first call fills the cache.
func (f *portFlags) blocked(eps map[int]*Endpoint) map[int]bool {
	if !f.read && time.Since(f.tried) > time.Second {
		f.refresh(nil)
	}
	out := make(map[int]bool, len(eps))
	for idx := range eps {
		v, ok := f.known[idx]
		out[idx] = v || !ok
	}
	return out
}
