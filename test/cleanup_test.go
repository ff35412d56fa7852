package test

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"
)

// `v6dp cleanup` gives back every sysctl the daemon changed: on a bridge
// an engine made (v6dp adopts it, so it stays), on the uplink, on a port
// the engine put there (renamed since), and the global ones. The whole of the host
// namespace's IPv6 settings (and IPv4's per-interface ones) is compared
// before the daemon starts and after cleanup, so a setting nobody thought
// of is caught too.
func TestCleanupRestoresEverySysctl(t *testing.T) {
	for _, dp := range []string{"kernel", "xdp"} {
		t.Run(dp, func(t *testing.T) {
			s := newSeed(t, "2001:db8::c008/125")
			// As dockerd leaves it: docker0 up with fe80::1, one
			// container's port on it with IPv6 on.
			s.MustRun(s.Host, "ip", "link", "add", "docker0", "type", "bridge")
			s.MustRun(s.Host, "ip", "link", "set", "docker0", "up")
			fns := s.NS("engine")
			port := "vf" + s.Tag
			s.MustRun(s.Host, "ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", fns)
			s.MustRun(fns, "ip", "link", "set", "eth0", "up")
			s.MustRun(fns, "ip", "addr", "add", "2001:db8::c00d/125", "dev", "eth0", "nodad")
			s.MustRun(s.Host, "ip", "link", "set", port, "master", "docker0", "up")
			before := sysctls(t, s)
			if before["net/ipv6/conf/"+port+"/disable_ipv6"] != "0" {
				t.Fatalf("the engine's port starts with IPv6 off: %v", before["net/ipv6/conf/"+port+"/disable_ipv6"])
			}

			d := s.startDaemon(t, s.daemonArgs(dp))
			s.waitLive(t, "2001:db8::c00d", dp != "kernel")
			c := s.name("cs")
			addr := s.addContainer(t, c)
			s.waitLive(t, addr, dp != "kernel")
			// The port's IPv6 goes off between the daemon's event
			// batches, just after the port is served.
			during := sysctls(t, s)
			for end := time.Now().Add(5 * time.Second); during["net/ipv6/conf/"+port+"/disable_ipv6"] != "1" && time.Now().Before(end); {
				time.Sleep(20 * time.Millisecond)
				during = sysctls(t, s)
			}
			// The daemon did change things, the port's IPv6 among them;
			// otherwise the comparison below proves nothing.
			for _, k := range []string{"net/ipv6/conf/" + port + "/disable_ipv6", "net/ipv6/conf/all/forwarding",
				"net/ipv6/conf/eth0/proxy_ndp", "net/ipv6/neigh/eth0/proxy_delay", "net/ipv6/conf/docker0/accept_ra"} {
				if during[k] == before[k] {
					t.Errorf("%s is %s while the daemon runs, as before it: the daemon was expected to change it", k, during[k])
				}
			}
			d.stop()
			// The engine renames its port after v6dp turned its
			// IPv6 off: cleanup finds it by its index, under the new
			// name. It gets its name back (and is up again) before
			// the comparison.
			renamed := port + "r"
			s.MustRun(s.Host, "ip", "link", "set", port, "down")
			s.MustRun(s.Host, "ip", "link", "set", port, "name", renamed)
			s.mustV6dp(t, "cleanup")
			if v := s.ReadSysctl(s.Host, "net.ipv6.conf."+renamed+".disable_ipv6"); v != "0" {
				t.Errorf("the port renamed %s after v6dp turned its IPv6 off: disable_ipv6 %s after cleanup, want 0", renamed, v)
			}
			s.MustRun(s.Host, "ip", "link", "set", renamed, "name", port)
			s.MustRun(s.Host, "ip", "link", "set", port, "up")
			after := sysctls(t, s)
			var diff []string
			for k, v := range before {
				a, ok := after[k]
				if !ok {
					diff = append(diff, fmt.Sprintf("%s: %s before, gone after", k, v))
				} else if a != v {
					diff = append(diff, fmt.Sprintf("%s: %s before, %s after cleanup", k, v, a))
				}
			}
			sort.Strings(diff)
			if len(diff) > 0 {
				t.Errorf("cleanup left %d sysctls changed:\n  %s", len(diff), strings.Join(diff, "\n  "))
			}
			if _, err := s.Run(s.Host, "ip", "link", "show", "docker0"); err != nil {
				t.Errorf("cleanup removed the adopted docker0: %v", err)
			}
		})
	}
}

// sysctls reads the host namespace's IPv6 settings and IPv4's
// per-interface ones, keyed by path below /proc/sys.
func sysctls(t *testing.T, s *seed) map[string]string {
	t.Helper()
	// grep exits 2 for the write-only and unreadable entries (flush,
	// stable_secret); what it could read is complete.
	out, _ := s.Run(s.Host, "sh", "-c", "cd /proc/sys && grep -r . net/ipv6 net/ipv4/conf net/ipv4/neigh 2>/dev/null")
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(l, ":")
		if ok {
			m[k] = v
		}
	}
	if len(m) < 100 {
		t.Fatalf("read only %d sysctls in %s:\n%s", len(m), s.Host, out)
	}
	return m
}
