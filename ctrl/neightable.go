package ctrl

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// The kernel's IPv6 neighbour table is one for the whole machine: every
// namespace's entries (the host's for each container on the bridge, each
// container's for its gateway and the multicast groups it sends to) count
// against the same limits, gc_thresh1/2/3 (128/512/1024 by default). Above
// gc_thresh2 the kernel evicts entries, at gc_thresh3 it refuses new ones
// (ENOBUFS: pings fail, forwarding stalls). The limits are sysctls of the
// initial network namespace only (net.ipv6.neigh.default.gc_thresh*); from
// any other they can be read (RTM_GETNEIGHTBL) but not set.
//
// The daemon sizes the table for the kernel path, on every dataplane: BPF
// delivers into containers without a neighbour entry per container, but
// the kernel path is always installed underneath and takes over whenever
// BPF steps aside (a firewall rule, forwarding off, a program detached).

// Entries the table needs: a base for the host's own (its neighbours on
// the uplink and elsewhere, its multicast groups), and per port and per
// address as measured on a container (ip -6 neigh show nud all, host and
// container namespaces).
const (
	// neighBase: the host's own neighbours and groups (the kernel's
	// gc_thresh1).
	neighBase = 128
	// neighPerPort: the host's entry for the container's link-local
	// address (from its NS for the gateway); in the container's own
	// namespace its gateway, ff02::2 and ff02::16 (RS, MLD reports), and
	// the solicited-node groups of its gateway and its link-local address.
	neighPerPort = 6
	// neighPerAddr: the host's entry for the address on the bridge, and
	// the address's solicited-node group in the container (DAD).
	neighPerAddr = 2
)

// neighRecheck is how often the limits are read again when the need has
// not changed: a lowered limit is raised again, as other settings are
// repaired.
const neighRecheck = 10 * time.Second

// neighKeys are the three limits, in the order gc_thresh1, 2, 3.
var neighKeys = [3]string{
	"net/ipv6/neigh/default/gc_thresh1",
	"net/ipv6/neigh/default/gc_thresh2",
	"net/ipv6/neigh/default/gc_thresh3",
}

// neighLimits are gc_thresh1/2/3.
type neighLimits [3]int

func (l neighLimits) String() string { return fmt.Sprintf("%d/%d/%d", l[0], l[1], l[2]) }

// neighNeed is how many entries ports with addrs addresses in all need.
func neighNeed(ports, addrs int) int { return neighBase + ports*neighPerPort + addrs*neighPerAddr }

// neighWant are the limits for need entries: gc_thresh2 at least need
// (no eviction below it), gc_thresh3 twice that (headroom for bursts:
// containers starting, the router's probes), both in steps of 512;
// gc_thresh1 an eighth of gc_thresh3, the kernel's default ratio. For
// need up to 512 they are the kernel's defaults.
func neighWant(need int) neighLimits {
	t2 := (need + 511) / 512 * 512
	return neighLimits{t2 / 4, t2, 2 * t2}
}

// neighTable keeps the kernel's neighbour table big enough for the
// endpoints, raising (never lowering) its limits where it can, and
// journaling what it raised for cleanup.
type neighTable struct {
	// root is the sysctl tree: /proc/sys, a fake one in tests.
	root string
	// read reads the limits and the entries in use by netlink, from any
	// namespace (readNeighTable; a fake in tests).
	read func() (neighLimits, int, error)
	// now is the clock (tests).
	now func() time.Time

	want      neighLimits // what was last sized for
	checked   time.Time   // when the limits were last read
	told      bool        // the shared-table line was logged
	toldShort bool        // the "too small" warning was logged
	toldFail  bool        // a failed write was logged
}

func newNeighTable(root string) *neighTable {
	return &neighTable{root: root, read: readNeighTable, now: time.Now}
}

// settable reports whether the limits are sysctls here: only the initial
// network namespace has them.
func (n *neighTable) settable() bool {
	_, err := os.Stat(filepath.Join(n.root, neighKeys[2]))
	return err == nil
}

// current reads the limits, from the sysctls where they exist.
func (n *neighTable) current() (neighLimits, error) {
	if !n.settable() {
		l, _, err := n.read()
		return l, err
	}
	var l neighLimits
	for i, k := range neighKeys {
		v, err := readSysctlAt(n.root, k)
		if err != nil {
			return l, err
		}
		if l[i], err = strconv.Atoi(v); err != nil {
			return l, fmt.Errorf("sysctl %s: %q is not a number", k, v)
		}
	}
	return l, nil
}

// ensure sizes the table for ports and addrs: in the initial namespace it
// raises the limits below what they need (never lowering any), logs one
// line saying so, and journals the old values in st's journal (restored
// by cleanup only if still as v6dp set them); elsewhere it says once that
// the table is shared and capped. It reports whether it raised any.
func (n *neighTable) ensure(st Store, ports, addrs int) bool {
	need := neighNeed(ports, addrs)
	want := neighWant(need)
	if want == n.want && n.now().Sub(n.checked) < neighRecheck {
		return false
	}
	n.want, n.checked = want, n.now()
	cur, err := n.current()
	if err != nil {
		slog.Warn("reading the IPv6 neighbour table's limits", "err", err)
		return false
	}
	// Too small: entries evicted below the need, or no headroom above
	// it. Then raised to want, the need rounded up.
	short := cur[1] < need || cur[2] < 2*need
	if !n.settable() {
		switch {
		case !n.told:
			n.told = true
			lvl := slog.LevelInfo
			if short {
				lvl, n.toldShort = slog.LevelWarn, true
			}
			slog.Log(context.Background(), lvl, "the kernel's IPv6 neighbour table is shared by every network namespace and capped by the initial namespace's limits; v6dp cannot raise them from here",
				"gc_thresh", cur.String(), "needed", need, "ports", ports, "addresses", addrs,
				"set_by", "net.ipv6.neigh.default.gc_thresh1/2/3 in the initial network namespace")
		case short && !n.toldShort:
			n.toldShort = true
			slog.Warn("the kernel's IPv6 neighbour table is too small for the endpoints; only the initial network namespace can raise it",
				"gc_thresh", cur.String(), "needed", need, "ports", ports, "addresses", addrs,
				"set_by", "net.ipv6.neigh.default.gc_thresh1/2/3 in the initial network namespace")
		}
		return false
	}
	if !short {
		return false
	}
	j, err := st.Journal()
	if err != nil {
		slog.Warn("raising the IPv6 neighbour table: no journal to record it in", "err", err)
		return false
	}
	next := cur
	for i := range next {
		next[i] = max(cur[i], want[i])
	}
	// Journaled first: a daemon that dies between the write and the
	// journal must not lose the host's value. The value to restore is
	// what the host had before v6dp first set it, or what someone set
	// since v6dp did (theirs wins).
	if j.SysctlsSet == nil {
		j.SysctlsSet = map[string]string{}
	}
	for i, k := range neighKeys {
		if next[i] == cur[i] {
			continue
		}
		if set, ok := j.SysctlsSet[k]; !ok || set != strconv.Itoa(cur[i]) {
			j.Sysctls[k] = strconv.Itoa(cur[i])
		}
		j.SysctlsSet[k] = strconv.Itoa(next[i])
	}
	if err := st.SaveJournal(j); err != nil {
		slog.Warn("raising the IPv6 neighbour table: the journal cannot record it", "err", err)
		return false
	}
	// The largest first, so that 1 <= 2 <= 3 holds at every step. A
	// write that fails leaves the journal saying v6dp set a value the
	// sysctl does not hold: cleanup then leaves it alone.
	for i := len(neighKeys) - 1; i >= 0; i-- {
		if next[i] == cur[i] {
			continue
		}
		if err := writeSysctlAt(n.root, neighKeys[i], strconv.Itoa(next[i])); err != nil {
			if !n.toldFail {
				slog.Warn("raising the IPv6 neighbour table", "err", err)
				n.toldFail = true
			}
			next[i] = cur[i]
		}
	}
	if next == cur {
		return false
	}
	slog.Info("IPv6 neighbour table raised", "old", cur.String(), "new", next.String(),
		"why", fmt.Sprintf("%d ports with %d addresses need about %d entries in the kernel's neighbour table, which every namespace shares", ports, addrs, need))
	return true
}

// readSysctlAt reads a sysctl under root.
func readSysctlAt(root, key string) (string, error) {
	b, err := os.ReadFile(sysctlPathAt(root, key))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func writeSysctlAt(root, key, value string) error {
	if err := os.WriteFile(sysctlPathAt(root, key), []byte(value), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", key, value, err)
	}
	return nil
}

// restoreSysctls puts back the values the journal holds, in restore (key
// to old value; the journal's sysctls and more), under root. A key v6dp
// restores only while it is as v6dp set it (j.SysctlsSet) is left alone
// when someone changed it since.
func restoreSysctls(root string, j *Journal, restore map[string]string) []error {
	var errs []error
	for key, old := range restore {
		if set, ok := j.SysctlsSet[key]; ok {
			cur, err := readSysctlAt(root, key)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err == nil && cur != set {
				slog.Info("sysctl left as it is: changed since v6dp set it", "key", SysctlName(key), "v6dp_set", set, "now", cur, "was", old)
				continue
			}
		}
		if err := os.WriteFile(sysctlPathAt(root, key), []byte(old), 0o644); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("restoring %s: %w", key, err))
		}
	}
	return errs
}

// ndtmsg is RTM_GETNEIGHTBL's request: the address family.
type ndtmsg struct{ family uint8 }

func (m ndtmsg) Len() int          { return 4 }
func (m ndtmsg) Serialize() []byte { return []byte{m.family, 0, 0, 0} }

// NDTA_* (linux/neighbour.h).
const (
	ndtaThresh1 = 2
	ndtaThresh2 = 3
	ndtaThresh3 = 4
	ndtaConfig  = 5
)

// readNeighTable reads the IPv6 neighbour table's limits and its number
// of entries (the machine's, every namespace's) by rtnetlink, which
// answers in any namespace. The dump's first message is the table; the
// rest are the parameters of every device of the namespace (10,000
// messages at 10,000 ports, 60-150 ms of a publish in a burst), so the
// reading stops at the table and the socket is closed with the dump
// unfinished.
func readNeighTable() (neighLimits, int, error) {
	var l neighLimits
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return l, 0, fmt.Errorf("reading the neighbour tables: %w", err)
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(int64(5 * time.Second))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return l, 0, fmt.Errorf("reading the neighbour tables: %w", err)
	}
	req := nl.NewNetlinkRequest(unix.RTM_GETNEIGHTBL, unix.NLM_F_DUMP)
	req.AddData(ndtmsg{unix.AF_INET6})
	if err := unix.Sendto(fd, req.Serialize(), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return l, 0, fmt.Errorf("reading the neighbour tables: %w", err)
	}
	buf := make([]byte, 64<<10)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return l, 0, fmt.Errorf("reading the neighbour tables: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return l, 0, fmt.Errorf("reading the neighbour tables: %w", err)
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return l, 0, errors.New("the kernel reported no IPv6 neighbour table limits")
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if errno := -int32(binary.NativeEndian.Uint32(m.Data[:4])); errno != 0 {
						return l, 0, fmt.Errorf("reading the neighbour tables: %w", unix.Errno(errno))
					}
				}
			case unix.RTM_NEWNEIGHTBL:
				if lim, entries, ok := parseNeighTable(m.Data); ok {
					return lim, entries, nil
				}
			}
		}
	}
}

// parseNeighTable reads the limits and the entry count from one
// RTM_NEWNEIGHTBL message of the IPv6 table; ok only if it has all three
// limits (the table's message, not a device's parameters).
func parseNeighTable(m []byte) (l neighLimits, entries int, ok bool) {
	if len(m) < 4 || m[0] != unix.AF_INET6 {
		return l, 0, false
	}
	var found [3]bool
	entries = -1
	// (The library's attribute parser panics on a truncated attribute.)
	eachAttr(m[4:], func(typ uint16, v []byte) bool {
		switch typ {
		case ndtaThresh1, ndtaThresh2, ndtaThresh3:
			if len(v) >= 4 {
				i := typ - ndtaThresh1
				l[i], found[i] = int(binary.NativeEndian.Uint32(v)), true
			}
		case ndtaConfig:
			// struct ndt_config: key_len, entry_size (u16), entries (u32).
			if len(v) >= 8 {
				entries = int(binary.NativeEndian.Uint32(v[4:8]))
			}
		}
		return true
	})
	return l, entries, found[0] && found[1] && found[2]
}

// neighTableReport says, for `v6dp status`, what the neighbour table's
// limits are, whether v6dp raised them, how full the table is and what
// ports with addrs addresses need.
func neighTableReport(root string, j *Journal, ports, addrs int) string {
	return newNeighTable(root).report(j, ports, addrs)
}

func (n *neighTable) report(j *Journal, ports, addrs int) string {
	cur, err := n.current()
	if err != nil {
		return "unknown: " + err.Error()
	}
	s := "gc_thresh1/2/3 " + cur.String()
	var old neighLimits
	raised := false
	for i, k := range neighKeys {
		old[i] = cur[i]
		if set, ok := j.SysctlsSet[k]; ok && set == strconv.Itoa(cur[i]) {
			if v, err := strconv.Atoi(j.Sysctls[k]); err == nil {
				old[i], raised = v, true
			}
		}
	}
	if raised {
		s += " (raised by v6dp from " + old.String() + ")"
	}
	if _, entries, err := n.read(); err == nil && entries >= 0 {
		s += fmt.Sprintf(", %d entries in use machine-wide", entries)
	}
	s += fmt.Sprintf(", about %d needed for %d ports with %d addresses", neighNeed(ports, addrs), ports, addrs)
	if !n.settable() {
		s += "; shared by every namespace, set only in the initial network namespace"
	}
	return s
}

// SizeNeighTable sizes the kernel's IPv6 neighbour table for ports with
// addrs addresses in all, as the daemon does, journaling in st what it
// raised; it reports whether it raised a limit.
func SizeNeighTable(st Store, ports, addrs int) bool {
	return newNeighTable(sysctlRoot).ensure(st, ports, addrs)
}

// RestoreSysctls is the sysctl part of Cleanup: it restores the sysctls
// st's journal holds (those v6dp restores only while unchanged, only so)
// and forgets them.
func RestoreSysctls(st Store) error {
	j, err := st.Journal()
	if err != nil {
		return err
	}
	if err := errors.Join(restoreSysctls(sysctlRoot, j, j.Sysctls)...); err != nil {
		return err
	}
	j.Sysctls, j.SysctlsSet = nil, nil
	return st.SaveJournal(j)
}
