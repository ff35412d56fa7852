package loader

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Port is what the endpoint behind one bridge port may send: its own MAC
// and its own link-local address (tc_endpoint drops the rest).
type Port struct {
	MAC       net.HardwareAddr
	LinkLocal netip.Addr // invalid until learned
	// GuardOnly: BPF delivers nothing the port sends (it only guards).
	GuardOnly bool
	// NoSwitch: the bridge keeps the port from reaching other ports
	// itself (isolated, locked, VLAN filtering): BPF never switches its
	// frames to another port.
	NoSwitch bool
	// Net is the port's network id (see Network).
	Net uint32
}

func portValue(p Port) (uplinkPortInfo, error) {
	var v uplinkPortInfo
	if len(p.MAC) != 6 {
		return v, fmt.Errorf("port MAC %s: %w", p.MAC, ErrBadMAC)
	}
	copy(v.Mac[:], p.MAC)
	if p.LinkLocal.IsValid() {
		if !p.LinkLocal.Is6() || !p.LinkLocal.IsLinkLocalUnicast() {
			return v, fmt.Errorf("port link-local %s: not an IPv6 link-local address", p.LinkLocal)
		}
		v.LinkLocal = p.LinkLocal.WithZone("").As16()
		v.Flags |= uint32(uplinkPortFlagsPORT_F_LL)
	}
	if p.GuardOnly {
		v.Flags |= uint32(uplinkPortFlagsPORT_F_GUARD_ONLY)
	}
	if p.NoSwitch {
		v.Flags |= uint32(uplinkPortFlagsPORT_F_NO_SWITCH)
	}
	if p.Net >= uint32(MaxNetworks) {
		return v, fmt.Errorf("port network %d: at most %d networks", p.Net, MaxNetworks)
	}
	v.Net = p.Net
	return v, nil
}

// GuardedPorts returns the ports in the ports map, by host-side ifindex.
func (d *Dataplane) GuardedPorts() (map[uint32]Port, error) {
	m, err := readMap[uint32, uplinkPortInfo](d.objs.V6dpPorts, "the ports map")
	if err != nil {
		return nil, err
	}
	out := make(map[uint32]Port, len(m))
	for k, v := range m {
		out[k] = portFrom(v)
	}
	return out, nil
}

// PortsWritten returns the ports map as this process wrote it last (read
// from the kernel the first time): what SyncPorts compares against.
func (d *Dataplane) PortsWritten() (map[uint32]Port, error) {
	d.w.mu.Lock()
	defer d.w.mu.Unlock()
	if err := d.loadPorts(); err != nil {
		return nil, err
	}
	out := make(map[uint32]Port, len(d.w.ports))
	for k, v := range d.w.ports {
		out[k] = portFrom(v)
	}
	return out, nil
}

func portFrom(v uplinkPortInfo) Port {
	p := Port{MAC: net.HardwareAddr(append([]byte(nil), v.Mac[:]...))}
	if v.Flags&uint32(uplinkPortFlagsPORT_F_LL) != 0 {
		p.LinkLocal = netip.AddrFrom16(v.LinkLocal)
	}
	p.GuardOnly = v.Flags&uint32(uplinkPortFlagsPORT_F_GUARD_ONLY) != 0
	p.NoSwitch = v.Flags&uint32(uplinkPortFlagsPORT_F_NO_SWITCH) != 0
	p.Net = v.Net
	return p
}

// SyncPorts makes the ports map hold exactly want, by host-side ifindex:
// new and changed entries first, then the ones that went.
func (d *Dataplane) SyncPorts(want map[uint32]Port) error {
	d.w.mu.Lock()
	defer d.w.mu.Unlock()
	if err := d.loadPorts(); err != nil {
		return err
	}
	var errs []error
	for idx, p := range want {
		v, err := portValue(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("port ifindex %d: %w", idx, err))
			continue
		}
		if old, ok := d.w.ports[idx]; ok && old == v {
			continue
		}
		if err := d.writePort(idx, v); err != nil {
			errs = append(errs, fmt.Errorf("writing port ifindex %d: %w", idx, err))
		}
	}
	for idx := range d.w.ports {
		if _, ok := want[idx]; ok {
			continue
		}
		if err := d.removePort(idx); err != nil {
			errs = append(errs, fmt.Errorf("deleting port ifindex %d: %w", idx, err))
		}
	}
	return errors.Join(errs...)
}

// NSLimit is the NS flood limit on the uplink (RFC 6583): NS per second
// from one source and from all together, each with a burst of Burst. Zero
// means no limit.
type NSLimit struct {
	PerSource, Global, Burst uint64
}

// onlineCPUs counts the CPUs that can receive packets, from
// /sys/devices/system/cpu/online ("0-3,6"): the global rate is split over
// those, not over the possible ones a VM may list by the hundred, which
// would make the limit far stricter than configured.
func onlineCPUs() int {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return runtime.NumCPU()
	}
	if n, ok := countCPUList(string(b)); ok {
		return n
	}
	return runtime.NumCPU()
}

// countCPUList counts the CPUs of a kernel CPU list such as "0-3,6".
func countCPUList(list string) (int, bool) {
	n := 0
	for _, r := range strings.Split(strings.TrimSpace(list), ",") {
		lo, hi, found := strings.Cut(r, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return 0, false
		}
		z := a
		if found {
			if z, err = strconv.Atoi(hi); err != nil || z < a {
				return 0, false
			}
		}
		n += z - a + 1
	}
	return n, n > 0
}

// SetNSLimit writes the limit. The global rate is split over the online CPUs,
// whose buckets are separate so that they never contend.
func (d *Dataplane) SetNSLimit(l NSLimit) error {
	var v uplinkNsLimitConfig
	if l.PerSource > 0 {
		v.SourceIntervalNs = uint64(time.Second) / l.PerSource
	}
	if l.Global > 0 {
		per := l.Global / uint64(onlineCPUs())
		if per == 0 {
			per = 1
		}
		v.GlobalIntervalNs = uint64(time.Second) / per
	}
	v.Burst = l.Burst
	if v.Burst == 0 {
		v.Burst = 1
	}
	if err := d.objs.V6dpNsLimit.Put(uint32(0), &v); err != nil {
		return fmt.Errorf("writing the NS limit: %w", err)
	}
	return nil
}
