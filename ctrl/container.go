package ctrl

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"regexp"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/v6dp/v6dp/ctrl/netnsutil"
	"github.com/v6dp/v6dp/ctrl/rules"
)

// NetnsDir is where v6dp (like iproute2) keeps named namespaces.
const NetnsDir = "/run/netns"

var containerNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// ContainerSpec is what `v6dp container add` asks for.
type ContainerSpec struct {
	Name string
	MAC  net.HardwareAddr // nil: next free Docker-style MAC
}

// HostIfName is the host-side veth name of a container: stable, unique per
// name, and within the 15-character limit.
func HostIfName(name string) string {
	sum := sha256.Sum256([]byte(name))
	return "v6dp" + hex.EncodeToString(sum[:])[:8]
}

// AddContainer makes a container: a named network namespace, a veth pair
// with the host side on the bridge and eth0 inside, the MAC, the address
// and the default route. On any error everything made so far is removed.
func AddContainer(r *Resolved, st Store, spec ContainerSpec) (rec *ContainerRecord, err error) {
	if !containerNameRe.MatchString(spec.Name) {
		return nil, fmt.Errorf("container name %q: use 1-63 letters, digits, '_', '.', '-', starting with a letter or digit", spec.Name)
	}
	if spec.MAC != nil && (len(spec.MAC) != 6 || spec.MAC[0]&1 == 1 || isZero(spec.MAC)) {
		return nil, fmt.Errorf("mac: %s is not a unicast 48-bit MAC", spec.MAC)
	}
	unlock, err := st.Lock()
	if err != nil {
		return nil, fmt.Errorf("state dir %s: %w", st.Dir, err)
	}
	defer unlock()
	nsPath := NetnsDir + "/" + spec.Name
	if _, err := os.Stat(nsPath); err == nil {
		return nil, fmt.Errorf("container %s: already exists (%s)", spec.Name, nsPath)
	}
	hostIf := HostIfName(spec.Name)
	if _, err := netlink.LinkByName(hostIf); err == nil {
		return nil, fmt.Errorf("container %s: interface %s already exists", spec.Name, hostIf)
	}
	br, err := netlink.LinkByName(r.Bridge)
	if err != nil {
		return nil, fmt.Errorf("bridge %s does not exist: start `v6dp daemon` first (%v)", r.Bridge, err)
	}
	d := &Discoverer{Bridge: r.Bridge, Prefix: r.Prefix, Dirs: r.NetnsDirs}
	eps, err := d.Scan()
	if err != nil {
		return nil, err
	}
	usedMAC := map[string]bool{}
	usedAddr := map[netip.Addr]bool{r.Gateway: true}
	for _, ep := range eps {
		usedMAC[ep.MAC.String()] = true
		for _, a := range ep.Addrs {
			usedAddr[a] = true
		}
	}
	if bas, err := netlink.AddrList(br, netlink.FAMILY_V6); err == nil {
		for _, a := range bas {
			if ip, ok := netip.AddrFromSlice(a.IP); ok {
				usedAddr[ip.Unmap()] = true
			}
		}
	}
	mac := spec.MAC
	if mac == nil {
		if mac, err = rules.NextFreeMAC(usedMAC); err != nil {
			return nil, err
		}
	} else if usedMAC[mac.String()] {
		return nil, fmt.Errorf("mac: %s is already used on bridge %s", mac, r.Bridge)
	}
	var addr netip.Addr
	if r.Addressing == rules.AddressingMAC {
		if addr, err = rules.MACAddr(r.Prefix, mac); err != nil {
			return nil, err
		}
		if usedAddr[addr] {
			return nil, fmt.Errorf("container %s: address %s (from MAC %s) is already in use", spec.Name, addr, mac)
		}
	} else if addr, err = rules.NextFreeAddr(r.Prefix, usedAddr); err != nil {
		return nil, err
	}

	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	ns, err := newNamedNetns(spec.Name)
	if err != nil {
		return nil, fmt.Errorf("container %s: creating namespace: %w", spec.Name, err)
	}
	defer ns.Close()
	undo = append(undo, func() { _ = netns.DeleteNamed(spec.Name) })

	tmpPeer := "v6dptmp" + hex.EncodeToString(mac[3:])
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: hostIf, MTU: br.Attrs().MTU},
		PeerName:         tmpPeer,
		PeerHardwareAddr: mac,
		PeerNamespace:    netlink.NsFd(int(ns)),
	}
	if err = netlink.LinkAdd(veth); err != nil {
		return nil, fmt.Errorf("container %s: creating veth %s: %w", spec.Name, hostIf, err)
	}
	undo = append(undo, func() {
		if l, err := netlink.LinkByName(hostIf); err == nil {
			_ = netlink.LinkDel(l)
		}
	})
	if err = configureInside(ns, tmpPeer, addr, r.Prefix.Bits(), r.Gateway); err != nil {
		return nil, fmt.Errorf("container %s: %w", spec.Name, err)
	}
	host, err := netlink.LinkByName(hostIf)
	if err != nil {
		return nil, err
	}
	if err = preparePort(hostIf); err != nil {
		return nil, fmt.Errorf("container %s: %w", spec.Name, err)
	}
	if err = netlink.LinkSetMaster(host, br); err != nil {
		return nil, fmt.Errorf("container %s: %s onto bridge %s: %w", spec.Name, hostIf, r.Bridge, err)
	}
	if err = netlink.LinkSetUp(host); err != nil {
		return nil, fmt.Errorf("container %s: %s up: %w", spec.Name, hostIf, err)
	}
	rec = &ContainerRecord{Name: spec.Name, Netns: nsPath, HostIf: hostIf, MAC: mac.String(),
		Addr: addr.String(), Bridge: r.Bridge, Created: time.Now().UTC()}
	if err = st.SaveContainer(*rec); err != nil {
		return nil, fmt.Errorf("container %s: recording it: %w", spec.Name, err)
	}
	slog.Info("container added", "name", spec.Name, "addr", addr, "mac", mac.String(), "veth", hostIf)
	return rec, nil
}

// preparePort turns IPv6 off on a host-side bridge port: the port needs
// none, and each port with IPv6 on adds routes that every multicast packet
// entering the host walks (measured at 1000 ports: the kernel answered about
// 13k NS/s with IPv6 on the ports, 66k/s with it off).
func preparePort(name string) error {
	return writeSysctlQuiet(ipv6Conf(name, "disable_ipv6"), "1")
}

func configureInside(ns netns.NsHandle, tmpPeer string, addr netip.Addr, bits int, gw netip.Addr) error {
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink in namespace: %w", err)
	}
	defer h.Close()
	if lo, err := h.LinkByName("lo"); err == nil {
		_ = h.LinkSetUp(lo)
	}
	peer, err := h.LinkByName(tmpPeer)
	if err != nil {
		return fmt.Errorf("peer %s: %w", tmpPeer, err)
	}
	if err := h.LinkSetName(peer, "eth0"); err != nil {
		return fmt.Errorf("renaming peer to eth0: %w", err)
	}
	if err := h.LinkSetUp(peer); err != nil {
		return fmt.Errorf("eth0 up: %w", err)
	}
	// No DAD: the address is allocated by v6dp and unique on the bridge, and
	// a tentative address would delay the container's first packet.
	a := &netlink.Addr{IPNet: prefixToIPNet(netip.PrefixFrom(addr, bits)), Flags: unix.IFA_F_NODAD}
	if err := h.AddrAdd(peer, a); err != nil {
		return fmt.Errorf("address %s on eth0: %w", addr, err)
	}
	rt := &netlink.Route{LinkIndex: peer.Attrs().Index, Gw: gw.AsSlice(), Family: netlink.FAMILY_V6,
		Dst: &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}}
	if err := h.RouteAdd(rt); err != nil {
		return fmt.Errorf("default route via %s dev eth0: %w", gw, err)
	}
	return nil
}

// newNamedNetns creates a network namespace bound at /run/netns/name
// without leaving any thread but a retired one in it (netnsutil.OnThread).
func newNamedNetns(name string) (netns.NsHandle, error) {
	self, err := netns.Get()
	if err != nil {
		return 0, err
	}
	defer self.Close()
	var ns netns.NsHandle
	err = netnsutil.OnThread(self, func() error {
		// NewNamed moves the thread into the new namespace; OnThreadIn
		// puts it back.
		var err error
		ns, err = netns.NewNamed(name)
		return err
	})
	if err != nil && ns != 0 {
		ns.Close()
		return 0, err
	}
	return ns, err
}

// DelContainer removes a container v6dp made: its veth (the peer goes with
// it), its namespace and its record.
func DelContainer(st Store, name string) error {
	if !containerNameRe.MatchString(name) {
		return fmt.Errorf("container name %q is not valid", name)
	}
	unlock, err := st.Lock()
	if err != nil {
		return err
	}
	defer unlock()
	nsPath := NetnsDir + "/" + name
	_, statErr := os.Stat(nsPath)
	hostIf := HostIfName(name)
	l, linkErr := netlink.LinkByName(hostIf)
	if statErr != nil && linkErr != nil {
		_ = st.DeleteContainer(name)
		return fmt.Errorf("container %s: no such container", name)
	}
	var errs []error
	if linkErr == nil {
		if err := netlink.LinkDel(l); err != nil && !isGone(err) {
			errs = append(errs, fmt.Errorf("deleting %s: %w", hostIf, err))
		}
	}
	if statErr == nil {
		if err := netns.DeleteNamed(name); err != nil {
			errs = append(errs, fmt.Errorf("deleting namespace %s: %w", name, err))
		}
	}
	errs = append(errs, st.DeleteContainer(name))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("container %s: %w", name, err)
	}
	slog.Info("container deleted", "name", name)
	return nil
}

func isZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}
