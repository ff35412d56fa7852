package ctrl

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParsePeer(t *testing.T) {
	got, err := ParsePeer("2001:db8:2::/64=2001:db8::2")
	if err != nil {
		t.Fatal(err)
	}
	want := PeerRoute{Prefix: netip.MustParsePrefix("2001:db8:2::/64"), Via: netip.MustParseAddr("2001:db8::2")}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("ParsePeer mismatch (-want +got):\n%s", diff)
	}
	for _, tc := range []struct{ in, want string }{
		{"2001:db8:2::/64", "want PREFIX=VIA"},
		{"2001:db8:2::1/64=2001:db8::2", "has host bits set; did you mean 2001:db8:2::/64?"},
		{"::/0=2001:db8::2", "is not a host's container prefix"},
		{"fe80::/64=2001:db8::2", "is not a host's container prefix"},
		{"10.0.0.0/8=2001:db8::2", "is not an IPv6 prefix"},
		{"2001:db8:2::/64=fe80::2%eth0", "is not an IPv6 address without zone"},
		{"2001:db8:2::/64=ff02::1", "is not a unicast address"},
		{"2001:db8:2::/64=2001:db8:2::9", "the next hop 2001:db8:2::9 is inside the prefix it leads to"},
	} {
		if _, err := ParsePeer(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "peer: ") {
			t.Errorf("ParsePeer(%q) = %v, want an error saying %q", tc.in, err, tc.want)
		}
	}
}

func TestClusterValidate(t *testing.T) {
	base := func() Config {
		c := DefaultConfig()
		c.IPv6, c.FixedCIDRv6, c.Uplink = true, "2001:db8:1:1::/64", "eth0"
		return c
	}
	ok := base()
	ok.BGPRouters, ok.BGPASN, ok.BGPPeerASN, ok.BGPAnnounceAggregate = []string{"2001:db8::ffff"}, 65001, 65000, "2001:db8:1::/48"
	ok.Peers = []string{"2001:db8:2::/48=2001:db8::2"}
	if _, err := ok.Validate(); err != nil {
		t.Fatalf("valid routed config refused: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"peer overlaps the aggregate", func(c *Config) { c.Peers = []string{"2001:db8:1:5::/64=2001:db8::2"} }, "overlaps this host's own 2001:db8:1::/48"},
		{"peer overlaps another network", func(c *Config) { c.Network = []string{"br-web=2001:db8:2:5::/64"} }, "2001:db8:2::/48 overlaps this host's own 2001:db8:2:5::/64"},
		{"router inside own", func(c *Config) { c.BGPRouters = []string{"2001:db8:1::1"} }, "bgp-router: 2001:db8:1::1 is inside this host's own"},
		{"router twice", func(c *Config) { c.BGPRouters = []string{"2001:db8::ffff", "2001:db8::ffff"} }, "bgp-router: 2001:db8::ffff is given twice"},
		{"router link-local", func(c *Config) { c.BGPRouters = []string{"fe80::1"} }, "not a global or unique-local unicast address"},
		{"as_trans", func(c *Config) { c.BGPASN = 23456 }, "bgp-asn: 23456 is reserved"},
		{"no peer asn", func(c *Config) { c.BGPPeerASN = 0 }, "bgp-peer-asn: required with bgp-router"},
		{"no uplink", func(c *Config) { c.Uplink = "" }, "uplink: required with bgp-router"},
		{"aggregate longer", func(c *Config) { c.BGPAnnounceAggregate = "2001:db8:1:1::/80" }, "must be shorter than and contain"},
		{"aggregate without bgp", func(c *Config) { c.BGPRouters = nil }, "bgp-announce-aggregate: needs bgp-router"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			c.Peers = append([]string(nil), ok.Peers...)
			c.BGPRouters = append([]string(nil), ok.BGPRouters...)
			c.Network = append([]string(nil), ok.Network...)
			tc.edit(&c)
			_, err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("Validate = %v, want one line saying %q", err, tc.want)
			}
		})
	}
}

// The cluster keys of the config file are the flags' names, plural for
// the repeatable ones.
func TestClusterConfigFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "daemon.json")
	if err := os.WriteFile(path, []byte(`{"ipv6": true, "fixed-cidr-v6": "2001:db8:1:1::/64", "uplink": "eth0",
		"peers": ["2001:db8:2::/64=2001:db8::2"], "bgp-routers": ["2001:db8::ffff"], "bgp-asn": 65001,
		"bgp-peer-asn": 65000, "bgp-router-id": "10.0.0.1", "bgp-announce-aggregate": "2001:db8:1::/48"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	if err := LoadConfigFile(path, &c); err != nil {
		t.Fatal(err)
	}
	want := Cluster{Peers: []string{"2001:db8:2::/64=2001:db8::2"}, BGPRouters: []string{"2001:db8::ffff"}, BGPASN: 65001,
		BGPPeerASN: 65000, BGPRouterID: "10.0.0.1", BGPAnnounceAggregate: "2001:db8:1::/48"}
	if diff := cmp.Diff(want, c.Cluster); diff != "" {
		t.Errorf("cluster keys (-want +got):\n%s", diff)
	}
	if _, err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	if err := os.WriteFile(path, []byte(`{"bgp-asn": "65001"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := LoadConfigFile(path, &c); err == nil || !strings.Contains(err.Error(), `key "bgp-asn": want int64, got string`) {
		t.Errorf("bgp-asn as a string: %v", err)
	}
}
