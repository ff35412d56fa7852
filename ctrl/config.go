package ctrl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/v6dp/v6dp/ctrl/rules"
)

// Dataplanes the daemon can run.
const (
	DataplaneAuto   = "auto"
	DataplaneKernel = "kernel"
	DataplaneXDP    = "xdp"
	DataplaneTC     = "tc"
)

// NA source address choices for the BPF responder.
const (
	NASourceTarget    = "target"
	NASourceLinkLocal = "link-local"
)

// Defaults shared by the daemon and the container commands.
const (
	DefaultStateDir = "/run/v6dp"
	DefaultPinDir   = "/sys/fs/bpf/v6dp"
)

// BridgeLinkLocal is the bridge's address and the containers' default
// gateway, as Docker set it when the original document was written.
var BridgeLinkLocal = netip.MustParseAddr("fe80::1")

// DefaultNetnsDirs are searched for the network namespaces of containers:
// v6dp's own (iproute2's) and Docker's exec-root.
var DefaultNetnsDirs = []string{"/run/netns", "/run/docker/netns", "/var/run/docker/netns"}

// Config is the daemon's configuration. JSON keys follow dockerd's
// daemon.json where dockerd has the same setting.
type Config struct {
	IPv6             bool     `json:"ipv6"`
	FixedCIDRv6      string   `json:"fixed-cidr-v6"`
	DefaultGatewayV6 string   `json:"default-gateway-v6,omitempty"`
	IPForward        bool     `json:"ip-forward"`
	Bridge           string   `json:"bridge"`
	Uplink           string   `json:"uplink,omitempty"`
	NDPProxy         bool     `json:"ndp-proxy"`
	Addressing       string   `json:"addressing"`
	Dataplane        string   `json:"dataplane"`
	NASource         string   `json:"na-source"`
	StateDir         string   `json:"state-dir"`
	PinDir           string   `json:"pin-dir"`
	NetnsDirs        []string `json:"netns-dirs"`
	Resync           Duration `json:"resync-interval"`
	MetricsAddr      string   `json:"metrics-addr,omitempty"`
	MaxAddrsPerPort  int      `json:"max-addrs-per-port"`
	// Network are further networks, "BRIDGE=PREFIX", of a container
	// engine (see Network).
	Network []string `json:"network,omitempty"`
	// NetworkParent: every bridge with an address in this prefix is an
	// engine's network too (see parentNetworks).
	NetworkParent string `json:"network-parent,omitempty"`
	Cluster
	// NS flood limits on the uplink, NS per second (0: no limit).
	NSRatePerSource uint64 `json:"ns-rate-per-source"`
	NSRateGlobal    uint64 `json:"ns-rate-global"`
	// NDPHook overrides where auto answers NS: auto, xdp or tc.
	NDPHook string `json:"ndp-hook,omitempty"`
}

// NS flood limits (RFC 6583). A router resolving every container after a
// restart sends one NS per address, so thousands per second from one
// source are legitimate; a flood well beyond that is not. The global
// limit keeps answers to at most ~70 Mbit/s of 86-byte frames.
const (
	DefaultNSRatePerSource = 10000
	DefaultNSRateGlobal    = 100000
	// nsRateBurstMax caps the burst: at most this many NS at once over
	// the sustained rate, per bucket.
	nsRateBurstMax = 1000
)

// NSRateBurst is the burst of the NS buckets: a tenth of a second at the
// per-source rate, at most nsRateBurstMax.
func (c *Config) NSRateBurst() uint64 {
	b := c.NSRatePerSource / 10
	if b == 0 {
		b = c.NSRateGlobal / 10
	}
	if b > nsRateBurstMax {
		b = nsRateBurstMax
	}
	if b == 0 {
		b = 1
	}
	return b
}

// Duration is a time.Duration that reads and writes as "10s" in JSON.
type Duration struct{ time.Duration }

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("want a duration string such as \"10s\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// DefaultConfig returns the built-in defaults (dockerd's where dockerd has
// one); the state and pin directories are the caller's network namespace's
// (NetnsDefaults).
func DefaultConfig() Config {
	stateDir, pinDir := NetnsDefaults()
	return Config{
		IPForward:  true,
		Bridge:     rules.DefaultBridge,
		Addressing: rules.AddressingAuto,
		Dataplane:  DataplaneAuto,
		NASource:   NASourceTarget,
		StateDir:   stateDir,
		PinDir:     pinDir,
		NetnsDirs:  append([]string(nil), DefaultNetnsDirs...),
		Resync:     Duration{10 * time.Second},
		// Published addresses per container port (rules.Port.MaxAddrs).
		MaxAddrsPerPort: rules.DefaultMaxAddrs,

		NSRatePerSource: DefaultNSRatePerSource,
		NSRateGlobal:    DefaultNSRateGlobal,
	}
}

// dockerdKeys are daemon.json keys of dockerd that v6dp does not use but
// accepts, so that dockerd's own daemon.json can be given with --config.
var dockerdKeys = map[string]bool{}

func init() {
	// dockerd 20.10's daemon.json keys (dockerd --validate knows them all).
	for _, k := range strings.Fields(`allow-nondistributable-artifacts api-cors-header
		authorization-plugins bip bridge builder cgroup-parent cluster-advertise
		cluster-store cluster-store-opts containerd containerd-namespace
		containerd-plugins-namespace cpu-rt-period cpu-rt-runtime data-root debug
		default-address-pools default-cgroupns-mode default-gateway default-ipc-mode
		default-runtime default-shm-size default-ulimits deprecated-key-path dns
		dns-opts dns-search exec-opts exec-root experimental features fixed-cidr
		group hosts icc init init-path insecure-registries ip ip-masq ip6tables
		iptables ipv6 labels live-restore log-driver log-format log-level log-opts
		max-concurrent-downloads max-concurrent-uploads max-download-attempts mtu
		no-new-privileges node-generic-resources oom-score-adjust pidfile raw-logs
		registry-mirrors runtimes seccomp-profile selinux-enabled shutdown-timeout
		storage-driver storage-opts swarm-default-advertise-addr tls tlscacert
		tlscert tlskey tlsverify userland-proxy userland-proxy-path userns-remap`) {
		dockerdKeys[k] = true
	}
}

// LoadConfigFile reads a JSON config file over cfg. Unknown keys are an
// error unless dockerd knows them, so a typo never silently loses a setting.
func LoadConfigFile(path string, cfg *Config) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return fmt.Errorf("config %s: not a JSON object: %v", path, err)
	}
	known := map[string]bool{}
	for _, k := range configKeys() {
		known[k] = true
	}
	var unknown []string
	for k := range raw {
		if !known[k] && !dockerdKeys[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("config %s: unknown key %q (known: %s)", path, unknown[0], strings.Join(configKeys(), ", "))
	}
	// dockerd keeps its containers' namespaces under exec-root/netns.
	if v, ok := raw["exec-root"]; ok {
		var root string
		if json.Unmarshal(v, &root) == nil && strings.HasPrefix(root, "/") {
			cfg.NetnsDirs = append(cfg.NetnsDirs, filepath.Join(root, "netns"))
		}
	}
	for k, v := range raw {
		if dockerdKeys[k] && !known[k] {
			continue
		}
		one := map[string]json.RawMessage{k: v}
		b, _ := json.Marshal(one)
		dec := json.NewDecoder(bytes.NewReader(b))
		if err := dec.Decode(cfg); err != nil {
			return fmt.Errorf("config %s: key %q: %v", path, k, cleanJSONError(err))
		}
	}
	return nil
}

func cleanJSONError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("want %s, got %s", te.Type, te.Value)
	}
	return err.Error()
}

func configKeys() []string {
	return []string{"ipv6", "fixed-cidr-v6", "default-gateway-v6", "ip-forward", "bridge", "uplink",
		"ndp-proxy", "addressing", "dataplane", "na-source", "state-dir", "pin-dir", "netns-dirs",
		"resync-interval", "metrics-addr", "max-addrs-per-port", "network", "network-parent", "peers", "bgp-routers", "bgp-asn",
		"bgp-peer-asn", "bgp-router-id", "bgp-announce-aggregate"}
}

// Resolved is a validated Config with its addresses parsed.
type Resolved struct {
	Config
	Prefix     netip.Prefix
	Gateway    netip.Addr // fe80::1 unless default-gateway-v6 is set
	Addressing string     // mac or sequential: auto resolved
	// Networks are the networks served: the first is Bridge and Prefix,
	// the others an engine's (--network).
	Networks []Network
	// Parent is --network-parent (invalid when not given).
	Parent netip.Prefix
}

// Validate checks every field and returns the first rule broken, naming the
// field as the user wrote it (the flag and the JSON key are the same word).
func (c Config) Validate() (*Resolved, error) {
	r := &Resolved{Config: c}
	if !c.IPv6 {
		return nil, errors.New("ipv6: must be enabled (--ipv6 or \"ipv6\": true); v6dp only manages IPv6")
	}
	if c.FixedCIDRv6 == "" {
		return nil, errors.New("fixed-cidr-v6: required: the prefix containers get their addresses from")
	}
	p, err := netip.ParsePrefix(c.FixedCIDRv6)
	if err != nil || !p.Addr().Is6() || p.Addr().Is4In6() {
		return nil, fmt.Errorf("fixed-cidr-v6: %q is not an IPv6 prefix (want e.g. 2001:db8:1::/64)", c.FixedCIDRv6)
	}
	if p.Masked() != p {
		return nil, fmt.Errorf("fixed-cidr-v6: %s has host bits set; did you mean %s?", p, p.Masked())
	}
	if p.Addr().IsLinkLocalUnicast() || p.Addr().IsMulticast() || p.Addr().IsLoopback() {
		return nil, fmt.Errorf("fixed-cidr-v6: %s is not a global or unique-local unicast prefix", p)
	}
	if p.Bits() > 126 {
		return nil, fmt.Errorf("fixed-cidr-v6: /%d leaves no room for containers (at most /126)", p.Bits())
	}
	r.Prefix = p
	if r.Addressing, err = rules.ResolveAddressing(c.Addressing, p); errors.Is(err, rules.ErrMACPrefix) {
		return nil, fmt.Errorf("addressing: mac needs fixed-cidr-v6 of /80 or shorter to hold a 48-bit MAC, %s is /%d (use --addressing sequential)", p, p.Bits())
	} else if err != nil {
		return nil, fmt.Errorf("addressing: %q is not one of auto, mac, sequential", c.Addressing)
	}
	r.Gateway = BridgeLinkLocal
	if c.DefaultGatewayV6 != "" {
		g, err := netip.ParseAddr(c.DefaultGatewayV6)
		if err != nil || !g.Is6() || g.Is4In6() {
			return nil, fmt.Errorf("default-gateway-v6: %q is not an IPv6 address", c.DefaultGatewayV6)
		}
		if g.Zone() != "" {
			return nil, fmt.Errorf("default-gateway-v6: %q: no zone allowed, the gateway is always on the container's eth0", c.DefaultGatewayV6)
		}
		if g.IsMulticast() || g.IsUnspecified() || g.IsLoopback() {
			return nil, fmt.Errorf("default-gateway-v6: %s is not a unicast address", g)
		}
		if !g.IsLinkLocalUnicast() && !p.Contains(g) {
			return nil, fmt.Errorf("default-gateway-v6: %s is neither link-local nor inside fixed-cidr-v6 %s", g, p)
		}
		if g == p.Addr() {
			return nil, fmt.Errorf("default-gateway-v6: %s is the subnet-router anycast address of %s", g, p)
		}
		r.Gateway = g
	}
	if !rules.ValidIfName(c.Bridge) {
		return nil, fmt.Errorf("bridge: %q is not a valid interface name (1-15 characters, no spaces or slashes)", c.Bridge)
	}
	if c.Uplink != "" && !rules.ValidIfName(c.Uplink) {
		return nil, fmt.Errorf("uplink: %q is not a valid interface name (1-15 characters, no spaces or slashes)", c.Uplink)
	}
	if c.Uplink != "" && c.Uplink == c.Bridge {
		return nil, fmt.Errorf("uplink: %q is also the bridge", c.Uplink)
	}
	if c.NDPProxy && c.Uplink == "" {
		return nil, errors.New("uplink: required with ndp-proxy: the interface the router solicits on")
	}
	switch c.Dataplane {
	case DataplaneAuto, DataplaneKernel, DataplaneXDP, DataplaneTC:
	default:
		return nil, fmt.Errorf("dataplane: %q is not one of auto, kernel, xdp, tc", c.Dataplane)
	}
	switch c.NDPHook {
	case "", DataplaneAuto:
	case DataplaneXDP, DataplaneTC:
		if c.Dataplane != DataplaneAuto {
			return nil, fmt.Errorf("ndp-hook: %s needs dataplane auto (dataplane %s puts every job on one hook)", c.NDPHook, c.Dataplane)
		}
	default:
		return nil, fmt.Errorf("ndp-hook: %q is not one of auto, xdp, tc", c.NDPHook)
	}
	if c.Dataplane != DataplaneKernel && c.Dataplane != DataplaneAuto && c.Uplink == "" {
		return nil, fmt.Errorf("uplink: required with dataplane %s: the programs attach to it", c.Dataplane)
	}
	switch c.NASource {
	case NASourceTarget, NASourceLinkLocal:
	default:
		return nil, fmt.Errorf("na-source: %q is not one of target, link-local", c.NASource)
	}
	if c.StateDir == "" || !strings.HasPrefix(c.StateDir, "/") {
		return nil, fmt.Errorf("state-dir: %q must be an absolute path", c.StateDir)
	}
	if c.PinDir == "" || !strings.HasPrefix(c.PinDir, "/sys/fs/bpf/") {
		return nil, fmt.Errorf("pin-dir: %q must be a directory under /sys/fs/bpf/", c.PinDir)
	}
	for _, d := range c.NetnsDirs {
		if !strings.HasPrefix(d, "/") {
			return nil, fmt.Errorf("netns-dirs: %q must be an absolute path", d)
		}
	}
	if c.MetricsAddr != "" {
		if _, port, err := net.SplitHostPort(c.MetricsAddr); err != nil || port == "" {
			return nil, fmt.Errorf("metrics-addr: %q is not host:port (e.g. 127.0.0.1:9662 or :9662)", c.MetricsAddr)
		}
	}
	if r.Networks, err = parseNetworks(c.Network, Network{Bridge: c.Bridge, Prefix: p, Gateway: r.Gateway}, c.Uplink); err != nil {
		return nil, err
	}
	if c.NetworkParent != "" {
		pp, err := netip.ParsePrefix(c.NetworkParent)
		if err != nil || !pp.Addr().Is6() || pp.Addr().Is4In6() || pp.Masked() != pp {
			return nil, fmt.Errorf("network-parent: %q is not an IPv6 prefix without host bits (want e.g. 2001:db8::/48)", c.NetworkParent)
		}
		if pp.Addr().IsLinkLocalUnicast() || pp.Addr().IsMulticast() || pp.Addr().IsLoopback() {
			return nil, fmt.Errorf("network-parent: %s is not a global or unique-local unicast prefix", pp)
		}
		r.Parent = pp
	}
	if c.MaxAddrsPerPort < 1 || c.MaxAddrsPerPort > 1024 {
		return nil, fmt.Errorf("max-addrs-per-port: %d is out of range (1 to 1024)", c.MaxAddrsPerPort)
	}
	if c.Resync.Duration < 100*time.Millisecond {
		return nil, fmt.Errorf("resync-interval: %s is too short (at least 100ms)", c.Resync.Duration)
	}
	if err := c.Cluster.validate(r); err != nil {
		return nil, err
	}
	return r, nil
}
