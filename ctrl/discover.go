package ctrl

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Endpoint is one container interface on the bridge, as found in the kernel.
type Endpoint struct {
	Name      string           `json:"name"`
	Netns     string           `json:"netns,omitempty"`
	HostIf    string           `json:"host_if"`
	HostIndex int              `json:"host_index"`
	HostMAC   net.HardwareAddr `json:"-"`
	PeerIf    string           `json:"peer_if,omitempty"`
	MAC       net.HardwareAddr `json:"-"`
	MTU       int              `json:"mtu"`
	Addrs     []netip.Addr     `json:"addrs"`
	// Err says why the port could not be resolved (its far end's
	// namespace unknown, or a read that failed); Addrs is empty then.
	Err error `json:"-"`
}

// Discoverer finds the endpoints on a bridge: every veth port whose far end
// sits in a network namespace it can open, with that end's addresses in the
// container prefix. It needs no traffic: the port's IFLA_LINK_NETNSID names
// the far end's namespace, which is matched to a namespace file.
type Discoverer struct {
	Bridge string
	Prefix netip.Prefix
	Dirs   []string

	mu    sync.Mutex
	files map[string]nsFile // by path
}

type nsFile struct {
	ino  uint64
	nsid int
}

// ErrNoNetns means the far end's namespace is not in any searched directory.
var ErrNoNetns = errors.New("namespace of the veth peer not found in the netns directories")

// nsidPaths maps each namespace id (as the host sees it) to a file that
// holds the namespace. Files are re-queried only when their inode changes.
func (d *Discoverer) nsidPaths() map[int]string {
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
			if !ok || f.ino != st.Ino || f.nsid < 0 {
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
	br, err := netlink.LinkByName(d.Bridge)
	if err != nil {
		return nil, fmt.Errorf("bridge %s: %w", d.Bridge, err)
	}
	var links []netlink.Link
	// A dump that races with link changes (containers starting by the
	// hundred) comes back marked interrupted and may be inconsistent:
	// take a fresh one rather than act on it.
	for try := 0; ; try++ {
		links, err = netlink.LinkList()
		if !errors.Is(err, netlink.ErrDumpInterrupted) || try == 10 {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("listing links: %w", err)
	}
	var out []netlink.Link
	for _, l := range links {
		if l.Attrs().MasterIndex == br.Attrs().Index && l.Type() == "veth" {
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
	ports, err := d.Ports()
	if err != nil {
		return nil, err
	}
	paths := d.nsidPaths()
	eps := make([]Endpoint, 0, len(ports))
	for _, p := range ports {
		ep, err := d.resolve(p, paths)
		ep.Err = err
		eps = append(eps, *ep)
	}
	sort.Slice(eps, func(i, j int) bool {
		return eps[i].Name < eps[j].Name || eps[i].Name == eps[j].Name && eps[i].HostIf < eps[j].HostIf
	})
	return eps, nil
}

// Port resolves one port by interface index.
func (d *Discoverer) Port(index int) (*Endpoint, error) {
	l, err := netlink.LinkByIndex(index)
	if err != nil {
		return nil, err
	}
	return d.resolve(l, d.nsidPaths())
}

func (d *Discoverer) resolve(l netlink.Link, paths map[int]string) (*Endpoint, error) {
	a := l.Attrs()
	ep := &Endpoint{HostIf: a.Name, HostIndex: a.Index, HostMAC: a.HardwareAddr}
	path, ok := paths[a.NetNsID]
	if !ok {
		return ep, fmt.Errorf("port %s (netnsid %d): %w", a.Name, a.NetNsID, ErrNoNetns)
	}
	ep.Netns, ep.Name = path, filepath.Base(path)
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return ep, fmt.Errorf("port %s: opening %s: %w", a.Name, path, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return ep, fmt.Errorf("port %s: netlink in %s: %w", a.Name, path, err)
	}
	defer h.Close()
	peer, err := h.LinkByIndex(a.ParentIndex)
	if err != nil {
		return ep, fmt.Errorf("port %s: peer %d in %s: %w", a.Name, a.ParentIndex, path, err)
	}
	pa := peer.Attrs()
	ep.PeerIf, ep.MAC, ep.MTU = pa.Name, pa.HardwareAddr, pa.MTU
	addrs, err := h.AddrList(peer, netlink.FAMILY_V6)
	if err != nil {
		return ep, fmt.Errorf("port %s: addresses in %s: %w", a.Name, path, err)
	}
	for _, ad := range addrs {
		ip, ok := netip.AddrFromSlice(ad.IP)
		if !ok || ad.Flags&unix.IFA_F_DADFAILED != 0 {
			continue
		}
		if ip = ip.Unmap(); d.Prefix.Contains(ip) {
			ep.Addrs = append(ep.Addrs, ip)
		}
	}
	sort.Slice(ep.Addrs, func(i, j int) bool { return ep.Addrs[i].Less(ep.Addrs[j]) })
	return ep, nil
}

// isGone reports whether err means the interface or namespace went away.
func isGone(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, syscall.ENODEV) || errors.Is(err, os.ErrNotExist)
}
