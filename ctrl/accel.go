package ctrl

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/v6dp/v6dp/loader"
)

// accel is the BPF dataplane as the daemon drives it.
type accel interface {
	Sync(eps map[int]*Endpoint) error
	Close() error
}

// bpfAccel keeps the pinned endpoints map equal to the endpoint table,
// and the ports forwarding (see forwarder).
type bpfAccel struct {
	dp  *loader.Dataplane
	fwd *forwarder
}

// Sync orders its steps so that no packet meets half a port: the far
// end's XDP before the addresses are forwarded, the addresses before the
// endpoint program validates sources against them.
//
// Endpoints of further networks (--network) are answered for but not
// forwarded: the programs know one bridge (its MAC is the routers' MAC
// the endpoints send to), so the kernel forwards for the others.
func (b *bpfAccel) Sync(eps map[int]*Endpoint) error {
	errs := []error{b.fwd.refreshBridge()}
	onBridge := make(map[int]*Endpoint, len(eps))
	for idx, ep := range eps {
		if ep.Bridge == b.fwd.uplink.BridgeIndex {
			onBridge[idx] = ep
		}
	}
	ready, err := b.fwd.prepare(onBridge)
	errs = append(errs, err)
	want := make(map[netip.Addr]loader.Endpoint, len(eps))
	for idx, ep := range eps {
		for _, a := range ep.Addrs {
			want[a] = b.fwd.endpoint(ep, a, ready[idx])
		}
	}
	errs = append(errs, b.dp.SyncEndpoints(want), b.fwd.attach(onBridge))
	return errors.Join(errs...)
}

// Close closes the descriptors; pins and attachments stay, so the programs
// keep answering while no daemon runs.
func (b *bpfAccel) Close() error { return b.dp.Close() }

// startAccel picks and starts the dataplane. The kernel path is always
// installed underneath; any failure here leaves it answering alone, with
// the reason logged and shown by `v6dp status`.
func startAccel(r *Resolved, h *Host, j *Journal) (a accel, dataplane, attach, reason string) {
	if r.Dataplane == DataplaneKernel {
		if h.Uplink != nil {
			// A BPF program left from an earlier run would shadow the
			// kernel path the user asked for.
			if err := loader.Detach(r.PinDir, h.Uplink.Attrs().Index); err != nil {
				slog.Warn("detaching earlier BPF programs", "err", err)
			}
		}
		if err := loader.DetachPorts(r.PinDir); err != nil {
			slog.Warn("detaching earlier port programs", "err", err)
		}
		return nil, DataplaneKernel, "", "requested with --dataplane=kernel"
	}
	if h.Uplink == nil {
		return nil, DataplaneKernel, "", "no --uplink: nothing to attach BPF programs to"
	}
	want, native, why := chooseAttach(r, h.Uplink)
	a, mode, err := attachBPF(r, h, j, want, native)
	if err != nil {
		if err := loader.DetachPorts(r.PinDir); err != nil {
			slog.Warn("detaching earlier port programs", "err", err)
		}
		slog.Error("BPF dataplane failed; the kernel path answers alone", "err", err)
		return nil, DataplaneKernel, "", fmt.Sprintf("BPF dataplane failed (%v); kernel proxy entries answer", err)
	}
	if want == DataplaneXDP && native && mode == loader.ModeXDPGeneric {
		why += "; the driver refused native XDP, so generic XDP runs"
	}
	return a, want, string(mode), why
}

// chooseAttach decides between XDP (native or generic) and TC for the
// uplink. On a veth, an XDP_TX from native XDP reaches the far end only if
// the far end has an XDP program (without one the frames are lost and
// counted as xdp_tx_errors), so native XDP is chosen there only when the
// far end visibly has one.
func chooseAttach(r *Resolved, uplink netlink.Link) (dataplane string, native bool, why string) {
	peerXDP, peerWhy := vethPeerHasXDP(uplink, r.NetnsDirs)
	switch r.Dataplane {
	case DataplaneTC:
		return DataplaneTC, false, "requested with --dataplane=tc"
	case DataplaneXDP:
		if uplink.Type() != "veth" {
			return DataplaneXDP, true, "requested with --dataplane=xdp"
		}
		if peerXDP {
			return DataplaneXDP, true, "requested with --dataplane=xdp; veth uplink whose far end has an XDP program, so native XDP_TX is delivered"
		}
		return DataplaneXDP, false, "requested with --dataplane=xdp; veth uplink and " + peerWhy + ": native XDP_TX would be lost, generic XDP transmits"
	default:
		if uplink.Type() != "veth" {
			return DataplaneXDP, true, "auto: native XDP on a physical uplink"
		}
		if peerXDP {
			return DataplaneXDP, true, "auto: veth uplink whose far end has an XDP program, so native XDP_TX is delivered"
		}
		return DataplaneTC, false, "auto: veth uplink and " + peerWhy + ": native XDP_TX would be lost, TC answers instead"
	}
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

func attachBPF(r *Resolved, h *Host, j *Journal, dataplane string, native bool) (accel, loader.Mode, error) {
	ifindex := h.Uplink.Attrs().Index
	dp, err := loader.Open(r.PinDir)
	if err != nil {
		return nil, "", fmt.Errorf("loading programs: %w", err)
	}
	j.PinDir = r.PinDir
	cfg := loader.UplinkConfig{Ifindex: ifindex, MAC: h.Uplink.Attrs().HardwareAddr, Router: r.IPForward,
		NASourceLinkLocal: r.NASource == NASourceLinkLocal,
		BridgeIndex:       h.Bridge.Attrs().Index, BridgeMAC: h.Bridge.Attrs().HardwareAddr}
	if ll, err := linkLocalOf(h.Uplink); err == nil {
		cfg.LinkLocal = ll
	} else if cfg.NASourceLinkLocal {
		dp.Close()
		return nil, "", fmt.Errorf("na-source link-local: %w", err)
	}
	if err := dp.SetUplink(cfg); err != nil {
		dp.Close()
		return nil, "", err
	}
	// Only one kind of program on the uplink: drop the other kind an
	// earlier run may have left (the kernel path covers the moment).
	for _, at := range mustAttached(r.PinDir) {
		if at.Ifindex != ifindex {
			continue
		}
		isXDP := at.Mode == loader.ModeXDPNative || at.Mode == loader.ModeXDPGeneric
		if isXDP != (dataplane == DataplaneXDP) || (isXDP && (at.Mode == loader.ModeXDPNative) != native) {
			if err := dp.Detach(ifindex); err != nil {
				slog.Warn("detaching the earlier program", "err", err)
			}
			break
		}
	}
	var mode loader.Mode
	if dataplane == DataplaneXDP {
		mode, err = dp.AttachXDP(ifindex, native)
	} else {
		mode, err = dp.AttachTC(ifindex)
	}
	if err != nil {
		dp.Close()
		return nil, "", fmt.Errorf("attaching to %s: %w", h.Uplink.Attrs().Name, err)
	}
	return &bpfAccel{dp: dp, fwd: newForwarder(dp, cfg, mode, r.IPForward)}, mode, nil
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
