package ctrl

import "testing"

// The journal forgets the ports that are gone and keeps everything else.
func TestForgetGonePorts(t *testing.T) {
	j := &Journal{Sysctls: map[string]string{
		ipv6Conf("lo", "disable_ipv6"):             "0",
		ipv6Conf("v6dpgone0x", "disable_ipv6"):     "0",
		ipv6Conf("v6dpgone0x", "accept_ra"):        "1",
		"net/ipv6/conf/all/forwarding":             "0",
		ipv6Neigh("v6dpgone0x.100", "proxy_delay"): "80",
	}}
	forgetGonePorts(j)
	want := map[string]bool{ipv6Conf("lo", "disable_ipv6"): true, ipv6Conf("v6dpgone0x", "accept_ra"): true,
		"net/ipv6/conf/all/forwarding": true, ipv6Neigh("v6dpgone0x.100", "proxy_delay"): true}
	for k := range j.Sysctls {
		if !want[k] {
			t.Errorf("kept %s", k)
		}
		delete(want, k)
	}
	for k := range want {
		t.Errorf("forgot %s", k)
	}
}
