package loader

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
)

// written is what this process last wrote into the endpoints map, the
// ports map and the devmap, so that a sync compares against memory and
// writes only what changed: reading the maps back costs two syscalls an
// entry, which at 10,000 endpoints was most of each sync's time (the
// daemon syncs after every burst of events). Each part is read from the
// kernel the first time it is needed (adopting what an earlier run
// pinned) and again after Reread, which the daemon's periodic resync
// calls, so that anything changed behind the daemon's back is repaired.
// The devmap part may hold ports the kernel dropped by itself (a device
// that went): deleting those again is harmless.
type written struct {
	mu     sync.Mutex
	eps    map[uplinkEndpointKey]uplinkEndpointInfo
	ports  map[uint32]uplinkPortInfo
	devmap map[uint32]bool
}

// Reread makes the next sync read the maps from the kernel again instead
// of trusting what this process wrote.
func (d *Dataplane) Reread() {
	d.w.mu.Lock()
	defer d.w.mu.Unlock()
	d.w.eps, d.w.ports, d.w.devmap = nil, nil, nil
}

// readMap returns every entry of m (what names it in an error).
func readMap[K comparable, V any](m *ebpf.Map, what string) (map[K]V, error) {
	var (
		k   K
		v   V
		out = map[K]V{}
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		out[k] = v
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	return out, nil
}

// The load functions fill their part of w from the kernel if it is not
// known. Called with mu held.

func (d *Dataplane) loadEndpoints() (err error) {
	if d.w.eps == nil {
		d.w.eps, err = readMap[uplinkEndpointKey, uplinkEndpointInfo](d.objs.V6dpEndpoints, "endpoints")
	}
	return err
}

func (d *Dataplane) loadPorts() (err error) {
	if d.w.ports == nil {
		d.w.ports, err = readMap[uint32, uplinkPortInfo](d.objs.V6dpPorts, "the ports map")
	}
	return err
}

func (d *Dataplane) loadDevmap() error {
	if d.w.devmap != nil {
		return nil
	}
	m, err := readMap[uint32, uint32](d.objs.V6dpDevmap, "the devmap")
	if err != nil {
		return err
	}
	d.w.devmap = make(map[uint32]bool, len(m))
	for k := range m {
		d.w.devmap[k] = true
	}
	return nil
}

// Each write below goes to the kernel first and is remembered only once
// it succeeded. Called with mu held.

func (d *Dataplane) writeEndpoint(k uplinkEndpointKey, v uplinkEndpointInfo) error {
	if err := d.objs.V6dpEndpoints.Put(&k, &v); err != nil {
		return err
	}
	if d.w.eps != nil {
		d.w.eps[k] = v
	}
	return nil
}

func (d *Dataplane) removeEndpoint(k uplinkEndpointKey) error {
	if err := d.objs.V6dpEndpoints.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return err
	}
	if d.w.eps != nil {
		delete(d.w.eps, k)
	}
	return nil
}

func (d *Dataplane) writePort(idx uint32, v uplinkPortInfo) error {
	if err := d.objs.V6dpPorts.Put(idx, &v); err != nil {
		return err
	}
	if d.w.ports != nil {
		d.w.ports[idx] = v
	}
	return nil
}

func (d *Dataplane) removePort(idx uint32) error {
	if err := d.objs.V6dpPorts.Delete(idx); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return err
	}
	if d.w.ports != nil {
		delete(d.w.ports, idx)
	}
	return nil
}

func (d *Dataplane) writeDevmap(idx uint32) error {
	if err := d.objs.V6dpDevmap.Put(idx, idx); err != nil {
		return err
	}
	if d.w.devmap != nil {
		d.w.devmap[idx] = true
	}
	return nil
}

func (d *Dataplane) removeDevmap(idx uint32) error {
	if err := d.objs.V6dpDevmap.Delete(idx); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return err
	}
	if d.w.devmap != nil {
		delete(d.w.devmap, idx)
	}
	return nil
}
