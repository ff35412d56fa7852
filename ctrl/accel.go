package ctrl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/v6dp/v6dp/loader"
)

// accel is the BPF dataplane as the daemon drives it.
type accel interface {
	// Sync publishes eps; ports are every veth port of the served
	// bridges (each gets the port guard).
	Sync(eps map[int]*Endpoint, ports map[int]string) error
	Close() error
}

// bpfAccel keeps the pinned endpoints and ports maps equal to the endpoint
// table, the ports guarded and forwarding (see forwarder), and the uplink
// config in line with the host's forwarding and firewall (see watch).
type bpfAccel struct {
	dp  *loader.Dataplane
	fwd *forwarder
	// gateway is the endpoints' gateway, never an endpoint's address.
	gateway netip.Addr
	// conflicts are the port guard's conflicts logged last.
	conflicts map[string]bool
	// synced are the endpoints of the last Sync, for the ports' entries
	// to be rewritten when a bridge port's flags change.
	synced map[int]*Endpoint
	// flags are the bridge ports' isolated and locked flags, as read.
	flags portFlags
	// owned is what hostOwned read last; nil: read again. ownedMu: the
	// address reader clears it.
	ownedMu    sync.Mutex
	owned      *hostOwnedSet
	ownedGen   uint64
	ownedLinks map[int]bool // the links owned is (being) read from
	stop       context.CancelFunc
	done       chan struct{}
}

// Sync orders its steps so that no packet meets half a port: the networks
// (bridge and router MAC) before the endpoints that refer to them, the far
// end's XDP before the addresses are forwarded, the addresses and the
// port's entry before the endpoint program validates sources against them.
//
// Endpoints of every network live in the one table; each names its
// network, whose bridge MAC is the router MAC its endpoints send to and
// receive from.
func (b *bpfAccel) Sync(eps map[int]*Endpoint, ports map[int]string) error {
	t0 := time.Now()
	errs := []error{b.fwd.refreshNetworks(eps)}
	addressed := make(map[int]*Endpoint, len(eps))
	for idx, ep := range eps {
		if len(ep.Addrs) > 0 {
			addressed[idx] = ep
		}
	}
	t1 := time.Now()
	ready, err := b.fwd.prepare(addressed)
	errs = append(errs, err)
	want := make(map[netip.Addr]loader.Endpoint, len(eps))
	for idx, ep := range eps {
		for _, a := range ep.Addrs {
			want[a] = b.fwd.endpoint(ep, a, ready[idx])
		}
	}
	t2 := time.Now()
	errs = append(errs, b.dp.SyncEndpoints(want))
	t3 := time.Now()
	errs = append(errs, b.syncPorts(eps))
	t4 := time.Now()
	errs = append(errs, b.fwd.attach(eps, ports))
	slog.Debug("bpf sync steps", "networks", t1.Sub(t0), "prepare", t2.Sub(t1), "endpoints", t3.Sub(t2),
		"ports", t4.Sub(t3), "attach", time.Since(t4))
	b.synced = eps
	return errors.Join(errs...)
}

// portEntries is what each endpoint may send from: its MAC and its
// link-local address, each owned by one port. The port that held a MAC or
// link-local address in the entries written last (prev) keeps it; among
// new claims, the older port (lower ifindex) wins. A port that claims a
// MAC another port owns, or the host's, gets an entry with the zero MAC,
// which no frame carries: it can send nothing at all, ARP and IPv4
// included, so it cannot move the owner's MAC in the bridge's forwarding
// table. A claim on a taken or reserved link-local address (the gateway,
// the host's own) leaves the port with no link-local address to send
// from (so no NA for fe80::1). It returns the conflicts, one line each.
func portEntries(eps map[int]*Endpoint, prev map[uint32]loader.Port, reserved map[netip.Addr]bool, reservedMACs map[string]bool) (map[uint32]loader.Port, []string) {
	// A claim's rank: what the port held in prev (its MAC counts for
	// two, its link-local for one), then the lower ifindex. Each MAC and
	// each link-local goes to its best claim, found in one pass each (a
	// sort of every port at every sync cost 5-140 ms at 10,000 ports).
	held := make(map[int]int, len(eps))
	for idx, ep := range eps {
		p, ok := prev[uint32(idx)]
		n := 0
		if ok && bytes.Equal(p.MAC, ep.MAC) {
			n += 2
		}
		if ok && p.LinkLocal.IsValid() && p.LinkLocal == ep.LinkLocal.WithZone("") {
			n++
		}
		held[idx] = n
	}
	better := func(i, j int) bool {
		if held[i] != held[j] {
			return held[i] > held[j]
		}
		return i < j
	}
	type claim struct {
		ep       *Endpoint
		mac      string // the MAC's bytes, as a key
		reserved bool   // the host's MAC
	}
	claims := make(map[int]claim, len(eps))
	macOwner := make(map[string]int, len(eps))
	for idx, ep := range eps {
		if len(ep.MAC) != 6 {
			continue
		}
		mac := string(ep.MAC)
		reserved := reservedMACs[ep.MAC.String()]
		claims[idx] = claim{ep, mac, reserved}
		if reserved {
			continue
		}
		if first, ok := macOwner[mac]; !ok || better(idx, first) {
			macOwner[mac] = idx
		}
	}
	// Link-locals go only to ports that have their MAC.
	llOwner := map[netip.Addr]int{}
	for idx, c := range claims {
		ll := c.ep.LinkLocal.WithZone("")
		if macOwner[c.mac] != idx || !ll.IsValid() || reserved[ll] {
			continue
		}
		if first, ok := llOwner[ll]; !ok || better(idx, first) {
			llOwner[ll] = idx
		}
	}
	out := make(map[uint32]loader.Port, len(claims))
	var conflicts []string
	for idx, c := range claims {
		ep := c.ep
		if c.reserved {
			conflicts = append(conflicts, fmt.Sprintf("port %s: MAC %s is the host's: the port sends nothing", ep.HostIf, ep.MAC))
			out[uint32(idx)] = loader.Port{MAC: make(net.HardwareAddr, 6)}
			continue
		}
		if owner := macOwner[c.mac]; owner != idx {
			conflicts = append(conflicts, fmt.Sprintf("port %s: MAC %s is port %s's: the port sends nothing", ep.HostIf, ep.MAC, eps[owner].HostIf))
			out[uint32(idx)] = loader.Port{MAC: make(net.HardwareAddr, 6)}
			continue
		}
		p := loader.Port{MAC: ep.MAC}
		ll := ep.LinkLocal.WithZone("")
		switch owner, taken := llOwner[ll]; {
		case !ll.IsValid():
		case reserved[ll]:
			conflicts = append(conflicts, fmt.Sprintf("port %s: link-local %s is the host's or the gateway's: the port sends from none", ep.HostIf, ll))
		case taken && owner != idx:
			conflicts = append(conflicts, fmt.Sprintf("port %s: link-local %s is port %s's: the port sends from none", ep.HostIf, ll, eps[owner].HostIf))
		default:
			p.LinkLocal = ll
		}
		out[uint32(idx)] = p
	}
	sort.Strings(conflicts)
	return out, conflicts
}

// hostOwned returns the link-local addresses and MACs no endpoint may
// use: the gateway, and the bridges' and the uplinks' own. It reads them
// again only after hostChanged (a host address event, one of these links
// changed, a resync): every sync of a burst of joins asked for them.
func (b *bpfAccel) hostOwned() (map[netip.Addr]bool, map[string]bool) {
	idxs := append(b.fwd.bridges(), b.fwd.uplink.Ifindex)
	b.fwd.mu.Lock()
	for _, x := range b.fwd.extras {
		idxs = append(idxs, x.cfg.Ifindex)
	}
	b.fwd.mu.Unlock()
	links := make(map[int]bool, len(idxs))
	for _, idx := range idxs {
		links[idx] = true
	}
	b.ownedMu.Lock()
	o := b.owned
	if o != nil && !slices.ContainsFunc(idxs, func(i int) bool { return !o.links[i] }) {
		b.ownedMu.Unlock()
		return o.lls, o.macs
	}
	// A change of one of these links while they are read makes the
	// result stale.
	b.owned, b.ownedLinks = nil, links
	gen := b.ownedGen
	b.ownedMu.Unlock()
	lls := map[netip.Addr]bool{BridgeLinkLocal: true}
	if b.gateway.IsLinkLocalUnicast() {
		lls[b.gateway] = true
	}
	macs := map[string]bool{}
	complete := true
	for _, idx := range idxs {
		l, err := netlink.LinkByIndex(idx)
		if err != nil {
			complete = complete && isGone(err)
			continue
		}
		macs[l.Attrs().HardwareAddr.String()] = true
	}
	// One dump per link, of that link's addresses only.
	if r, err := newNsidRoute(); err != nil {
		complete = false
	} else {
		for idx := range links {
			addrs, err := r.OwnAddrs(idx)
			if err != nil {
				// What was read still counts, but is read again
				// next time (a link that is gone: once it is).
				complete = complete && errors.Is(err, unix.ENODEV)
				continue
			}
			for _, a := range addrs {
				if a.Addr.IsLinkLocalUnicast() {
					lls[a.Addr] = true
				}
			}
		}
		r.Close()
	}
	b.ownedMu.Lock()
	if b.ownedGen == gen && complete {
		// Read whole, and nothing changed while reading: keep it.
		b.owned = &hostOwnedSet{lls: lls, macs: macs, links: links}
	}
	b.ownedMu.Unlock()
	return lls, macs
}

// hostOwnedSet is what hostOwned read, and from which links.
type hostOwnedSet struct {
	lls   map[netip.Addr]bool
	macs  map[string]bool
	links map[int]bool
}

// hostChanged makes hostOwned read the host again: the host's addresses
// changed, or link idx did (0: any).
func (b *bpfAccel) hostChanged(idx int) {
	b.ownedMu.Lock()
	defer b.ownedMu.Unlock()
	if idx == 0 || b.ownedLinks[idx] {
		b.owned = nil
		b.ownedGen++
	}
}

// syncPorts writes the ports map, logging each new conflict once.
func (b *bpfAccel) syncPorts(eps map[int]*Endpoint) error {
	t0 := time.Now()
	lls, macs := b.hostOwned()
	t1 := time.Now()
	prev, err := b.dp.PortsWritten()
	if err != nil {
		return err
	}
	t2 := time.Now()
	want, conflicts := portEntries(eps, prev, lls, macs)
	t3 := time.Now()
	blocked := b.flags.blocked(eps)
	t4 := time.Now()
	defer func() {
		slog.Debug("ports sync steps", "owned", t1.Sub(t0), "written", t2.Sub(t1), "entries", t3.Sub(t2), "blocked", t4.Sub(t3), "write", time.Since(t4))
	}()
	for idx, p := range want {
		ep := eps[int(idx)]
		if ep == nil {
			continue
		}
		n := b.fwd.network(ep.Bridge)
		if n == nil {
			// A bridge BPF has no network for: guarded only.
			p.GuardOnly = true
		} else {
			p.Net = n.id
			p.NoSwitch = n.vlanFiltering || blocked[int(idx)]
		}
		want[idx] = p
	}
	seen := make(map[string]bool, len(conflicts))
	for _, c := range conflicts {
		seen[c] = true
		if !b.conflicts[c] {
			slog.Warn("port guard: address conflict", "conflict", c)
		}
	}
	b.conflicts = seen
	return b.dp.SyncPorts(want)
}

// Close stops the watcher and closes the descriptors; pins and attachments
// stay, so the programs keep answering while no daemon runs.
func (b *bpfAccel) Close() error {
	b.stop()
	<-b.done
	return b.dp.Close()
}

// HookChoice is where one job of the dataplane runs, and why.
type HookChoice struct {
	Job  string `json:"job"`
	Hook string `json:"hook"`
	Why  string `json:"why"`
}

// Jobs of the dataplane, as status shows them.
const (
	JobNDP     = "ndp-answers"
	JobForward = "uplink-to-container"
	JobEgress  = "container-egress"
	JobGuard   = "port-guard"
)

// hookPlan is the attachment chosen for the uplink: which programs, and
// which of them does each job.
type hookPlan struct {
	xdp, native, tc bool
	ndp, fwd        loader.Hooks
	// l4pass: native XDP on a veth must leave TCP and UDP to the kernel.
	l4pass bool
	// egress: the port program delivers container egress itself.
	egress  bool
	choices []HookChoice
}

// startAccel picks and starts the dataplane. The kernel path is always
// installed underneath; any failure here leaves it answering alone, with
// the reason logged and shown by `v6dp status`. The port guards run on
// every dataplane, the kernel's included: they enforce what a stock host
// cannot (an endpoint sends only as itself), and forward nothing.
func startAccel(r *Resolved, h *Host, j *Journal) (a accel, dataplane, attach, reason string, hooks []HookChoice) {
	if r.Dataplane == DataplaneKernel || h.Uplink == nil {
		why := "requested with --dataplane=kernel"
		if r.Dataplane != DataplaneKernel {
			why = "no --uplink: nothing to attach BPF programs to"
		}
		if h.Uplink != nil {
			// A BPF program left from an earlier run would shadow the
			// kernel path the user asked for.
			if err := loader.Detach(r.PinDir, h.Uplink.Attrs().Index); err != nil && !errors.Is(err, loader.ErrNotAttached) {
				slog.Warn("detaching earlier BPF programs", "err", err)
			}
		}
		plan := hookPlan{choices: []HookChoice{
			{JobNDP, "kernel", why + ": proxy neighbour entries"},
			{JobForward, "kernel", why + ": bridge and kernel forwarding"},
			{JobEgress, "kernel", why},
		}}
		if !r.NDPProxy {
			plan.noNDP()
		}
		a, err := openAccel(r, h, j, plan)
		if err != nil {
			slog.Error("port guards failed; ports are unguarded", "err", err)
			return nil, DataplaneKernel, "", why, append(plan.choices, HookChoice{JobGuard, "none", err.Error()})
		}
		return a, DataplaneKernel, "", why, append(plan.choices, HookChoice{JobGuard, "tc", "every port: source, MAC and NDP guards"})
	}
	plan := chooseHooks(r, h.Uplink)
	a, mode, err := attachBPF(r, h, j, plan)
	if err != nil {
		if err := loader.DetachPorts(r.PinDir); err != nil {
			slog.Warn("detaching earlier port programs", "err", err)
		}
		slog.Error("BPF dataplane failed; the kernel path answers alone", "err", err)
		return nil, DataplaneKernel, "", fmt.Sprintf("BPF dataplane failed (%v); kernel proxy entries answer", err), nil
	}
	dataplane = DataplaneTC
	if plan.xdp {
		dataplane = DataplaneXDP
	}
	if r.Dataplane == DataplaneAuto {
		dataplane = DataplaneAuto
	}
	// The dataplane's reason is its first job's that runs: the NDP
	// answers, or the forwarding when there are none (no --ndp-proxy).
	first := max(0, slices.IndexFunc(plan.choices, func(c HookChoice) bool { return c.Hook != "none" }))
	why := plan.choices[first].Why
	if plan.xdp && plan.native && mode == loader.ModeXDPGeneric {
		why += "; the driver refused native XDP, so generic XDP runs"
		plan.choices[first].Why = why
	}
	for i := range plan.choices {
		plan.choices[i].Hook = strings.ReplaceAll(plan.choices[i].Hook, "xdp", string(mode))
	}
	attach = string(mode)
	if plan.xdp && plan.tc {
		attach = string(mode) + "+tcx"
	}
	if b, ok := a.(*bpfAccel); ok {
		plan.choices = append(plan.choices, b.attachExtras(r, h, plan)...)
	}
	plan.choices = append(plan.choices, HookChoice{JobGuard, "tc", "every port: source, MAC and NDP guards"})
	return a, dataplane, attach, why, plan.choices
}

// chooseHooks decides which programs the uplink runs and which does which
// job. On a veth, an XDP_TX from native XDP reaches the far end only if
// the far end has an XDP program (without one the frames are lost and
// counted as xdp_tx_errors), so native XDP is chosen there only when the
// far end visibly has one.
//
// auto puts each job on its measured-best hook: native XDP answers NS
// before an skb exists; TC delivers into containers with
// bpf_redirect_peer, which keeps GSO and checksum state, whereas a native
// XDP redirect into a veth rebuilds an skb on the far side and costs as
// much as the kernel's whole path at 1000 containers (make bench).
func chooseHooks(r *Resolved, uplink netlink.Link) hookPlan {
	p := pickHooks(r, uplink)
	if !r.NDPProxy {
		p.noNDP()
	}
	return p
}

// noNDP is the plan of a daemon without --ndp-proxy: the kernel gets no
// proxy entries and BPF answers no NS either (the prefix is routed to the
// host, or another box answers); an XDP program with nothing to do stays
// off the uplink.
func (p *hookPlan) noNDP() {
	p.ndp = 0
	p.dropIdleXDP()
	for i := range p.choices {
		if p.choices[i].Job == JobNDP {
			p.choices[i] = HookChoice{JobNDP, "none", "no --ndp-proxy: no NS is answered for the containers, by BPF or the kernel"}
		}
	}
}

// dropIdleXDP takes XDP off a plan in which neither job runs there.
func (p *hookPlan) dropIdleXDP() {
	if (p.ndp|p.fwd)&loader.HookXDP == 0 {
		p.xdp, p.native = false, false
	}
}

// pickHooks is chooseHooks for a daemon that answers NS.
func pickHooks(r *Resolved, uplink netlink.Link) hookPlan {
	peerXDP, peerWhy := vethPeerHasXDP(uplink, r.NetnsDirs)
	isVeth := uplink.Type() == "veth"
	nativeOK := !isVeth || peerXDP
	nativeWhy := "a physical uplink"
	if isVeth {
		nativeWhy = "a veth uplink whose far end has an XDP program, so native XDP_TX is delivered"
		if !peerXDP {
			nativeWhy = "a veth uplink and " + peerWhy + ": native XDP_TX would be lost"
		}
	}
	switch r.Dataplane {
	case DataplaneTC:
		why := "requested with --dataplane=tc"
		return hookPlan{tc: true, ndp: loader.HookTC, fwd: loader.HookTC, egress: true,
			choices: []HookChoice{{JobNDP, "tc", why}, {JobForward, "tc", why}, {JobEgress, "tc", why}}}
	case DataplaneXDP:
		why := "requested with --dataplane=xdp; " + nativeWhy
		if !nativeOK {
			why += ", generic XDP transmits"
		}
		fwdWhy := why
		// Frames from a veth may carry partial checksums, which a native
		// redirect loses; a NIC's frames come off the wire summed.
		l4 := nativeOK && isVeth
		if l4 {
			fwdWhy += "; TCP and UDP go to the kernel (a native redirect from a veth loses their partial checksums)"
		}
		return hookPlan{xdp: true, native: nativeOK, ndp: loader.HookXDP, fwd: loader.HookXDP, l4pass: l4, egress: true,
			choices: []HookChoice{{JobNDP, "xdp", why}, {JobForward, "xdp", fwdWhy}, {JobEgress, "tc", "the port program: TC is the only hook on a veth's egress path"}}}
	}
	tcFwd := "TC with bpf_redirect_peer: keeps GSO and checksum offloads, no skb rebuilt (measured faster than XDP redirects into veths)"
	split := func(why string) hookPlan {
		return hookPlan{xdp: true, native: nativeOK, tc: true, ndp: loader.HookXDP, fwd: loader.HookTC, egress: true,
			choices: []HookChoice{
				{JobNDP, "xdp", why},
				{JobForward, "tc", "auto: " + tcFwd},
				{JobEgress, "tc", "auto: the port program"},
			}}
	}
	allTC := func(why string) hookPlan {
		return hookPlan{tc: true, ndp: loader.HookTC, fwd: loader.HookTC, egress: true,
			choices: []HookChoice{
				{JobNDP, "tc", why},
				{JobForward, "tc", "auto: " + tcFwd},
				{JobEgress, "tc", "auto: the port program"},
			}}
	}
	switch {
	case r.NDPHook == DataplaneXDP:
		return split("requested with --ndp-hook=xdp; " + nativeWhy)
	case r.NDPHook == DataplaneTC:
		return allTC("requested with --ndp-hook=tc")
	case !isVeth && hasVLANUppers(uplink):
		// A NIC that strips VLAN tags on receive hands native XDP the
		// frames of its VLANs untagged: XDP could not tell them from the
		// uplink's own. TC sees the tag (skb->vlan_present).
		return allTC("auto: the uplink carries VLAN devices, whose frames native XDP sees untagged when the NIC strips tags; TC answers")
	case !isVeth:
		return split("auto: " + nativeWhy + "; native XDP answers before an skb exists")
	case peerXDP:
		// Measured on this veth topology (make bench, TestTransfer): native
		// XDP on a veth makes every frame pay veth_xdp_rcv_skb's copy into
		// an XDP buffer, so TC answers NS faster and TCP forwarded by TC
		// behind it loses half its rate.
		return allTC("auto: a veth uplink: native XDP there would copy every frame into an XDP buffer before TC sees it (measured slower for answers and for forwarding), so TC answers")
	}
	return allTC("auto: " + nativeWhy + "; TC answers (measured faster than generic XDP)")
}

// hasVLANUppers reports whether a VLAN device sits on the uplink.
func hasVLANUppers(uplink netlink.Link) bool {
	links, err := netlink.LinkList()
	if err != nil {
		return true // unknown: the safe answer
	}
	for _, l := range links {
		if l.Type() == "vlan" && l.Attrs().ParentIndex == uplink.Attrs().Index {
			return true
		}
	}
	return false
}

// vethPeerHasXDP looks at the far end of a veth uplink, when its namespace
// can be found, and reports whether an XDP program is attached there.
func vethPeerHasXDP(l netlink.Link, dirs []string) (bool, string) {
	if l.Type() != "veth" {
		return false, "not a veth"
	}
	a := l.Attrs()
	var h *netlink.Handle
	if a.NetNsID < 0 {
		h = &netlink.Handle{} // far end in the same namespace
	} else {
		d := &Discoverer{Dirs: append(append([]string{}, dirs...), "/run/netns")}
		path, ok := d.nsidPaths()[a.NetNsID]
		if !ok {
			return false, "its far end's namespace is unknown"
		}
		ns, err := netns.GetFromPath(path)
		if err != nil {
			return false, "its far end's namespace cannot be opened"
		}
		defer ns.Close()
		if h, err = netlink.NewHandleAt(ns); err != nil {
			return false, "its far end's namespace cannot be read"
		}
		defer h.Close()
	}
	peer, err := h.LinkByIndex(a.ParentIndex)
	if err != nil {
		return false, "its far end cannot be found"
	}
	if x := peer.Attrs().Xdp; x != nil && x.Attached {
		return true, "its far end has an XDP program"
	}
	return false, "its far end has no XDP program"
}

// uplinkConfig is the uplink config for the host and plan.
func uplinkConfig(r *Resolved, h *Host, plan hookPlan) (loader.UplinkConfig, error) {
	cfg := loader.UplinkConfig{Router: r.IPForward, NASourceLinkLocal: r.NASource == NASourceLinkLocal,
		NDPHooks: plan.ndp, ForwardHooks: plan.fwd, XDPL4Pass: plan.l4pass, EgressForward: plan.egress}
	if h.Uplink == nil {
		// Guards only: the programs need a MAC to be enabled, never sent.
		cfg.MAC = h.Bridge.Attrs().HardwareAddr
		return cfg, nil
	}
	cfg.Ifindex, cfg.MAC = h.Uplink.Attrs().Index, h.Uplink.Attrs().HardwareAddr
	if len(cfg.MAC) != 6 {
		// A layer-3 uplink (WireGuard, tun, PPP) has no MAC and no NDP:
		// the programs still need one to be enabled and guard the ports.
		cfg.MAC = h.Bridge.Attrs().HardwareAddr
	}
	if ll, err := linkLocalOf(h.Uplink); err == nil {
		cfg.LinkLocal = ll
	} else if cfg.NASourceLinkLocal {
		return cfg, fmt.Errorf("na-source link-local: %w", err)
	}
	return cfg, nil
}

// openAccel loads the dataplane, writes the uplink config and the NS limit
// and starts the watcher that keeps the config in line with the host.
func openAccel(r *Resolved, h *Host, j *Journal, plan hookPlan) (*bpfAccel, error) {
	cfg, err := uplinkConfig(r, h, plan)
	if err != nil {
		return nil, err
	}
	dp, err := loader.Open(r.PinDir)
	if err != nil {
		return nil, fmt.Errorf("loading programs: %w", err)
	}
	j.PinDir = r.PinDir
	if err := dp.SetNSLimit(loader.NSLimit{PerSource: r.NSRatePerSource, Global: r.NSRateGlobal, Burst: r.NSRateBurst()}); err != nil {
		dp.Close()
		return nil, err
	}
	b := &bpfAccel{dp: dp, gateway: r.Gateway}
	b.fwd = newForwarder(dp, cfg, h.Bridge.Attrs().Index, plan.xdp && plan.native && plan.fwd&loader.HookXDP != 0, r.IPForward)
	b.fwd.slotOf = map[string]uint32{}
	for _, n := range r.Networks {
		b.fwd.slotOf[n.Bridge] = r.uplinkSlot(n)
	}
	uplink := ""
	if h.Uplink != nil {
		uplink = h.Uplink.Attrs().Name
	} else {
		uplink = h.Bridge.Attrs().Name
	}
	if err := b.fwd.setPolicy(readHostPolicy(uplink)); err != nil {
		dp.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.stop, b.done = cancel, make(chan struct{})
	go b.watch(ctx, uplink)
	return b, nil
}

func attachBPF(r *Resolved, h *Host, j *Journal, plan hookPlan) (accel, loader.Mode, error) {
	ifindex := h.Uplink.Attrs().Index
	b, err := openAccel(r, h, j, plan)
	if err != nil {
		return nil, "", err
	}
	dp := b.dp
	// Drop what an earlier run left that this plan does not use (the
	// kernel path covers the moment).
	for _, at := range mustAttached(r.PinDir) {
		if at.Ifindex != ifindex {
			continue
		}
		isXDP := at.Mode == loader.ModeXDPNative || at.Mode == loader.ModeXDPGeneric
		stale := (isXDP && (!plan.xdp || (at.Mode == loader.ModeXDPNative) != plan.native)) || (!isXDP && !plan.tc)
		if !stale {
			continue
		}
		if err := dp.DetachKind(ifindex, isXDP); err != nil {
			slog.Warn("detaching the earlier program", "err", err)
		}
	}
	var mode loader.Mode
	if plan.tc {
		if mode, err = dp.AttachTC(ifindex); err != nil {
			b.Close()
			return nil, "", fmt.Errorf("attaching to %s: %w", h.Uplink.Attrs().Name, err)
		}
	}
	if plan.xdp {
		if mode, err = dp.AttachXDP(ifindex, plan.native); err != nil {
			b.Close()
			return nil, "", fmt.Errorf("attaching to %s: %w", h.Uplink.Attrs().Name, err)
		}
	}
	return b, mode, nil
}

func mustAttached(pinDir string) []loader.Attachment {
	at, _ := loader.Attached(pinDir)
	return at
}

func linkLocalOf(l netlink.Link) (netip.Addr, error) {
	addrs, err := netlink.AddrList(l, netlink.FAMILY_V6)
	if err != nil {
		return netip.Addr{}, err
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.IsLinkLocalUnicast() {
			return ip, nil
		}
	}
	return netip.Addr{}, errors.New("the uplink has no link-local address")
}

// bpfView reads the pinned endpoints map and counters, if any.
func bpfView(pinDir string) (map[netip.Addr]bool, map[string]uint64) {
	eps, counters, err := loader.ReadPinned(pinDir)
	if err != nil {
		return map[netip.Addr]bool{}, nil
	}
	out := make(map[netip.Addr]bool, len(eps))
	for a := range eps {
		out[a] = true
	}
	return out, counters
}

func removeBPF(pinDir string) error { return loader.Remove(pinDir) }
