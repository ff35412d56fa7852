package ctrl

import "net/netip"

// accel is the BPF dataplane as the daemon drives it.
type accel interface {
	Sync(eps map[int]*Endpoint) error
	Close() error
}

// startAccel picks and starts the dataplane. Any failure falls back to the
// kernel path, which is always installed, with the reason logged.
func startAccel(r *Resolved, h *Host, j *Journal) (a accel, dataplane, attach, reason string) {
	switch r.Dataplane {
	case DataplaneKernel:
		return nil, DataplaneKernel, "", "requested with --dataplane=kernel"
	default:
		return nil, DataplaneKernel, "", "BPF dataplane not built into this version"
	}
}

// bpfView reads the pinned endpoints map and counters, if any.
func bpfView(pinDir string) (map[netip.Addr]bool, map[string]uint64) {
	return map[netip.Addr]bool{}, nil
}

func removeBPF(pinDir string) error { return nil }
