package ctrl

import (
	"fmt"
	"os"
	"strings"

	"github.com/google/nftables"
)

// hostPolicy is what the host's kernel does with forwarded IPv6 and with
// the Neighbor Solicitations for its endpoints, which the BPF fast path
// must follow: it forwards and answers only while the kernel would, and
// nothing that the host's firewall might filter.
type hostPolicy struct {
	// Forwarding is the uplink's IPv6 forwarding sysctl: the kernel
	// forwards and proxies NDP on the uplink only while it is on.
	Forwarding bool
	// Filtered says netfilter has rules or a drop policy on the path of
	// forwarded IPv6; FilterWhy names the first such chain.
	Filtered  bool
	FilterWhy string
	// NDPFiltered says netfilter has rules or a drop policy on the
	// kernel's NDP answer path (the NS arriving on the uplink for the
	// host, its NA leaving); NDPFilterWhy names the first such chain.
	NDPFiltered  bool
	NDPFilterWhy string
}

// readHostPolicy reads the policy for the uplink. A firewall that cannot
// be read counts as filtering: when in doubt, the kernel forwards and
// answers.
func readHostPolicy(uplink string) hostPolicy {
	return readFirewall().policy(uplink)
}

// policy is the host policy for the uplink under this firewall reading.
func (fw firewall) policy(uplink string) hostPolicy {
	return hostPolicy{Forwarding: readForwarding(uplink),
		Filtered: fw.Forward.Filtered, FilterWhy: fw.Forward.Why,
		NDPFiltered: fw.NDP.Filtered, NDPFilterWhy: fw.NDP.Why}
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
	nfInput       = 1
	nfForward     = 2
	nfOutput      = 3
	nfPostrouting = 4
	nfIngress     = 5 // inet's ingress hook
)

// filtering is one verdict on one path: whether netfilter might act on
// it, and why (the first chain or table that might).
type filtering struct {
	Filtered bool
	Why      string
}

// set records why, unless an earlier reason stands.
func (f *filtering) set(why string) {
	if !f.Filtered {
		f.Filtered, f.Why = true, why
	}
}

// firewall is one reading of the host's netfilter state, judged for the
// two paths BPF short-cuts.
type firewall struct {
	// Forward: IPv6 the host forwards to or from its endpoints (see
	// chainOnPath).
	Forward filtering
	// NDP: the NS for an endpoint arriving on the uplink, which the
	// kernel takes in for itself (ip6_input, NF_INET_LOCAL_IN, then
	// ndisc_rcv answers from its proxy entries), and the NA it sends
	// (see chainOnNDPPath).
	NDP filtering
}

// readFirewall reads netfilter once for both verdicts: a base chain with
// a rule in it or a drop policy on a path filters it, and so does a table
// of the legacy ip6_tables module (its rules are not read here; it has
// chains at every hook of both paths), and for forwarding one of the
// legacy ebtables module. What cannot be read filters both.
func readFirewall() firewall {
	var fw firewall
	both := func(why string) {
		fw.Forward.set(why)
		fw.NDP.set(why)
	}
	if b, err := os.ReadFile("/proc/net/ip6_tables_names"); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		both("legacy ip6tables tables loaded (" + strings.Join(strings.Fields(string(b)), ", ") + ")")
		return fw
	}
	if _, err := os.Stat("/sys/module/ebtable_filter"); err == nil {
		fw.Forward.set("legacy ebtables filter table loaded")
	}
	conn, err := nftables.New()
	if err != nil {
		both(fmt.Sprintf("nftables unreadable: %v", err))
		return fw
	}
	defer conn.CloseLasting()
	chains, err := conn.ListChains()
	if err != nil {
		both(fmt.Sprintf("nftables unreadable: %v", err))
		return fw
	}
	for _, c := range chains {
		if fw.Forward.Filtered && fw.NDP.Filtered {
			break
		}
		if c.Hooknum == nil || c.Table == nil {
			continue
		}
		fam, hook := c.Table.Family, uint32(*c.Hooknum)
		fwd := !fw.Forward.Filtered && chainOnPath(fam, hook)
		ndp := !fw.NDP.Filtered && chainOnNDPPath(fam, hook)
		if !fwd && !ndp {
			continue
		}
		why := chainFilters(conn, c)
		if why == "" {
			continue
		}
		if fwd {
			fw.Forward.set(why)
		}
		if ndp {
			fw.NDP.set(why)
		}
	}
	return fw
}

// chainFilters says why a base chain might act on what passes it (a drop
// policy, rules, or rules that cannot be read); "" if it cannot.
func chainFilters(conn *nftables.Conn, c *nftables.Chain) string {
	name := fmt.Sprintf("%s %s chain %s", familyName(c.Table.Family), c.Table.Name, c.Name)
	if c.Policy != nil && *c.Policy == nftables.ChainPolicyDrop {
		return name + " has policy drop"
	}
	rules, err := conn.GetRules(c.Table, c)
	if err != nil {
		return fmt.Sprintf("%s unreadable: %v", name, err)
	}
	if len(rules) > 0 {
		return fmt.Sprintf("%s has %d rules", name, len(rules))
	}
	return ""
}

// chainOnPath reports whether a base chain of family at hook sees the
// endpoints' forwarded traffic:
//   - the ip6 or inet family at prerouting, forward or postrouting (and
//     inet's ingress), which is where iptables-nft puts ip6tables rules;
//   - the bridge family at any hook (switched and routed frames of the
//     endpoints cross the bridge);
//   - the netdev family (ingress and egress chains of the uplink and the
//     ports, which the programs' redirects skip).
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

// chainOnNDPPath reports whether a base chain of family at hook sees the
// kernel's NDP answers for the endpoints: the NS (multicast to the
// target's solicited-node group, or unicast to the target, which
// ip6_forward hands to ip6_input as a proxied address) crosses prerouting
// and input, the NA output and postrouting:
//   - the ip6 or inet family at those hooks (and inet's ingress);
//   - the netdev family (the uplink's ingress and egress chains; one on
//     another device counts too, as the safe answer).
//
// The bridge family never sees them: the uplink is not a bridge port, and
// the NS is not forwarded to the endpoints' bridge.
func chainOnNDPPath(family nftables.TableFamily, hook uint32) bool {
	switch family {
	case nftables.TableFamilyIPv6:
		return hook == nfPrerouting || hook == nfInput || hook == nfOutput || hook == nfPostrouting
	case nftables.TableFamilyINet:
		return hook == nfPrerouting || hook == nfInput || hook == nfOutput || hook == nfPostrouting || hook == nfIngress
	case nftables.TableFamilyNetdev:
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
