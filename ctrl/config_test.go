package ctrl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func valid() Config {
	c := DefaultConfig()
	c.IPv6 = true
	c.FixedCIDRv6 = "2001:db8:1::/64"
	c.Uplink = "eth0"
	c.NDPProxy = true
	return c
}

func TestValidateRules(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"ipv6 off", func(c *Config) { c.IPv6 = false }, "ipv6: must be enabled"},
		{"no prefix", func(c *Config) { c.FixedCIDRv6 = "" }, "fixed-cidr-v6: required"},
		{"not a prefix", func(c *Config) { c.FixedCIDRv6 = "banana" }, `fixed-cidr-v6: "banana" is not an IPv6 prefix`},
		{"ipv4 prefix", func(c *Config) { c.FixedCIDRv6 = "10.0.0.0/8" }, `fixed-cidr-v6: "10.0.0.0/8" is not an IPv6 prefix`},
		{"host bits", func(c *Config) { c.FixedCIDRv6 = "2001:db8:1::1/64" }, "fixed-cidr-v6: 2001:db8:1::1/64 has host bits set; did you mean 2001:db8:1::/64?"},
		{"link-local prefix", func(c *Config) { c.FixedCIDRv6 = "fe80::/64" }, "fixed-cidr-v6: fe80::/64 is not a global or unique-local unicast prefix"},
		{"multicast prefix", func(c *Config) { c.FixedCIDRv6 = "ff00::/8" }, "fixed-cidr-v6: ff00::/8 is not a global or unique-local unicast prefix"},
		{"/127", func(c *Config) { c.FixedCIDRv6 = "2001:db8::/127" }, "fixed-cidr-v6: /127 leaves no room for containers"},
		{"mac with /96", func(c *Config) { c.FixedCIDRv6 = "2001:db8::/96"; c.Addressing = "mac" }, "addressing: mac needs fixed-cidr-v6 of /80 or shorter"},
		{"bad addressing", func(c *Config) { c.Addressing = "random" }, `addressing: "random" is not one of auto, mac, sequential`},
		{"gateway not ipv6", func(c *Config) { c.DefaultGatewayV6 = "192.0.2.1" }, `default-gateway-v6: "192.0.2.1" is not an IPv6 address`},
		{"gateway with zone", func(c *Config) { c.DefaultGatewayV6 = "fe80::1%eth0" }, "default-gateway-v6: \"fe80::1%eth0\": no zone allowed"},
		{"gateway multicast", func(c *Config) { c.DefaultGatewayV6 = "ff02::1" }, "default-gateway-v6: ff02::1 is not a unicast address"},
		{"gateway outside", func(c *Config) { c.DefaultGatewayV6 = "2001:db8:2::1" }, "default-gateway-v6: 2001:db8:2::1 is neither link-local nor inside fixed-cidr-v6 2001:db8:1::/64"},
		{"gateway anycast", func(c *Config) { c.DefaultGatewayV6 = "2001:db8:1::" }, "default-gateway-v6: 2001:db8:1:: is the subnet-router anycast address"},
		{"bridge name", func(c *Config) { c.Bridge = "a very long bridge name" }, `bridge: "a very long bridge name" is not a valid interface name`},
		{"uplink name", func(c *Config) { c.Uplink = "eth/0" }, `uplink: "eth/0" is not a valid interface name`},
		{"uplink is bridge", func(c *Config) { c.Uplink = "docker0" }, `uplink: "docker0" is also the bridge`},
		{"proxy without uplink", func(c *Config) { c.Uplink = "" }, "uplink: required with ndp-proxy"},
		{"xdp without uplink", func(c *Config) { c.Uplink = ""; c.NDPProxy = false; c.Dataplane = "xdp" }, "uplink: required with dataplane xdp"},
		{"bad dataplane", func(c *Config) { c.Dataplane = "dpdk" }, `dataplane: "dpdk" is not one of auto, kernel, xdp, tc`},
		{"bad na-source", func(c *Config) { c.NASource = "router" }, `na-source: "router" is not one of target, link-local`},
		{"relative state dir", func(c *Config) { c.StateDir = "run/v6dp" }, `state-dir: "run/v6dp" must be an absolute path`},
		{"pin dir outside bpffs", func(c *Config) { c.PinDir = "/tmp/pins" }, `pin-dir: "/tmp/pins" must be a directory under /sys/fs/bpf/`},
		{"relative netns dir", func(c *Config) { c.NetnsDirs = []string{"netns"} }, `netns-dirs: "netns" must be an absolute path`},
		{"bad metrics address", func(c *Config) { c.MetricsAddr = "9662" }, `metrics-addr: "9662" is not host:port`},
		{"resync too short", func(c *Config) { c.Resync.Duration = time.Millisecond }, "resync-interval: 1ms is too short"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.mod(&c)
			_, err := c.Validate()
			if err == nil {
				t.Fatalf("want error %q, got none", tt.want)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error:\n got  %q\n want %q...", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

func TestValidateResolves(t *testing.T) {
	tests := []struct {
		name, prefix, addressing, gateway string
		wantAddressing, wantGateway       string
	}{
		{"auto /64 is mac", "2001:db8:1::/64", "auto", "", "mac", "fe80::1"},
		{"auto /80 is mac", "2001:db8:23:42:1::/80", "auto", "", "mac", "fe80::1"},
		{"auto /125 is sequential", "2001:db8::c008/125", "auto", "", "sequential", "fe80::1"},
		{"sequential /64", "2001:db8:1::/64", "sequential", "2001:db8:1::1", "sequential", "2001:db8:1::1"},
		{"link-local gateway", "2001:db8:1::/64", "mac", "fe80::2", "mac", "fe80::2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			c.FixedCIDRv6, c.Addressing, c.DefaultGatewayV6 = tt.prefix, tt.addressing, tt.gateway
			r, err := c.Validate()
			if err != nil {
				t.Fatal(err)
			}
			got := []string{r.Addressing, r.Gateway.String()}
			if d := cmp.Diff([]string{tt.wantAddressing, tt.wantGateway}, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestLoadConfigFile(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "c.json")
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c := DefaultConfig()
	// dockerd's own daemon.json works: its keys v6dp does not use are accepted.
	err := LoadConfigFile(write(`{"ipv6": true, "fixed-cidr-v6": "2001:db8:1::/64", "ip-forward": false,
		"default-gateway-v6": "fe80::1", "log-driver": "journald", "data-root": "/var/lib/docker",
		"cgroup-parent": "/docker", "exec-opts": ["native.cgroupdriver=systemd"], "exec-root": "/srv/docker-exec"}`), &c)
	if err != nil {
		t.Fatal(err)
	}
	if !c.IPv6 || c.FixedCIDRv6 != "2001:db8:1::/64" || c.IPForward || c.DefaultGatewayV6 != "fe80::1" || c.Bridge != "docker0" {
		t.Errorf("config not read as written: %+v", c)
	}
	if d := c.NetnsDirs[len(c.NetnsDirs)-1]; d != "/srv/docker-exec/netns" {
		t.Errorf("exec-root did not add its netns directory: %v", c.NetnsDirs)
	}
	for _, tt := range []struct{ name, body, want string }{
		{"typo", `{"fixed-cidr6": "2001:db8::/64"}`, `unknown key "fixed-cidr6"`},
		{"wrong type", `{"ipv6": "yes"}`, `key "ipv6": want bool, got string`},
		{"not an object", `[1,2]`, "not a JSON object"},
		{"bad duration", `{"resync-interval": "often"}`, `key "resync-interval"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			err := LoadConfigFile(write(tt.body), &c)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if err := LoadConfigFile(filepath.Join(dir, "missing.json"), &c); err == nil {
		t.Errorf("missing file: want an error")
	}
}
