package plan_test

import (
	"fmt"
	"net/netip"
	"os"

	"github.com/v6dp/v6dp/ctrl/plan"
)

func show(prefix string, opts plan.Options) {
	p, err := plan.Compute(netip.MustParsePrefix(prefix), opts)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := p.Format(os.Stdout); err != nil {
		fmt.Println(err)
	}
}

// The document's single host: its /64 cut into a /80 for eth0 and a /80 for
// docker0.
func ExampleCompute_split80() {
	show("2001:db8:23:42::/64", plan.Options{})
	// Output:
	// prefix  2001:db8:23:42::/64
	// role    split80, one host: a /80 for the host on the uplink, the next /80 for Docker
	// link    2001:db8:23:42::/64, on-link on the hosts' uplink segment
	//
	// HOST  BLOCK                UPLINK                     OWN                  FIXED-CIDR-V6                  ADDRESSING  FIRST CONTAINER              NDP PROXY
	// 1     2001:db8:23:42::/64  eth0 2001:db8:23:42::1/80  2001:db8:23:42::/80  docker0 2001:db8:23:42:1::/80  mac         2001:db8:23:42:1:242:ac11:2  yes
	//
	// daemon
	//   host 1: v6dp daemon --ipv6 --fixed-cidr-v6 2001:db8:23:42:1::/80 --bridge docker0 --uplink eth0 --ndp-proxy
	//
	// notes
	//   - the router treats 2001:db8:23:42::/64 as on-link on eth0 and solicits container addresses there; v6dp answers for the live ones (--ndp-proxy)
}

// "/78 for the hosts, /80 for the containers", for two hosts of one /64.
func ExampleCompute_split78() {
	show("2001:db8:23:42::/64", plan.Options{Hosts: 2})
	// Output:
	// prefix  2001:db8:23:42::/64
	// role    split78, hosts sharing a prefix: a /78 per host, split into a /80 for the host and a /80 for Docker
	// link    2001:db8:23:42::/64, on-link on the hosts' uplink segment
	//
	// HOST  BLOCK                  UPLINK                       OWN                    FIXED-CIDR-V6                  ADDRESSING  FIRST CONTAINER              NDP PROXY
	// 1     2001:db8:23:42::/78    eth0 2001:db8:23:42::1/80    2001:db8:23:42::/80    docker0 2001:db8:23:42:1::/80  mac         2001:db8:23:42:1:242:ac11:2  yes
	// 2     2001:db8:23:42:4::/78  eth0 2001:db8:23:42:4::1/80  2001:db8:23:42:4::/80  docker0 2001:db8:23:42:5::/80  mac         2001:db8:23:42:5:242:ac11:2  yes
	//
	// daemon
	//   host 1: v6dp daemon --ipv6 --fixed-cidr-v6 2001:db8:23:42:1::/80 --bridge docker0 --uplink eth0 --ndp-proxy
	//   host 2: v6dp daemon --ipv6 --fixed-cidr-v6 2001:db8:23:42:5::/80 --bridge docker0 --uplink eth0 --ndp-proxy
	//
	// notes
	//   - the router treats 2001:db8:23:42::/64 as on-link on eth0 and solicits container addresses there; v6dp answers for the live ones (--ndp-proxy)
}

// The provider range 2001:db8::c000-c00f cut into two /125s.
func ExampleCompute_halves() {
	show("2001:db8::c000/124", plan.Options{})
	// Output:
	// prefix  2001:db8::c000/124
	// role    halves, a provider range cut in two halves: the first for the host, the second for Docker
	// link    2001:db8::/64, on-link on the hosts' uplink segment
	//
	// HOST  BLOCK               UPLINK                  OWN                 FIXED-CIDR-V6               ADDRESSING  FIRST CONTAINER  NDP PROXY
	// 1     2001:db8::c000/124  eth0 2001:db8::c001/64  2001:db8::c000/125  docker0 2001:db8::c008/125  sequential  2001:db8::c009   yes
	//
	// daemon
	//   host 1: v6dp daemon --ipv6 --fixed-cidr-v6 2001:db8::c008/125 --bridge docker0 --uplink eth0 --ndp-proxy --addressing sequential
	//
	// notes
	//   - sequential addressing: a /125 cannot hold a 48-bit MAC, so containers are numbered from 2001:db8::c009
	//   - the router treats 2001:db8::/64 as on-link on eth0 and solicits container addresses there; v6dp answers for the live ones (--ndp-proxy)
}

// The switched cluster of two hosts.
func ExampleCompute_switched() {
	show("2001:db8::/32", plan.Options{Role: plan.RoleSwitched})
	// Output:
	// prefix  2001:db8::/32
	// role    switched, hosts on one /64, a /64 of containers per host, each host routes the others' containers
	// link    2001:db8::/64, on-link on the hosts' uplink segment
	//
	// HOST  BLOCK            UPLINK               OWN  FIXED-CIDR-V6            ADDRESSING  FIRST CONTAINER         NDP PROXY
	// 1     2001:db8:1::/48  eth0 2001:db8::1/64  -    docker0 2001:db8:1::/64  mac         2001:db8:1::242:ac11:2  no
	// 2     2001:db8:2::/48  eth0 2001:db8::2/64  -    docker0 2001:db8:2::/64  mac         2001:db8:2::242:ac11:2  no
	//
	// daemon
	//   host 1: v6dp daemon --ipv6 --fixed-cidr-v6 2001:db8:1::/64 --bridge docker0 --uplink eth0 --peer 2001:db8:2::/64=2001:db8::2
	//   host 2: v6dp daemon --ipv6 --fixed-cidr-v6 2001:db8:2::/64 --bridge docker0 --uplink eth0 --peer 2001:db8:1::/64=2001:db8::1
	//
	// routes
	//   host 1: 2001:db8:2::/64 via 2001:db8::2 dev eth0
	//   host 2: 2001:db8:1::/64 via 2001:db8::1 dev eth0
	//
	// notes
	//   - every host routes each other host's containers via that host (--peer; v6dp keeps the routes); a new host adds a --peer on every host
}

// The routed cluster with the document's third host.
func ExampleCompute_routed() {
	show("2001:db8::/32", plan.Options{Hosts: 3})
	// Output:
	// prefix  2001:db8::/32
	// role    routed, a /48 per host (a /64 for the host, a /64 for Docker), one route per host on the router
	// link    2001:db8::/64, on-link on the hosts' uplink segment
	//
	// HOST  BLOCK            UPLINK               OWN              FIXED-CIDR-V6              ADDRESSING  FIRST CONTAINER            NDP PROXY
	// 1     2001:db8:1::/48  eth0 2001:db8::1/64  2001:db8:1::/64  docker0 2001:db8:1:1::/64  mac         2001:db8:1:1:0:242:ac11:2  no
	// 2     2001:db8:2::/48  eth0 2001:db8::2/64  2001:db8:2::/64  docker0 2001:db8:2:1::/64  mac         2001:db8:2:1:0:242:ac11:2  no
	// 3     2001:db8:3::/48  eth0 2001:db8::3/64  2001:db8:3::/64  docker0 2001:db8:3:1::/64  mac         2001:db8:3:1:0:242:ac11:2  no
	//
	// daemon
	//   host 1: v6dp daemon --ipv6 --fixed-cidr-v6 2001:db8:1:1::/64 --bridge docker0 --uplink eth0 --bgp-router 2001:db8::ffff --bgp-asn 65001 --bgp-peer-asn 65000 --bgp-announce-aggregate 2001:db8:1::/48
	//   host 2: v6dp daemon --ipv6 --fixed-cidr-v6 2001:db8:2:1::/64 --bridge docker0 --uplink eth0 --bgp-router 2001:db8::ffff --bgp-asn 65001 --bgp-peer-asn 65000 --bgp-announce-aggregate 2001:db8:2::/48
	//   host 3: v6dp daemon --ipv6 --fixed-cidr-v6 2001:db8:3:1::/64 --bridge docker0 --uplink eth0 --bgp-router 2001:db8::ffff --bgp-asn 65001 --bgp-peer-asn 65000 --bgp-announce-aggregate 2001:db8:3::/48
	//
	// routes
	//   router: 2001:db8:1::/48 via 2001:db8::1 (learned by BGP)
	//   router: 2001:db8:2::/48 via 2001:db8::2 (learned by BGP)
	//   router: 2001:db8:3::/48 via 2001:db8::3 (learned by BGP)
	//
	// router (BIRD 2, bird.conf)
	//   protocol device { }
	//   protocol kernel {
	//   	ipv6 { import none; export all; };
	//   }
	//   protocol bgp hosts {
	//   	local 2001:db8::ffff as 65000;
	//   	neighbor range 2001:db8::/64 as 65001;
	//   	dynamic name "host";
	//   	graceful restart on;
	//   	ipv6 { import all; export none; };
	//   }
	//
	// notes
	//   - hosts route by default via the router 2001:db8::ffff (static, or from its RAs: then keep accept_ra=2 on the uplink, since forwarding is on)
	//   - each daemon announces its container /64 and its /48 by BGP (next hop its uplink address); the router accepts every host on 2001:db8::/64 as a dynamic neighbour, so a new host needs no change on the router
}
