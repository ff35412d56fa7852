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
	j, err := d.store.Journal()
	if err != nil {
		return err
	}
	if _, seen := j.Sysctls[key]; !seen {
		j.Sysctls[key] = old
		if err := d.store.SaveJournal(j); err != nil {
			return fmt.Errorf("journaling %s: %w", SysctlName(key), err)
		}
	}
	if err := writeSysctlQuiet(key, "1"); err != nil {
		return err
	}
	slog.Debug("port ipv6 off", "port", name, "was", old)
	return nil
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
