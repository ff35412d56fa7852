package loader

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// SetUplink writes the settings of uplink slot 0 and enables the programs:
// until the first SetUplink they pass every frame.
func (d *Dataplane) SetUplink(c UplinkConfig) error { return d.SetUplinkAt(0, c) }

// SetUplinkAt writes the settings of the uplink in slot (0 to
// MaxUplinks-1). Slots are searched from 0 and an empty one ends the
// search: fill them without gaps.
func (d *Dataplane) SetUplinkAt(slot uint32, c UplinkConfig) error {
	if slot >= uint32(MaxUplinks) {
		return fmt.Errorf("uplink slot %d: at most %d uplinks", slot, MaxUplinks)
	}
	if len(c.MAC) != 6 {
		return fmt.Errorf("uplink: %w", ErrBadMAC)
	}
	v := uplinkUplinkConfig{
		Ifindex: uint32(c.Ifindex),
		Flags:   uint32(uplinkUplinkFlagsUPLINK_F_ENABLED),
	}
	copy(v.Mac[:], c.MAC)
	if c.LinkLocal.IsValid() {
		if !c.LinkLocal.Is6() || c.LinkLocal.Is4In6() {
			return fmt.Errorf("uplink link-local %s: %w", c.LinkLocal, ErrNotIPv6)
		}
		v.LinkLocal = c.LinkLocal.As16()
	}
	if c.Router {
		v.Flags |= uint32(uplinkUplinkFlagsUPLINK_F_ROUTER)
	}
	for _, job := range []struct {
		hooks   Hooks
		xdp, tc uplinkUplinkFlags
	}{
		{c.NDPHooks, uplinkUplinkFlagsUPLINK_F_XDP_NDP, uplinkUplinkFlagsUPLINK_F_TC_NDP},
		{c.ForwardHooks, uplinkUplinkFlagsUPLINK_F_XDP_FWD, uplinkUplinkFlagsUPLINK_F_TC_FWD},
	} {
		if job.hooks&HookXDP != 0 {
			v.Flags |= uint32(job.xdp)
		}
		if job.hooks&HookTC != 0 {
			v.Flags |= uint32(job.tc)
		}
	}
	if c.EgressForward {
		v.Flags |= uint32(uplinkUplinkFlagsUPLINK_F_EGRESS_FWD)
	}
	if c.XDPL4Pass {
		v.Flags |= uint32(uplinkUplinkFlagsUPLINK_F_XDP_L4PASS)
	}
	if c.Filtered {
		v.Flags |= uint32(uplinkUplinkFlagsUPLINK_F_FILTERED)
	}
	if c.NDPFiltered {
		v.Flags |= uint32(uplinkUplinkFlagsUPLINK_F_NDP_FILTERED)
	}
	if c.PolicyFor > 0 {
		var now unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC_COARSE, &now); err != nil {
			return fmt.Errorf("uplink: reading the clock: %w", err)
		}
		v.PolicyUntilNs = uint64(now.Nano()) + uint64(c.PolicyFor)
	}
	if c.NASourceLinkLocal {
		if !c.LinkLocal.IsValid() {
			return fmt.Errorf("uplink: NA source link-local without a link-local address: %w", ErrNotIPv6)
		}
		v.Flags |= uint32(uplinkUplinkFlagsUPLINK_F_NA_SRC_LL)
	}
	if err := d.objs.V6dpUplinkCfg.Put(slot, &v); err != nil {
		return fmt.Errorf("writing uplink config: %w", err)
	}
	return nil
}

// ClearUplinksFrom empties the uplink slots from slot on: uplinks that
// are no longer served pass everything again.
func (d *Dataplane) ClearUplinksFrom(slot uint32) error {
	var errs []error
	for i := slot; i < uint32(MaxUplinks); i++ {
		var v uplinkUplinkConfig
		if err := d.objs.V6dpUplinkCfg.Lookup(i, &v); err == nil && v == (uplinkUplinkConfig{}) {
			continue
		}
		if err := d.objs.V6dpUplinkCfg.Put(i, &uplinkUplinkConfig{}); err != nil {
			errs = append(errs, fmt.Errorf("clearing uplink slot %d: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

func networkValue(n Network) (uplinkNetworkInfo, error) {
	v := uplinkNetworkInfo{BridgeIfindex: uint32(n.BridgeIndex), Uplink: n.Uplink,
		Flags: uint16(uplinkNetworkFlagsNETWORK_F_ENABLED)}
	if len(n.BridgeMAC) != 6 {
		return v, fmt.Errorf("bridge MAC %s: %w", n.BridgeMAC, ErrBadMAC)
	}
	if n.BridgeIndex <= 0 {
		return v, fmt.Errorf("bridge ifindex %d: not an interface", n.BridgeIndex)
	}
	if n.Uplink >= uint32(MaxUplinks) {
		return v, fmt.Errorf("uplink slot %d: at most %d uplinks", n.Uplink, MaxUplinks)
	}
	copy(v.BridgeMac[:], n.BridgeMAC)
	return v, nil
}

// SetNetwork writes network id: BPF forwards for its endpoints from then on.
func (d *Dataplane) SetNetwork(id uint32, n Network) error {
	if id >= uint32(MaxNetworks) {
		return fmt.Errorf("network id %d: at most %d networks", id, MaxNetworks)
	}
	v, err := networkValue(n)
	if err != nil {
		return fmt.Errorf("network %d: %w", id, err)
	}
	if err := d.objs.V6dpNetworks.Put(id, &v); err != nil {
		return fmt.Errorf("writing network %d: %w", id, err)
	}
	return nil
}

// SyncNetworks makes the networks map hold exactly want: the ids not in it
// are emptied (BPF forwards nothing for them), and their counts zeroed so
// that a later network with the same id starts from zero.
func (d *Dataplane) SyncNetworks(want map[uint32]Network) error {
	var errs []error
	for id := uint32(0); id < uint32(MaxNetworks); id++ {
		n, ok := want[id]
		var have uplinkNetworkInfo
		if err := d.objs.V6dpNetworks.Lookup(id, &have); err != nil {
			errs = append(errs, fmt.Errorf("reading network %d: %w", id, err))
			continue
		}
		if !ok {
			if have == (uplinkNetworkInfo{}) {
				continue
			}
			if err := d.objs.V6dpNetworks.Put(id, &uplinkNetworkInfo{}); err != nil {
				errs = append(errs, fmt.Errorf("clearing network %d: %w", id, err))
			}
			cpus, err := ebpf.PossibleCPU()
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if err := d.objs.V6dpNetStats.Put(id, make([]uplinkNetStats, cpus)); err != nil {
				errs = append(errs, fmt.Errorf("zeroing network %d's counts: %w", id, err))
			}
			continue
		}
		v, err := networkValue(n)
		if err != nil {
			errs = append(errs, fmt.Errorf("network %d: %w", id, err))
			continue
		}
		if v == have {
			continue
		}
		if err := d.objs.V6dpNetworks.Put(id, &v); err != nil {
			errs = append(errs, fmt.Errorf("writing network %d: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// Networks returns the networks map's entries, by id.
func (d *Dataplane) Networks() (map[uint32]Network, error) { return readNetworks(d.objs.V6dpNetworks) }

func readNetworks(m *ebpf.Map) (map[uint32]Network, error) {
	out := map[uint32]Network{}
	var (
		k uint32
		v uplinkNetworkInfo
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		if v.Flags&uint16(uplinkNetworkFlagsNETWORK_F_ENABLED) == 0 {
			continue
		}
		out[k] = Network{BridgeIndex: int(v.BridgeIfindex), Uplink: v.Uplink,
			BridgeMAC: net.HardwareAddr(append([]byte(nil), v.BridgeMac[:]...))}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("reading the networks map: %w", err)
	}
	return out, nil
}

// NetStats returns the per-network counts summed over CPUs, for the ids
// that counted anything.
func (d *Dataplane) NetStats() (map[uint32]NetStats, error) { return readNetStats(d.objs.V6dpNetStats) }

func readNetStats(m *ebpf.Map) (map[uint32]NetStats, error) {
	out := map[uint32]NetStats{}
	var (
		k    uint32
		vals []uplinkNetStats
	)
	it := m.Iterate()
	for it.Next(&k, &vals) {
		var s NetStats
		for _, v := range vals {
			s.NSAnswered += v.NsAnswered
			s.FwdRedirected += v.FwdRedirected
			s.EgressLocal += v.EgressLocal
			s.EgressFIB += v.EgressFib
			s.EgressDrop += v.EgressDrop
		}
		if s != (NetStats{}) {
			out[k] = s
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("reading the network counts: %w", err)
	}
	return out, nil
}

func endpointKey(a netip.Addr) (uplinkEndpointKey, error) {
	if !a.Is6() || a.Is4In6() {
		return uplinkEndpointKey{}, fmt.Errorf("endpoint %s: %w", a, ErrNotIPv6)
	}
	// The zone is not part of the key: the map holds global addresses.
	return uplinkEndpointKey{Addr: a.WithZone("").As16()}, nil
}

func endpointValue(e Endpoint) (uplinkEndpointInfo, error) {
	if e.Net >= uint32(MaxNetworks) {
		return uplinkEndpointInfo{}, fmt.Errorf("endpoint %s network %d: at most %d networks", e.Addr, e.Net, MaxNetworks)
	}
	v := uplinkEndpointInfo{Ifindex: e.Ifindex, Flags: e.Flags, Mtu: e.MTU, Net: e.Net}
	for _, m := range []net.HardwareAddr{e.MAC, e.HostMAC} {
		if m != nil && len(m) != 6 {
			return v, fmt.Errorf("endpoint %s MAC %s: %w", e.Addr, m, ErrBadMAC)
		}
	}
	copy(v.Mac[:], e.MAC)
	copy(v.HostMac[:], e.HostMAC)
	return v, nil
}

func endpointFrom(k uplinkEndpointKey, v uplinkEndpointInfo) Endpoint {
	return Endpoint{
		Addr:    netip.AddrFrom16(k.Addr),
		Ifindex: v.Ifindex,
		MAC:     net.HardwareAddr(append([]byte(nil), v.Mac[:]...)),
		HostMAC: net.HardwareAddr(append([]byte(nil), v.HostMac[:]...)),
		MTU:     v.Mtu,
		Flags:   v.Flags,
		Net:     v.Net,
	}
}

// PutEndpoint adds or updates one endpoint. A forwarding endpoint's port
// goes into the devmap first, so that XDP finds it as soon as the address.
func (d *Dataplane) PutEndpoint(e Endpoint) error {
	d.w.mu.Lock()
	defer d.w.mu.Unlock()
	k, v, err := endpointKV(e)
	if err != nil {
		return err
	}
	if err := d.putEndpoint(e, k, v); err != nil {
		return err
	}
	// An update may have moved the address off its old port.
	return d.pruneDevmap()
}

func endpointKV(e Endpoint) (uplinkEndpointKey, uplinkEndpointInfo, error) {
	k, err := endpointKey(e.Addr)
	if err != nil {
		return k, uplinkEndpointInfo{}, err
	}
	v, err := endpointValue(e)
	return k, v, err
}

// putEndpoint writes one endpoint, with mu held.
func (d *Dataplane) putEndpoint(e Endpoint, k uplinkEndpointKey, v uplinkEndpointInfo) error {
	// Every endpoint's port is in the devmap, forwarding or not: the
	// kernel deletes a device's entry when the device goes, which is how
	// the programs know a container has gone while no daemon runs.
	// A port that does not exist (any more) cannot be added: answering
	// for a proxy-only endpoint on it would be wrong anyway, and the
	// programs do not, as its entry is missing.
	if e.Ifindex != 0 {
		err := d.writeDevmap(e.Ifindex)
		if err != nil && e.Flags&EndpointForward == 0 && errors.Is(err, unix.EINVAL) {
			err = nil
		}
		if err != nil {
			return fmt.Errorf("endpoint %s: adding ifindex %d to the devmap: %w", e.Addr, e.Ifindex, err)
		}
	}
	if err := d.writeEndpoint(k, v); err != nil {
		return fmt.Errorf("writing endpoint %s: %w", e.Addr, err)
	}
	return nil
}

// DeleteEndpoint removes one endpoint; removing an absent one is not an
// error. The port leaves the devmap with its last forwarding address.
func (d *Dataplane) DeleteEndpoint(a netip.Addr) error {
	d.w.mu.Lock()
	defer d.w.mu.Unlock()
	k, err := endpointKey(a)
	if err != nil {
		return err
	}
	if err := d.removeEndpoint(k); err != nil {
		return fmt.Errorf("deleting endpoint %s: %w", a, err)
	}
	return d.pruneDevmap()
}

// pruneDevmap deletes the devmap entries of ports that no endpoint uses
// any more. Run after the endpoint entries are gone, it
// keeps XDP from redirecting into a port whose addresses have left (the
// kernel deletes the entry of a device that is unregistered by itself).
// Called with mu held.
func (d *Dataplane) pruneDevmap() error {
	if err := d.loadEndpoints(); err != nil {
		return err
	}
	if err := d.loadDevmap(); err != nil {
		return err
	}
	used := make(map[uint32]bool, len(d.w.eps))
	for _, v := range d.w.eps {
		used[v.Ifindex] = true
	}
	var errs []error
	for p := range d.w.devmap {
		if used[p] {
			continue
		}
		if err := d.removeDevmap(p); err != nil {
			errs = append(errs, fmt.Errorf("deleting ifindex %d from the devmap: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// ForwardPorts returns the ifindexes in the devmap: the host-side veths XDP
// may redirect into.
func (d *Dataplane) ForwardPorts() ([]uint32, error) {
	m, err := readMap[uint32, uint32](d.objs.V6dpDevmap, "the devmap")
	if err != nil {
		return nil, err
	}
	out := make([]uint32, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out, nil
}

// Endpoints returns the endpoints in the map, keyed by address.
func (d *Dataplane) Endpoints() (map[netip.Addr]Endpoint, error) {
	m, err := readMap[uplinkEndpointKey, uplinkEndpointInfo](d.objs.V6dpEndpoints, "endpoints")
	if err != nil {
		return nil, err
	}
	out := make(map[netip.Addr]Endpoint, len(m))
	for k, v := range m {
		e := endpointFrom(k, v)
		out[e.Addr] = e
	}
	return out, nil
}

// SyncEndpoints makes the map hold exactly want: it writes the new and
// changed endpoints first, then deletes the others, so an address that
// stays live is never missing in between. Errors are joined, not fatal.
func (d *Dataplane) SyncEndpoints(want map[netip.Addr]Endpoint) error {
	d.w.mu.Lock()
	defer d.w.mu.Unlock()
	if err := d.loadEndpoints(); err != nil {
		return err
	}
	var errs []error
	keep := make(map[uplinkEndpointKey]bool, len(want))
	for a, e := range want {
		e.Addr = a
		k, v, err := endpointKV(e)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		keep[k] = true
		if old, ok := d.w.eps[k]; ok && old == v {
			continue
		}
		if err := d.putEndpoint(e, k, v); err != nil {
			errs = append(errs, err)
		}
	}
	for k := range d.w.eps {
		if keep[k] {
			continue
		}
		if err := d.removeEndpoint(k); err != nil {
			errs = append(errs, fmt.Errorf("deleting endpoint %s: %w", netip.AddrFrom16(k.Addr), err))
		}
	}
	errs = append(errs, d.pruneDevmap())
	return errors.Join(errs...)
}

// Counters returns the packet counters summed over CPUs, keyed by the
// snake_case form of their counter_id name ("ns_answered", "pass_not_ipv6").
func (d *Dataplane) Counters() (map[string]uint64, error) {
	out := make(map[string]uint64, len(d.counterNames))
	var perCPU []uint64
	for id, name := range d.counterNames {
		if err := d.objs.V6dpCounters.Lookup(uint32(id), &perCPU); err != nil {
			return nil, fmt.Errorf("reading counter %s: %w", name, err)
		}
		var sum uint64
		for _, n := range perCPU {
			sum += n
		}
		out[name] = sum
	}
	return out, nil
}
