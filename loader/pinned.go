package loader

import (
	"fmt"
	"net/netip"
	"path/filepath"

	"github.com/cilium/ebpf"
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
