package test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// dataplanes are the dataplanes every NDP scenario runs under, with the
// same expected results (parity).
func dataplanes() []string { return []string{"kernel", "xdp", "tc"} }

// counters reads the BPF counters: the port guards run on every dataplane,
// the kernel's included, so there are always some.
func (s *seed) counters(t *testing.T, dp string) map[string]uint64 {
	t.Helper()
	out := s.mustV6dp(t, "stats", "--json")
	m := map[string]uint64{}
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("stats --json: %v: %s", err, out)
	}
	return m
}

// Bad input: one line naming the field and the rule, non-zero exit, and
// nothing made on the host.
func TestBadInput(t *testing.T) {
	s := newSeed(t, "2001:db8:1::/64")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"nonexistent uplink", []string{"daemon", "--ipv6", "--fixed-cidr-v6", "2001:db8:1::/64", "--uplink", "nosuch0", "--ndp-proxy"}, `uplink: interface "nosuch0" does not exist`},
		{"mac addressing with /96", []string{"daemon", "--ipv6", "--fixed-cidr-v6", "2001:db8:1::/96", "--addressing", "mac"}, "addressing: mac needs fixed-cidr-v6 of /80 or shorter"},
		{"invalid prefix", []string{"daemon", "--ipv6", "--fixed-cidr-v6", "2001:db8:zz::/64"}, `fixed-cidr-v6: "2001:db8:zz::/64" is not an IPv6 prefix`},
		{"prefix with host bits", []string{"daemon", "--ipv6", "--fixed-cidr-v6", "2001:db8:1::5/64"}, "fixed-cidr-v6: 2001:db8:1::5/64 has host bits set; did you mean 2001:db8:1::/64?"},
		{"invalid gateway", []string{"daemon", "--ipv6", "--fixed-cidr-v6", "2001:db8:1::/64", "--default-gateway-v6", "10.0.0.1"}, `default-gateway-v6: "10.0.0.1" is not an IPv6 address`},
		{"gateway outside prefix", []string{"daemon", "--ipv6", "--fixed-cidr-v6", "2001:db8:1::/64", "--default-gateway-v6", "2001:db8:2::1"}, "default-gateway-v6: 2001:db8:2::1 is neither link-local nor inside fixed-cidr-v6 2001:db8:1::/64"},
		{"ipv6 off", []string{"daemon", "--fixed-cidr-v6", "2001:db8:1::/64"}, "ipv6: must be enabled"},
		{"unknown flag", []string{"daemon", "--ipv7"}, "daemon: flag provided but not defined: -ipv7"},
		{"bad dataplane", []string{"daemon", "--ipv6", "--fixed-cidr-v6", "2001:db8:1::/64", "--dataplane", "dpdk"}, `dataplane: "dpdk" is not one of auto, kernel, xdp, tc`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := s.v6dp(c.args...)
			if err == nil {
				t.Fatalf("exit 0, want an error; output:\n%s", out)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 1 {
				t.Errorf("want a one-line error, got %d lines:\n%s", len(lines), out)
			}
			if !strings.Contains(out, c.want) {
				t.Errorf("error %q does not say %q", strings.TrimSpace(out), c.want)
			}
			if _, err := s.Run(s.Host, "ip", "link", "show", "docker0"); err == nil {
				t.Errorf("docker0 was created despite the error")
			}
			if v := s.ReadSysctl(s.Host, "net.ipv6.conf.all.forwarding"); v != "0" {
				t.Errorf("forwarding turned on despite the error")
			}
		})
	}

	// A container name that exists: an error, and the first one intact.
	s.startDaemon(t, s.daemonArgs("kernel"))
	c := s.name("dup")
	addr := s.addContainer(t, c)
	out, err := s.v6dp("container", "add", c)
	if err == nil || !strings.Contains(out, "container "+c+": already exists") || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("adding an existing container: want a one-line 'already exists' error, got %v: %s", err, out)
	}
	if got := s.MustRun(c, "ip", "-6", "addr", "show", "dev", "eth0"); !strings.Contains(got, addr) {
		t.Errorf("the existing container lost its address:\n%s", got)
	}
	links := s.MustRun(s.Host, "ip", "-o", "link", "show", "master", "docker0")
	if n := strings.Count(links, "\n"); n != 1 {
		t.Errorf("want exactly 1 port on docker0 after the failed add, got %d:\n%s", n, links)
	}
}

// cleanup removes what v6dp made and restores what it changed, nothing else.
func TestCleanup(t *testing.T) {
	s := newSeed(t, "2001:db8::c008/125")
	d := s.startDaemon(t, s.daemonArgs("kernel"))
	c := s.name("cl")
	s.addContainer(t, c)
	s.waitLive(t, "2001:db8::c009", false)
	if _, err := s.v6dp("cleanup"); err == nil {
		t.Errorf("cleanup while the daemon runs: want a refusal")
	}
	d.stop()
	s.mustV6dp(t, "cleanup")
	if _, err := s.Run(s.Host, "ip", "link", "show", "docker0"); err == nil {
		t.Errorf("docker0 still exists after cleanup")
	}
	if _, err := os.Stat(filepath.Join("/run/netns", c)); err == nil {
		t.Errorf("container namespace %s still exists after cleanup", c)
	}
	if out := s.MustRun(s.Host, "ip", "-6", "neigh", "show", "proxy"); strings.TrimSpace(out) != "" {
		t.Errorf("proxy entries left after cleanup:\n%s", out)
	}
	for k, want := range map[string]string{
		"net.ipv6.conf.all.forwarding":    "0",
		"net.ipv6.conf.eth0.accept_ra":    "1",
		"net.ipv6.conf.eth0.proxy_ndp":    "0",
		"net.ipv6.neigh.eth0.proxy_delay": "80",
	} {
		if v := s.ReadSysctl(s.Host, k); v != want {
			t.Errorf("after cleanup %s = %s, want %s restored", k, v, want)
		}
	}
	// The host's own address and route are untouched.
	if out := s.MustRun(s.Host, "ip", "-6", "addr", "show", "dev", "eth0"); !strings.Contains(out, hostAddr) {
		t.Errorf("cleanup removed the host's own address")
	}
}

// A veth that something else put on the bridge (another runtime) is
// learned without any v6dp command, and forgotten when it goes.
func TestLearnsForeignEndpoint(t *testing.T) {
	s := newSeed(t, "2001:db8::c008/125")
	s.startDaemon(t, s.daemonArgs("kernel"))
	ns := s.NS("foreign")
	s.MustRun(s.Host, "ip", "link", "add", "vforeign", "type", "veth", "peer", "name", "tmpf")
	s.MustRun(s.Host, "ip", "link", "set", "tmpf", "netns", ns)
	s.MustRun(ns, "ip", "link", "set", "tmpf", "name", "eth0")
	s.MustRun(ns, "ip", "link", "set", "eth0", "up")
	s.MustRun(s.Host, "ip", "link", "set", "vforeign", "master", "docker0", "up")
	s.MustRun(ns, "ip", "addr", "add", "2001:db8::c00e/125", "dev", "eth0", "nodad")
	s.MustRun(ns, "ip", "-6", "route", "add", "default", "via", "fe80::1", "dev", "eth0")
	s.waitLive(t, "2001:db8::c00e", false)
	s.MustRun(s.Router, "ping", "-c", "1", "-W", "2", "2001:db8::c00e")
	s.MustRun(s.Host, "ip", "link", "del", "vforeign")
	eventually(t, time.Second, func() error {
		if out := s.MustRun(s.Host, "ip", "-6", "neigh", "show", "proxy"); strings.Contains(out, "2001:db8::c00e") {
			return fmt.Errorf("proxy entry for the removed endpoint still there")
		}
		return nil
	})
}

// The daemon serves Prometheus metrics read from the pinned maps.
func TestMetrics(t *testing.T) {
	s := newSeed(t, "2001:db8::c008/125")
	s.startDaemon(t, s.daemonArgs("xdp", "--metrics-addr", "127.0.0.1:9662"))
	addr := s.addContainer(t, s.name("m"))
	s.waitLive(t, addr, true)
	s.MustRun(s.Router, "ping", "-c", "1", "-W", "2", addr)
	var body string
	eventually(t, 3*time.Second, func() error {
		out, err := s.Run(s.Host, "busybox", "wget", "-qO-", "http://127.0.0.1:9662/metrics")
		if err != nil {
			return err
		}
		body = out
		return nil
	})
	for _, want := range []string{
		"v6dp_endpoint_addresses 1",
		"v6dp_endpoints 1",
		`v6dp_dataplane_info{dataplane="xdp"} 1`,
		// The port's guard is there by then.
		`v6dp_ports_pending{work="guard"} 0`,
		`v6dp_bpf_packets_total{verdict="ns_answered"}`,
		"process_resident_memory_bytes ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, `v6dp_bpf_packets_total{verdict="ns_answered"} 0`) {
		t.Errorf("ns_answered is 0 after the router resolved %s", addr)
	}
}
