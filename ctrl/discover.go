package ctrl

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/v6dp/v6dp/ctrl/netnsutil"
	"github.com/v6dp/v6dp/ctrl/rules"
)

// Endpoint is one container interface on the bridge, as found in the kernel.
type Endpoint struct {
	Name      string           `json:"name"`
	Netns     string           `json:"netns,omitempty"`
	HostIf    string           `json:"host_if"`
	HostIndex int              `json:"host_index"`
	HostMAC   net.HardwareAddr `json:"-"`
	PeerIf    string           `json:"peer_if,omitempty"`
	PeerIndex int              `json:"-"` // the far end's ifindex in its namespace
	MAC       net.HardwareAddr `json:"-"`
	MTU       int              `json:"mtu"`
	// Network is the bridge the port is on, Bridge its ifindex.
	Network string `json:"network"`
	Bridge  int    `json:"-"`
	// NetnsID is the far end's namespace as this namespace numbers it
	// (the port's IFLA_LINK_NETNSID).
	NetnsID int `json:"netnsid"`
	// Addrs are the addresses the port may publish (rules.Port); in the
	// daemon's table, only those it owns.
	Addrs []netip.Addr `json:"addrs"`
	// Held is every address in the prefix the far end has.
	Held []netip.Addr `json:"held,omitempty"`
	// Refused are held addresses that are not published, with the reason.
	Refused []rules.Refusal `json:"refused,omitempty"`
	// LinkLocal is the far end's own link-local address, the only one
	// the port guard lets it send from besides Addrs.
	LinkLocal netip.Addr `json:"link_local,omitempty"`
	// Err says why the port could not be resolved (its far end's
	// namespace unknown, or a read that failed); Addrs is empty then.
	Err error `json:"-"`
}

// Discoverer finds the endpoints on a bridge: every veth port whose far end
// sits in another network namespace, with that end's addresses in the
// container prefix. It needs no traffic and no path: the port's
// IFLA_LINK_NETNSID names the far end's namespace, and rtnetlink reads
// links and addresses there by that id (Linux 4.20). Namespace files (in
// Dirs, else a process's /proc/PID/ns/net) name the endpoint, serve
// kernels without target-netnsid reads, and are what programs are attached
// through.
type Discoverer struct {
	Bridge string
	Prefix netip.Prefix
	Dirs   []string
	// Rules decide which held addresses a port may publish; Rules.Prefix
	// defaults to Prefix.
	Rules rules.Port

	mu    sync.Mutex
	files map[string]nsFile // by path
	procs map[uint64]int    // namespace inode to id, for /proc lookups
	route *nsidRoute
}

type nsFile struct {
	ino  uint64
	nsid int
}

// ErrNotPort means a link is not a veth port of the bridge.
var ErrNotPort = errors.New("not a veth port of the bridge")

// ErrSameNetns means both ends of a port's veth are in this namespace.
var ErrSameNetns = errors.New("the veth's far end is in the host's own namespace")

// nsidPaths maps each namespace id (as the host sees it) to a file that
// holds the namespace: one in Dirs, else a process's. Files are re-queried
// only when their inode changes.
func (d *Discoverer) nsidPaths() map[int]string {
	out := d.dirPaths(true)
	d.procPaths(out)
	return out
}

// pathsFor returns nsidPaths as far as needed to name the namespaces ids:
// the cached files first, then the files asked again, then the processes.
func (d *Discoverer) pathsFor(ids []int) map[int]string {
	paths := d.dirPaths(false)
	missing := func() bool {
		for _, id := range ids {
			if _, ok := paths[id]; !ok && id >= 0 {
				return true
			}
		}
		return false
	}
	if missing() {
		paths = d.dirPaths(true)
		if missing() {
			d.procPaths(paths)
		}
	}
	return paths
}

// dirPaths is nsidPaths from the files in Dirs alone. A file whose
// namespace has no id here is asked again only with retry (when a port
// names an id no file is known for): the directories of a busy host hold
// many namespaces that have nothing to do with the bridge.
func (d *Discoverer) dirPaths(retry bool) map[int]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.files == nil {
		d.files = map[string]nsFile{}
	}
	out := map[int]string{}
	seen := map[string]bool{}
	for _, dir := range d.Dirs {
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			p := filepath.Join(dir, e.Name())
			var st unix.Stat_t
			if unix.Stat(p, &st) != nil {
				continue
			}
			seen[p] = true
			f, ok := d.files[p]
			if !ok || f.ino != st.Ino || f.nsid < 0 && retry {
				f = nsFile{ino: st.Ino, nsid: nsidOf(p)}
				d.files[p] = f
			}
			if f.nsid >= 0 {
				if _, dup := out[f.nsid]; !dup {
					out[f.nsid] = p
				}
			}
		}
	}
	for p := range d.files {
		if !seen[p] {
			delete(d.files, p)
		}
	}
	return out
}

// procPaths adds, for namespaces that no file in Dirs holds, the
// namespace of some process (/proc/PID/ns/net): a namespace held only by
// its processes (Podman's, containerd's without a bind mount) is named
// and opened that way. A scan costs a stat per process; a namespace is
// opened (to ask its id) once in its life.
func (d *Discoverer) procPaths(out map[int]string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.procs == nil {
		d.procs = map[uint64]int{}
	}
	known := map[uint64]bool{}
	for _, p := range out {
		var st unix.Stat_t
		if unix.Stat(p, &st) == nil {
			known[st.Ino] = true
		}
	}
	var self unix.Stat_t
	if unix.Stat("/proc/self/ns/net", &self) == nil {
		known[self.Ino] = true
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	alive := map[uint64]bool{}
	for _, e := range ents {
		if e.Name()[0] < '1' || e.Name()[0] > '9' {
			continue
		}
		p := "/proc/" + e.Name() + "/ns/net"
		var st unix.Stat_t
		if unix.Stat(p, &st) != nil || known[st.Ino] {
			continue
		}
		known[st.Ino], alive[st.Ino] = true, true
		id, ok := d.procs[st.Ino]
		if !ok || id < 0 {
			id = nsidOf(p)
			d.procs[st.Ino] = id
		}
		if _, dup := out[id]; id >= 0 && !dup {
			out[id] = p
		}
	}
	for ino := range d.procs {
		if !alive[ino] {
			delete(d.procs, ino)
		}
	}
}

func nsidOf(path string) int {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	defer unix.Close(fd)
	id, err := netlink.GetNetNsIdByFd(fd)
	if err != nil {
		return -1
	}
	return id
}

// Ports returns the veth ports of the bridge.
func (d *Discoverer) Ports() ([]netlink.Link, error) {
	links, err := linkList()
	if err != nil {
		return nil, err
	}
	return d.portsIn(links)
}

// linkList dumps this namespace's links. A dump that races with link
// changes (containers starting by the hundred) comes back marked
// interrupted and may be inconsistent: take a fresh one rather than act
// on it.
func linkList() ([]netlink.Link, error) {
	var links []netlink.Link
	var err error
	for try := 0; ; try++ {
		links, err = netlink.LinkList()
		if !errors.Is(err, netlink.ErrDumpInterrupted) || try == 10 {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("listing links: %w", err)
	}
	return links, nil
}

// portsIn picks the bridge's veth ports out of a link dump.
func (d *Discoverer) portsIn(links []netlink.Link) ([]netlink.Link, error) {
	br := -1
	for _, l := range links {
		if l.Attrs().Name == d.Bridge {
			br = l.Attrs().Index
		}
	}
	if br < 0 {
		return nil, fmt.Errorf("bridge %s: %w", d.Bridge, netlink.LinkNotFoundError{})
	}
	var out []netlink.Link
	for _, l := range links {
		if l.Attrs().MasterIndex == br && l.Type() == "veth" {
			out = append(out, l)
		}
	}
	return out, nil
}

// Scan returns every veth port of the bridge as an endpoint, sorted by
// name; a port it could not resolve has Err set. The error is for the
// bridge or the link list, and then nothing is returned: callers must not
// mistake a failed scan for an empty bridge.
func (d *Discoverer) Scan() ([]Endpoint, error) {
	links, err := linkList()
	if err != nil {
		return nil, err
	}
	views, err := d.views()
	if err != nil {
		return nil, err
	}
	return d.scanIn(links, views)
}

// scanIn is Scan over a link dump, reading each far end's namespace once
// for all its ports (views).
func (d *Discoverer) scanIn(links []netlink.Link, views *nsViews) ([]Endpoint, error) {
	ports, err := d.portsIn(links)
	if err != nil {
		return nil, err
	}
	eps := d.resolveAll(ports, views)
	out := make([]Endpoint, len(eps))
	for i, ep := range eps {
		out[i] = *ep
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Name < out[j].Name || out[i].Name == out[j].Name && out[i].HostIf < out[j].HostIf
	})
	return out, nil
}

// resolveAll resolves ports (veth ports of the bridge), each namespace
// read once (views); a port that could not be resolved has Err set.
func (d *Discoverer) resolveAll(ports []netlink.Link, views *nsViews) []*Endpoint {
	ids := make([]int, 0, len(ports))
	for _, p := range ports {
		ids = append(ids, p.Attrs().NetNsID)
	}
	paths := d.pathsFor(ids)
	out := make([]*Endpoint, 0, len(ports))
	for _, p := range ports {
		ep, err := d.resolve(p, paths, views)
		ep.Err = err
		out = append(out, ep)
	}
	return out
}

// Port resolves one port by interface index. A link that is not (or no
// longer) a veth port of the bridge is ErrNotPort: a queued "new port"
// message may be read after the port left.
func (d *Discoverer) Port(index int) (*Endpoint, error) {
	l, err := netlink.LinkByIndex(index)
	if err != nil {
		return nil, err
	}
	br, err := netlink.LinkByName(d.Bridge)
	if err != nil {
		return nil, fmt.Errorf("bridge %s: %w", d.Bridge, err)
	}
	if l.Attrs().MasterIndex != br.Attrs().Index || l.Type() != "veth" {
		return nil, fmt.Errorf("%s: %w", l.Attrs().Name, ErrNotPort)
	}
	views, err := d.views()
	if err != nil {
		return nil, err
	}
	ep := d.resolveAll([]netlink.Link{l}, views)[0]
	return ep, ep.Err
}

// nsViews reads the far ends' namespaces for one batch of resolutions:
// each namespace's links and addresses once, however many ports lead
// there (a dump each, by namespace id).
type nsViews struct {
	route *nsidRoute
	byID  map[int]*nsView
}

// nsView is one namespace as read: its links and addresses by ifindex,
// or why it could not be read.
type nsView struct {
	links map[int]nsLink
	addrs map[int][]nsAddr
	err   error
}

// views returns a fresh set of namespace reads on d's rtnetlink socket.
func (d *Discoverer) views() (*nsViews, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.route == nil {
		r, err := newNsidRoute()
		if err != nil {
			return nil, err
		}
		d.route = r
	}
	return &nsViews{route: d.route, byID: map[int]*nsView{}}, nil
}

func (v *nsViews) get(nsid int) *nsView {
	if w, ok := v.byID[nsid]; ok {
		return w
	}
	w := &nsView{}
	v.byID[nsid] = w
	if w.links, w.err = v.route.Links(nsid); w.err != nil {
		return w
	}
	list, err := v.route.Addrs(nsid, 0)
	if err != nil {
		w.err = err
		return w
	}
	w.addrs = map[int][]nsAddr{}
	for _, a := range list {
		w.addrs[a.Index] = append(w.addrs[a.Index], a)
	}
	return w
}

func (d *Discoverer) resolve(l netlink.Link, paths map[int]string, views *nsViews) (*Endpoint, error) {
	a := l.Attrs()
	// MACs are copied: netlink's slices pin whole receive buffers.
	ep := &Endpoint{HostIf: a.Name, HostIndex: a.Index, HostMAC: bytes.Clone(a.HardwareAddr), NetnsID: a.NetNsID,
		Network: d.Bridge, Bridge: a.MasterIndex, PeerIndex: a.ParentIndex}
	if a.NetNsID < 0 {
		// Both ends in this namespace: not a container's port.
		return ep, fmt.Errorf("port %s: %w", a.Name, ErrSameNetns)
	}
	if path, ok := paths[a.NetNsID]; ok {
		ep.Netns, ep.Name = path, nsName(path)
	} else {
		ep.Name = fmt.Sprintf("netnsid-%d", a.NetNsID)
	}
	err := d.resolveByNsid(ep, views.get(a.NetNsID), a.NetNsID, a.ParentIndex)
	if err == nil || isGone(err) || ep.Netns == "" {
		return ep, err
	}
	// An old kernel (no target netnsid): the namespace file.
	return ep, d.resolveByFile(ep, a.ParentIndex)
}

// nsName is the name an endpoint is shown under: the namespace file's name,
// or for a namespace held only by a process, "pid N".
func nsName(path string) string {
	if pid, ok := strings.CutPrefix(path, "/proc/"); ok {
		return "pid " + strings.TrimSuffix(pid, "/ns/net")
	}
	return filepath.Base(path)
}

// resolveByNsid takes the far end and its addresses from the read of its
// namespace (by id).
func (d *Discoverer) resolveByNsid(ep *Endpoint, view *nsView, nsid, peerIndex int) error {
	if view.err != nil {
		return fmt.Errorf("port %s: netnsid %d: %w", ep.HostIf, nsid, view.err)
	}
	peer, ok := view.links[peerIndex]
	if !ok {
		// Not gone: the far end may be on its way into the namespace
		// (a retry reads it again).
		return fmt.Errorf("port %s: peer %d not (yet) in netnsid %d", ep.HostIf, peerIndex, nsid)
	}
	ep.PeerIf, ep.MAC, ep.MTU = peer.Name, net.HardwareAddr(bytes.Clone(peer.MAC)), peer.MTU
	addrs := view.addrs[peerIndex]
	ep.Addrs, ep.Held, ep.Refused = d.usable(addrs)
	ep.LinkLocal = peerLinkLocal(addrs, ep.MAC)
	return nil
}

// resolveByFile reads the far end through its namespace file.
func (d *Discoverer) resolveByFile(ep *Endpoint, peerIndex int) error {
	var addrs []nsAddr
	err := netnsutil.Handle(ep.Netns, func(h *netlink.Handle) error {
		peer, err := h.LinkByIndex(peerIndex)
		if err != nil {
			return fmt.Errorf("peer %d: %w", peerIndex, err)
		}
		pa := peer.Attrs()
		ep.PeerIf, ep.MAC, ep.MTU = pa.Name, bytes.Clone(pa.HardwareAddr), pa.MTU
		list, err := h.AddrList(peer, netlink.FAMILY_V6)
		if err != nil {
			return fmt.Errorf("addresses: %w", err)
		}
		for _, ad := range list {
			ip, ok := netip.AddrFromSlice(ad.IP)
			if !ok {
				continue
			}
			bits, _ := ad.Mask.Size()
			addrs = append(addrs, nsAddr{Index: peerIndex, Addr: ip.Unmap(), Bits: bits, Flags: uint32(ad.Flags)})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("port %s: %w", ep.HostIf, err)
	}
	ep.Addrs, ep.Held, ep.Refused = d.usable(addrs)
	ep.LinkLocal = peerLinkLocal(addrs, ep.MAC)
	return nil
}

// usable splits a port's addresses in the prefix into those it may
// publish (rules.Port.Publishable), all it holds, and the refused ones.
func (d *Discoverer) usable(addrs []nsAddr) (ok, held []netip.Addr, refused []rules.Refusal) {
	r := d.Rules
	if !r.Prefix.IsValid() {
		r.Prefix = d.Prefix
	}
	in := make([]rules.Addr, 0, len(addrs))
	for _, a := range addrs {
		if r.Prefix.Contains(a.Addr) {
			held = append(held, a.Addr)
			in = append(in, rules.Addr{Addr: a.Addr, Flags: a.Flags})
		}
	}
	sort.Slice(held, func(i, j int) bool { return held[i].Less(held[j]) })
	ok, refused = r.Publishable(in)
	return ok, held, refused
}

// isGone reports whether err means the interface or namespace went away,
// or the interface is no port of the bridge.
func isGone(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, syscall.ENODEV) || errors.Is(err, os.ErrNotExist) ||
		errors.Is(err, ErrNotPort)
}

// peerLinkLocal picks the far end's link-local address from its
// addresses: tentative ones count (it is the far end's own while DAD runs,
// and it sends its NS for the gateway from it), DAD-failed ones do not.
// Without one yet, the address the kernel will make from the MAC.
func peerLinkLocal(addrs []nsAddr, mac net.HardwareAddr) netip.Addr {
	for _, a := range addrs {
		if a.Addr.IsLinkLocalUnicast() && a.Flags&unix.IFA_F_DADFAILED == 0 {
			return a.Addr.WithZone("")
		}
	}
	return eui64LinkLocal(mac)
}

// eui64LinkLocal is fe80::/64 with the modified EUI-64 interface id of mac
// (RFC 4291 appendix A), the link-local address Linux gives an interface
// by default; invalid for a MAC that is not 6 bytes.
func eui64LinkLocal(mac net.HardwareAddr) netip.Addr {
	if len(mac) != 6 {
		return netip.Addr{}
	}
	var a [16]byte
	a[0], a[1] = 0xfe, 0x80
	a[8], a[9], a[10] = mac[0]^0x02, mac[1], mac[2]
	a[11], a[12] = 0xff, 0xfe
	a[13], a[14], a[15] = mac[3], mac[4], mac[5]
	return netip.AddrFrom16(a)
}
