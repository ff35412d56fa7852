package plan

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/v6dp/v6dp/ctrl/rules"
)

// Role names, in the order the original document introduces them.
const (
	RoleSplit80  = "split80"
	RoleSplit78  = "split78"
	RoleHalves   = "halves"
	RoleSwitched = "switched"
	RoleRouted   = "routed"
)

// MaxHosts bounds --hosts for every role. The cluster roles write the host
// number into one 16-bit group (2001:db8:N::/48, 2001:db8::N on the link), so
// past 0xffff a host's number would no longer read as the document's.
const MaxHosts = 0xffff

// maxSwitchedHosts bounds the switched cluster: every host carries a route to
// every other host's containers, so the route count grows with the square of
// the hosts. Past a few hundred hosts the routed layout, where a new host only
// adds a route on the router, is the one the document recommends.
const maxSwitchedHosts = 256

// Default interface names, the document's.
const (
	DefaultUplink = "eth0"
	DefaultBridge = rules.DefaultBridge
)

// firstDockerMAC is the MAC Docker gives its first container (172.17.0.2:
// .1 is the bridge), so the first MAC-derived address is PREFIX::242:ac11:2.
const firstDockerMAC = 2

// Options are the choices of `v6dp plan` besides the prefix.
type Options struct {
	// Role is one of Roles(); empty picks one from the prefix length.
	Role string
	// Hosts is the number of hosts; 0 means the role's default (1 for
	// single-host roles, 2 for the others).
	Hosts int
	// Addressing is auto (or empty), mac or sequential. Auto means mac when
	// the container prefix is /80 or shorter, sequential otherwise.
	Addressing string
	// RouterRoutes says the operator controls the upstream router and will
	// route each container prefix to its host, so no NDP proxy is needed.
	// Only the single-segment roles have a choice; the clusters always route.
	RouterRoutes bool
	// Uplink and Bridge name the host's interfaces; empty means eth0 and
	// docker0.
	Uplink string
	Bridge string
	// ASN and RouterASN are the routed layout's AS numbers of every host
	// and of the router; 0 means DefaultHostASN and DefaultRouterASN.
	ASN, RouterASN int64
}

// Plan is the address plan of a prefix for one role.
type Plan struct {
	Prefix  netip.Prefix `json:"prefix"`
	Role    string       `json:"role"`
	Summary string       `json:"summary"`
	// Link is the on-link prefix of the segment the hosts' uplinks share, as
	// the upstream router sees it.
	Link  netip.Prefix `json:"link"`
	Hosts []Host       `json:"hosts"`
	// RouterRoutes are the routes the upstream router needs (in the
	// routed layout it learns them by BGP).
	RouterRoutes []Route `json:"router-routes,omitempty"`
	// Router is the router's address on a cluster's link.
	Router netip.Addr `json:"router,omitzero"`
	// BIRD is the router's BIRD 2 configuration in the routed layout.
	BIRD  string   `json:"bird,omitempty"`
	Notes []string `json:"notes,omitempty"`
}

// Host is one host's share of the plan.
type Host struct {
	// Number counts from 1, as the document's "host 1", "host 2".
	Number int `json:"number"`
	// Block is the part of the plan's prefix given to this host.
	Block netip.Prefix `json:"block"`
	// Uplink and UplinkAddr are the interface facing the router and the
	// address with prefix length to configure on it.
	Uplink     string       `json:"uplink"`
	UplinkAddr netip.Prefix `json:"uplink-addr"`
	// Own is what the host keeps for its own addresses and services; zero
	// when the host only has its address on the shared link.
	Own         netip.Prefix `json:"own,omitzero"`
	Bridge      string       `json:"bridge"`
	FixedCIDRv6 netip.Prefix `json:"fixed-cidr-v6"`
	Addressing  string       `json:"addressing"`
	// FirstContainer is the address Docker's first container gets.
	FirstContainer netip.Addr `json:"first-container"`
	// NDPProxy is set when the container prefix is on-link, for the router,
	// on the uplink's segment, so the host must answer its solicitations.
	NDPProxy bool `json:"ndp-proxy"`
	// Routes are the routes this host needs towards other hosts.
	Routes []Route `json:"routes,omitempty"`
	// Daemon is the command line that runs v6dp on this host.
	Daemon []string `json:"daemon"`
}

// Route is a static route: Prefix via the next hop Via, out of Dev when the
// device is known.
type Route struct {
	Prefix netip.Prefix `json:"prefix"`
	Via    netip.Addr   `json:"via"`
	Dev    string       `json:"dev,omitempty"`
}

// role is one way of cutting a prefix. maxBits is the longest prefix it can
// cut, and tooLong says why a longer one cannot be cut. Roles with multi set
// plan several hosts: capacity counts how many the prefix holds, each given
// one hostUnit, which names that unit in the error when --hosts exceeds it.
type role struct {
	name     string
	summary  string
	multi    bool
	maxBits  int
	tooLong  string
	capacity func(p netip.Prefix) uint64
	hostUnit string
	compute  func(p *Plan, opts Options)
}

var roles = []role{
	{
		name:    RoleSplit80,
		summary: "one host: a /80 for the host on the uplink, the next /80 for Docker",
		maxBits: 79,
		tooLong: "cannot hold two /80s, one for the host and one for Docker",
		compute: computeSplit80,
	},
	{
		name:     RoleSplit78,
		summary:  "hosts sharing a prefix: a /78 per host, split into a /80 for the host and a /80 for Docker",
		multi:    true,
		maxBits:  78,
		tooLong:  "cannot hold a /78",
		capacity: func(p netip.Prefix) uint64 { return subnetCount(p, 78) },
		hostUnit: "/78",
		compute:  computeSplit78,
	},
	{
		name:    RoleHalves,
		summary: "a provider range cut in two halves: the first for the host, the second for Docker",
		maxBits: 126,
		tooLong: "cannot be cut into two halves with room for the host and a container",
		compute: computeHalves,
	},
	{
		name:     RoleSwitched,
		summary:  "hosts on one /64, a /64 of containers per host, each host routes the others' containers",
		multi:    true,
		maxBits:  47,
		tooLong:  "cannot hold the hosts' link /48 and a /48 per host",
		capacity: clusterCapacity,
		hostUnit: "host /48",
		compute:  computeSwitched,
	},
	{
		name:     RoleRouted,
		summary:  "a /48 per host (a /64 for the host, a /64 for Docker), one route per host on the router",
		multi:    true,
		maxBits:  47,
		tooLong:  "cannot hold the hosts' link /48 and a /48 per host",
		capacity: clusterCapacity,
		hostUnit: "host /48",
		compute:  computeRouted,
	},
}

// Roles returns the role names Compute accepts.
func Roles() []string {
	names := make([]string, len(roles))
	for i, r := range roles {
		names[i] = r.name
	}
	return names
}

// DefaultRole is the role Compute picks for a prefix length and host count
// when none is given: a cluster for anything that holds /48s, a /78 per host
// when several hosts share a smaller prefix, the document's /80 split for a
// single host, and halves for a range too long for two /80s.
func DefaultRole(bits, hosts int) string {
	switch {
	case bits <= 47:
		return RoleRouted
	case bits <= 78 && hosts > 1:
		return RoleSplit78
	case bits <= 79:
		return RoleSplit80
	default:
		return RoleHalves
	}
}

// Compute plans prefix for opts. The error names the rule broken in one line.
func Compute(prefix netip.Prefix, opts Options) (*Plan, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	if opts.Hosts < 0 {
		return nil, fmt.Errorf("--hosts %d: must be at least 1", opts.Hosts)
	}
	if opts.Hosts > MaxHosts {
		return nil, fmt.Errorf("--hosts %d: at most %d hosts per plan", opts.Hosts, MaxHosts)
	}
	if opts.Role == "" {
		opts.Role = DefaultRole(prefix.Bits(), opts.Hosts)
	}
	i := slices.IndexFunc(roles, func(r role) bool { return r.name == opts.Role })
	if i < 0 {
		return nil, fmt.Errorf("role %q is not one of %s", opts.Role, strings.Join(Roles(), ", "))
	}
	r := roles[i]
	switch opts.Addressing {
	case "", rules.AddressingAuto, rules.AddressingMAC, rules.AddressingSequential:
	default:
		return nil, fmt.Errorf("addressing %q is not one of auto, mac, sequential", opts.Addressing)
	}
	if opts.Uplink == "" {
		opts.Uplink = DefaultUplink
	}
	if opts.Bridge == "" {
		opts.Bridge = DefaultBridge
	}
	if !rules.ValidIfName(opts.Uplink) {
		return nil, fmt.Errorf("uplink %q is not a valid interface name", opts.Uplink)
	}
	if !rules.ValidIfName(opts.Bridge) {
		return nil, fmt.Errorf("bridge %q is not a valid interface name", opts.Bridge)
	}
	if opts.Uplink == opts.Bridge {
		return nil, fmt.Errorf("uplink and bridge are both %q: containers must sit behind their own bridge", opts.Uplink)
	}
	if prefix.Bits() > r.maxBits {
		return nil, fmt.Errorf("role %s: /%d %s (at most /%d)", r.name, prefix.Bits(), r.tooLong, r.maxBits)
	}
	if err := checkHosts(r, prefix, &opts); err != nil {
		return nil, err
	}
	if opts.RouterRoutes && (r.name == RoleSwitched || r.name == RoleRouted) {
		return nil, fmt.Errorf("--router-routes: role %s always routes container prefixes; the option is for %s, %s and %s", r.name, RoleSplit80, RoleSplit78, RoleHalves)
	}
	if (r.name == RoleSwitched || r.name == RoleRouted) && opts.Hosts >= routerHostNumber {
		return nil, fmt.Errorf("--hosts %d: host %d would take the router's address ::%x on the link; at most %d hosts", opts.Hosts, routerHostNumber, routerHostNumber, routerHostNumber-1)
	}
	if opts.ASN == 0 {
		opts.ASN = DefaultHostASN
	}
	if opts.RouterASN == 0 {
		opts.RouterASN = DefaultRouterASN
	}
	if err := checkASN("--bgp-asn", opts.ASN); err != nil {
		return nil, err
	}
	if err := checkASN("--bgp-peer-asn", opts.RouterASN); err != nil {
		return nil, err
	}

	p := &Plan{Prefix: prefix, Role: r.name, Summary: r.summary}
	r.compute(p, opts)
	for i := range p.Hosts {
		if err := finishHost(&p.Hosts[i], opts); err != nil {
			return nil, err
		}
	}
	clusterFlags(p, opts)
	p.Notes = notes(p)
	return p, nil
}

// checkPrefix holds the rules every role shares.
func checkPrefix(p netip.Prefix) error {
	if !p.IsValid() {
		return errors.New("prefix is missing or malformed: want an IPv6 prefix such as 2001:db8::/32")
	}
	if !p.Addr().Is6() || p.Addr().Is4In6() {
		return fmt.Errorf("prefix %s is not IPv6", p)
	}
	if p.Addr().Zone() != "" {
		return fmt.Errorf("prefix %s has a zone; a plan is for global addresses", p)
	}
	if p.Masked() != p {
		return fmt.Errorf("prefix %s has host bits set: did you mean %s?", p, p.Masked())
	}
	a := p.Addr()
	if a.IsUnspecified() || a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsMulticast() {
		return fmt.Errorf("prefix %s is not a global or unique-local unicast prefix", p)
	}
	return nil
}

// checkHosts resolves the role's default host count and checks the count
// against what the prefix holds.
func checkHosts(r role, p netip.Prefix, opts *Options) error {
	if !r.multi {
		if opts.Hosts > 1 {
			return fmt.Errorf("--hosts %d: role %s plans a single host (use %s for hosts sharing a prefix)", opts.Hosts, r.name, RoleSplit78)
		}
		opts.Hosts = 1
		return nil
	}
	if opts.Hosts == 0 {
		opts.Hosts = 2
	}
	if r.name == RoleSwitched && opts.Hosts > maxSwitchedHosts {
		return fmt.Errorf("--hosts %d: a switched cluster routes every host pair on every host; at most %d hosts (use --role %s)", opts.Hosts, maxSwitchedHosts, RoleRouted)
	}
	if n := r.capacity(p); uint64(opts.Hosts) > n {
		return fmt.Errorf("--hosts %d: %s holds only %d %s%s", opts.Hosts, p, n, r.hostUnit, plural(n))
	}
	return nil
}

func plural(n uint64) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// clusterCapacity counts the host /48s of a cluster prefix: /48 number 0
// carries the hosts' link, so host N can own /48 number N and its number
// reads the same in both (2001:db8::N and 2001:db8:N::/48).
func clusterCapacity(p netip.Prefix) uint64 { return subnetCount(p, 48) - 1 }

// finishHost derives what follows from a host's container prefix: the
// addressing mode, the first container's address and the daemon's flags.
func finishHost(h *Host, opts Options) error {
	var err error
	if h.Addressing, err = rules.ResolveAddressing(opts.Addressing, h.FixedCIDRv6); err != nil {
		return fmt.Errorf("addressing mac needs a container prefix of /80 or shorter to hold a 48-bit MAC; %s is /%d (use sequential)", h.FixedCIDRv6, h.FixedCIDRv6.Bits())
	}
	if h.Addressing == rules.AddressingMAC {
		h.FirstContainer, err = rules.MACAddr(h.FixedCIDRv6, rules.DockerMAC(firstDockerMAC))
	} else {
		h.FirstContainer, err = rules.NextFreeAddr(h.FixedCIDRv6, nil)
	}
	if err != nil {
		return fmt.Errorf("host %d: %w", h.Number, err)
	}
	h.Daemon = []string{"v6dp", "daemon", "--ipv6",
		"--fixed-cidr-v6", h.FixedCIDRv6.String(),
		"--bridge", h.Bridge,
		"--uplink", h.Uplink}
	if h.NDPProxy {
		h.Daemon = append(h.Daemon, "--ndp-proxy")
	}
	// The daemon's auto mode would pick the same, but sequential changes which
	// addresses containers get, so the flags say it out loud.
	if h.Addressing == rules.AddressingSequential {
		h.Daemon = append(h.Daemon, "--addressing", rules.AddressingSequential)
	}
	return nil
}

// segmentLink is the on-link prefix of a single-segment role: the /64 the
// prefix sits in, since that is what a provider's router announces; a prefix
// shorter than /64 is taken as on-link as a whole.
func segmentLink(p netip.Prefix) netip.Prefix {
	if p.Bits() < 64 {
		return p
	}
	return netip.PrefixFrom(p.Addr(), 64).Masked()
}

// singleSegmentHost fills a host of split80 or split78 from its block: the
// first /80 on the uplink (the host at ::1 of it, as in the document), the
// second /80 for Docker.
func singleSegmentHost(n int, block netip.Prefix, opts Options) Host {
	own := subnet(block, 80, 0)
	return Host{
		Number:      n,
		Block:       block,
		Uplink:      opts.Uplink,
		UplinkAddr:  netip.PrefixFrom(offset(own, 1), 80),
		Own:         own,
		Bridge:      opts.Bridge,
		FixedCIDRv6: subnet(block, 80, 1),
	}
}

// routeOrProxy decides, for the single-segment roles, how the upstream
// router reaches the containers: the router sees their prefix as on-link and
// solicits each address on the uplink, so either the host proxies NDP or the
// router is given a route via the host.
func routeOrProxy(p *Plan, opts Options) {
	for i := range p.Hosts {
		h := &p.Hosts[i]
		if !opts.RouterRoutes {
			h.NDPProxy = true
			continue
		}
		p.RouterRoutes = append(p.RouterRoutes, Route{Prefix: h.FixedCIDRv6, Via: h.UplinkAddr.Addr()})
	}
}

func computeSplit80(p *Plan, opts Options) {
	p.Link = segmentLink(p.Prefix)
	p.Hosts = []Host{singleSegmentHost(1, p.Prefix, opts)}
	routeOrProxy(p, opts)
}

func computeSplit78(p *Plan, opts Options) {
	p.Link = segmentLink(p.Prefix)
	for n := 1; n <= opts.Hosts; n++ {
		p.Hosts = append(p.Hosts, singleSegmentHost(n, subnet(p.Prefix, 78, uint64(n-1)), opts))
	}
	routeOrProxy(p, opts)
}

// computeHalves follows the document's provider range: the host keeps the
// first half and answers on the provider's /64 at the half's ::1
// (2001:db8::c001/64), Docker gets the second half.
func computeHalves(p *Plan, opts Options) {
	p.Link = segmentLink(p.Prefix)
	half := p.Prefix.Bits() + 1
	own := subnet(p.Prefix, half, 0)
	p.Hosts = []Host{{
		Number:      1,
		Block:       p.Prefix,
		Uplink:      opts.Uplink,
		UplinkAddr:  netip.PrefixFrom(offset(own, 1), p.Link.Bits()),
		Own:         own,
		Bridge:      opts.Bridge,
		FixedCIDRv6: subnet(p.Prefix, half, 1),
	}}
	routeOrProxy(p, opts)
}

// clusterHost fills what both cluster layouts share: host N owns /48 number
// N and sits at ::N on the hosts' link, the first /64 of /48 number 0.
func clusterHost(p *Plan, n int, opts Options) Host {
	return Host{
		Number:     n,
		Block:      subnet(p.Prefix, 48, uint64(n)),
		Uplink:     opts.Uplink,
		UplinkAddr: netip.PrefixFrom(offset(p.Link, uint64(n)), 64),
		Bridge:     opts.Bridge,
	}
}

func clusterLink(p netip.Prefix) netip.Prefix { return subnet(p, 64, 0) }

// computeSwitched gives host N's containers the first /64 of its /48
// (2001:db8:N::/64) and routes it on every other host via host N's address.
func computeSwitched(p *Plan, opts Options) {
	p.Link = clusterLink(p.Prefix)
	p.Router = clusterRouter(p.Link)
	for n := 1; n <= opts.Hosts; n++ {
		h := clusterHost(p, n, opts)
		h.FixedCIDRv6 = subnet(h.Block, 64, 0)
		p.Hosts = append(p.Hosts, h)
	}
	for i := range p.Hosts {
		for j, peer := range p.Hosts {
			if i == j {
				continue
			}
			p.Hosts[i].Routes = append(p.Hosts[i].Routes, Route{
				Prefix: peer.FixedCIDRv6,
				Via:    peer.UplinkAddr.Addr(),
				Dev:    opts.Uplink,
			})
		}
	}
}

// computeRouted keeps the first /64 of host N's /48 for the host and gives
// Docker the second (2001:db8:N:1::/64); the router routes the whole /48.
func computeRouted(p *Plan, opts Options) {
	p.Link = clusterLink(p.Prefix)
	p.Router = clusterRouter(p.Link)
	for n := 1; n <= opts.Hosts; n++ {
		h := clusterHost(p, n, opts)
		h.Own = subnet(h.Block, 64, 0)
		h.FixedCIDRv6 = subnet(h.Block, 64, 1)
		p.Hosts = append(p.Hosts, h)
		p.RouterRoutes = append(p.RouterRoutes, Route{Prefix: h.Block, Via: h.UplinkAddr.Addr()})
	}
}

// notes explains the plan's consequences once, not once per host.
func notes(p *Plan) []string {
	var out []string
	h := p.Hosts[0]
	if h.Addressing == rules.AddressingSequential {
		if h.FixedCIDRv6.Bits() > 80 {
			out = append(out, fmt.Sprintf("sequential addressing: a /%d cannot hold a 48-bit MAC, so containers are numbered from %s", h.FixedCIDRv6.Bits(), h.FirstContainer))
		} else {
			out = append(out, fmt.Sprintf("sequential addressing: containers are numbered from %s", h.FirstContainer))
		}
	}
	switch {
	case h.NDPProxy:
		out = append(out, fmt.Sprintf("the router treats %s as on-link on %s and solicits container addresses there; v6dp answers for the live ones (--ndp-proxy)", p.Link, h.Uplink))
	case p.Role == RoleRouted:
		out = append(out, fmt.Sprintf("hosts route by default via the router %s (static, or from its RAs: then keep accept_ra=2 on the uplink, since forwarding is on)", p.Router))
		out = append(out, fmt.Sprintf("each daemon announces its container /64 and its /48 by BGP (next hop its uplink address); the router accepts every host on %s as a dynamic neighbour, so a new host needs no change on the router", p.Link))
	case p.Role == RoleSwitched:
		out = append(out, "every host routes each other host's containers via that host (--peer; v6dp keeps the routes); a new host adds a --peer on every host")
	default:
		out = append(out, "the router routes each container prefix to its host, so no NDP proxy is needed")
	}
	return out
}
