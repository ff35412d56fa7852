package plan

import (
	"encoding/json"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/v6dp/v6dp/ctrl"
)

var (
	pfx  = netip.MustParsePrefix
	addr = netip.MustParseAddr
)

func daemon(cidr string, extra ...string) []string {
	return append([]string{"v6dp", "daemon", "--ipv6", "--fixed-cidr-v6", cidr,
		"--bridge", "docker0", "--uplink", "eth0"}, extra...)
}

const (
	noteProxy23   = "the router treats 2001:db8:23:42::/64 as on-link on eth0 and solicits container addresses there; v6dp answers for the live ones (--ndp-proxy)"
	noteRouted    = "hosts route by default via the router 2001:db8::ffff (static, or from its RAs: then keep accept_ra=2 on the uplink, since forwarding is on)"
	noteRoutedBGP = "each daemon announces its container /64 and its /48 by BGP (next hop its uplink address); the router accepts every host on 2001:db8::/64 as a dynamic neighbour, so a new host needs no change on the router"
	noteSwitched  = "every host routes each other host's containers via that host (--peer; v6dp keeps the routes); a new host adds a --peer on every host"
	noteRouterRts = "the router routes each container prefix to its host, so no NDP proxy is needed"
)

// netipEqual lets cmp compare netip values, whose fields are unexported;
// == is their documented equality.
var netipEqual = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
}

func TestCompute(t *testing.T) {
	tests := []struct {
		name   string
		prefix string
		opts   Options
		want   *Plan
	}{
		{
			// The document's host /64: 2001:db8:23:42::/80 on eth0 with the
			// host at ::1, 2001:db8:23:42:1::/80 on docker0.
			name:   "split80 seed",
			prefix: "2001:db8:23:42::/64",
			want: &Plan{
				Prefix:  pfx("2001:db8:23:42::/64"),
				Role:    RoleSplit80,
				Summary: roles[0].summary,
				Link:    pfx("2001:db8:23:42::/64"),
				Hosts: []Host{{
					Number:         1,
					Block:          pfx("2001:db8:23:42::/64"),
					Uplink:         "eth0",
					UplinkAddr:     pfx("2001:db8:23:42::1/80"),
					Own:            pfx("2001:db8:23:42::/80"),
					Bridge:         "docker0",
					FixedCIDRv6:    pfx("2001:db8:23:42:1::/80"),
					Addressing:     "mac",
					FirstContainer: addr("2001:db8:23:42:1:242:ac11:2"),
					NDPProxy:       true,
					Daemon:         daemon("2001:db8:23:42:1::/80", "--ndp-proxy"),
				}},
				Notes: []string{noteProxy23},
			},
		},
		{
			name:   "split80 with a router route instead of the proxy",
			prefix: "2001:db8:23:42::/64",
			opts:   Options{Role: RoleSplit80, RouterRoutes: true},
			want: &Plan{
				Prefix:  pfx("2001:db8:23:42::/64"),
				Role:    RoleSplit80,
				Summary: roles[0].summary,
				Link:    pfx("2001:db8:23:42::/64"),
				Hosts: []Host{{
					Number:         1,
					Block:          pfx("2001:db8:23:42::/64"),
					Uplink:         "eth0",
					UplinkAddr:     pfx("2001:db8:23:42::1/80"),
					Own:            pfx("2001:db8:23:42::/80"),
					Bridge:         "docker0",
					FixedCIDRv6:    pfx("2001:db8:23:42:1::/80"),
					Addressing:     "mac",
					FirstContainer: addr("2001:db8:23:42:1:242:ac11:2"),
					Daemon:         daemon("2001:db8:23:42:1::/80"),
				}},
				RouterRoutes: []Route{{Prefix: pfx("2001:db8:23:42:1::/80"), Via: addr("2001:db8:23:42::1")}},
				Notes:        []string{noteRouterRts},
			},
		},
		{
			// "/78 for the hosts and /80 for the containers": each host's /78
			// is cut like the single host's /64.
			name:   "split78 two hosts of a /64",
			prefix: "2001:db8:23:42::/64",
			opts:   Options{Hosts: 2},
			want: &Plan{
				Prefix:  pfx("2001:db8:23:42::/64"),
				Role:    RoleSplit78,
				Summary: roles[1].summary,
				Link:    pfx("2001:db8:23:42::/64"),
				Hosts: []Host{
					{
						Number:         1,
						Block:          pfx("2001:db8:23:42::/78"),
						Uplink:         "eth0",
						UplinkAddr:     pfx("2001:db8:23:42::1/80"),
						Own:            pfx("2001:db8:23:42::/80"),
						Bridge:         "docker0",
						FixedCIDRv6:    pfx("2001:db8:23:42:1::/80"),
						Addressing:     "mac",
						FirstContainer: addr("2001:db8:23:42:1:242:ac11:2"),
						NDPProxy:       true,
						Daemon:         daemon("2001:db8:23:42:1::/80", "--ndp-proxy"),
					},
					{
						Number:         2,
						Block:          pfx("2001:db8:23:42:4::/78"),
						Uplink:         "eth0",
						UplinkAddr:     pfx("2001:db8:23:42:4::1/80"),
						Own:            pfx("2001:db8:23:42:4::/80"),
						Bridge:         "docker0",
						FixedCIDRv6:    pfx("2001:db8:23:42:5::/80"),
						Addressing:     "mac",
						FirstContainer: addr("2001:db8:23:42:5:242:ac11:2"),
						NDPProxy:       true,
						Daemon:         daemon("2001:db8:23:42:5::/80", "--ndp-proxy"),
					},
				},
				Notes: []string{noteProxy23},
			},
		},
		{
			// The provider range c000-c00f: the host stays at c001 on the
			// provider's /64, Docker numbers containers from c009 and the host
			// must proxy NDP for them.
			name:   "halves seed provider range",
			prefix: "2001:db8::c000/124",
			want: &Plan{
				Prefix:  pfx("2001:db8::c000/124"),
				Role:    RoleHalves,
				Summary: roles[2].summary,
				Link:    pfx("2001:db8::/64"),
				Hosts: []Host{{
					Number:         1,
					Block:          pfx("2001:db8::c000/124"),
					Uplink:         "eth0",
					UplinkAddr:     pfx("2001:db8::c001/64"),
					Own:            pfx("2001:db8::c000/125"),
					Bridge:         "docker0",
					FixedCIDRv6:    pfx("2001:db8::c008/125"),
					Addressing:     "sequential",
					FirstContainer: addr("2001:db8::c009"),
					NDPProxy:       true,
					Daemon:         daemon("2001:db8::c008/125", "--ndp-proxy", "--addressing", "sequential"),
				}},
				Notes: []string{
					"sequential addressing: a /125 cannot hold a 48-bit MAC, so containers are numbered from 2001:db8::c009",
					"the router treats 2001:db8::/64 as on-link on eth0 and solicits container addresses there; v6dp answers for the live ones (--ndp-proxy)",
				},
			},
		},
		{
			// The routed cluster: host 3 runs --fixed-cidr-v6=2001:db8:3:1::/64
			// and the router routes 2001:db8:3::/48 to it.
			name:   "routed seed three hosts",
			prefix: "2001:db8::/32",
			opts:   Options{Hosts: 3},
			want: &Plan{
				Prefix:  pfx("2001:db8::/32"),
				Role:    RoleRouted,
				Summary: roles[4].summary,
				Link:    pfx("2001:db8::/64"),
				Hosts: []Host{
					routedHost(1), routedHost(2), routedHost(3),
				},
				RouterRoutes: []Route{
					{Prefix: pfx("2001:db8:1::/48"), Via: addr("2001:db8::1")},
					{Prefix: pfx("2001:db8:2::/48"), Via: addr("2001:db8::2")},
					{Prefix: pfx("2001:db8:3::/48"), Via: addr("2001:db8::3")},
				},
				Router: addr("2001:db8::ffff"),
				BIRD:   seedBIRD,
				Notes:  []string{noteRouted, noteRoutedBGP},
			},
		},
		{
			// The switched cluster: hosts on 2001:db8::/64, containers of host
			// N in 2001:db8:N::/64, routed on the other host via host N.
			name:   "switched seed two hosts",
			prefix: "2001:db8::/32",
			opts:   Options{Role: RoleSwitched},
			want: &Plan{
				Prefix:  pfx("2001:db8::/32"),
				Role:    RoleSwitched,
				Summary: roles[3].summary,
				Link:    pfx("2001:db8::/64"),
				Hosts: []Host{
					{
						Number:         1,
						Block:          pfx("2001:db8:1::/48"),
						Uplink:         "eth0",
						UplinkAddr:     pfx("2001:db8::1/64"),
						Bridge:         "docker0",
						FixedCIDRv6:    pfx("2001:db8:1::/64"),
						Addressing:     "mac",
						FirstContainer: addr("2001:db8:1::242:ac11:2"),
						Routes:         []Route{{Prefix: pfx("2001:db8:2::/64"), Via: addr("2001:db8::2"), Dev: "eth0"}},
						Daemon:         daemon("2001:db8:1::/64", "--peer", "2001:db8:2::/64=2001:db8::2"),
					},
					{
						Number:         2,
						Block:          pfx("2001:db8:2::/48"),
						Uplink:         "eth0",
						UplinkAddr:     pfx("2001:db8::2/64"),
						Bridge:         "docker0",
						FixedCIDRv6:    pfx("2001:db8:2::/64"),
						Addressing:     "mac",
						FirstContainer: addr("2001:db8:2::242:ac11:2"),
						Routes:         []Route{{Prefix: pfx("2001:db8:1::/64"), Via: addr("2001:db8::1"), Dev: "eth0"}},
						Daemon:         daemon("2001:db8:2::/64", "--peer", "2001:db8:1::/64=2001:db8::1"),
					},
				},
				Router: addr("2001:db8::ffff"),
				Notes:  []string{noteSwitched},
			},
		},
		{
			name:   "sequential forced on a /80 with other interface names",
			prefix: "2001:db8:23:42::/64",
			opts:   Options{Addressing: "sequential", Uplink: "ens3", Bridge: "br-v6"},
			want: &Plan{
				Prefix:  pfx("2001:db8:23:42::/64"),
				Role:    RoleSplit80,
				Summary: roles[0].summary,
				Link:    pfx("2001:db8:23:42::/64"),
				Hosts: []Host{{
					Number:         1,
					Block:          pfx("2001:db8:23:42::/64"),
					Uplink:         "ens3",
					UplinkAddr:     pfx("2001:db8:23:42::1/80"),
					Own:            pfx("2001:db8:23:42::/80"),
					Bridge:         "br-v6",
					FixedCIDRv6:    pfx("2001:db8:23:42:1::/80"),
					Addressing:     "sequential",
					FirstContainer: addr("2001:db8:23:42:1::1"),
					NDPProxy:       true,
					Daemon: []string{"v6dp", "daemon", "--ipv6", "--fixed-cidr-v6", "2001:db8:23:42:1::/80",
						"--bridge", "br-v6", "--uplink", "ens3", "--ndp-proxy", "--addressing", "sequential"},
				}},
				Notes: []string{
					"sequential addressing: containers are numbered from 2001:db8:23:42:1::1",
					"the router treats 2001:db8:23:42::/64 as on-link on ens3 and solicits container addresses there; v6dp answers for the live ones (--ndp-proxy)",
				},
			},
		},
		{
			// A range shorter than the provider's /64 is on-link as a whole,
			// and halves of it are short enough for MAC-derived addresses.
			name:   "halves of a /63 keep mac addressing",
			prefix: "2001:db8:0:2::/63",
			opts:   Options{Role: RoleHalves},
			want: &Plan{
				Prefix:  pfx("2001:db8:0:2::/63"),
				Role:    RoleHalves,
				Summary: roles[2].summary,
				Link:    pfx("2001:db8:0:2::/63"),
				Hosts: []Host{{
					Number:         1,
					Block:          pfx("2001:db8:0:2::/63"),
					Uplink:         "eth0",
					UplinkAddr:     pfx("2001:db8:0:2::1/63"),
					Own:            pfx("2001:db8:0:2::/64"),
					Bridge:         "docker0",
					FixedCIDRv6:    pfx("2001:db8:0:3::/64"),
					Addressing:     "mac",
					FirstContainer: addr("2001:db8:0:3:0:242:ac11:2"),
					NDPProxy:       true,
					Daemon:         daemon("2001:db8:0:3::/64", "--ndp-proxy"),
				}},
				Notes: []string{"the router treats 2001:db8:0:2::/63 as on-link on eth0 and solicits container addresses there; v6dp answers for the live ones (--ndp-proxy)"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Compute(pfx(tt.prefix), tt.opts)
			if err != nil {
				t.Fatalf("Compute: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, netipEqual); diff != "" {
				t.Errorf("Compute(%s) mismatch (-want +got):\n%s", tt.prefix, diff)
			}
		})
	}
}

// seedBIRD is the router's BIRD configuration for the routed seed.
const seedBIRD = `protocol device { }
protocol kernel {
	ipv6 { import none; export all; };
}
protocol bgp hosts {
	local 2001:db8::ffff as 65000;
	neighbor range 2001:db8::/64 as 65001;
	dynamic name "host";
	graceful restart on;
	ipv6 { import all; export none; };
}
`

func routedHost(n int) Host {
	h := map[int][4]string{
		1: {"2001:db8:1::/48", "2001:db8::1/64", "2001:db8:1::/64", "2001:db8:1:1::/64"},
		2: {"2001:db8:2::/48", "2001:db8::2/64", "2001:db8:2::/64", "2001:db8:2:1::/64"},
		3: {"2001:db8:3::/48", "2001:db8::3/64", "2001:db8:3::/64", "2001:db8:3:1::/64"},
	}[n]
	first := map[int]string{
		1: "2001:db8:1:1:0:242:ac11:2",
		2: "2001:db8:2:1:0:242:ac11:2",
		3: "2001:db8:3:1:0:242:ac11:2",
	}[n]
	return Host{
		Number:         n,
		Block:          pfx(h[0]),
		Uplink:         "eth0",
		UplinkAddr:     pfx(h[1]),
		Own:            pfx(h[2]),
		Bridge:         "docker0",
		FixedCIDRv6:    pfx(h[3]),
		Addressing:     "mac",
		FirstContainer: addr(first),
		Daemon: daemon(h[3], "--bgp-router", "2001:db8::ffff", "--bgp-asn", "65001", "--bgp-peer-asn", "65000",
			"--bgp-announce-aggregate", h[0]),
	}
}

func TestComputeErrors(t *testing.T) {
	tests := []struct {
		name   string
		prefix netip.Prefix
		opts   Options
		want   string
	}{
		{
			name: "missing prefix",
			want: "prefix is missing or malformed: want an IPv6 prefix such as 2001:db8::/32",
		},
		{
			name:   "IPv4 prefix",
			prefix: pfx("192.0.2.0/24"),
			want:   "prefix 192.0.2.0/24 is not IPv6",
		},
		{
			name:   "IPv4-mapped prefix",
			prefix: pfx("::ffff:192.0.2.0/120"),
			want:   "prefix ::ffff:192.0.2.0/120 is not IPv6",
		},
		{
			name:   "host bits set",
			prefix: pfx("2001:db8:23:42::1/64"),
			want:   "prefix 2001:db8:23:42::1/64 has host bits set: did you mean 2001:db8:23:42::/64?",
		},
		{
			name:   "link-local prefix",
			prefix: pfx("fe80::/64"),
			want:   "prefix fe80::/64 is not a global or unique-local unicast prefix",
		},
		{
			name:   "multicast prefix",
			prefix: pfx("ff02::/16"),
			want:   "prefix ff02::/16 is not a global or unique-local unicast prefix",
		},
		{
			name:   "unknown role",
			prefix: pfx("2001:db8::/64"),
			opts:   Options{Role: "bridge"},
			want:   `role "bridge" is not one of split80, split78, halves, switched, routed`,
		},
		{
			name:   "unknown addressing",
			prefix: pfx("2001:db8::/64"),
			opts:   Options{Addressing: "eui64"},
			want:   `addressing "eui64" is not one of auto, mac, sequential`,
		},
		{
			name:   "bad uplink name",
			prefix: pfx("2001:db8::/64"),
			opts:   Options{Uplink: "eth 0"},
			want:   `uplink "eth 0" is not a valid interface name`,
		},
		{
			name:   "bad bridge name",
			prefix: pfx("2001:db8::/64"),
			opts:   Options{Bridge: "a-bridge-name-too-long"},
			want:   `bridge "a-bridge-name-too-long" is not a valid interface name`,
		},
		{
			name:   "uplink is the bridge",
			prefix: pfx("2001:db8::/64"),
			opts:   Options{Uplink: "docker0"},
			want:   `uplink and bridge are both "docker0": containers must sit behind their own bridge`,
		},
		{
			name:   "split80 too long",
			prefix: pfx("2001:db8::/96"),
			opts:   Options{Role: RoleSplit80},
			want:   "role split80: /96 cannot hold two /80s, one for the host and one for Docker (at most /79)",
		},
		{
			name:   "split78 too long",
			prefix: pfx("2001:db8::/80"),
			opts:   Options{Role: RoleSplit78},
			want:   "role split78: /80 cannot hold a /78 (at most /78)",
		},
		{
			name:   "halves too long",
			prefix: pfx("2001:db8::c000/127"),
			want:   "role halves: /127 cannot be cut into two halves with room for the host and a container (at most /126)",
		},
		{
			name:   "routed too long",
			prefix: pfx("2001:db8::/48"),
			opts:   Options{Role: RoleRouted},
			want:   "role routed: /48 cannot hold the hosts' link /48 and a /48 per host (at most /47)",
		},
		{
			name:   "switched too long",
			prefix: pfx("2001:db8::/56"),
			opts:   Options{Role: RoleSwitched},
			want:   "role switched: /56 cannot hold the hosts' link /48 and a /48 per host (at most /47)",
		},
		{
			name:   "negative hosts",
			prefix: pfx("2001:db8::/32"),
			opts:   Options{Hosts: -1},
			want:   "--hosts -1: must be at least 1",
		},
		{
			name:   "too many hosts for any plan",
			prefix: pfx("2001:db8::/32"),
			opts:   Options{Hosts: 70000},
			want:   "--hosts 70000: at most 65535 hosts per plan",
		},
		{
			name:   "several hosts for a single-host role",
			prefix: pfx("2001:db8::c000/124"),
			opts:   Options{Hosts: 2},
			want:   "--hosts 2: role halves plans a single host (use split78 for hosts sharing a prefix)",
		},
		{
			name:   "more hosts than /78s",
			prefix: pfx("2001:db8::/77"),
			opts:   Options{Hosts: 3},
			want:   "--hosts 3: 2001:db8::/77 holds only 2 /78s",
		},
		{
			name:   "a /78 holds one host",
			prefix: pfx("2001:db8::/78"),
			opts:   Options{Hosts: 2},
			want:   "--hosts 2: 2001:db8::/78 holds only 1 /78",
		},
		{
			name:   "more hosts than cluster /48s",
			prefix: pfx("2001:db8::/46"),
			opts:   Options{Hosts: 4},
			want:   "--hosts 4: 2001:db8::/46 holds only 3 host /48s",
		},
		{
			name:   "routed hosts up to the router's address",
			prefix: pfx("2001:db8::/32"),
			opts:   Options{Role: RoleRouted, Hosts: 0xffff},
			want:   "--hosts 65535: host 65535 would take the router's address ::ffff on the link; at most 65534 hosts",
		},
		{
			name:   "routed bad ASN",
			prefix: pfx("2001:db8::/32"),
			opts:   Options{Role: RoleRouted, ASN: 4294967296},
			want:   "--bgp-asn 4294967296: not a usable AS number (1-4294967294, not 23456 or 65535)",
		},
		{
			name:   "switched cluster too big",
			prefix: pfx("2001:db8::/32"),
			opts:   Options{Role: RoleSwitched, Hosts: 300},
			want:   "--hosts 300: a switched cluster routes every host pair on every host; at most 256 hosts (use --role routed)",
		},
		{
			name:   "mac addressing on a /125",
			prefix: pfx("2001:db8::c000/124"),
			opts:   Options{Addressing: "mac"},
			want:   "addressing mac needs a container prefix of /80 or shorter to hold a 48-bit MAC; 2001:db8::c008/125 is /125 (use sequential)",
		},
		{
			name:   "router routes in a cluster",
			prefix: pfx("2001:db8::/32"),
			opts:   Options{Role: RoleRouted, RouterRoutes: true},
			want:   "--router-routes: role routed always routes container prefixes; the option is for split80, split78 and halves",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Compute(tt.prefix, tt.opts)
			if err == nil {
				t.Fatalf("Compute(%s) = plan for %d hosts, want error %q", tt.prefix, len(p.Hosts), tt.want)
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("error mismatch (-want +got):\n%s", diff)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q spans several lines", err)
			}
		})
	}
}

func TestDefaultRole(t *testing.T) {
	tests := []struct {
		name   string
		prefix string
		hosts  int
		want   string
	}{
		{name: "site prefix is a routed cluster", prefix: "2001:db8::/32", want: RoleRouted},
		{name: "largest cluster-sized prefix", prefix: "2001:db8::/47", hosts: 1, want: RoleRouted},
		{name: "host /64", prefix: "2001:db8:23:42::/64", want: RoleSplit80},
		{name: "shared /64", prefix: "2001:db8:23:42::/64", hosts: 4, want: RoleSplit78},
		{name: "one /78 for several hosts still means split78", prefix: "2001:db8::/78", hosts: 2, want: RoleSplit78},
		{name: "/79 for one host", prefix: "2001:db8::/79", want: RoleSplit80},
		{name: "provider range", prefix: "2001:db8::c000/124", want: RoleHalves},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := pfx(tt.prefix)
			if diff := cmp.Diff(tt.want, DefaultRole(p.Bits(), tt.hosts)); diff != "" {
				t.Errorf("DefaultRole(/%d, %d) mismatch (-want +got):\n%s", p.Bits(), tt.hosts, diff)
			}
		})
	}
}

func TestRoles(t *testing.T) {
	want := []string{"split80", "split78", "halves", "switched", "routed"}
	if diff := cmp.Diff(want, Roles()); diff != "" {
		t.Errorf("Roles() mismatch (-want +got):\n%s", diff)
	}
}

// TestDaemonFlagsValidate feeds every host's daemon flags to the daemon's own
// config validation, so a plan never prints a command line the daemon
// refuses.
func TestDaemonFlagsValidate(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		opts   Options
	}{
		{"2001:db8:23:42::/64", Options{}},
		{"2001:db8:23:42::/64", Options{Hosts: 3}},
		{"2001:db8::c000/124", Options{}},
		{"2001:db8::/32", Options{Hosts: 3}},
		{"2001:db8::/32", Options{Role: RoleSwitched}},
	} {
		p, err := Compute(pfx(tc.prefix), tc.opts)
		if err != nil {
			t.Fatalf("Compute(%s): %v", tc.prefix, err)
		}
		for _, h := range p.Hosts {
			cfg := ctrl.DefaultConfig()
			args := h.Daemon[2:]
			for i := 0; i < len(args); i++ {
				switch args[i] {
				case "--ipv6":
					cfg.IPv6 = true
				case "--ndp-proxy":
					cfg.NDPProxy = true
				case "--fixed-cidr-v6":
					i++
					cfg.FixedCIDRv6 = args[i]
				case "--bridge":
					i++
					cfg.Bridge = args[i]
				case "--uplink":
					i++
					cfg.Uplink = args[i]
				case "--addressing":
					i++
					cfg.Addressing = args[i]
				case "--peer":
					i++
					cfg.Peers = append(cfg.Peers, args[i])
				case "--bgp-router":
					i++
					cfg.BGPRouters = append(cfg.BGPRouters, args[i])
				case "--bgp-asn", "--bgp-peer-asn":
					n, err := strconv.ParseInt(args[i+1], 10, 64)
					if err != nil {
						t.Fatalf("%s host %d: %s %q: %v", tc.prefix, h.Number, args[i], args[i+1], err)
					}
					if args[i] == "--bgp-asn" {
						cfg.BGPASN = n
					} else {
						cfg.BGPPeerASN = n
					}
					i++
				case "--bgp-announce-aggregate":
					i++
					cfg.BGPAnnounceAggregate = args[i]
				default:
					t.Fatalf("%s host %d: flag %q unknown to this test", tc.prefix, h.Number, args[i])
				}
			}
			r, err := cfg.Validate()
			if err != nil {
				t.Errorf("%s host %d: daemon refuses %q: %v", tc.prefix, h.Number, h.Daemon, err)
				continue
			}
			if diff := cmp.Diff(h.Addressing, r.Addressing); diff != "" {
				t.Errorf("%s host %d: daemon addressing mismatch (-plan +daemon):\n%s", tc.prefix, h.Number, diff)
			}
		}
	}
}

func TestJSON(t *testing.T) {
	p, err := Compute(pfx("2001:db8::/32"), Options{Role: RoleSwitched})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var got Plan
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(p, &got, netipEqual); diff != "" {
		t.Errorf("JSON round trip mismatch (-want +got):\n%s", diff)
	}
	// Switched hosts keep nothing for themselves: "own" must be left out,
	// not printed as an empty prefix.
	var raw struct {
		Hosts []map[string]json.RawMessage `json:"hosts"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	if _, ok := raw.Hosts[0]["own"]; ok {
		t.Errorf("switched host has an \"own\" key in %s", b)
	}
	if diff := cmp.Diff(`"2001:db8:1::/64"`, string(raw.Hosts[0]["fixed-cidr-v6"])); diff != "" {
		t.Errorf("fixed-cidr-v6 mismatch (-want +got):\n%s", diff)
	}
}

func TestSubnet(t *testing.T) {
	tests := []struct {
		name   string
		prefix string
		bits   int
		i      uint64
		want   string
	}{
		{name: "first /80 of a /64", prefix: "2001:db8:23:42::/64", bits: 80, i: 0, want: "2001:db8:23:42::/80"},
		{name: "second /80 of a /64", prefix: "2001:db8:23:42::/64", bits: 80, i: 1, want: "2001:db8:23:42:1::/80"},
		{name: "last /78 of a /64", prefix: "2001:db8:23:42::/64", bits: 78, i: 16383, want: "2001:db8:23:42:fffc::/78"},
		{name: "third /48 of a /32", prefix: "2001:db8::/32", bits: 48, i: 3, want: "2001:db8:3::/48"},
		{name: "/48 straddling the 64-bit halves", prefix: "2001:db8::/32", bits: 48, i: 0xffff, want: "2001:db8:ffff::/48"},
		{name: "second /125 of a /124", prefix: "2001:db8::c000/124", bits: 125, i: 1, want: "2001:db8::c008/125"},
		{name: "/65 across the halves", prefix: "2001:db8::/63", bits: 65, i: 3, want: "2001:db8:0:1:8000::/65"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := subnet(pfx(tt.prefix), tt.bits, tt.i)
			if diff := cmp.Diff(tt.want, got.String()); diff != "" {
				t.Errorf("subnet mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
