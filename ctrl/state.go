package ctrl

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/v6dp/v6dp/ctrl/rules"
)

// Journal records what v6dp changed on the host, so that `v6dp cleanup`
// removes exactly that and nothing else, and a restarted daemon knows what
// it made before. It lives in the state directory as journal.json.
type Journal struct {
	// CreatedBridge is set when v6dp created the bridge (else it adopted it).
	CreatedBridge string `json:"created_bridge,omitempty"`
	// AddedAddrs are "dev addr/len" strings v6dp added.
	AddedAddrs []string `json:"added_addrs,omitempty"`
	// AddedRoutes are "dev prefix" strings v6dp added.
	AddedRoutes []string `json:"added_routes,omitempty"`
	// Sysctls maps a sysctl path to the value it had before v6dp changed it
	// (the global ones, the uplink's, the bridge's and each adopted port's
	// disable_ipv6).
	Sysctls map[string]string `json:"sysctls,omitempty"`
	// SysctlsSet holds, for the sysctls of Sysctls that cleanup restores
	// only if nobody changed them since (the neighbour table's
	// gc_thresh), the value v6dp set.
	SysctlsSet map[string]string `json:"sysctls_set,omitempty"`
	// ProxyUplink is the uplink v6dp put kernel proxy entries on.
	ProxyUplink string `json:"proxy_uplink,omitempty"`
	// ProxyPrefix is the prefix those entries belong to.
	ProxyPrefix string `json:"proxy_prefix,omitempty"`
	// EnginePrefixes are the prefixes of engines' networks (--network)
	// v6dp put proxy entries on the uplink for.
	EnginePrefixes []string `json:"engine_prefixes,omitempty"`
	// ExtraProxies are "uplink prefix" strings: the proxy entries v6dp put
	// on the further uplinks (BRIDGE=PREFIX@UPLINK).
	ExtraProxies []string `json:"extra_proxies,omitempty"`
	// PinDir is where v6dp pinned BPF objects.
	PinDir string `json:"pin_dir,omitempty"`
}

// Runtime is what the running daemon tells `v6dp status`.
type Runtime struct {
	PID        int       `json:"pid"`
	Started    time.Time `json:"started"`
	Config     Config    `json:"config"`
	Addressing string    `json:"addressing"`
	Dataplane  string    `json:"dataplane"`
	Attach     string    `json:"attach,omitempty"`
	Reason     string    `json:"reason"`
	// Version is the daemon's build (v6dp version).
	Version string `json:"version,omitempty"`
	// LastRepair is the last thing the daemon put back; Repairs counts them.
	LastRepair *Repair `json:"last_repair,omitempty"`
	Repairs    int     `json:"repairs,omitempty"`
	// Hooks says where each job of the dataplane runs, and why.
	Hooks []HookChoice `json:"hooks,omitempty"`
}

// ContainerRecord marks a container that `v6dp container add` made.
type ContainerRecord struct {
	Name    string    `json:"name"`
	Netns   string    `json:"netns"`
	HostIf  string    `json:"host_if"`
	MAC     string    `json:"mac"`
	Addr    string    `json:"addr"`
	Bridge  string    `json:"bridge"`
	Created time.Time `json:"created"`
}

// ConflictRecord is an address a second endpoint claims: the daemon's
// decision (the first keeps it), for `v6dp status`.
type ConflictRecord struct {
	Addr     netip.Addr `json:"addr"`
	Owner    string     `json:"owner"`    // host-side veth that keeps it
	Claimant string     `json:"claimant"` // host-side veth that gets nothing
}

// Store is the state directory.
type Store struct{ Dir string }

func (s Store) path(name string) string { return filepath.Join(s.Dir, name) }

func (s Store) read(name string, v any) error {
	b, err := os.ReadFile(s.path(name))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", s.path(name), err)
	}
	return nil
}

// write replaces the file atomically so a crash never leaves half a file.
func (s Store) write(name string, v any) error {
	if err := os.MkdirAll(filepath.Dir(s.path(name)), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := s.path(name) + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, s.path(name))
}

// Journal returns the journal, empty if there is none yet.
func (s Store) Journal() (*Journal, error) {
	j := &Journal{}
	if err := s.read("journal.json", j); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if j.Sysctls == nil {
		j.Sysctls = map[string]string{}
	}
	return j, nil
}

// SaveJournal writes the journal.
func (s Store) SaveJournal(j *Journal) error { return s.write("journal.json", j) }

// Runtime returns the running daemon's runtime record, or an error if no
// daemon is running.
func (s Store) Runtime() (*Runtime, error) {
	r := &Runtime{}
	if err := s.read("daemon.json", r); err != nil {
		return nil, err
	}
	if r.PID <= 0 || unix.Kill(r.PID, 0) != nil {
		return r, fmt.Errorf("daemon (pid %d) is not running", r.PID)
	}
	return r, nil
}

// SaveConflicts records the current address conflicts.
func (s Store) SaveConflicts(cs []ConflictRecord) error { return s.write("conflicts.json", cs) }

// Conflicts returns the conflicts the daemon recorded last (none if none).
func (s Store) Conflicts() ([]ConflictRecord, error) {
	var cs []ConflictRecord
	if err := s.read("conflicts.json", &cs); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return cs, nil
}

// SaveRuntime writes the daemon's runtime record.
func (s Store) SaveRuntime(r *Runtime) error { return s.write("daemon.json", r) }

// LastConfig returns the configuration of the last daemon that ran with this
// state directory, which the container commands use as their defaults.
func (s Store) LastConfig() (*Config, error) {
	r := &Runtime{}
	if err := s.read("daemon.json", r); err != nil {
		return nil, err
	}
	if r.Config.MaxAddrsPerPort == 0 {
		// Written by a daemon from before the setting existed.
		r.Config.MaxAddrsPerPort = rules.DefaultMaxAddrs
	}
	return &r.Config, nil
}

// Containers lists the containers v6dp made.
func (s Store) Containers() ([]ContainerRecord, error) {
	ents, err := os.ReadDir(s.path("containers"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []ContainerRecord
	for _, e := range ents {
		var c ContainerRecord
		if filepath.Ext(e.Name()) != ".json" {
			continue
		}
		if err := s.read(filepath.Join("containers", e.Name()), &c); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// SaveContainer records a container v6dp made.
func (s Store) SaveContainer(c ContainerRecord) error {
	return s.write(filepath.Join("containers", c.Name+".json"), c)
}

// DeleteContainer forgets a container.
func (s Store) DeleteContainer(name string) error {
	err := os.Remove(s.path(filepath.Join("containers", name+".json")))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// Lock takes an exclusive lock on the state directory for commands that
// allocate addresses, so two `container add` never pick the same one.
func (s Store) Lock() (unlock func(), err error) {
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(s.path("lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { _ = unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
}
