package ctrl

import (
	"strings"
	"testing"
)

func TestNetworkConfig(t *testing.T) {
	base := func() Config {
		c := DefaultConfig()
		c.IPv6, c.FixedCIDRv6, c.Uplink = true, "2001:db8:0:0:1::/80", "eth0"
		return c
	}
	for _, tc := range []struct {
		name    string
		network []string
		err     string // prefix of the error; empty: valid
	}{
		{name: "none", network: nil},
		{name: "two engine networks", network: []string{"br-a=2001:db8:0:0:2::/80", "br-b=2001:db8:0:0:3::/80"}},
		{name: "no =", network: []string{"br-a"}, err: `network: "br-a" is not BRIDGE=PREFIX`},
		{name: "empty prefix", network: []string{"br-a="}, err: `network: "br-a=" is not BRIDGE=PREFIX`},
		{name: "bad bridge", network: []string{"a/b=2001:db8:0:0:2::/80"}, err: `network: "a/b=2001:db8:0:0:2::/80": "a/b" is not a valid interface name`},
		{name: "the uplink", network: []string{"eth0=2001:db8:0:0:2::/80"}, err: `network: "eth0=2001:db8:0:0:2::/80": bridge eth0 is the uplink`},
		{name: "the first bridge again", network: []string{"docker0=2001:db8:0:0:2::/80"}, err: `network: "docker0=2001:db8:0:0:2::/80": bridge docker0 is already served`},
		{name: "not a prefix", network: []string{"br-a=10.0.0.0/8"}, err: `network: "br-a=10.0.0.0/8": "10.0.0.0/8" is not an IPv6 prefix`},
		{name: "host bits", network: []string{"br-a=2001:db8::1/64"}, err: `network: "br-a=2001:db8::1/64": 2001:db8::1/64 has host bits set`},
		{name: "link-local", network: []string{"br-a=fe80::/64"}, err: `network: "br-a=fe80::/64": fe80::/64 is not a global`},
		{name: "overlaps the first", network: []string{"br-a=2001:db8::/64"}, err: `network: "br-a=2001:db8::/64": 2001:db8::/64 overlaps 2001:db8:0:0:1::/80 of bridge docker0`},
		{name: "parent", network: nil},
		{name: "an uplink of its own", network: []string{"br-a=2001:db8:0:0:2::/80@eth1", "br-b=2001:db8:0:0:3::/80@eth1"}},
		{name: "the daemon's uplink named", network: []string{"br-a=2001:db8:0:0:2::/80@eth0"}},
		{name: "bad uplink", network: []string{"br-a=2001:db8:0:0:2::/80@a/b"}, err: `network: "br-a=2001:db8:0:0:2::/80@a/b": uplink "a/b" is not a valid interface name`},
		{name: "uplink is a served bridge", network: []string{"br-a=2001:db8:0:0:2::/80@docker0"}, err: `network: "br-a=2001:db8:0:0:2::/80@docker0": uplink docker0 is a served bridge`},
		{name: "uplink is its own bridge", network: []string{"br-a=2001:db8:0:0:2::/80@br-a"}, err: `network: "br-a=2001:db8:0:0:2::/80@br-a": uplink br-a is a served bridge`},
		{name: "bridge is another's uplink", network: []string{"br-a=2001:db8:0:0:2::/80@br-b", "br-b=2001:db8:0:0:3::/80"}, err: `network: "br-b=2001:db8:0:0:3::/80": bridge br-b is the uplink`},
		{name: "too many uplinks", network: []string{"b1=2001:db8:0:0:2::/80@u1", "b2=2001:db8:0:0:3::/80@u2", "b3=2001:db8:0:0:4::/80@u3",
			"b4=2001:db8:0:0:5::/80@u4", "b5=2001:db8:0:0:6::/80@u5", "b6=2001:db8:0:0:7::/80@u6", "b7=2001:db8:0:0:8::/80@u7", "b8=2001:db8:0:0:9::/80@u8"},
			err: `network: "b8=2001:db8:0:0:9::/80@u8": at most 8 uplinks`},
		{name: "overlap between two", network: []string{"br-a=2001:db8:0:0:2::/80", "br-b=2001:db8:0:0:2::/96"}, err: `network: "br-b=2001:db8:0:0:2::/96": 2001:db8:0:0:2::/96 overlaps 2001:db8:0:0:2::/80 of bridge br-a`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			c.Network = tc.network
			r, err := c.Validate()
			if tc.err == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				if len(r.Networks) != 1+len(tc.network) || r.Networks[0].Bridge != "docker0" || r.Networks[0].Engine {
					t.Fatalf("networks: %+v", r.Networks)
				}
				for _, n := range r.Networks[1:] {
					if !n.Engine {
						t.Errorf("%s: --network bridges are an engine's", n.Bridge)
					}
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
				t.Fatalf("error:\n got  %v\n want %s...", err, tc.err)
			}
		})
	}
}

func TestNetworkParentConfig(t *testing.T) {
	for _, tc := range []struct{ parent, err string }{
		{"2001:db8::/48", ""},
		{"2001:db8::1/48", `network-parent: "2001:db8::1/48" is not an IPv6 prefix without host bits`},
		{"10.0.0.0/8", `network-parent: "10.0.0.0/8" is not an IPv6 prefix`},
		{"fe80::/10", "network-parent: fe80::/10 is not a global or unique-local unicast prefix"},
	} {
		c := DefaultConfig()
		c.IPv6, c.FixedCIDRv6, c.NetworkParent = true, "2001:db8:0:0:1::/80", tc.parent
		r, err := c.Validate()
		if tc.err == "" {
			if err != nil || r.Parent.String() != tc.parent {
				t.Errorf("%s: %v, parent %s", tc.parent, err, r.Parent)
			}
			continue
		}
		if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
			t.Errorf("%s: error %v, want %s...", tc.parent, err, tc.err)
		}
	}
}
