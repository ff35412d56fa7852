package loader

import (
	"errors"
	"fmt"
	"runtime"
	"sort"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// AttachPort attaches tc_endpoint at the ingress of an endpoint's host-side
// veth (a port of the bridge), where everything the endpoint sends
// arrives, as a clsact filter of the highest priority. Not TCX, unlike the
// uplink: a TCX attach waits for an RCU grace period under the RTNL lock,
// measured at 14 ms a port here, one port after another whatever the
// parallelism, so 2000 containers would take half a minute to be guarded;
// a clsact filter takes 0.1 ms on a quiet host (up to 3 ms a port in a
// burst of thousands: a qdisc on a port that is up waits for an expedited
// grace period). An existing filter is replaced atomically
// (FilterReplace), so a restarted daemon's program takes over with no gap,
// and a TCX link an earlier version pinned goes once the filter is in.
// Where clsact fails, TCX is the fallback.
func (d *Dataplane) AttachPort(ifindex int) (Mode, error) {
	pin := linkPin(d.pinDir, portLinkPrefix, ifindex)
	mode, err := d.attachPortFilter(ifindex)
	if err != nil {
		m, terr := attachIngress(pin, d.egress.TcEndpoint, ifindex, legacyPortFilterName)
		if terr != nil {
			return m, errors.Join(err, terr)
		}
		return m, nil
	}
	if _, err := detachPinned(pin); err != nil {
		return mode, err
	}
	return mode, nil
}

// attachPortFilter attaches the endpoint filter on the dataplane's own
// netlink socket: thousands of ports join at once, and a socket for each
// request was part of the cost.
func (d *Dataplane) attachPortFilter(ifindex int) (Mode, error) {
	d.nlMu.Lock()
	defer d.nlMu.Unlock()
	if d.nl == nil {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return "", fmt.Errorf("netlink socket: %w", err)
		}
		d.nl = h
	}
	return attachClsact(d.nl, ifindex, d.egress.TcEndpoint, legacyPortFilterName)
}

// PortAttached reports whether the endpoint program is attached to the
// port: its clsact filter, or a live TCX link pinned for it.
func (d *Dataplane) PortAttached(ifindex int) (bool, error) {
	filters, err := legacyFilters(ifindex, legacyPortFilterName)
	if err != nil {
		return false, err
	}
	if len(filters) > 0 {
		return true, nil
	}
	l, err := link.LoadPinnedLink(linkPin(d.pinDir, portLinkPrefix, ifindex), nil)
	if err != nil {
		return false, nil
	}
	defer l.Close()
	info, err := l.Info()
	return err == nil && info.TCX() != nil && info.TCX().Ifindex == uint32(ifindex), nil
}

// DetachPort removes what v6dp attached for a port: tc_endpoint on the
// host side and the XDP program on the far end. A port whose veth is gone
// only leaves defunct pins, which go too; nothing attached is no error.
func (d *Dataplane) DetachPort(ifindex int) error {
	return detachPort(d.pinDir, ifindex)
}

func detachPort(pinDir string, ifindex int) error {
	var errs []error
	for _, prefix := range []string{portLinkPrefix, peerXDPLinkPrefix} {
		_, err := detachPinned(linkPin(pinDir, prefix, ifindex))
		errs = append(errs, err)
	}
	if _, err := netlink.LinkByIndex(ifindex); err == nil {
		errs = append(errs, removeLegacyFilters(ifindex, legacyPortFilterName))
	}
	return errors.Join(errs...)
}

// Ports returns the ifindexes of the ports with v6dp links pinned (either
// kind), sorted: what a restarted daemon finds from the last run.
func (d *Dataplane) Ports() ([]int, error) {
	pins, err := pinnedLinks(d.pinDir, portLinkPrefix, peerXDPLinkPrefix)
	if err != nil {
		return nil, err
	}
	seen := map[int]bool{}
	var out []int
	for _, ifindex := range pins {
		if !seen[ifindex] {
			seen[ifindex] = true
			out = append(out, ifindex)
		}
	}
	sort.Ints(out)
	return out, nil
}

// DetachPorts removes every port attachment under pinDir (DefaultPinDir
// when empty) and the clsact port filters, without loading anything: for a
// daemon that runs the kernel path, where no BPF may run on ports.
func DetachPorts(pinDir string) error {
	if pinDir == "" {
		pinDir = DefaultPinDir
	}
	return detachAll(pinDir, []string{portLinkPrefix, peerXDPLinkPrefix}, []string{legacyPortFilterName})
}

// AttachPeerXDP attaches xdp_pass in native mode to the far end of a
// port's veth, the interface called peerName in the network namespace at
// nsPath, and pins the link under the port's host-side ifindex. Frames
// that native XDP on the uplink redirects into the port are handed by
// veth_xdp_xmit to the far end's NAPI context, which exists only while
// the far end has an XDP program (or GRO on); without one they are
// dropped. Generic XDP redirects through the skb path and needs none.
// An existing pin is kept: the program only passes, nothing to update.
func (d *Dataplane) AttachPeerXDP(hostIfindex int, nsPath, peerName string) error {
	pin := linkPin(d.pinDir, peerXDPLinkPrefix, hostIfindex)
	if l, err := link.LoadPinnedLink(pin, nil); err == nil {
		info, ierr := l.Info()
		l.Close()
		if ierr == nil && info.XDP() != nil && info.XDP().Ifindex != 0 {
			return nil
		}
		// Defunct (the far end went): replace it.
		if _, err := detachPinned(pin); err != nil {
			return err
		}
	}
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return fmt.Errorf("opening namespace %s: %w", nsPath, err)
	}
	defer ns.Close()
	var objs passObjects
	if err := loadPassObjects(&objs, nil); err != nil {
		return fmt.Errorf("loading xdp_pass: %w", err)
	}
	defer objs.Close()

	// Attaching by ifindex needs the thread in the far end's namespace;
	// bpffs (for the pin) is the same in every network namespace.
	return inNetns(ns, nsPath, func() error { return attachPinnedPass(objs.XdpPass, peerName, pin) })
}

// inNetns runs f on a thread switched into the network namespace ns
// (called name in errors) and back. Only the network namespace changes:
// bpffs and the pins stay the same.
func inNetns(ns netns.NsHandle, name string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("entering %s: %w", name, err)
			return
		}
		err = f()
		if serr := netns.Set(orig); serr != nil {
			// The thread stays locked and dies with the goroutine
			// rather than serve others in the wrong namespace.
			errc <- errors.Join(err, serr)
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}

func attachPinnedPass(prog *ebpf.Program, name, pin string) error {
	peer, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("finding %s: %w", name, err)
	}
	l, err := link.AttachXDP(link.XDPOptions{
		Program: prog, Interface: peer.Attrs().Index, Flags: link.XDPDriverMode,
	})
	if err != nil {
		return fmt.Errorf("attaching xdp_pass to %s: %w", name, err)
	}
	return pinAndRelease(l, pin)
}
