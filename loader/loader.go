package loader

import (
	"errors"
	"fmt"
	"github.com/vishvananda/netlink"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"
)

// DefaultPinDir is where maps and links are pinned when Open gets "".
const DefaultPinDir = "/sys/fs/bpf/v6dp"

// bpffsRoot is where bpffs is mounted when it is not mounted yet.
const bpffsRoot = "/sys/fs/bpf"

var (
	// ErrNotIPv6 is returned for an endpoint address that is not IPv6.
	ErrNotIPv6 = errors.New("address is not IPv6")
	// ErrBadMAC is returned for a MAC address that is not 6 bytes long.
	ErrBadMAC = errors.New("MAC address is not 6 bytes")
	// ErrNotAttached is returned by Detach when v6dp has nothing attached.
	ErrNotAttached = errors.New("nothing attached by v6dp")
)

// Endpoint flags (endpoint_flags in headers/v6dp.h).
const (
	// EndpointProxy makes the uplink answer NDP for the endpoint's address.
	EndpointProxy = uint32(uplinkEndpointFlagsENDPOINT_F_PROXY)
	// EndpointForward lets BPF forward the endpoint's packets.
	EndpointForward = uint32(uplinkEndpointFlagsENDPOINT_F_FORWARD)
)

// Mode says how a program is attached to an interface.
type Mode string

// Attachment modes, from fastest to most compatible.
const (
	ModeXDPNative  Mode = "xdp-native"
	ModeXDPGeneric Mode = "xdp-generic"
	ModeTCX        Mode = "tcx"
	ModeTCLegacy   Mode = "tc-clsact"
)

// Endpoint is a live endpoint address as the dataplane sees it.
type Endpoint struct {
	Addr netip.Addr
	// Ifindex of the host-side veth of the endpoint.
	Ifindex uint32
	// MAC of the endpoint's own interface; HostMAC of the host-side veth.
	MAC, HostMAC net.HardwareAddr
	MTU          uint32
	// Flags are EndpointProxy and EndpointForward bits.
	Flags uint32
	// Net is the endpoint's network id (see Network).
	Net uint32
}

// Limits of the per-network and per-uplink maps.
const (
	// MaxNetworks is the number of network ids, 0 to MaxNetworks-1.
	MaxNetworks = int(uplinkV6dpLimitsV6DP_MAX_NETWORKS)
	// MaxUplinks is the number of uplink slots.
	MaxUplinks = int(uplinkV6dpLimitsV6DP_MAX_UPLINKS)
)

// Network is one bridge and its prefix as BPF forwards for it, by id.
type Network struct {
	// BridgeIndex and BridgeMAC: the bridge the network's endpoints hang
	// off. Its MAC is their router's (their gateway lives on it), the
	// source of routed deliveries; its index is where the kernel sees
	// routed endpoint traffic arrive.
	BridgeIndex int
	BridgeMAC   net.HardwareAddr
	// Uplink is the slot of the network's uplink (see SetUplinkAt).
	Uplink uint32
}

// NetStats are one network's packet counts (struct net_stats).
type NetStats struct {
	NSAnswered    uint64 `json:"ns_answered"`
	FwdRedirected uint64 `json:"fwd_redirected"`
	EgressLocal   uint64 `json:"egress_local"`
	EgressFIB     uint64 `json:"egress_fib"`
	EgressDrop    uint64 `json:"egress_drop"`
}

// UplinkConfig is what the uplink programs need to answer.
type UplinkConfig struct {
	Ifindex int
	// MAC goes into the answers' Ethernet source and TLLA option.
	MAC net.HardwareAddr
	// LinkLocal is the answers' IPv6 source when NASourceLinkLocal is set.
	LinkLocal netip.Addr
	// Router sets the R flag (RFC 4861 4.4): the host routes for its endpoints.
	Router bool
	// NASourceLinkLocal sources answers from LinkLocal instead of the target.
	NASourceLinkLocal bool
	// NDPHooks and ForwardHooks say which programs do each job: auto puts
	// each job on one hook (XDP answers, TC forwards); none leaves the
	// job to the kernel. A program without a job passes its frames on.
	NDPHooks, ForwardHooks Hooks
	// EgressForward lets the port program deliver container egress
	// itself; without it the port program only guards.
	EgressForward bool
	// XDPL4Pass makes XDP hand TCP and UDP to the next hook: native XDP
	// on a veth, where partial checksums would be lost in a redirect.
	XDPL4Pass bool
	// Filtered says the host's firewall filters forwarded IPv6: BPF then
	// forwards nothing, so every packet meets the host's rules.
	Filtered bool
	// NDPFiltered says the host's firewall may act on the NS the uplink
	// receives or the NA it sends: BPF then answers nothing, and the
	// kernel answers from its proxy entries through the host's rules.
	NDPFiltered bool
	// PolicyFor is how long the host policy above holds unless written
	// again (0: forever); past it BPF forwards nothing and answers no NS.
	PolicyFor time.Duration
}

// Hooks is a set of the uplink's programs.
type Hooks uint8

// The uplink's programs.
const (
	HookXDP Hooks = 1 << iota
	HookTC
)

// String names the hooks in the set: "xdp", "tc", "xdp+tc" or "none".
func (h Hooks) String() string {
	switch h {
	case 0:
		return "none"
	case HookXDP:
		return "xdp"
	case HookTC:
		return "tc"
	case HookXDP | HookTC:
		return "xdp+tc"
	}
	return fmt.Sprintf("hooks(%d)", uint8(h))
}

// Dataplane holds the loaded programs and the (pinned) maps.
type Dataplane struct {
	pinDir string
	objs   uplinkObjects
	// egress is the endpoint program, loaded over objs' maps.
	egress egressPrograms
	// counterNames[id] is the snake_case name of counter id.
	counterNames []string
	// w is what the syncs wrote last.
	w written
	// nl is the netlink socket for the port attachments (nlMu).
	nlMu sync.Mutex
	nl   *netlink.Handle
}

// Open loads the programs and maps, reusing maps pinned under pinDir
// (DefaultPinDir when empty). bpffs is mounted at /sys/fs/bpf if it is not
// mounted yet. A pinned map whose layout differs from the one compiled in
// is replaced by a new, empty one.
//
// A verifier error is wrapped; print it with %+v for the full log.
func Open(pinDir string) (*Dataplane, error) {
	if pinDir == "" {
		pinDir = DefaultPinDir
	}
	if err := ensureBPFFS(pinDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(pinDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating pin directory: %w", err)
	}
	spec, err := loadUplink()
	if err != nil {
		return nil, err
	}
	if err := removeIncompatiblePins(spec, pinDir); err != nil {
		return nil, err
	}
	names, err := counterNames(spec)
	if err != nil {
		return nil, err
	}
	d := &Dataplane{pinDir: pinDir, counterNames: names}
	opts := &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: pinDir}}
	if err := spec.LoadAndAssign(&d.objs, opts); err != nil {
		return nil, fmt.Errorf("loading uplink objects: %w", err)
	}
	egress, err := loadEgress()
	if err != nil {
		d.objs.Close()
		return nil, err
	}
	// The same maps, not merely the same pins: nothing to keep in step.
	eopts := &ebpf.CollectionOptions{MapReplacements: map[string]*ebpf.Map{
		"v6dp_endpoints":  d.objs.V6dpEndpoints,
		"v6dp_uplink_cfg": d.objs.V6dpUplinkCfg,
		"v6dp_counters":   d.objs.V6dpCounters,
		"v6dp_devmap":     d.objs.V6dpDevmap,
		"v6dp_ports":      d.objs.V6dpPorts,
		"v6dp_ns_limit":   d.objs.V6dpNsLimit,
		"v6dp_ns_sources": d.objs.V6dpNsSources,
		"v6dp_ns_global":  d.objs.V6dpNsGlobal,
		"v6dp_networks":   d.objs.V6dpNetworks,
		"v6dp_net_stats":  d.objs.V6dpNetStats,
	}}
	if err := egress.LoadAndAssign(&d.egress, eopts); err != nil {
		d.objs.Close()
		return nil, fmt.Errorf("loading endpoint program: %w", err)
	}
	return d, nil
}

// Close closes the file descriptors. Pins and attachments stay in place, so
// the programs keep answering after the daemon exits.
func (d *Dataplane) Close() error {
	d.nlMu.Lock()
	if d.nl != nil {
		d.nl.Close()
		d.nl = nil
	}
	d.nlMu.Unlock()
	return errors.Join(d.egress.Close(), d.objs.Close())
}

// ensureBPFFS mounts bpffs at /sys/fs/bpf when pinDir lies below it and it
// is not mounted (minimal hosts and fresh network namespaces lack it).
func ensureBPFFS(pinDir string) error {
	if !strings.HasPrefix(filepath.Clean(pinDir)+"/", bpffsRoot+"/") {
		return nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(bpffsRoot, &st); err != nil {
		return fmt.Errorf("checking %s: %w", bpffsRoot, err)
	}
	if st.Type == unix.BPF_FS_MAGIC {
		return nil
	}
	if err := unix.Mount("bpffs", bpffsRoot, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("mounting bpffs at %s: %w", bpffsRoot, err)
	}
	return nil
}

// removeIncompatiblePins unpins every pinned map that the spec cannot reuse
// (an upgrade changed its layout), so loading pins a fresh one instead of
// failing. Its old contents are lost; the control plane resyncs them.
func removeIncompatiblePins(spec *ebpf.CollectionSpec, pinDir string) error {
	for name, ms := range spec.Maps {
		if ms.Pinning != ebpf.PinByName {
			continue
		}
		path := filepath.Join(pinDir, name)
		m, err := ebpf.LoadPinnedMap(path, nil)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err == nil {
			err = ms.Compatible(m)
			m.Close()
			if err == nil {
				continue
			}
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("removing incompatible pinned map %s: %w", name, err)
		}
	}
	return nil
}

// counterNames names the counters after the counter_id enum in the
// object's BTF: CNT_NS_ANSWERED becomes "ns_answered". The C header stays
// the one place where counters are defined.
func counterNames(spec *ebpf.CollectionSpec) ([]string, error) {
	var e *btf.Enum
	if err := spec.Types.TypeByName("counter_id", &e); err != nil {
		return nil, fmt.Errorf("finding counter_id in BTF: %w", err)
	}
	names := make([]string, uplinkCounterIdCNT_MAX)
	for _, v := range e.Values {
		if v.Value >= uint64(len(names)) {
			continue
		}
		names[v.Value] = strings.ToLower(strings.TrimPrefix(v.Name, "CNT_"))
	}
	return names, nil
}
