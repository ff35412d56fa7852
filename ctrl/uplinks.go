package ctrl

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"

	"github.com/v6dp/v6dp/loader"
)

// Several uplinks: a network given BRIDGE=PREFIX@UPLINK is reached by its
// own uplink, not the daemon's --uplink. Its kernel proxy entries and
// unsolicited NAs go there, BPF answers its NS only there (the uplink
// programs find the uplink's slot by the interface a frame came in on,
// and an endpoint's network names its slot), and its endpoints' routed
// traffic leaves by it. Slot 0 is the daemon's uplink; the further ones
// follow in the order the networks name them (Resolved.ExtraUplinks).

// uplinkSlot returns the slot of the network's uplink.
func (r *Resolved) uplinkSlot(n Network) uint32 {
	if n.Uplink == "" || n.Uplink == r.Uplink {
		return 0
	}
	return uint32(slices.Index(r.ExtraUplinks(), n.Uplink) + 1)
}

// uplinkIndex returns the ifindex of the network's uplink as the host has
// it now.
func (d *Daemon) uplinkIndex(n Network) int {
	slot := d.cfg.uplinkSlot(n)
	if slot == 0 || int(slot) > len(d.host.Extra) {
		return d.host.Uplink.Attrs().Index
	}
	return d.host.Extra[slot-1].Attrs().Index
}

// networkOfAddr returns the served network whose prefix holds a.
func (d *Daemon) networkOfAddr(a netip.Addr) (Network, bool) {
	for _, n := range d.nets {
		if n.Prefix.Contains(a) {
			return n, true
		}
	}
	return Network{}, false
}

// announce sends the unsolicited NAs for fresh addresses, and forgets gone
// ones, on the uplink of each address's network.
func (d *Daemon) announce(fresh, gone []netip.Addr) {
	if len(d.extraAnn) == 0 {
		d.ann.Withdraw(gone)
		d.ann.Announce(fresh)
		return
	}
	by := func(addrs []netip.Addr) map[uint32][]netip.Addr {
		out := map[uint32][]netip.Addr{}
		for _, a := range addrs {
			n, _ := d.networkOfAddr(a)
			slot := d.cfg.uplinkSlot(n)
			out[slot] = append(out[slot], a)
		}
		return out
	}
	ann := func(slot uint32) *Announcer {
		if slot == 0 || int(slot) > len(d.extraAnn) {
			return d.ann
		}
		return d.extraAnn[slot-1]
	}
	for slot, addrs := range by(gone) {
		ann(slot).Withdraw(addrs)
	}
	for slot, addrs := range by(fresh) {
		ann(slot).Announce(addrs)
	}
}

func (d *Daemon) closeExtraAnnouncers() {
	for _, a := range d.extraAnn {
		a.Close()
	}
}

// attachExtras attaches the uplink programs to the further uplinks and
// writes their slots. Each gets the hooks chooseHooks picks for it, with
// forwarding always in TC (native XDP forwarding needs the far ends'
// programs, which only the daemon's uplink's plan sets up). A further
// uplink that fails is logged and left to the kernel path.
func (b *bpfAccel) attachExtras(r *Resolved, h *Host, main hookPlan) []HookChoice {
	var choices []HookChoice
	for i, l := range h.Extra {
		slot := uint32(i + 1)
		plan := chooseHooks(r, l)
		if plan.fwd&loader.HookXDP != 0 {
			plan.fwd, plan.tc, plan.l4pass = loader.HookTC, true, false
		}
		plan.dropIdleXDP() // no job left for XDP without --ndp-proxy
		if !main.egress {
			plan.egress = false
		}
		eh := &Host{Bridge: h.Bridge, Uplink: l}
		cfg, err := uplinkConfig(r, eh, plan)
		x := &extraUplink{slot: slot, name: l.Attrs().Name, cfg: cfg, policy: readHostPolicy(l.Attrs().Name)}
		if err == nil {
			err = b.fwd.attachExtra(x, plan)
		}
		if err != nil {
			slog.Error("further uplink failed; the kernel path serves it", "uplink", x.name, "err", err)
			choices = append(choices, HookChoice{JobNDP + " (" + x.name + ")", "kernel", err.Error()})
			continue
		}
		b.fwd.mu.Lock()
		b.fwd.extras = append(b.fwd.extras, x)
		b.fwd.mu.Unlock()
		ndp, fwd := plan.ndp.String(), plan.fwd.String()
		choices = append(choices,
			HookChoice{JobNDP + " (" + x.name + ")", ndp, "uplink slot " + fmt.Sprint(slot) + ": " + plan.choices[0].Why},
			HookChoice{JobForward + " (" + x.name + ")", fwd, "further uplinks forward in TC"})
	}
	if err := b.dp.ClearUplinksFrom(uint32(len(h.Extra) + 1)); err != nil {
		slog.Warn("clearing unused uplink slots", "err", err)
	}
	return choices
}

// attachExtra attaches the programs of plan to x and writes its slot.
func (f *forwarder) attachExtra(x *extraUplink, plan hookPlan) error {
	x.cfg.PolicyFor = policyHolds
	if err := f.writeAt(x.slot, x.cfg, x.policy); err != nil {
		return err
	}
	if plan.tc {
		if _, err := f.dp.AttachTC(x.cfg.Ifindex); err != nil {
			return fmt.Errorf("attaching to %s: %w", x.name, err)
		}
		x.tc = true
	}
	if plan.xdp {
		if _, err := f.dp.AttachXDP(x.cfg.Ifindex, plan.native); err != nil {
			return fmt.Errorf("attaching to %s: %w", x.name, err)
		}
		x.xdp, x.native = true, plan.native
	}
	return nil
}

// renewExtras re-reads each further uplink: its policy under fw (the
// write renews it), and the link itself, taking up a new MAC or a
// re-created link.
func (f *forwarder) renewExtras(fw firewall) {
	f.mu.Lock()
	extras := append([]*extraUplink(nil), f.extras...)
	f.mu.Unlock()
	for _, x := range extras {
		x.policy = fw.policy(x.name)
		if l, err := netlink.LinkByName(x.name); err == nil {
			a := l.Attrs()
			switch {
			case a.Index != x.cfg.Ifindex:
				slog.Info("repaired", "what", "further uplink re-created", "uplink", x.name, "ifindex", a.Index)
				x.cfg.Ifindex, x.cfg.MAC = a.Index, a.HardwareAddr
				if ll, err := linkLocalOf(l); err == nil {
					x.cfg.LinkLocal = ll
				}
				plan := hookPlan{tc: x.tc, xdp: x.xdp, native: x.native}
				if err := f.attachExtra(x, plan); err != nil {
					slog.Warn("re-attaching a further uplink", "uplink", x.name, "err", err)
				}
			case len(a.HardwareAddr) == 6 && !bytes.Equal(a.HardwareAddr, x.cfg.MAC):
				slog.Info("repaired", "what", "further uplink MAC", "uplink", x.name, "mac", a.HardwareAddr.String())
				x.cfg.MAC = a.HardwareAddr
			}
		}
		f.mu.Lock()
		err := f.writeAt(x.slot, x.cfg, x.policy)
		f.mu.Unlock()
		if err != nil {
			slog.Warn("writing a further uplink's config", "uplink", x.name, "err", err)
		}
	}
}
