package ctrl

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// portIPv6Off turns IPv6 off on a bridge port the daemon adopted (one a
// container engine made; see preparePort for why). The old value goes into
// the journal before the change, so `v6dp cleanup` gives the port its IPv6
// back even if the daemon dies right after. Ports that `v6dp container add`
// made are off already and go with their container: nothing to journal.
func (d *Daemon) portIPv6Off(name string) error {
	key := ipv6Conf(name, "disable_ipv6")
	old, err := ReadSysctl(key)
	if err != nil {
		return err
	}
	if old == "1" {
		return nil
	}
	if err := d.store.JournalPort(name, old); err != nil {
		return fmt.Errorf("journaling %s: %w", SysctlName(key), err)
	}
	if err := writeSysctlQuiet(key, "1"); err != nil {
		return err
	}
	slog.Debug("port ipv6 off", "port", name, "was", old)
	return nil
}

// portJournalDir holds one file per port whose disable_ipv6 v6dp set, named
// after the port and holding the old value. Not in journal.json: a port
// joins at a time, thousands at once, and rewriting one growing file per
// port cost O(ports) each (seconds at 2000 ports); a small file each is
// O(1).
const portJournalDir = "ports"

// JournalPort records the port's disable_ipv6 before v6dp changes it, the
// first time only.
func (s Store) JournalPort(port, old string) error {
	dir := s.path(portJournalDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(dir, port), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = f.WriteString(old)
	return errors.Join(err, f.Close())
}

// journaledPorts returns the ports' old disable_ipv6 values, by port name.
func (s Store) journaledPorts() map[string]string {
	out := map[string]string{}
	ents, err := os.ReadDir(s.path(portJournalDir))
	if err != nil {
		return out
	}
	for _, e := range ents {
		if b, err := os.ReadFile(filepath.Join(s.path(portJournalDir), e.Name())); err == nil {
			out[e.Name()] = strings.TrimSpace(string(b))
		}
	}
	return out
}

// forgetGonePortFiles removes the entries of ports that no longer exist.
func (s Store) forgetGonePortFiles() {
	for port := range s.journaledPorts() {
		if _, err := os.Stat(filepath.Dir(sysctlPath(ipv6Conf(port, "disable_ipv6")))); errors.Is(err, fs.ErrNotExist) {
			_ = os.Remove(filepath.Join(s.path(portJournalDir), port))
		}
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
