package ctrl

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// portsIPv6Off turns IPv6 off on bridge ports the daemon adopted (ones a
// container engine made; see preparePort for why). The old values go
// into the journal, all in one write, before any change, so `v6dp
// cleanup` gives the ports their IPv6 back even if the daemon dies right
// after. Ports that `v6dp container add` made are off already and go with
// their container: nothing to journal. Each port's file is opened once,
// to read the old value and write the new one.
func (d *Daemon) portsIPv6Off(names []string) error {
	type port struct {
		name, old string
		idx       int
		f         *os.File
	}
	var todo []port
	var errs []error
	defer func() {
		for _, p := range todo {
			p.f.Close()
		}
	}()
	var idxs ifindexSock
	defer idxs.close()
	for _, name := range names {
		key := ipv6Conf(name, "disable_ipv6")
		f, err := os.OpenFile(sysctlPath(key), os.O_RDWR, 0)
		if err != nil {
			if !isGone(err) {
				errs = append(errs, err)
			}
			continue
		}
		var b [8]byte
		n, err := f.Read(b[:])
		old := strings.TrimSpace(string(b[:n]))
		if err != nil || old == "1" {
			if err != nil {
				errs = append(errs, fmt.Errorf("reading %s: %w", SysctlName(key), err))
			}
			f.Close()
			continue
		}
		idx, _ := idxs.index(name) // 0: journaled by name only
		todo = append(todo, port{name: name, old: old, idx: idx, f: f})
	}
	if len(todo) == 0 {
		return errors.Join(errs...)
	}
	olds := make(map[string]journaledPort, len(todo))
	for _, p := range todo {
		olds[p.name] = journaledPort{Old: p.old, Index: p.idx}
	}
	if err := d.store.JournalPorts(olds); err != nil {
		return errors.Join(append(errs, fmt.Errorf("journaling the ports' disable_ipv6: %w", err))...)
	}
	for _, p := range todo {
		if _, err := p.f.WriteAt([]byte("1"), 0); err != nil && !isGone(err) {
			errs = append(errs, fmt.Errorf("sysctl %s=1: %w", SysctlName(ipv6Conf(p.name, "disable_ipv6")), err))
			continue
		}
		slog.Debug("port ipv6 off", "port", p.name, "was", p.old)
	}
	return errors.Join(errs...)
}

// ifindexSock looks interfaces' indexes up in the daemon's network
// namespace, on one socket opened at the first lookup. An ioctl, not
// sysfs: /sys shows the namespace it was mounted in, which is not the
// daemon's when it was started with nsenter --net; and not a netlink
// request, which costs ten times as much per port in a burst.
type ifindexSock struct {
	fd   int
	open bool
}

// index returns name's ifindex: ENODEV when there is no interface by that
// name, another error when it could not be asked.
func (s *ifindexSock) index(name string) (int, error) {
	if !s.open {
		fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return 0, err
		}
		s.fd, s.open = fd, true
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, unix.ENODEV // no interface can have that name
	}
	if err := unix.IoctlIfreq(s.fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, err
	}
	return int(ifr.Uint32()), nil
}

// close closes the socket, if one was opened.
func (s *ifindexSock) close() {
	if s.open {
		unix.Close(s.fd)
		s.open = false
	}
}

// journaledPort is a port's entry in the port journal: its disable_ipv6
// from before v6dp, and its ifindex (0 in the entries of versions that
// did not record it). The index is what identifies the port: a port
// renamed after v6dp turned its IPv6 off is restored under its new name,
// and a new port that took a gone port's name is not touched.
type journaledPort struct {
	Old   string
	Index int
}

// portJournal holds the ports whose disable_ipv6 v6dp set, a line each:
// the port's name, its old value and its ifindex (older versions wrote
// no ifindex; such a line is taken by name). Appended to, one write for a burst
// of ports: rewriting journal.json, or creating a file per port, cost
// O(ports) or a directory entry each at thousands of ports. The periodic
// resync rewrites it without the ports that are gone. portJournalDir is
// the file-per-port layout of earlier versions, still read and cleaned.
const (
	portJournal    = "ports.journal"
	portJournalDir = "ports"
)

// portJournalMu orders the journal's appends (the port worker's, the
// repair's) and the resync's rewrite, so that no append goes to a file
// that is being replaced.
var portJournalMu sync.Mutex

// JournalPorts records the ports' old disable_ipv6 values (by port name)
// before v6dp changes them.
func (s Store) JournalPorts(olds map[string]journaledPort) error {
	portJournalMu.Lock()
	defer portJournalMu.Unlock()
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(s.path(portJournal), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	var b strings.Builder
	// A line cut short by a crash must not run into this batch's first,
	// nor be completed by it into a line that reads whole (a torn index
	// is another interface's): "!" spoils it for the parser.
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		var last [1]byte
		if _, err := f.ReadAt(last[:], st.Size()-1); err != nil || last[0] != '\n' {
			b.WriteString("!\n")
		}
	}
	for name, p := range olds {
		b.WriteString(portLine(name, p))
	}
	_, err = f.WriteString(b.String())
	return errors.Join(err, f.Close())
}

// portLine is a port's line in the port journal (parsePortLine reads it).
func portLine(name string, p journaledPort) string {
	if p.Index > 0 {
		return fmt.Sprintf("%s %s %d\n", name, p.Old, p.Index)
	}
	return fmt.Sprintf("%s %s\n", name, p.Old)
}

// parsePortLine reads one line of the port journal; ok is false for a
// line that is not whole (a torn line restores nothing).
func parsePortLine(line string) (name string, p journaledPort, ok bool) {
	f := strings.Fields(line)
	if len(f) < 2 || len(f) > 3 || f[1] != "0" && f[1] != "1" {
		return "", p, false
	}
	p.Old = f[1]
	if len(f) == 3 {
		n, err := strconv.Atoi(f[2])
		if err != nil || n <= 0 {
			return "", p, false
		}
		p.Index = n
	}
	return f[0], p, true
}

// portEntry is one port of the journal, as journaled.
type portEntry struct {
	Name string
	journaledPort
}

// id is what tells two entries' ports apart: the ifindex, or the name in
// an entry without one.
func (e portEntry) id() string {
	if e.Index > 0 {
		return "#" + strconv.Itoa(e.Index)
	}
	return e.Name
}

// journaledPorts returns the journal's ports in the order journaled, one
// entry a port: the first, the one from before v6dp.
func (s Store) journaledPorts() []portEntry {
	var out []portEntry
	seen := map[string]bool{}
	add := func(e portEntry) {
		if !seen[e.id()] {
			seen[e.id()] = true
			out = append(out, e)
		}
	}
	if ents, err := os.ReadDir(s.path(portJournalDir)); err == nil {
		for _, e := range ents {
			if b, err := os.ReadFile(filepath.Join(s.path(portJournalDir), e.Name())); err == nil {
				add(portEntry{Name: e.Name(), journaledPort: journaledPort{Old: strings.TrimSpace(string(b))}})
			}
		}
	}
	b, err := os.ReadFile(s.path(portJournal))
	if err != nil {
		return out
	}
	lines := strings.Split(string(b), "\n")
	// What follows the last newline is a line a crash cut short (or
	// nothing): it restores nothing.
	for _, line := range lines[:len(lines)-1] {
		if name, p, ok := parsePortLine(line); ok {
			add(portEntry{Name: name, journaledPort: p})
		}
	}
	return out
}

// portNames finds where the journal's ports are now. A port that still
// has its journaled name and index (the common case) costs one ioctl; a
// renamed or gone one makes it dump the host's links, once.
type portNames struct {
	ifindexSock
	links map[int]string // by index, after the one dump
	err   error
}

// now is the name the entry's port has now, and whether it is still
// there: by its index where the entry has one, else by name. err is the
// link dump's, when one was needed and failed.
func (r *portNames) now(e portEntry) (string, bool, error) {
	idx, err := r.index(e.Name)
	if err != nil && !errors.Is(err, unix.ENODEV) {
		return "", false, err // not asked: nothing is dropped
	}
	if e.Index <= 0 {
		return e.Name, idx > 0, nil
	}
	if idx == e.Index {
		return e.Name, true, nil
	}
	if r.links == nil && r.err == nil {
		ifs, err := net.Interfaces()
		r.err = err
		r.links = make(map[int]string, len(ifs))
		for _, i := range ifs {
			r.links[i.Index] = i.Name
		}
	}
	if r.err != nil {
		return "", false, r.err
	}
	n, ok := r.links[e.Index]
	return n, ok, nil
}

// forgetGonePortFiles drops the entries of ports that no longer exist (an
// interface name may come back later as another port, with its own old
// value), and writes a renamed port's entry under its new name.
func (s Store) forgetGonePortFiles() {
	portJournalMu.Lock()
	defer portJournalMu.Unlock()
	b, _ := os.ReadFile(s.path(portJournal))
	_, dirErr := os.Stat(s.path(portJournalDir))
	if len(b) == 0 && dirErr != nil {
		return
	}
	var r portNames
	defer r.close()
	var keep strings.Builder
	for _, e := range s.journaledPorts() {
		now, there, err := r.now(e)
		if err != nil {
			return // nothing is dropped on a failed dump
		}
		if !there {
			continue
		}
		keep.WriteString(portLine(now, e.journaledPort))
	}
	// The old layout's entries are folded into the file; gone ports,
	// torn lines and a port's later lines are dropped.
	if dirErr != nil && keep.String() == string(b) {
		return
	}
	tmp := s.path(portJournal + ".tmp")
	if err := os.WriteFile(tmp, []byte(keep.String()), 0o644); err != nil {
		return
	}
	if err := os.Rename(tmp, s.path(portJournal)); err != nil {
		return
	}
	if dirErr == nil {
		_ = os.RemoveAll(s.path(portJournalDir)) // now in the file
	}
}

// forgetGonePorts drops the journal's entries for interfaces that no
// longer exist, so that the journal of a host where containers come and go
// for months holds the ports of today, not of every container ever run. A
// sysctl of a gone interface has nothing left to restore.
func forgetGonePorts(j *Journal) {
	for key := range j.Sysctls {
		dir, knob := filepath.Split(key)
		if knob != "disable_ipv6" || !strings.HasPrefix(dir, "net/ipv6/conf/") {
			continue
		}
		if _, err := os.Stat(filepath.Dir(sysctlPath(key))); errors.Is(err, fs.ErrNotExist) {
			delete(j.Sysctls, key)
		}
	}
}
