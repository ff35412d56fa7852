package ctrl

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// sysctlRoot is /proc/sys: it shows the network namespace of the process
// that reads it, so the daemon sees its own namespace's settings.
const sysctlRoot = "/proc/sys"

func sysctlPath(key string) string {
	return filepath.Join(sysctlRoot, strings.ReplaceAll(key, ".", "/"))
}

// ReadSysctl reads a sysctl such as "net/ipv6/conf/all/forwarding".
func ReadSysctl(key string) (string, error) {
	b, err := os.ReadFile(sysctlPath(key))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// ipv6Conf names a per-interface IPv6 sysctl. Interface names may contain
// dots, so the key is built as a path, not dotted.
func ipv6Conf(ifname, knob string) string { return "net/ipv6/conf/" + ifname + "/" + knob }

func ipv6Neigh(ifname, knob string) string { return "net/ipv6/neigh/" + ifname + "/" + knob }

// setSysctl sets key to value, records the old value in the journal the
// first time v6dp changes it, and logs the change from what to what.
func setSysctl(j *Journal, key, value string) error {
	old, err := ReadSysctl(key)
	if err != nil {
		return fmt.Errorf("sysctl %s: %w", key, err)
	}
	if old == value {
		return nil
	}
	if err := os.WriteFile(sysctlPath(key), []byte(value), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", key, value, err)
	}
	if j != nil {
		if _, seen := j.Sysctls[key]; !seen {
			j.Sysctls[key] = old
		}
	}
	slog.Info("sysctl changed", "key", strings.ReplaceAll(key, "/", "."), "from", old, "to", value)
	return nil
}

// writeSysctlQuiet sets a sysctl without journaling: for settings on
// interfaces v6dp itself created or adopted as ports.
func writeSysctlQuiet(key, value string) error {
	if err := os.WriteFile(sysctlPath(key), []byte(value), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", key, value, err)
	}
	return nil
}
