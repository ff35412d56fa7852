package loader

import (
	"fmt"
	"net/netip"
	"path/filepath"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// ReadPinned reads the pinned endpoints map and counters under pinDir
// without loading any program or changing any pin: for `v6dp status` and
// `v6dp stats`, with or without a running daemon.
func ReadPinned(pinDir string) (map[netip.Addr]Endpoint, map[string]uint64, error) {
	spec, err := loadUplink()
	if err != nil {
		return nil, nil, err
	}
	names, err := counterNames(spec)
	if err != nil {
		return nil, nil, err
	}
	d := &Dataplane{pinDir: pinDir, counterNames: names}
	ro := &ebpf.LoadPinOptions{ReadOnly: true}
	if d.objs.V6dpEndpoints, err = ebpf.LoadPinnedMap(filepath.Join(pinDir, "v6dp_endpoints"), ro); err != nil {
		return nil, nil, fmt.Errorf("no pinned endpoints map: %w", err)
	}
	defer d.objs.V6dpEndpoints.Close()
	if d.objs.V6dpCounters, err = ebpf.LoadPinnedMap(filepath.Join(pinDir, "v6dp_counters"), ro); err != nil {
		return nil, nil, fmt.Errorf("no pinned counters map: %w", err)
	}
	defer d.objs.V6dpCounters.Close()
	eps, err := d.Endpoints()
	if err != nil {
		return nil, nil, err
	}
	counters, err := d.Counters()
	return eps, counters, err
}

// Detach removes whatever v6dp attached to ifindex (XDP or TC) and its
// pin, without loading anything.
func Detach(pinDir string, ifindex int) error { return detach(pinDir, ifindex) }

// PinnedUplink is the uplink config as the programs see it now.
type PinnedUplink struct {
	Enabled, Router, Filtered, NDPFiltered bool
	// PolicyStale: the host policy has expired (no daemon renewed it).
	PolicyStale            bool
	NDPHooks, ForwardHooks Hooks
}

// ReadPinnedUplink reads the pinned uplink config, without loading anything.
func ReadPinnedUplink(pinDir string) (PinnedUplink, error) {
	var out PinnedUplink
	m, err := ebpf.LoadPinnedMap(filepath.Join(pinDir, "v6dp_uplink_cfg"), &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		return out, fmt.Errorf("no pinned uplink config: %w", err)
	}
	defer m.Close()
	var v uplinkUplinkConfig
	if err := m.Lookup(uint32(0), &v); err != nil {
		return out, fmt.Errorf("reading the uplink config: %w", err)
	}
	has := func(f uplinkUplinkFlags) bool { return v.Flags&uint32(f) != 0 }
	out.Enabled = has(uplinkUplinkFlagsUPLINK_F_ENABLED)
	out.Router = has(uplinkUplinkFlagsUPLINK_F_ROUTER)
	out.Filtered = has(uplinkUplinkFlagsUPLINK_F_FILTERED)
	out.NDPFiltered = has(uplinkUplinkFlagsUPLINK_F_NDP_FILTERED)
	if v.PolicyUntilNs != 0 {
		var now unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC_COARSE, &now); err == nil {
			out.PolicyStale = uint64(now.Nano()) > v.PolicyUntilNs
		}
	}
	if has(uplinkUplinkFlagsUPLINK_F_XDP_NDP) {
		out.NDPHooks |= HookXDP
	}
	if has(uplinkUplinkFlagsUPLINK_F_TC_NDP) {
		out.NDPHooks |= HookTC
	}
	if has(uplinkUplinkFlagsUPLINK_F_XDP_FWD) {
		out.ForwardHooks |= HookXDP
	}
	if has(uplinkUplinkFlagsUPLINK_F_TC_FWD) {
		out.ForwardHooks |= HookTC
	}
	return out, nil
}

// PinnedNetwork is one network as the pinned maps hold it: its id, its
// bridge and router MAC, and its packet counts.
type PinnedNetwork struct {
	ID      uint32
	Network Network
	Stats   NetStats
}

// ReadPinnedNetworks reads the pinned networks and their counts, by
// bridge ifindex, without loading anything.
func ReadPinnedNetworks(pinDir string) (map[int]PinnedNetwork, error) {
	ro := &ebpf.LoadPinOptions{ReadOnly: true}
	nm, err := ebpf.LoadPinnedMap(filepath.Join(pinDir, "v6dp_networks"), ro)
	if err != nil {
		return nil, fmt.Errorf("no pinned networks map: %w", err)
	}
	defer nm.Close()
	sm, err := ebpf.LoadPinnedMap(filepath.Join(pinDir, "v6dp_net_stats"), ro)
	if err != nil {
		return nil, fmt.Errorf("no pinned network counts: %w", err)
	}
	defer sm.Close()
	nets, err := readNetworks(nm)
	if err != nil {
		return nil, err
	}
	stats, err := readNetStats(sm)
	if err != nil {
		return nil, err
	}
	out := make(map[int]PinnedNetwork, len(nets))
	for id, n := range nets {
		out[n.BridgeIndex] = PinnedNetwork{ID: id, Network: n, Stats: stats[id]}
	}
	return out, nil
}
