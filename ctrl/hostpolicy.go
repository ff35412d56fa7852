package ctrl

import (
	"fmt"
	"os"
	"path/filepath"
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

// readForwarding reads net.ipv6.conf.<uplink>.forwarding by path, so that
// interface names with dots (eth0.100) need no translation.
func readForwarding(uplink string) bool {
	b, err := os.ReadFile(filepath.Join(sysctlRoot, "net/ipv6/conf", uplink, "forwarding"))
	return err == nil && strings.TrimSpace(string(b)) != "0"
}

// Netfilter hook numbers (linux/netfilter.h), the same for the ip6, inet
// and bridge families.
const (
	nfPrerouting  = 0
	nfForward     = 2
	nfPostrouting = 4
)

// forwardFiltered reports whether netfilter might act on IPv6 that the
// host forwards to or from its endpoints: a base chain of the ip6, inet or
// bridge family at prerouting, forward or postrouting with a rule in it or
// a drop policy (iptables-nft's ip6tables rules are such chains too), or a
// table of the legacy ip6_tables module, whose rules are not read here.
func forwardFiltered() (bool, string) {
	if b, err := os.ReadFile("/proc/net/ip6_tables_names"); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return true, "legacy ip6tables tables loaded (" + strings.Join(strings.Fields(string(b)), ", ") + ")"
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
		if c.Hooknum == nil || c.Table == nil {
			continue
		}
		switch c.Table.Family {
		case nftables.TableFamilyIPv6, nftables.TableFamilyINet, nftables.TableFamilyBridge:
		default:
			continue
		}
		switch *c.Hooknum {
		case nfPrerouting, nfForward, nfPostrouting:
		default:
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

func familyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyIPv6:
		return "ip6"
	case nftables.TableFamilyINet:
		return "inet"
	case nftables.TableFamilyBridge:
		return "bridge"
	}
	return fmt.Sprintf("family %d", f)
}
