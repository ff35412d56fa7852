package ctrl

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// sysctlRoot is /proc/sys: it shows the network namespace of the process
// that reads it, so the daemon sees its own namespace's settings.
const sysctlRoot = "/proc/sys"

// sysctlPath is the file of a sysctl key. Keys are always paths
// ("net/ipv6/conf/eth0.100/forwarding"), never dotted: an interface name
// may contain dots (every VLAN uplink does), and in dotted notation they
// would read as extra directories.
func sysctlPath(key string) string { return sysctlPathAt(sysctlRoot, key) }

// sysctlPathAt is sysctlPath under another root (tests use a fake tree).
func sysctlPathAt(root, key string) string {
	return filepath.Join(root, filepath.Clean("/"+key))
}

// SysctlName writes a key in sysctl(8)'s dotted notation, where the dots
// inside a component (an interface name) become slashes:
// "net/ipv6/conf/eth0.100/forwarding" is "net.ipv6.conf.eth0/100.forwarding".
func SysctlName(key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		parts[i] = strings.ReplaceAll(p, ".", "/")
	}
	return strings.Join(parts, ".")
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

// setSysctl sets key to value and records the old value in the journal
// the first time v6dp changes it. It reports the change, nil if there was
// none to make.
func setSysctl(j *Journal, key, value string) (*hostChange, error) {
	old, err := ReadSysctl(key)
	if err != nil {
		return nil, fmt.Errorf("sysctl %s: %w", key, err)
	}
	if old == value {
		return nil, nil
	}
	if err := os.WriteFile(sysctlPath(key), []byte(value), 0o644); err != nil {
		return nil, fmt.Errorf("sysctl %s=%s: %w", key, value, err)
	}
	if j != nil {
		if _, seen := j.Sysctls[key]; !seen {
			j.Sysctls[key] = old
		}
	}
	return &hostChange{msg: "sysctl changed", what: "sysctl", attrs: []any{"key", SysctlName(key), "from", old, "to", value}}, nil
}

// writeSysctlQuiet sets a sysctl without journaling: for settings on
// interfaces v6dp itself created or adopted as ports.
func writeSysctlQuiet(key, value string) error {
	if err := os.WriteFile(sysctlPath(key), []byte(value), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", key, value, err)
	}
	return nil
}
