package test

// Several uplinks: the seed's network on eth0 towards the seed's router,
// and an engine's network given BRIDGE=PREFIX@eth1, reached through a
// second router on eth1 with an on-link /64 of its own. Each network is
// answered and reached on its own uplink only, its endpoints' traffic
// leaves by it, and cleanup gives the second uplink back.

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/v6dp/v6dp/loader"
)

const (
	router2Addr  = "2001:db8:9::1"
	host2Addr    = "2001:db8:9::c001"
	engine2Pfx   = "2001:db8:9:0:2::/80"
	engine2GW    = "2001:db8:9:0:2::1"
	engine2Addr  = "2001:db8:9:0:2::10"
	seedPfxSmall = "2001:db8:0:0:1::/80"
)

func TestSeveralUplinks(t *testing.T) {
	for _, dp := range []string{"kernel", "tc", "auto"} {
		t.Run(dp, func(t *testing.T) { testSeveralUplinks(t, dp) })
	}
}

func testSeveralUplinks(t *testing.T, dp string) {
	s := newSeed(t, seedPfxSmall)
	// The second router, on-link 2001:db8:9::/64, through the host's eth1.
	r2 := s.NS("router2")
	r2If := "r2" + s.Tag
	s.Veth(r2, r2If, s.Host, "eth1")
	s.Sysctl(r2, "net.ipv6.conf."+r2If+".accept_dad", "0")
	s.Sysctl(s.Host, "net.ipv6.conf.eth1.accept_dad", "0")
	s.MustRun(r2, "ip", "addr", "add", router2Addr+"/64", "dev", r2If, "nodad")
	s.MustRun(r2, "ip", "link", "set", r2If, "up")
	s.MustRun(s.Host, "ip", "addr", "add", host2Addr+"/64", "dev", "eth1", "nodad")
	s.MustRun(s.Host, "ip", "link", "set", "eth1", "up")
	proxyNDPBefore := s.ReadSysctl(s.Host, "net.ipv6.conf.eth1.proxy_ndp")

	// The engine's bridge, made as an engine makes it, with its gateway.
	br := "v6u" + s.Tag
	s.MustRun(s.Host, "ip", "link", "add", br, "type", "bridge")
	s.Sysctl(s.Host, "net.ipv6.conf."+br+".accept_dad", "0")
	s.MustRun(s.Host, "ip", "addr", "add", engine2GW+"/80", "dev", br, "nodad")
	s.MustRun(s.Host, "ip", "link", "set", br, "up")
	// A container on it, as an engine wires one.
	c := s.NS("u1")
	port := "v6up" + s.Tag
	s.Veth(c, "eth0", s.Host, port)
	s.MustRun(s.Host, "ip", "link", "set", port, "master", br, "up")
	s.Sysctl(c, "net.ipv6.conf.eth0.accept_dad", "0")
	s.MustRun(c, "ip", "addr", "add", engine2Addr+"/80", "dev", "eth0", "nodad")
	s.MustRun(c, "ip", "link", "set", "eth0", "up")
	s.MustRun(c, "ip", "-6", "route", "add", "default", "via", engine2GW)

	d := s.startDaemon(t, s.daemonArgs(dp, "--network", br+"="+engine2Pfx+"@eth1"))
	c1 := s.addContainer(t, "c1")
	s.waitLive(t, engine2Addr, dp != "kernel")
	s.waitLive(t, c1, dp != "kernel")

	// Each router reaches the containers of its own link's network.
	s.MustRun(r2, "ping", "-c", "2", "-W", "2", engine2Addr)
	s.MustRun(s.Router, "ping", "-c", "2", "-W", "2", c1)
	// The engine's container reaches the second router: out of eth1.
	s.MustRun(c, "ping", "-c", "2", "-W", "2", router2Addr)
	// Nobody answers the first router for the second uplink's network.
	if out, err := s.Run(s.Router, "ndisc6", "-1", "-r", "2", "-w", "300", engine2Addr, s.RouterIf); err == nil {
		t.Errorf("the seed's router got an answer for %s, whose network is on eth1:\n%s", engine2Addr, out)
	}
	// The proxy entries sit on each network's own uplink.
	if out := s.MustRun(s.Host, "ip", "-6", "neigh", "show", "proxy", "dev", "eth1"); !strings.Contains(out, engine2Addr) || strings.Contains(out, c1) {
		t.Errorf("proxy entries on eth1: %q, want %s only", out, engine2Addr)
	}
	if out := s.MustRun(s.Host, "ip", "-6", "neigh", "show", "proxy", "dev", "eth0"); strings.Contains(out, engine2Addr) || !strings.Contains(out, c1) {
		t.Errorf("proxy entries on eth0: %q, want %s and not %s", out, c1, engine2Addr)
	}

	var rep struct {
		RSSBytes uint64 `json:"rss_bytes"`
		Networks []struct {
			Bridge string `json:"bridge"`
			Uplink string `json:"uplink"`
			BPF    *struct {
				Uplink uint32          `json:"uplink_slot"`
				Counts loader.NetStats `json:"counts"`
			} `json:"bpf"`
		} `json:"networks"`
	}
	if err := json.Unmarshal([]byte(s.mustV6dp(t, "status", "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	// The daemon's own memory, as the operator sees it in status.
	if rep.RSSBytes < 1<<20 {
		t.Errorf("status reports the daemon's RSS as %d bytes", rep.RSSBytes)
	}
	uplinks := map[string]string{}
	for _, n := range rep.Networks {
		uplinks[n.Bridge] = n.Uplink
		if n.BPF == nil {
			t.Errorf("network %s not in the BPF maps", n.Bridge)
			continue
		}
		t.Logf("network %s via %s (slot %d): %+v", n.Bridge, n.Uplink, n.BPF.Uplink, n.BPF.Counts)
		if want := map[bool]uint32{true: 1, false: 0}[n.Bridge == br]; n.BPF.Uplink != want {
			t.Errorf("network %s: uplink slot %d, want %d", n.Bridge, n.BPF.Uplink, want)
		}
		if dp == "kernel" {
			continue
		}
		c := n.BPF.Counts
		if c.NSAnswered == 0 || c.FwdRedirected == 0 {
			t.Errorf("network %s: BPF answered or delivered nothing on its uplink: %+v", n.Bridge, c)
		}
		if n.Bridge == br && c.EgressFIB == 0 {
			t.Errorf("network %s: its container's pings did not leave by eth1 through BPF: %+v", n.Bridge, c)
		}
	}
	if uplinks["docker0"] != "eth0" || uplinks[br] != "eth1" {
		t.Errorf("status uplinks %v, want docker0 via eth0 and %s via eth1", uplinks, br)
	}
	if dp != "kernel" {
		if n := s.counters(t, dp)["ns_other_uplink"]; n == 0 {
			t.Errorf("the first router's NS for the eth1 network was not counted ns_other_uplink")
		}
	}

	// Cleanup gives eth1 back: no proxy entries, its sysctls as they were.
	d.stop()
	s.mustV6dp(t, "cleanup")
	if out := s.MustRun(s.Host, "ip", "-6", "neigh", "show", "proxy", "dev", "eth1"); strings.TrimSpace(out) != "" {
		t.Errorf("proxy entries left on eth1 after cleanup: %s", out)
	}
	if v := s.ReadSysctl(s.Host, "net.ipv6.conf.eth1.proxy_ndp"); v != proxyNDPBefore {
		t.Errorf("eth1 proxy_ndp %s after cleanup, %s before", v, proxyNDPBefore)
	}
}
