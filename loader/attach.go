package loader

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Link pins are named <prefix><ifindex> in the pin directory. The uplink's
// links carry its ifindex; a port's links carry the ifindex of the
// endpoint's host-side veth, also the XDP link on its far end, which lives
// in the endpoint's namespace (and has an ifindex of that namespace).
const (
	xdpLinkPrefix     = "link_xdp_"
	tcxLinkPrefix     = "link_tcx_"
	portLinkPrefix    = "link_port_"
	peerXDPLinkPrefix = "link_peerxdp_"
)

// Every link pin prefix, for Remove.
var allLinkPrefixes = []string{xdpLinkPrefix, tcxLinkPrefix, portLinkPrefix, peerXDPLinkPrefix}

// The clsact filters are named, so that they can be found again without a
// pin (filters cannot be pinned): one on the uplink, one on each port.
const (
	legacyFilterName     = "v6dp_tc_uplink"
	legacyPortFilterName = "v6dp_tc_endpoint"
)

// legacyFilterPrio is the clsact filter priority; 0 would let the kernel pick.
const legacyFilterPrio = 1

// XDP attach modes as the kernel reports them (IFLA_XDP_ATTACHED), which
// differ from the attach flags.
const (
	xdpAttachedDrv = 1
	xdpAttachedSKB = 2
)

// Attachment is one v6dp program attached to an interface.
type Attachment struct {
	Ifindex   int
	Mode      Mode
	ProgramID uint32
}

func linkPin(pinDir, prefix string, ifindex int) string {
	return filepath.Join(pinDir, prefix+strconv.Itoa(ifindex))
}

// adoptLink replaces the program of the link pinned at pin, atomically:
// the interface is never without a program. It reports false when there is
// no pin, or when the pinned link is defunct (its interface went away), in
// which case the stale pin is removed.
func adoptLink(pin string, prog *ebpf.Program) (bool, error) {
	l, err := link.LoadPinnedLink(pin, nil)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("loading pinned link %s: %w", pin, err)
	}
	defer l.Close()
	err = l.Update(prog)
	if errors.Is(err, unix.ENOLINK) {
		if err := l.Unpin(); err != nil {
			return false, fmt.Errorf("removing defunct link %s: %w", pin, err)
		}
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("updating pinned link %s: %w", pin, err)
	}
	return true, nil
}

// pinAndRelease pins a new link and drops our reference: the pin keeps it.
func pinAndRelease(l link.Link, pin string) error {
	defer l.Close()
	if err := l.Pin(pin); err != nil {
		// Closing the unpinned link detaches the program again.
		return fmt.Errorf("pinning link %s: %w", pin, err)
	}
	return nil
}

// AttachXDP attaches xdp_uplink to the interface: in native (driver) mode
// first when native is true, in generic mode when the driver refuses or
// native is false. An existing v6dp link on the interface is adopted and its
// program replaced atomically, keeping its mode. It returns the mode in use.
func (d *Dataplane) AttachXDP(ifindex int, native bool) (Mode, error) {
	pin := linkPin(d.pinDir, xdpLinkPrefix, ifindex)
	adopted, err := adoptLink(pin, d.objs.XdpUplink)
	if err != nil {
		return "", err
	}
	if adopted {
		return xdpMode(ifindex)
	}

	var l link.Link
	mode := ModeXDPGeneric
	if native {
		l, err = link.AttachXDP(link.XDPOptions{
			Program: d.objs.XdpUplink, Interface: ifindex, Flags: link.XDPDriverMode,
		})
		mode = ModeXDPNative
		// Drivers refuse native XDP for many reasons (EOPNOTSUPP, an MTU
		// too large for one page: ERANGE, offloads: EINVAL); generic mode
		// works on every device, so any refusal falls back to it.
		if err != nil {
			l, mode = nil, ModeXDPGeneric
		}
	}
	if l == nil {
		l, err = link.AttachXDP(link.XDPOptions{
			Program: d.objs.XdpUplink, Interface: ifindex, Flags: link.XDPGenericMode,
		})
		if err != nil {
			return "", fmt.Errorf("attaching XDP to ifindex %d: %w", ifindex, err)
		}
	}
	if err := pinAndRelease(l, pin); err != nil {
		return "", err
	}
	return mode, nil
}

// xdpMode asks the kernel how XDP is attached to the interface.
func xdpMode(ifindex int) (Mode, error) {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return "", fmt.Errorf("reading XDP mode of ifindex %d: %w", ifindex, err)
	}
	if x := l.Attrs().Xdp; x != nil && x.AttachMode == xdpAttachedDrv {
		return ModeXDPNative, nil
	}
	return ModeXDPGeneric, nil
}

// AttachTC attaches tc_uplink at the interface's ingress with TCX, first in
// the chain so that it sees NDP before other programs, adopting an existing
// v6dp link like AttachXDP. Where the kernel lacks TCX (before 6.6) it falls
// back to a clsact qdisc with a direct-action bpf filter.
func (d *Dataplane) AttachTC(ifindex int) (Mode, error) {
	return attachIngress(linkPin(d.pinDir, tcxLinkPrefix, ifindex), d.objs.TcUplink, ifindex, legacyFilterName)
}

// attachTCLegacy adds (or replaces) the clsact ingress filter of the uplink.
func (d *Dataplane) attachTCLegacy(ifindex int) (Mode, error) {
	return attachClsact(&netlink.Handle{}, ifindex, d.objs.TcUplink, legacyFilterName)
}

// attachIngress attaches prog at the ingress of the interface, first in the
// TCX chain, and pins the link at pin; a link already pinned there is
// adopted and its program replaced atomically. Without TCX (before 6.6) it
// adds a clsact filter called legacyName instead.
func attachIngress(pin string, prog *ebpf.Program, ifindex int, legacyName string) (Mode, error) {
	adopted, err := adoptLink(pin, prog)
	if err != nil {
		return "", err
	}
	if adopted {
		return ModeTCX, nil
	}
	l, err := link.AttachTCX(link.TCXOptions{
		Interface: ifindex,
		Program:   prog,
		Attach:    ebpf.AttachTCXIngress,
		Anchor:    link.Head(),
	})
	if errors.Is(err, link.ErrNotSupported) {
		return attachClsact(&netlink.Handle{}, ifindex, prog, legacyName)
	}
	if err != nil {
		return "", fmt.Errorf("attaching TCX to ifindex %d: %w", ifindex, err)
	}
	if err := pinAndRelease(l, pin); err != nil {
		return "", err
	}
	// After a kernel upgrade a clsact filter of an older run may remain.
	if err := removeLegacyFilters(ifindex, legacyName); err != nil {
		return "", err
	}
	return ModeTCX, nil
}

// attachClsact adds (or replaces) a direct-action bpf filter called name at
// the clsact ingress, adding the clsact qdisc unless the interface has one
// (or an ingress qdisc, whose hook takes the same filter). Filters hold
// the program by themselves and cannot be pinned; they are found again by
// name. h is the netlink handle to use; the zero Handle opens a socket
// per request.
func attachClsact(h *netlink.Handle, ifindex int, prog *ebpf.Program, name string) (Mode, error) {
	qdisc := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{
			LinkIndex: ifindex,
			Handle:    netlink.MakeHandle(0xffff, 0),
			Parent:    netlink.HANDLE_CLSACT,
		},
		QdiscType: "clsact",
	}
	if err := h.QdiscAdd(qdisc); err != nil && !errors.Is(err, unix.EEXIST) {
		return "", fmt.Errorf("adding clsact to ifindex %d: %w", ifindex, err)
	}
	filter := &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: ifindex,
			Parent:    netlink.HANDLE_MIN_INGRESS,
			Handle:    1,
			Protocol:  unix.ETH_P_ALL,
			Priority:  legacyFilterPrio,
		},
		Fd:           prog.FD(),
		Name:         name,
		DirectAction: true,
	}
	if err := h.FilterReplace(filter); err != nil {
		return "", fmt.Errorf("adding clsact filter to ifindex %d: %w", ifindex, err)
	}
	return ModeTCLegacy, nil
}

// legacyFilters lists v6dp's clsact ingress filters called name on the interface.
func legacyFilters(ifindex int, name string) ([]*netlink.BpfFilter, error) {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return nil, fmt.Errorf("finding ifindex %d: %w", ifindex, err)
	}
	filters, err := netlink.FilterList(l, netlink.HANDLE_MIN_INGRESS)
	if err != nil {
		// No clsact qdisc: no filters.
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil, nil
		}
		return nil, fmt.Errorf("listing filters of ifindex %d: %w", ifindex, err)
	}
	var out []*netlink.BpfFilter
	for _, f := range filters {
		if bf, ok := f.(*netlink.BpfFilter); ok && strings.HasPrefix(bf.Name, name) {
			out = append(out, bf)
		}
	}
	return out, nil
}

func removeLegacyFilters(ifindex int, name string) error {
	filters, err := legacyFilters(ifindex, name)
	if err != nil {
		return err
	}
	var errs []error
	for _, f := range filters {
		if err := netlink.FilterDel(f); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("deleting clsact filter of ifindex %d: %w", ifindex, err))
		}
	}
	return errors.Join(errs...)
}

// detachPinned detaches the link pinned at pin and removes the pin. It
// reports false when there is no such pin.
func detachPinned(pin string) (bool, error) {
	l, err := link.LoadPinnedLink(pin, nil)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("loading pinned link %s: %w", pin, err)
	}
	defer l.Close()
	// Detach ends the attachment even if another process holds the link;
	// a defunct link (interface gone) reports an error that is moot.
	if err := l.Detach(); err != nil && !errors.Is(err, unix.ENOLINK) && !errors.Is(err, link.ErrNotSupported) {
		return false, fmt.Errorf("detaching link %s: %w", pin, err)
	}
	if err := l.Unpin(); err != nil {
		return false, fmt.Errorf("unpinning link %s: %w", pin, err)
	}
	return true, nil
}

// Detach removes whatever v6dp attached to the interface (XDP, TCX or the
// clsact filter) and the pins. It returns ErrNotAttached if there was none.
func (d *Dataplane) Detach(ifindex int) error {
	return detach(d.pinDir, ifindex)
}

// DetachKind removes only v6dp's XDP program (xdp true) or only its TC
// program from the interface: for a plan that keeps the other.
func (d *Dataplane) DetachKind(ifindex int, xdp bool) error {
	if xdp {
		_, err := detachPinned(linkPin(d.pinDir, xdpLinkPrefix, ifindex))
		return err
	}
	_, err := detachPinned(linkPin(d.pinDir, tcxLinkPrefix, ifindex))
	if err != nil {
		return err
	}
	return removeLegacyFilters(ifindex, legacyFilterName)
}

func detach(pinDir string, ifindex int) error {
	var (
		found bool
		errs  []error
	)
	for _, prefix := range []string{xdpLinkPrefix, tcxLinkPrefix} {
		ok, err := detachPinned(linkPin(pinDir, prefix, ifindex))
		found = found || ok
		errs = append(errs, err)
	}
	filters, err := legacyFilters(ifindex, legacyFilterName)
	if err == nil && len(filters) > 0 {
		found = true
		err = removeLegacyFilters(ifindex, legacyFilterName)
	}
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("ifindex %d: %w", ifindex, ErrNotAttached)
	}
	return nil
}

// pinnedLinks returns the ifindexes of the link pins in pinDir with the
// given prefixes, by pin name.
func pinnedLinks(pinDir string, prefixes ...string) (map[string]int, error) {
	entries, err := os.ReadDir(pinDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", pinDir, err)
	}
	out := make(map[string]int)
	for _, e := range entries {
		for _, prefix := range prefixes {
			rest, ok := strings.CutPrefix(e.Name(), prefix)
			if !ok {
				continue
			}
			if ifindex, err := strconv.Atoi(rest); err == nil {
				out[e.Name()] = ifindex
			}
		}
	}
	return out, nil
}

// Attached reports what v6dp has attached, from the link pins in pinDir
// (DefaultPinDir when empty) and the clsact filters found by name, so that
// it works without a running daemon. Defunct links are skipped.
func Attached(pinDir string) ([]Attachment, error) {
	if pinDir == "" {
		pinDir = DefaultPinDir
	}
	pins, err := pinnedLinks(pinDir, xdpLinkPrefix, tcxLinkPrefix)
	if err != nil {
		return nil, err
	}
	var out []Attachment
	for name, ifindex := range pins {
		l, err := link.LoadPinnedLink(filepath.Join(pinDir, name), nil)
		if err != nil {
			return nil, fmt.Errorf("loading pinned link %s: %w", name, err)
		}
		info, err := l.Info()
		l.Close()
		if err != nil {
			return nil, fmt.Errorf("reading pinned link %s: %w", name, err)
		}
		a := Attachment{Ifindex: ifindex, ProgramID: uint32(info.Program), Mode: ModeTCX}
		if strings.HasPrefix(name, xdpLinkPrefix) {
			x := info.XDP()
			if x == nil || x.Ifindex == 0 {
				continue
			}
			if a.Mode, err = xdpMode(ifindex); err != nil {
				return nil, err
			}
		} else if x := info.TCX(); x == nil || x.Ifindex == 0 {
			continue
		}
		out = append(out, a)
	}
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("listing links: %w", err)
	}
	bridges := map[int]bool{}
	for _, l := range links {
		if l.Type() == "bridge" {
			bridges[l.Attrs().Index] = true
		}
	}
	for _, l := range links {
		if l.Type() == "veth" && bridges[l.Attrs().MasterIndex] {
			// A container's bridge port is never an uplink: at 10,000
			// ports, asking each for its filters took 1.2 s of every
			// start and every `v6dp status`.
			continue
		}
		filters, err := legacyFilters(l.Attrs().Index, legacyFilterName)
		if err != nil {
			return nil, err
		}
		for _, f := range filters {
			out = append(out, Attachment{Ifindex: l.Attrs().Index, Mode: ModeTCLegacy, ProgramID: uint32(f.Id)})
		}
	}
	return out, nil
}

// Remove detaches everything v6dp attached (pinned links and clsact
// filters) and removes pinDir with its pinned maps: `v6dp cleanup`.
func Remove(pinDir string) error {
	if pinDir == "" {
		pinDir = DefaultPinDir
	}
	errs := []error{detachAll(pinDir, allLinkPrefixes, []string{legacyFilterName, legacyPortFilterName})}
	if err := os.RemoveAll(pinDir); err != nil {
		errs = append(errs, fmt.Errorf("removing %s: %w", pinDir, err))
	}
	return errors.Join(errs...)
}

// AttachXDPPass attaches a program that only passes, in native mode, to
// the interface with ifindex in the calling thread's network namespace.
// On the far end of a veth it enables the NAPI context that frames sent
// into the pair by XDP_TX or XDP_REDIRECT need to be received; without
// it the veth drops them. Closing the result detaches the program.
func AttachXDPPass(ifindex int) (io.Closer, error) {
	var objs passObjects
	if err := loadPassObjects(&objs, nil); err != nil {
		return nil, fmt.Errorf("loading xdp_pass: %w", err)
	}
	defer objs.Close()
	l, err := link.AttachXDP(link.XDPOptions{
		Program: objs.XdpPass, Interface: ifindex, Flags: link.XDPDriverMode,
	})
	if err != nil {
		return nil, fmt.Errorf("attaching xdp_pass to ifindex %d: %w", ifindex, err)
	}
	return l, nil
}

// detachAll detaches the pinned links under pinDir whose names start with
// one of prefixes, and the clsact filters with one of filterNames on every
// interface.
func detachAll(pinDir string, prefixes, filterNames []string) error {
	pins, err := pinnedLinks(pinDir, prefixes...)
	if err != nil {
		return err
	}
	var errs []error
	for name := range pins {
		_, err := detachPinned(filepath.Join(pinDir, name))
		errs = append(errs, err)
	}
	links, err := netlink.LinkList()
	errs = append(errs, err)
	for _, l := range links {
		for _, f := range filterNames {
			errs = append(errs, removeLegacyFilters(l.Attrs().Index, f))
		}
	}
	return errors.Join(errs...)
}
