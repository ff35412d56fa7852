package ctrl

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
)

// Cleanup removes everything the journal says v6dp created, and nothing
// else: its containers, the kernel proxy entries for its prefix, the BPF
// programs and pins, the addresses and routes it added, the bridge if it
// made it, and the sysctls it changed (restored to their old values).
func Cleanup(st Store) error {
	if rt, err := st.Runtime(); err == nil {
		return fmt.Errorf("cleanup: the daemon (pid %d) is running; stop it first", rt.PID)
	}
	j, err := st.Journal()
	if err != nil {
		return err
	}
	var errs []error
	cs, err := st.Containers()
	errs = append(errs, err)
	for _, c := range cs {
		errs = append(errs, DelContainer(st, c.Name))
	}
	if j.ProxyUplink != "" {
		if up, err := netlink.LinkByName(j.ProxyUplink); err == nil {
			for _, ps := range append([]string{j.ProxyPrefix}, j.EnginePrefixes...) {
				if p, err := netip.ParsePrefix(ps); err == nil {
					_, _, err := SyncProxy(up.Attrs().Index, p, nil)
					errs = append(errs, err)
				}
			}
		}
	}
	for _, ep := range j.ExtraProxies {
		name, ps, _ := strings.Cut(ep, " ")
		up, err := netlink.LinkByName(name)
		p, perr := netip.ParsePrefix(ps)
		if err != nil || perr != nil {
			continue
		}
		_, _, err = SyncProxy(up.Attrs().Index, p, nil)
		errs = append(errs, err)
	}
	errs = append(errs, RemovePeerRoutes())
	pinDir := j.PinDir
	if pinDir != "" {
		errs = append(errs, removeBPF(pinDir))
	}
	for _, rt := range j.AddedRoutes {
		dev, pfx, _ := strings.Cut(rt, " ")
		l, err := netlink.LinkByName(dev)
		p, perr := netip.ParsePrefix(pfx)
		if err != nil || perr != nil {
			continue
		}
		r := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: prefixToIPNet(p), Family: netlink.FAMILY_V6}
		if err := netlink.RouteDel(r); err != nil && !isGone(err) && !strings.Contains(err.Error(), "no such process") {
			errs = append(errs, fmt.Errorf("route %s: %w", rt, err))
		}
	}
	for _, ad := range j.AddedAddrs {
		dev, pfx, _ := strings.Cut(ad, " ")
		if dev == j.CreatedBridge {
			continue // goes with the bridge
		}
		l, err := netlink.LinkByName(dev)
		p, perr := netip.ParsePrefix(pfx)
		if err != nil || perr != nil {
			continue
		}
		_ = netlink.AddrDel(l, &netlink.Addr{IPNet: prefixToIPNet(p)})
	}
	if j.CreatedBridge != "" {
		if l, err := netlink.LinkByName(j.CreatedBridge); err == nil {
			errs = append(errs, netlink.LinkDel(l))
			slog.Info("bridge deleted", "bridge", j.CreatedBridge)
		}
	}
	restore := make(map[string]string, len(j.Sysctls))
	for key, old := range j.Sysctls {
		restore[key] = old
	}
	var ports portNames
	defer ports.close()
	for _, e := range st.journaledPorts() {
		now, ok, err := ports.now(e)
		if err != nil {
			errs = append(errs, fmt.Errorf("finding the journaled ports to restore their disable_ipv6: %w", err))
			break
		}
		if ok {
			restore[ipv6Conf(now, "disable_ipv6")] = e.Old
		}
	}
	errs = append(errs, restoreSysctls(sysctlRoot, j, restore)...)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, f := range []string{"journal.json", portJournal, portJournal + ".tmp", "daemon.json", "lock", clusterStatusFile, withdrawnFile} {
		_ = os.Remove(st.path(f))
	}
	_ = os.RemoveAll(st.path(portJournalDir))
	_ = os.Remove(st.path("containers"))
	_ = os.Remove(st.Dir)
	return nil
}
