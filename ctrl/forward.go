package ctrl

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/v6dp/v6dp/loader"
)

// forwarder runs BPF forwarding on the ports of the bridge: the endpoint
// program on each port's host side, the XDP program that native XDP
// redirects need on each port's far end, and the endpoints' forwarding
// flag, which it grants only to endpoints whose port is ready.
type forwarder struct {
	dp *loader.Dataplane
	// enabled is the host's forwarding (--ip-forward): without it the
	// kernel routes nothing to or from endpoints, and neither does BPF.
	enabled bool
	// uplink is the config written last; the bridge part is refreshed.
	uplink loader.UplinkConfig
	// peerXDP: the uplink runs native XDP, so frames it redirects into a
	// veth are lost unless the far end has an XDP program.
	peerXDP bool
	// ports holds the ports whose endpoint program this daemon attached
	// or adopted, by host-side ifindex.
	ports map[int]bool
	// bridgeMTU caps every endpoint's MTU: the kernel sends Packet Too
	// Big for the bridge's MTU, so BPF must pass anything larger to it.
	bridgeMTU int
}

func newForwarder(dp *loader.Dataplane, uplink loader.UplinkConfig, mode loader.Mode, enabled bool) *forwarder {
	f := &forwarder{dp: dp, uplink: uplink, enabled: enabled, peerXDP: mode == loader.ModeXDPNative,
		ports: map[int]bool{}}
	if enabled {
		if err := pinBridgeMAC(uplink.BridgeIndex); err != nil {
			slog.Warn("fixing the bridge MAC", "err", err)
		}
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

// refreshBridge rewrites the uplink config when the bridge's MAC changed
// (a bridge without a fixed MAC takes the lowest of its ports') and reads
// its MTU.
func (f *forwarder) refreshBridge() error {
	br, err := netlink.LinkByIndex(f.uplink.BridgeIndex)
	if err != nil {
		return fmt.Errorf("bridge: %w", err)
	}
	f.bridgeMTU = br.Attrs().MTU
	mac := br.Attrs().HardwareAddr
	if bytes.Equal(mac, f.uplink.BridgeMAC) {
		return nil
	}
	cfg := f.uplink
	cfg.BridgeMAC = mac
	if err := f.dp.SetUplink(cfg); err != nil {
		return err
	}
	slog.Info("bridge MAC changed", "old", f.uplink.BridgeMAC.String(), "new", mac.String())
	f.uplink = cfg
	return nil
}

// endpoint returns the map entry for one address of ep: forwarded when
// its port is ready, else only proxied (the kernel forwards it).
func (f *forwarder) endpoint(ep *Endpoint, a netip.Addr, ready bool) loader.Endpoint {
	e := loader.Endpoint{Addr: a, Ifindex: uint32(ep.HostIndex), MAC: ep.MAC, HostMAC: ep.HostMAC,
		MTU: uint32(ep.MTU), Flags: loader.EndpointProxy}
	if f.bridgeMTU > 0 && f.bridgeMTU < ep.MTU {
		e.MTU = uint32(f.bridgeMTU)
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
func (f *forwarder) attach(eps map[int]*Endpoint) error {
	if !f.enabled {
		eps = nil
	}
	var errs []error
	for idx, ep := range eps {
		if f.ports[idx] {
			continue
		}
		if _, err := f.dp.AttachPort(idx); err != nil {
			if !isGone(err) {
				errs = append(errs, fmt.Errorf("port %s: %w", ep.HostIf, err))
			}
			continue
		}
		f.ports[idx] = true
		slog.Debug("endpoint program attached", "port", ep.HostIf)
	}
	pinned, err := f.dp.Ports()
	errs = append(errs, err)
	for _, idx := range pinned {
		if _, ok := eps[idx]; !ok {
			f.ports[idx] = true
		}
	}
	for idx := range f.ports {
		if _, ok := eps[idx]; ok {
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
