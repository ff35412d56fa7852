package ctrl

import "testing"

// Interface names with dots (VLAN uplinks: eth0.100, bond0.42) are one
// directory in /proc/sys, not two.
func TestSysctlDottedInterfaceNames(t *testing.T) {
	cases := []struct{ key, path, name string }{
		{"net/ipv6/conf/all/forwarding", "/proc/sys/net/ipv6/conf/all/forwarding", "net.ipv6.conf.all.forwarding"},
		{ipv6Conf("eth0.100", "proxy_ndp"), "/proc/sys/net/ipv6/conf/eth0.100/proxy_ndp", "net.ipv6.conf.eth0/100.proxy_ndp"},
		{ipv6Neigh("bond0.42", "proxy_delay"), "/proc/sys/net/ipv6/neigh/bond0.42/proxy_delay", "net.ipv6.neigh.bond0/42.proxy_delay"},
		// A name cannot climb out of /proc/sys.
		{"../../etc/passwd", "/proc/sys/etc/passwd", ""},
	}
	for _, c := range cases {
		if got := sysctlPath(c.key); got != c.path {
			t.Errorf("sysctlPath(%q) = %q, want %q", c.key, got, c.path)
		}
		if c.name == "" {
			continue
		}
		if got := SysctlName(c.key); got != c.name {
			t.Errorf("SysctlName(%q) = %q, want %q", c.key, got, c.name)
		}
	}
}
