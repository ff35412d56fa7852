package ctrl

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
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
		f         *os.File
	}
	var todo []port
	var errs []error
	defer func() {
		for _, p := range todo {
			p.f.Close()
		}
	}()
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
		todo = append(todo, port{name: name, old: old, f: f})
	}
	if len(todo) == 0 {
		return errors.Join(errs...)
	}
	olds := make(map[string]string, len(todo))
	for _, p := range todo {
		olds[p.name] = p.old
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

// portJournal holds the ports whose disable_ipv6 v6dp set, a line each:
// the port's name and its old value. Appended to, one write for a burst
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

// JournalPorts records the ports' old disable_ipv6 values (port name to
// value) before v6dp changes them.
func (s Store) JournalPorts(olds map[string]string) error {
	portJournalMu.Lock()
	defer portJournalMu.Unlock()
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(s.path(portJournal), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	var b strings.Builder
	// A line cut short by a crash must not run into this batch's first.
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		b.WriteString("\n")
	}
	for name, old := range olds {
		fmt.Fprintf(&b, "%s %s\n", name, old)
	}
	_, err = f.WriteString(b.String())
	return errors.Join(err, f.Close())
}

// journaledPorts returns the ports' old disable_ipv6 values, by port name;
// the first value journaled for a port is the one from before v6dp.
func (s Store) journaledPorts() map[string]string {
	out := map[string]string{}
	if ents, err := os.ReadDir(s.path(portJournalDir)); err == nil {
		for _, e := range ents {
			if b, err := os.ReadFile(filepath.Join(s.path(portJournalDir), e.Name())); err == nil {
				out[e.Name()] = strings.TrimSpace(string(b))
			}
		}
	}
	b, err := os.ReadFile(s.path(portJournal))
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, old, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok || name == "" || old != "0" && old != "1" {
			// Only whole lines: a torn one restores nothing.
			continue
		}
		if _, seen := out[name]; !seen {
			out[name] = old
		}
	}
	return out
}

// forgetGonePortFiles drops the entries of ports that no longer exist (an
// interface name may come back later as another port, with its own old
// value).
func (s Store) forgetGonePortFiles() {
	portJournalMu.Lock()
	defer portJournalMu.Unlock()
	gone := func(port string) bool {
		_, err := os.Stat(filepath.Dir(sysctlPath(ipv6Conf(port, "disable_ipv6"))))
		return errors.Is(err, fs.ErrNotExist)
	}
	if ents, err := os.ReadDir(s.path(portJournalDir)); err == nil {
		for _, e := range ents {
			if gone(e.Name()) {
				_ = os.Remove(filepath.Join(s.path(portJournalDir), e.Name()))
			}
		}
		_ = os.Remove(s.path(portJournalDir)) // only once empty
	}
	b, err := os.ReadFile(s.path(portJournal))
	if err != nil {
		return
	}
	var keep strings.Builder
	dropped := false
	seen := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		name, old, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok || name == "" || old != "0" && old != "1" {
			dropped = dropped || strings.TrimSpace(line) != ""
			continue
		}
		if seen[name] || gone(name) {
			dropped = true
			continue
		}
		seen[name] = true
		keep.WriteString(strings.TrimSpace(line) + "\n")
	}
	if !dropped {
		return
	}
	tmp := s.path(portJournal + ".tmp")
	if err := os.WriteFile(tmp, []byte(keep.String()), 0o644); err == nil {
		_ = os.Rename(tmp, s.path(portJournal))
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
