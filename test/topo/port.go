package topo

import (
	"os"
	"strings"

	"github.com/vishvananda/netlink"
)

// PortGuarded reports whether the interface with ifindex idx has v6dp's
// endpoint program at its ingress (a tc filter of that name), asked on h.
func PortGuarded(h *netlink.Handle, idx int) bool {
	filters, err := h.FilterList(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: idx}}, netlink.HANDLE_MIN_INGRESS)
	if err != nil {
		return false // no qdisc yet
	}
	for _, f := range filters {
		if bf, ok := f.(*netlink.BpfFilter); ok && strings.HasPrefix(bf.Name, "v6dp_tc_endpoint") {
			return true
		}
	}
	return false
}

// IPv6Off reports whether the interface name has its IPv6 off, in the
// network namespace of the calling thread (/proc/sys/net shows the
// namespace of the thread that opens it: call it inside InNS).
func IPv6Off(name string) (bool, error) {
	b, err := os.ReadFile("/proc/sys/net/ipv6/conf/" + name + "/disable_ipv6")
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(string(b)) == "1", nil
}
