package ctrl

import (
	"fmt"
	"os"
	"strings"

	"github.com/google/nftables"
)

// hostPolicy is what the host's kernel does with forwarded IPv6, which the
// BPF fast path must follow: it forwards only while the kernel would, and
// nothing that the host's firewall might filter.
type hostPolicy struct {
	// Forwarding is the uplink's IPv6 forwarding sysctl: the kernel
	// forwards and proxies NDP on the uplink only while it is on.
	Forwarding bool
	// Filtered says netfilter has rules or a drop policy on the path of
	// forwarded IPv6; FilterWhy names the first such chain.
	Filtered  bool
	FilterWhy string
}

// readHostPolicy reads the policy for the uplink. A firewall that cannot
// be read counts as filtering: when in doubt, the kernel forwards.
func readHostPolicy(uplink string) hostPolicy {
	p := hostPolicy{Forwarding: readForwarding(uplink)}
	p.Filtered, p.FilterWhy = forwardFiltered()
	return p
}

// readForwarding reports whether the kernel forwards and proxies on the
// uplink: ip6_forward needs net.ipv6.conf.all.forwarding, the NDP proxy
// the uplink's own (ndisc_recv_ns).
func readForwarding(uplink string) bool {
	for _, dev := range []string{"all", uplink} {
		if v, err := ReadSysctl(ipv6Conf(dev, "forwarding")); err != nil || v == "0" {
			return false
		}
	}
	return true
}

// Netfilter hook numbers (linux/netfilter.h): the same for the ip6, inet
// and bridge families; netdev has ingress (0) and egress (1).
const (
	nfPrerouting  = 0
	nfForward     = 2
	nfPostrouting = 4
	nfIngress     = 5 // inet's ingress hook
)

// forwardFiltered reports whether netfilter might act on IPv6 that the
// host forwards to or from its endpoints, which the fast path would skip:
// a base chain with a rule in it or a drop policy in
//   - the ip6 or inet family at prerouting, forward or postrouting (and
//     inet's ingress), which is where iptables-nft puts ip6tables rules;
//   - the bridge family at any hook (switched and routed frames of the
//     endpoints cross the bridge);
//   - the netdev family (ingress and egress chains of the uplink and the
//     ports, which the programs' redirects skip);
//
// or a table of the legacy ip6_tables or ebtables modules, whose rules are
// not read here and so count as filtering.
func forwardFiltered() (bool, string) {
	if b, err := os.ReadFile("/proc/net/ip6_tables_names"); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return true, "legacy ip6tables tables loaded (" + strings.Join(strings.Fields(string(b)), ", ") + ")"
	}
	if _, err := os.Stat("/sys/module/ebtable_filter"); err == nil {
		return true, "legacy ebtables filter table loaded"
	}
	conn, err := nftables.New()
	if err != nil {
		return true, fmt.Sprintf("nftables unreadable: %v", err)
	}
	defer conn.CloseLasting()
	chains, err := conn.ListChains()
	if err != nil {
		return true, fmt.Sprintf("nftables unreadable: %v", err)
	}
	for _, c := range chains {
		if c.Hooknum == nil || c.Table == nil || !chainOnPath(c.Table.Family, uint32(*c.Hooknum)) {
			continue
		}
		name := fmt.Sprintf("%s %s chain %s", familyName(c.Table.Family), c.Table.Name, c.Name)
		if c.Policy != nil && *c.Policy == nftables.ChainPolicyDrop {
			return true, name + " has policy drop"
		}
		rules, err := conn.GetRules(c.Table, c)
		if err != nil {
			return true, fmt.Sprintf("%s unreadable: %v", name, err)
		}
		if len(rules) > 0 {
			return true, fmt.Sprintf("%s has %d rules", name, len(rules))
		}
	}
	return false, ""
}

// chainOnPath reports whether a base chain of family at hook sees the
// endpoints' forwarded traffic (see forwardFiltered).
func chainOnPath(family nftables.TableFamily, hook uint32) bool {
	switch family {
	case nftables.TableFamilyIPv6:
		return hook == nfPrerouting || hook == nfForward || hook == nfPostrouting
	case nftables.TableFamilyINet:
		return hook == nfPrerouting || hook == nfForward || hook == nfPostrouting || hook == nfIngress
	case nftables.TableFamilyBridge, nftables.TableFamilyNetdev:
		return true
	}
	return false
}

func familyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyIPv6:
		return "ip6"
	case nftables.TableFamilyINet:
		return "inet"
	case nftables.TableFamilyBridge:
		return "bridge"
	case nftables.TableFamilyNetdev:
		return "netdev"
	}
	return fmt.Sprintf("family %d", f)
}
