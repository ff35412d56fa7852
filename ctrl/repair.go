package ctrl

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/v6dp/v6dp/loader"
)

// Version is the daemon's version as `v6dp version` prints it; the
// command sets it.
var Version = "devel"

// Repair is one thing the daemon put back, as `v6dp status` shows the
// last one.
type Repair struct {
	Time   time.Time `json:"time"`
	What   string    `json:"what"`
	Detail string    `json:"detail,omitempty"`
}

// ops keeps what v6dp set up in place while the daemon runs: whatever
// someone removed or changed behind its back is put back, with one
// "repaired" log line each, right after the kernel tells (link, address,
// route and neighbour events) and at every periodic resync for what it
// does not tell (sysctls). It also follows the uplink and the bridge when
// they change: a new MAC, or deleted and created again. Only what v6dp
// set up is touched.
type ops struct {
	d  *Daemon
	rt *Runtime
	// modes are how the uplink's programs were attached at start (none on
	// the kernel path; XDP and TC both when each does a job).
	modes []loader.Mode
	// kick wakes the daemon for a repair pass after a relevant event.
	kick chan struct{}
	done chan struct{}
	// The indexes the event filter compares against (it runs on its own
	// goroutine).
	uplinkIndex, bridgeIndex atomic.Int32
	// uplinkMAC is the uplink MAC the dataplane and announcements carry.
	uplinkMAC net.HardwareAddr
	// waiting is set while the uplink or bridge is missing (warned once).
	waiting bool
}

// newOps starts the event watch. Without events the periodic pass still
// repairs, only later.
func newOps(d *Daemon, rt *Runtime) *ops {
	o := &ops{d: d, rt: rt, kick: make(chan struct{}, 1), done: make(chan struct{})}
	if _, ok := d.accel.(*bpfAccel); ok && d.host.Uplink != nil {
		at, err := loader.Attached(d.cfg.PinDir)
		if err != nil {
			slog.Warn("repair: reading the uplink's attachments", "err", err)
		}
		for _, a := range at {
			if a.Ifindex == d.host.Uplink.Attrs().Index {
				o.modes = append(o.modes, a.Mode)
			}
		}
	}
	rt.Version = Version
	slog.Info("v6dp daemon", "version", Version)
	o.remember(d.host)
	if err := o.watch(); err != nil {
		slog.Warn("repair events unavailable; repairs wait for the periodic resync", "err", err)
	}
	return o
}

func (o *ops) close() {
	if o != nil {
		close(o.done)
	}
}

func (o *ops) remember(h *Host) {
	o.bridgeIndex.Store(int32(h.Bridge.Attrs().Index))
	if h.Uplink != nil {
		o.uplinkIndex.Store(int32(h.Uplink.Attrs().Index))
		o.uplinkMAC = append(net.HardwareAddr(nil), h.Uplink.Attrs().HardwareAddr...)
	}
}

func (o *ops) wake() {
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// watch subscribes to the events that can mean something of v6dp's went
// away: the uplink or bridge changed or deleted, a bridge address or the
// prefix route deleted, a proxy entry deleted. When a subscription ends
// (events lost: ENOBUFS) it repairs at once and subscribes again.
func (o *ops) watch() error {
	done := make(chan struct{})
	links := make(chan netlink.LinkUpdate, 256)
	addrs := make(chan netlink.AddrUpdate, 256)
	routes := make(chan netlink.RouteUpdate, 256)
	neighs := make(chan netlink.NeighUpdate, 256)
	quiet := func(error) {}
	// Thousands of ports joining at once are thousands of link, address
	// and (proxy) neighbour events: with the default socket buffer they
	// overflow, and every overflow is a full repair.
	const buf = linkEventBuffer
	var err error
	if err = netlink.LinkSubscribeWithOptions(links, done, netlink.LinkSubscribeOptions{ErrorCallback: quiet,
		ReceiveBufferSize: buf, ReceiveBufferForceSize: true}); err != nil {
		err = fmt.Errorf("link events: %w", err)
	} else if err = netlink.AddrSubscribeWithOptions(addrs, done, netlink.AddrSubscribeOptions{ErrorCallback: quiet,
		ReceiveBufferSize: buf, ReceiveBufferForceSize: true}); err != nil {
		err = fmt.Errorf("address events: %w", err)
	} else if err = netlink.RouteSubscribeWithOptions(routes, done, netlink.RouteSubscribeOptions{ErrorCallback: quiet,
		ReceiveBufferSize: buf, ReceiveBufferForceSize: true}); err != nil {
		err = fmt.Errorf("route events: %w", err)
	} else if err = netlink.NeighSubscribeWithOptions(neighs, done, netlink.NeighSubscribeOptions{ErrorCallback: quiet,
		ReceiveBufferSize: buf, ReceiveBufferForceSize: true}); err != nil {
		err = fmt.Errorf("neighbour events: %w", err)
	}
	if err != nil {
		close(done)
		return err
	}
	cfg := o.d.cfg
	prefix := prefixToIPNet(cfg.Prefix).String()
	lost := func() {
		close(done)
		// The other subscriptions end too; read them empty so that none
		// blocks sending into a full channel.
		go func() {
			for range links {
			}
		}()
		go func() {
			for range addrs {
			}
		}()
		go func() {
			for range routes {
			}
		}()
		go func() {
			for range neighs {
			}
		}()
		slog.Warn("repair events lost; repairing and subscribing again")
		o.wake()
		go func() {
			select {
			case <-o.done:
				return
			case <-time.After(time.Second):
			}
			if err := o.watch(); err != nil {
				slog.Warn("repair events unavailable; repairs wait for the periodic resync", "err", err)
			}
		}()
	}
	go func() {
		for {
			select {
			case <-o.done:
				close(done)
				return
			case u, ok := <-links:
				if !ok {
					lost()
					return
				}
				a := u.Attrs()
				gone := u.Header.Type == unix.RTM_DELLINK
				switch {
				case a.Name == cfg.Uplink || int32(a.Index) == o.uplinkIndex.Load():
					// Any change of the uplink: deleted, created again,
					// a new MAC. (A detached XDP or TCX link sends no
					// event; the periodic pass finds it.)
					o.wake()
				case a.Name == cfg.Bridge:
					if gone || int32(a.Index) != o.bridgeIndex.Load() || a.Flags&net.FlagUp == 0 {
						o.wake()
					}
				}
			case u, ok := <-addrs:
				if !ok {
					lost()
					return
				}
				if !u.NewAddr && int32(u.LinkIndex) == o.bridgeIndex.Load() {
					o.wake()
				}
			case u, ok := <-routes:
				if !ok {
					lost()
					return
				}
				if u.Type == unix.RTM_DELROUTE && u.Dst != nil && u.Dst.String() == prefix {
					o.wake()
				}
			case u, ok := <-neighs:
				if !ok {
					lost()
					return
				}
				if u.Type == unix.RTM_DELNEIGH && u.Flags&netlink.NTF_PROXY != 0 && int32(u.LinkIndex) == o.uplinkIndex.Load() {
					o.wake()
				}
			}
		}
	}()
	return nil
}

// repaired logs one repair and records it for `v6dp status`.
func (o *ops) repaired(what string, attrs ...any) {
	slog.Info("repaired", append([]any{"what", what}, attrs...)...)
	var kv []string
	for i := 0; i+1 < len(attrs); i += 2 {
		kv = append(kv, fmt.Sprintf("%v=%v", attrs[i], attrs[i+1]))
	}
	o.rt.LastRepair = &Repair{Time: time.Now().UTC(), What: what, Detail: strings.Join(kv, " ")}
	o.rt.Repairs++
}

// repair puts back what was removed or changed. The periodic pass also
// checks what no event announces: the ports' sysctls and BPF state.
func (o *ops) repair(periodic bool) {
	if o == nil {
		return
	}
	d := o.d
	before := o.rt.Repairs
	j, err := d.store.Journal()
	if err != nil {
		slog.Warn("repair: reading the journal", "err", err)
		return
	}
	h, err := o.ensureHost(j)
	if h == nil {
		if !o.waiting {
			slog.Warn("repair: waiting for the host's links", "err", err)
			o.waiting = true
		}
		return
	}
	o.waiting = false
	if err != nil {
		slog.Warn("repair: host configuration", "err", err)
	}
	rescan := o.follow(h)
	o.repairProxies()
	reapply := o.repairPrograms()
	if periodic {
		reapply = o.repairPorts() || reapply
	}
	switch {
	case rescan:
		d.rescan()
	case reapply:
		d.reapply()
	}
	if o.rt.Repairs != before {
		if err := d.store.SaveRuntime(o.rt); err != nil {
			slog.Warn("repair: saving the runtime record", "err", err)
		}
	}
}

// ensureHost puts the host configuration back (EnsureHost), each change
// a repair: the daemon set all of it up at start.
func (o *ops) ensureHost(j *Journal) (*Host, error) {
	h, changes, err := ensureHost(o.d.cfg, j)
	for _, c := range changes {
		o.repaired(c.what, c.attrs...)
	}
	if len(changes) > 0 {
		if serr := o.d.store.SaveJournal(j); serr != nil {
			slog.Warn("repair: saving the journal", "err", serr)
		}
		if serr := o.d.store.SaveRuntime(o.rt); serr != nil {
			slog.Warn("repair: saving the runtime record", "err", serr)
		}
	}
	return h, err
}

// follow takes up a bridge or uplink that was created again (a new
// ifindex) or an uplink with a new MAC, and reports whether the ports
// need a new scan.
func (o *ops) follow(h *Host) (rescan bool) {
	d := o.d
	// Compared with what ops saw last, not with d.host: a resync may have
	// taken up the new links already.
	oldBridge, oldUplink := int(o.bridgeIndex.Load()), int(o.uplinkIndex.Load())
	d.host = h
	bpf, _ := d.accel.(*bpfAccel)
	if h.Bridge.Attrs().Index != oldBridge {
		o.repaired("bridge re-created", "bridge", d.cfg.Bridge, "old_ifindex", oldBridge, "ifindex", h.Bridge.Attrs().Index)
		d.setBridge(h.Bridge)
		o.reattachContainers(h.Bridge)
		if bpf != nil {
			if d.cfg.IPForward {
				if err := pinBridgeMAC(h.Bridge.Attrs().Index); err != nil {
					slog.Warn("fixing the bridge MAC", "err", err)
				}
				if br, err := netlink.LinkByIndex(h.Bridge.Attrs().Index); err == nil {
					h.Bridge = br
				}
			}
			bpf.fwd.setFirstBridge(h.Bridge.Attrs().Index)
		}
		rescan = true
	}
	if h.Uplink == nil {
		o.remember(h)
		return rescan
	}
	up := h.Uplink.Attrs()
	switch {
	case up.Index != oldUplink:
		o.repaired("uplink re-created", "uplink", up.Name, "ifindex", up.Index, "mac", up.HardwareAddr.String())
		if bpf != nil {
			cfg := bpf.fwd.uplinkConfig()
			cfg.Ifindex, cfg.MAC = up.Index, up.HardwareAddr
			if ll, err := linkLocalOf(h.Uplink); err == nil {
				cfg.LinkLocal = ll
			}
			o.setUplinkConfig(bpf, cfg)
			if oldUplink != 0 {
				if err := loader.Detach(d.cfg.PinDir, oldUplink); err != nil && !errors.Is(err, loader.ErrNotAttached) {
					slog.Warn("removing the old uplink's program pins", "err", err)
				}
			}
			for _, m := range o.modes {
				o.attachUplink(bpf, up.Index, m)
			}
		}
		o.announceAll()
		rescan = true
	case !bytes.Equal(up.HardwareAddr, o.uplinkMAC):
		o.repaired("uplink MAC", "uplink", up.Name, "from", o.uplinkMAC.String(), "to", up.HardwareAddr.String())
		if bpf != nil {
			cfg := bpf.fwd.uplinkConfig()
			cfg.MAC = up.HardwareAddr
			o.setUplinkConfig(bpf, cfg)
		}
		o.announceAll()
	}
	o.remember(h)
	return rescan
}

func (o *ops) setUplinkConfig(b *bpfAccel, cfg loader.UplinkConfig) {
	if err := b.fwd.setUplink(cfg); err != nil {
		slog.Warn("repair: writing the uplink config", "err", err)
	}
}

// uplinkConfig returns the uplink config written last.
func (f *forwarder) uplinkConfig() loader.UplinkConfig {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.uplink
}

// setUplink writes a new uplink config (a new MAC, a re-created uplink or
// bridge) with the host policy over it, as the policy watcher does.
func (f *forwarder) setUplink(cfg loader.UplinkConfig) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.write(cfg, f.policy); err != nil {
		return err
	}
	f.uplink = cfg
	return nil
}

// attachUplink attaches the uplink program of mode to ifindex, the way
// the daemon did at start.
func (o *ops) attachUplink(b *bpfAccel, ifindex int, mode loader.Mode) {
	var err error
	switch mode {
	case loader.ModeXDPNative, loader.ModeXDPGeneric:
		_, err = b.dp.AttachXDP(ifindex, mode == loader.ModeXDPNative)
	default:
		_, err = b.dp.AttachTC(ifindex)
	}
	if err != nil {
		slog.Warn("repair: attaching the uplink program; the kernel path answers", "mode", string(mode), "err", err)
	}
}

// announceAll tells the router where every live address is now: the
// announcer's socket is opened again, on the uplink as it is now.
func (o *ops) announceAll() {
	if o.d.ann == nil {
		return
	}
	o.d.ann.Reset()
	o.d.ann.Announce(o.d.liveAddrs())
}

// reattachContainers puts the ports of the containers v6dp made back on
// the bridge after it was created again (deleting a bridge only releases
// its ports).
func (o *ops) reattachContainers(br netlink.Link) {
	cs, err := o.d.store.Containers()
	if err != nil {
		slog.Warn("repair: reading the container records", "err", err)
		return
	}
	for _, c := range cs {
		if c.Bridge != o.d.cfg.Bridge {
			continue
		}
		l, err := netlink.LinkByName(c.HostIf)
		if err != nil || l.Attrs().MasterIndex == br.Attrs().Index {
			continue
		}
		if err := netlink.LinkSetMaster(l, br); err != nil {
			slog.Warn("repair: port onto the bridge", "port", c.HostIf, "err", err)
			continue
		}
		_ = netlink.LinkSetUp(l)
		o.repaired("container port", "container", c.Name, "port", c.HostIf, "bridge", o.d.cfg.Bridge)
	}
}

// repairProxies puts back the kernel proxy entries of live addresses.
func (o *ops) repairProxies() {
	d := o.d
	if !d.cfg.NDPProxy || d.host.Uplink == nil {
		return
	}
	idx := d.host.Uplink.Attrs().Index
	// Every network's prefix: the live addresses span them all.
	have, err := ProxyEntries(idx, netip.MustParsePrefix("::/0"))
	if err != nil {
		slog.Warn("repair: proxy entries", "err", err)
		return
	}
	live := d.liveAddrs()
	for _, a := range live {
		if have[a] {
			continue
		}
		if err := netlink.NeighAdd(proxyNeigh(idx, a)); err != nil && !errors.Is(err, unix.EEXIST) {
			slog.Warn("repair: proxy entry", "addr", a, "err", err)
			continue
		}
		o.repaired("proxy entry", "addr", a, "dev", d.host.Uplink.Attrs().Name)
	}
}

// repairPrograms attaches the uplink program again if it was detached,
// and forgets ports whose endpoint program was detached so that the next
// apply attaches it again. It reports whether an apply is needed.
func (o *ops) repairPrograms() (reapply bool) {
	d := o.d
	bpf, ok := d.accel.(*bpfAccel)
	if !ok || d.host.Uplink == nil || len(o.modes) == 0 {
		return false
	}
	up := d.host.Uplink.Attrs()
	// The pins tell without a netlink request per interface; a clsact
	// filter (kernels without TCX) has no pin and is looked up instead.
	pins, err := loader.Pins(d.cfg.PinDir)
	if err != nil {
		slog.Warn("repair: reading pins", "err", err)
		return false
	}
	live := map[string]bool{}
	for _, p := range pins {
		if p.Kind == "link" && p.Hook == "uplink" && p.Ifindex == up.Index && !p.Defunct {
			live[p.Type] = true
		}
	}
	for _, m := range o.modes {
		kind := "tcx"
		switch m {
		case loader.ModeXDPNative, loader.ModeXDPGeneric:
			kind = "xdp"
		case loader.ModeTCLegacy:
			at, err := loader.Attached(d.cfg.PinDir)
			if err != nil {
				slog.Warn("repair: reading attachments", "err", err)
				continue
			}
			for _, a := range at {
				live["tcx"] = live["tcx"] || (a.Ifindex == up.Index && a.Mode == loader.ModeTCLegacy)
			}
		}
		if live[kind] {
			continue
		}
		o.attachUplink(bpf, up.Index, m)
		o.repaired("uplink program", "uplink", up.Name, "mode", string(m))
	}
	ports := map[int]string{}
	for _, ep := range d.ports() {
		ports[ep.HostIndex] = ep.HostIf
	}
	// Port programs are tc filters (see loader.AttachPort): asked for
	// one by one, a netlink request a port.
	for idx, name := range ports {
		if !bpf.fwd.ports[idx] || d.later.isQueued(idx) {
			continue
		}
		if ok, err := bpf.dp.PortAttached(idx); err != nil || ok {
			continue
		}
		delete(bpf.fwd.ports, idx)
		o.repaired("endpoint program", "port", name)
		reapply = true
	}
	for _, p := range pins {
		name, isPort := ports[p.Ifindex]
		if !p.Defunct || !isPort || p.Hook == "uplink" {
			continue
		}
		// The next apply attaches a new link: the endpoint program in
		// place of the defunct pin, the far end's in prepare.
		delete(bpf.fwd.ports, p.Ifindex)
		if p.Hook == "port-far-end" {
			o.repaired("far-end program", "port", name)
		} else {
			o.repaired("endpoint program", "port", name)
		}
		reapply = true
	}
	return reapply
}

// repairPorts turns the ports' IPv6 off again and checks that every live
// address is in the BPF maps; no event announces either.
func (o *ops) repairPorts() (reapply bool) {
	d := o.d
	for _, ep := range d.ports() {
		key := ipv6Conf(ep.HostIf, "disable_ipv6")
		if v, err := ReadSysctl(key); err == nil && v == "0" {
			if err := d.portsIPv6Off([]string{ep.HostIf}); err == nil {
				o.repaired("sysctl", "key", SysctlName(key), "from", "0", "to", "1")
			}
		}
	}
	bpf, ok := d.accel.(*bpfAccel)
	if !ok {
		return false
	}
	inMap, err := bpf.dp.Endpoints()
	if err != nil {
		slog.Warn("repair: reading the endpoints map", "err", err)
		return false
	}
	for _, a := range d.liveAddrs() {
		if _, ok := inMap[a]; !ok {
			o.repaired("bpf endpoint", "addr", a)
			reapply = true
		}
	}
	devmap, err := bpf.dp.ForwardPorts()
	if err != nil {
		slog.Warn("repair: reading the devmap", "err", err)
		return reapply
	}
	inDevmap := map[uint32]bool{}
	for _, p := range devmap {
		inDevmap[p] = true
	}
	addrs := make([]netip.Addr, 0, len(inMap))
	for a := range inMap {
		addrs = append(addrs, a)
	}
	sort.Slice(addrs, func(i, j int) bool { return addrs[i].Less(addrs[j]) })
	for _, a := range addrs {
		e := inMap[a]
		// Every endpoint's port is in the devmap, forwarding or not: its
		// presence is how the programs know the port still exists.
		if e.Ifindex == 0 || inDevmap[e.Ifindex] {
			continue
		}
		if _, err := netlink.LinkByIndex(int(e.Ifindex)); err != nil {
			// The port went: the kernel dropped its entry, and the
			// endpoint goes with the port's link event.
			continue
		}
		// The entry is unchanged, so a sync would not write it: put it
		// back, devmap first.
		if err := bpf.dp.PutEndpoint(e); err != nil {
			slog.Warn("repair: devmap entry", "addr", a, "err", err)
			continue
		}
		inDevmap[e.Ifindex] = true
		o.repaired("devmap entry", "ifindex", e.Ifindex, "addr", a)
	}
	return reapply
}

// The daemon's endpoint state as the repairs need it.

func (d *Daemon) liveAddrs() []netip.Addr {
	out := make([]netip.Addr, 0, len(d.eps.live))
	for a := range d.eps.live {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out
}

func (d *Daemon) ports() []*Endpoint {
	out := make([]*Endpoint, 0, len(d.eps.published))
	for _, ep := range d.eps.published {
		out = append(out, ep)
	}
	return out
}

// setBridge takes up a bridge created again: link events of its ports
// name the new ifindex as their master.
func (d *Daemon) setBridge(br netlink.Link) { d.eps.SetBridge(br.Attrs().Index, br.Attrs().Name) }

func (d *Daemon) rescan() { d.resync(false) }

func (d *Daemon) reapply() { d.eps.Apply() }
