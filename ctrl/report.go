package ctrl

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/v6dp/v6dp/ctrl/rules"
	"github.com/v6dp/v6dp/loader"
)

// NetworkReport is one served network in `v6dp status`.
type NetworkReport struct {
	Bridge    string `json:"bridge"`
	Prefix    string `json:"prefix"`
	Engine    bool   `json:"engine"` // an engine's bridge, adopted
	Found     bool   `json:"found"`  // found under --network-parent
	Exists    bool   `json:"exists"`
	Endpoints int    `json:"endpoints"`
	Addresses int    `json:"addresses"`
	// Uplink is the interface the network is reached by.
	Uplink string `json:"uplink,omitempty"`
	// Gateway is the endpoints' gateway: the first network's (fe80::1 or
	// --default-gateway-v6), an engine's the addresses on its bridge.
	Gateway []string `json:"gateway,omitempty"`
	// Addressing is how endpoints get addresses: the first network's
	// (mac, sequential), "engine" (the engine assigns, v6dp learns).
	Addressing string `json:"addressing"`
	// BPF is the network as the BPF maps hold it (nil: not in them, so
	// the kernel forwards for it): its id, router MAC and packet counts.
	BPF *NetworkBPF `json:"bpf,omitempty"`
}

// NetworkBPF is one network in the BPF maps.
type NetworkBPF struct {
	ID        uint32          `json:"id"`
	RouterMAC string          `json:"router_mac"`
	Uplink    uint32          `json:"uplink_slot"`
	Counts    loader.NetStats `json:"counts"`
}

// EndpointReport is one endpoint as `v6dp endpoints` shows it.
type EndpointReport struct {
	// Network is the endpoint's bridge.
	Network string       `json:"network"`
	Name    string       `json:"name"`
	Addrs   []netip.Addr `json:"addrs"`
	MAC     string       `json:"mac"`
	HostIf  string       `json:"veth"`
	Netns   string       `json:"netns,omitempty"`
	Owner   string       `json:"made_by"`
	// KernelProxy: every address has its NTF_PROXY entry on the uplink.
	KernelProxy bool `json:"kernel_proxy"`
	// BPF: every address is in the BPF endpoints map.
	BPF bool `json:"bpf"`
	// Refused are addresses the container holds that are not published.
	Refused []rules.Refusal `json:"refused,omitempty"`
}

// StatusReport is what `v6dp status` shows.
type StatusReport struct {
	Daemon string `json:"daemon"`
	PID    int    `json:"pid,omitempty"`
	// RSSBytes is the running daemon's resident memory (VmRSS).
	RSSBytes   uint64       `json:"rss_bytes,omitempty"`
	Since      *time.Time   `json:"since,omitempty"`
	Bridge     string       `json:"bridge"`
	BridgeUp   bool         `json:"bridge_up"`
	Uplink     string       `json:"uplink,omitempty"`
	Prefix     string       `json:"prefix"`
	Addressing string       `json:"addressing"`
	Gateway    string       `json:"gateway"`
	NDPProxy   bool         `json:"ndp_proxy"`
	Dataplane  string       `json:"dataplane"`
	Attach     string       `json:"attach,omitempty"`
	Reason     string       `json:"reason,omitempty"`
	Hooks      []HookChoice `json:"hooks,omitempty"`
	// FastPath says whether BPF forwards now and, if not, why.
	FastPath string `json:"fast_path,omitempty"`
	// NSAnswers says who answers NS for the endpoints now, BPF or the
	// kernel, and why the kernel.
	NSAnswers    string            `json:"ns_answers,omitempty"`
	ProxyEntries int               `json:"kernel_proxy_entries"`
	BPFEntries   int               `json:"bpf_endpoints"`
	Networks     []NetworkReport   `json:"networks"`
	Endpoints    []EndpointReport  `json:"endpoints"`
	Counters     map[string]uint64 `json:"counters,omitempty"`
	// Version is the running (or last) daemon's build.
	Version string `json:"version,omitempty"`
	// PinDir holds the pinned maps and links; Pins lists them with their
	// kernel ids, for bpftool.
	PinDir string      `json:"pin_dir"`
	Pins   []PinReport `json:"pins,omitempty"`
	// LastRepair is the last thing the daemon put back, Repairs how many.
	LastRepair *Repair  `json:"last_repair,omitempty"`
	Repairs    int      `json:"repairs,omitempty"`
	Problems   []string `json:"problems,omitempty"`
	// Cluster is the multi-host layouts' state (peer routes, BGP).
	Cluster *ClusterStatus `json:"cluster,omitempty"`

	// NeighTable is the kernel's IPv6 neighbour table (neightable.go).
	NeighTable string `json:"neighbour_table,omitempty"`
}

// PinReport is one pinned map or link, with the interface name of a link.
type PinReport struct {
	loader.Pin
	Interface string `json:"interface,omitempty"`
	// Mode is how a link's program is attached: xdp-native, xdp-generic
	// or tcx.
	Mode string `json:"mode,omitempty"`
}

// pinsReport lists the pins, naming each link's interface (a far end's
// program is named after its port, whose far end lives in the container).
func pinsReport(pinDir string) ([]PinReport, error) {
	pins, err := loader.Pins(pinDir)
	modes := map[int]loader.Mode{}
	if len(pins) > 0 {
		at, aerr := loader.Attached(pinDir)
		err = errors.Join(err, aerr)
		for _, a := range at {
			modes[a.Ifindex] = a.Mode
		}
	}
	out := make([]PinReport, 0, len(pins))
	for _, p := range pins {
		pr := PinReport{Pin: p}
		if p.Kind == "link" && !p.Defunct {
			if l, lerr := netlink.LinkByIndex(p.Ifindex); lerr == nil {
				pr.Interface = l.Attrs().Name
			}
			switch p.Hook {
			case "uplink":
				pr.Mode = string(modes[p.Ifindex])
			case "port":
				pr.Mode = string(loader.ModeTCX)
			default:
				// The far end's program runs in driver mode (AttachPeerXDP).
				pr.Mode = string(loader.ModeXDPNative)
			}
		}
		out = append(out, pr)
	}
	return out, err
}

// Report gathers the status from the kernel, the pinned BPF maps and the
// daemon's runtime record; it works with or without a running daemon.
func Report(r *Resolved) (*StatusReport, error) {
	st := Store{Dir: r.StateDir}
	rep := &StatusReport{Daemon: "stopped", Bridge: r.Bridge, Uplink: r.Uplink, Prefix: r.Prefix.String(),
		Addressing: r.Addressing, Gateway: r.Gateway.String(), NDPProxy: r.NDPProxy, Dataplane: "none"}
	rt, rterr := st.Runtime()
	if rterr == nil {
		rep.Daemon, rep.PID, rep.Since = "running", rt.PID, &rt.Started
		rep.RSSBytes = processRSS(rt.PID)
		rep.Dataplane, rep.Attach, rep.Reason = rt.Dataplane, rt.Attach, rt.Reason
		rep.Cluster, _ = st.ClusterStatus()
		rep.Dataplane, rep.Attach, rep.Reason, rep.Hooks = rt.Dataplane, rt.Attach, rt.Reason, rt.Hooks
	} else if rt != nil && rt.PID > 0 {
		rep.Daemon = "not running (left the dataplane in place)"
		rep.Dataplane, rep.Attach, rep.Reason, rep.Hooks = rt.Dataplane, rt.Attach, rt.Reason, rt.Hooks
	}
	if rt != nil {
		rep.Version, rep.LastRepair, rep.Repairs = rt.Version, rt.LastRepair, rt.Repairs
	}
	rep.PinDir = r.PinDir
	pins, err := pinsReport(r.PinDir)
	if err != nil {
		rep.Problems = append(rep.Problems, err.Error())
	}
	rep.Pins = pins
	rep.FastPath, rep.NSAnswers = pathStates(r)
	if br, err := netlink.LinkByName(r.Bridge); err == nil {
		rep.BridgeUp = br.Attrs().Flags&1 != 0
	} else {
		rep.Problems = append(rep.Problems, "bridge "+r.Bridge+" does not exist")
	}
	nets := r.allNetworks()
	proxies := map[netip.Addr]bool{}
	if r.Uplink != "" {
		missing := map[string]bool{}
		for _, n := range nets {
			name := n.UplinkOf(r.Uplink)
			up, err := netlink.LinkByName(name)
			if err != nil {
				if !missing[name] {
					rep.Problems = append(rep.Problems, "uplink "+name+" does not exist")
				}
				missing[name] = true
				continue
			}
			if p, err := ProxyEntries(up.Attrs().Index, n.Prefix); err == nil {
				for a := range p {
					proxies[a] = true
				}
			}
		}
	}
	rep.ProxyEntries = len(proxies)
	pinnedNets, _ := loader.ReadPinnedNetworks(r.PinDir)
	inBPF, counters := bpfView(r.PinDir)
	rep.BPFEntries, rep.Counters = len(inBPF), counters
	owned := map[string]bool{}
	if cs, err := st.Containers(); err == nil {
		for _, c := range cs {
			owned[c.Netns] = true
		}
	}
	own, _ := hostAddrs()
	var eps []Endpoint
	for _, n := range nets {
		d := &Discoverer{Bridge: n.Bridge, Prefix: n.Prefix, Dirs: r.NetnsDirs, Rules: n.Rules(r.MaxAddrsPerPort)}
		d.Rules.Reserved = own
		nr := NetworkReport{Bridge: n.Bridge, Prefix: n.Prefix.String(), Engine: n.Engine, Found: n.Found, Uplink: n.UplinkOf(r.Uplink),
			Addressing: r.Addressing}
		if n.Engine {
			nr.Addressing = "engine"
			nr.Gateway = bridgeGateways(n)
		} else {
			nr.Gateway = []string{r.Gateway.String()}
		}
		if br, err := netlink.LinkByName(n.Bridge); err == nil {
			if p, ok := pinnedNets[br.Attrs().Index]; ok {
				nr.BPF = &NetworkBPF{ID: p.ID, RouterMAC: p.Network.BridgeMAC.String(), Uplink: p.Network.Uplink, Counts: p.Stats}
			}
		}
		found, err := d.Scan()
		var nf netlink.LinkNotFoundError
		switch {
		case n.Engine && errors.As(err, &nf):
			rep.Problems = append(rep.Problems, "network "+n.Bridge+": bridge does not exist yet (waiting for its engine to make it)")
		case err != nil:
			rep.Problems = append(rep.Problems, err.Error())
		default:
			nr.Exists = true
		}
		for _, ep := range found {
			if ep.Err == nil {
				nr.Endpoints++
				nr.Addresses += len(ep.Addrs)
			}
		}
		rep.Networks = append(rep.Networks, nr)
		eps = append(eps, found...)
	}
	// The daemon's ownership decisions: a second claimant's address is
	// not its own.
	claimed := map[string]map[netip.Addr]string{} // claimant veth -> addr -> owner veth
	if rep.Daemon == "running" {
		cs, err := st.Conflicts()
		if err != nil {
			rep.Problems = append(rep.Problems, "reading the daemon's address conflicts: "+err.Error())
		}
		for _, c := range cs {
			if claimed[c.Claimant] == nil {
				claimed[c.Claimant] = map[netip.Addr]string{}
			}
			claimed[c.Claimant][c.Addr] = c.Owner
		}
	}
	for i := range eps {
		ep := &eps[i]
		var kept []netip.Addr
		for _, a := range ep.Addrs {
			if owner, ok := claimed[ep.HostIf][a]; ok {
				ep.Refused = append(ep.Refused, rules.Refusal{Addr: a, Reason: "claimed first by the endpoint on " + owner})
				continue
			}
			kept = append(kept, a)
		}
		ep.Addrs = kept
	}
	for _, ep := range eps {
		if ep.Err != nil {
			rep.Problems = append(rep.Problems, "not resolved: "+ep.Err.Error())
			continue
		}
		e := EndpointReport{Network: ep.Network, Name: ep.Name, Addrs: ep.Addrs, MAC: ep.MAC.String(), HostIf: ep.HostIf,
			Netns: ep.Netns, Owner: "other", KernelProxy: len(ep.Addrs) > 0, BPF: len(ep.Addrs) > 0,
			Refused: ep.Refused}
		for _, f := range ep.Refused {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s (%s): %s not published: %s", ep.Name, ep.HostIf, f.Addr, f.Reason))
		}
		if owned[ep.Netns] {
			e.Owner = "v6dp"
		}
		for _, a := range ep.Addrs {
			e.KernelProxy = e.KernelProxy && proxies[a]
			e.BPF = e.BPF && inBPF[a]
		}
		rep.Endpoints = append(rep.Endpoints, e)
	}
	if j, err := st.Journal(); err == nil {
		ports, addrs := 0, 0
		for _, n := range rep.Networks {
			ports, addrs = ports+n.Endpoints, addrs+n.Addresses
		}
		rep.NeighTable = neighTableReport(sysctlRoot, j, ports, addrs)
	}
	sort.SliceStable(rep.Endpoints, func(i, j int) bool {
		a, b := rep.Endpoints[i], rep.Endpoints[j]
		return a.Network < b.Network || a.Network == b.Network && a.Name < b.Name
	})
	return rep, nil
}

// nsNoProxy is who answers NS without --ndp-proxy.
const nsNoProxy = "none: no --ndp-proxy, so neither BPF nor the kernel answers NS for the containers"

// pathStates says what the BPF fast path and the BPF NDP answers do now,
// read from the pinned config the programs use, with the host's reason
// (one reading of its firewall) where BPF leaves them to the kernel.
func pathStates(r *Resolved) (fast, ndp string) {
	up, err := loader.ReadPinnedUplink(r.PinDir)
	if err != nil || !up.Enabled {
		if !r.NDPProxy {
			return "off: no BPF dataplane pinned", nsNoProxy
		}
		return "off: no BPF dataplane pinned", "kernel: no BPF dataplane pinned"
	}
	var fw firewall
	if up.Filtered || up.NDPFiltered {
		fw = readFirewall()
	}
	why := func(f filtering) string {
		if f.Why == "" {
			return "filtering was seen a moment ago"
		}
		return f.Why
	}
	const stale = "no daemon has confirmed the host's firewall and forwarding lately"
	switch {
	case up.ForwardHooks == 0:
		fast = "off: the kernel forwards (kernel dataplane; ports guarded)"
	case !up.Router:
		fast = "off: host IPv6 forwarding is off, so neither the kernel nor BPF forwards or proxies"
	case up.Filtered:
		fast = "off: the host firewall filters forwarded IPv6 (" + why(fw.Forward) + "), so the kernel forwards through netfilter"
	case up.PolicyStale:
		fast = "off: " + stale + ", so the kernel forwards through whatever is set now"
	default:
		fast = "on: forwarding on " + up.ForwardHooks.String() + "; no IPv6 forward filtering on the host"
	}
	switch {
	case up.NDPHooks == 0 && !r.NDPProxy:
		ndp = nsNoProxy
	case up.NDPHooks == 0:
		ndp = "kernel: from its proxy entries (kernel dataplane)"
	case !up.Router:
		ndp = "none: host IPv6 forwarding is off, so neither the kernel nor BPF proxies"
	case up.NDPFiltered:
		ndp = "kernel: the host firewall filters the NDP answer path (" + why(fw.NDP) + "), so the kernel answers from its proxy entries through netfilter"
	case up.PolicyStale:
		ndp = "kernel: " + stale + ", so the kernel answers from its proxy entries through whatever is set now"
	default:
		ndp = "BPF on " + up.NDPHooks.String() + "; no filtering on the host's NDP answer path"
	}
	return fast, ndp
}

// bridgeGateways returns an engine network's gateways: the addresses on
// its bridge inside its prefix, and its link-local ones.
func bridgeGateways(n Network) []string {
	l, err := netlink.LinkByName(n.Bridge)
	if err != nil {
		return nil
	}
	addrs, err := netlink.AddrList(l, netlink.FAMILY_V6)
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if ok && (n.Prefix.Contains(ip.Unmap()) || ip.IsLinkLocalUnicast()) {
			out = append(out, ip.Unmap().String())
		}
	}
	return out
}

// processRSS returns a process's resident memory in bytes (VmRSS in
// /proc/PID/status), 0 if it cannot be read.
func processRSS(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) == 2 && f[1] == "kB" {
				if kb, err := strconv.ParseUint(f[0], 10, 64); err == nil {
					return kb * 1024
				}
			}
		}
	}
	return 0
}
