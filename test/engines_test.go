package test

// Several networks of real engines served by one daemon: dockerd with its
// own exec-root and two user-defined IPv6 networks beside docker0, v6dp
// started with nothing but the bridges, prefixes and uplink (no
// --netns-dirs): one network made before v6dp starts, one after.

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/v6dp/v6dp/loader"
	"github.com/v6dp/v6dp/test/docker"
	"github.com/v6dp/v6dp/test/topo"
)

func TestDockerNetworks(t *testing.T) {
	if why := dockerMissing(); why != "" {
		t.Fatal(why)
	}
	tarball := filepath.Join(t.TempDir(), "busybox-rootfs.tar")
	if err := docker.WriteRootfsFile(tarball, docker.Busybox); err != nil {
		t.Fatalf("busybox root filesystem: %v", err)
	}
	for _, dp := range discoveryDataplanes() {
		t.Run("network/"+dp, func(t *testing.T) { testDockerNetworks(t, dp, tarball, false) })
	}
	// The networks not named: found under their parent prefix.
	t.Run("network-parent/tc", func(t *testing.T) { testDockerNetworks(t, "tc", tarball, true) })
}

// statusNetworks mirrors the networks of `v6dp status --json`.
type statusNetworks struct {
	Networks []struct {
		Bridge    string `json:"bridge"`
		Prefix    string `json:"prefix"`
		Engine    bool   `json:"engine"`
		Exists    bool   `json:"exists"`
		Endpoints int    `json:"endpoints"`
		BPF       *struct {
			ID        uint32          `json:"id"`
			RouterMAC string          `json:"router_mac"`
			Counts    loader.NetStats `json:"counts"`
		} `json:"bpf"`
	} `json:"networks"`
	Endpoints []struct {
		Network string   `json:"network"`
		Addrs   []string `json:"addrs"`
	} `json:"endpoints"`
}

func testDockerNetworks(t *testing.T, dp, tarball string, parent bool) {
	// All three prefixes inside the router's on-link /64, so the host
	// proxies for each: docker0 2001:db8::1:0:0:0/80 (addresses from
	// MACs), the user networks ::2:0:0:0/80 and ::3:0:0:0/80 (IPAM).
	s := newSeed(t, "2001:db8:0:0:1::/80")
	e := startEngine(t, s, tarball, "--fixed-cidr-v6", s.Prefix)
	nets := []struct{ name, bridge, prefix string }{
		{"before-" + s.Tag, "v6b" + s.Tag, "2001:db8:0:0:2::/80"},
		{"after-" + s.Tag, "v6a" + s.Tag, "2001:db8:0:0:3::/80"},
	}
	createNet := func(i int) {
		n := nets[i]
		e.mustDocker(t, "network", "create", "--ipv6", "--subnet", n.prefix, "-o", "com.docker.network.bridge.name="+n.bridge, n.name)
	}
	addrOf := func(name string) string {
		return strings.TrimSpace(e.mustDocker(t, "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.GlobalIPv6Address}}{{end}}", name))
	}
	// The first user network and a container on it exist before v6dp.
	createNet(0)
	e.run(t, s.name("b0"), "--network", nets[0].name)
	addrs := map[string]string{s.name("b0"): addrOf(s.name("b0"))}

	args := s.daemonArgs(dp, "--bridge", "docker0")
	if parent {
		// The router's on-link /64 holds docker0's prefix and both
		// user networks'.
		args = append(args, "--network-parent", "2001:db8::/64")
	} else {
		for _, n := range nets {
			args = append(args, "--network", n.bridge+"="+n.prefix)
		}
	}
	s.startDaemon(t, args)
	// The second network is made after v6dp runs: its bridge did not
	// exist; v6dp must have waited for it, not made it.
	if out, err := s.Run(s.Host, "ip", "link", "show", nets[1].bridge); err == nil {
		t.Fatalf("bridge %s exists before Docker made its network: %s", nets[1].bridge, out)
	}
	if st := s.mustV6dp(t, "status"); !parent && !strings.Contains(st, "network "+nets[1].bridge+": bridge does not exist yet") {
		t.Errorf("status does not say that %s is awaited:\n%s", nets[1].bridge, st)
	}
	createNet(1)
	for _, c := range []struct{ name, network string }{{s.name("d0"), ""}, {s.name("a0"), nets[1].name}, {s.name("a1"), nets[1].name}} {
		var extra []string
		if c.network != "" {
			extra = []string{"--network", c.network}
		}
		e.run(t, c.name, extra...)
		addrs[c.name] = addrOf(c.name)
	}
	for name, a := range addrs {
		ip, err := netip.ParseAddr(a)
		if err != nil {
			t.Fatalf("%s: Docker gave no IPv6 address (%q)", name, a)
		}
		began := time.Now()
		s.waitLive(t, a, dp != "kernel")
		p := <-pingUntil(s, a, 10*time.Second)
		if p.err != nil {
			t.Fatalf("router ping %s (%s): %v", a, name, p.err)
		}
		t.Logf("%s %s: live and answered by the router's ping %s after the check began", name, ip, ms(p.at.Sub(began)))
	}

	// Across networks: a container of the second user network reaches
	// one of the first, routed through the host (BPF delivers it on the
	// BPF dataplanes, as the counts below show).
	e.mustDocker(t, "exec", s.name("a0"), "ping", "-c", "3", "-W", "2", addrs[s.name("b0")])

	// Status groups the endpoints by network.
	var rep statusNetworks
	if err := json.Unmarshal([]byte(s.mustV6dp(t, "status", "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, n := range rep.Networks {
		got[n.Bridge] = n.Endpoints
		if !n.Exists {
			t.Errorf("network %s: status says its bridge does not exist", n.Bridge)
		}
	}
	want := map[string]int{"docker0": 1, nets[0].bridge: 1, nets[1].bridge: 2}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("endpoints per network: got %v, want %v", got, want)
	}
	// Every network is in the BPF maps with its own bridge's MAC as the
	// router MAC; on the BPF dataplanes its endpoints got the router's
	// pings through BPF, and a0's pings left through BPF.
	ids := map[uint32]string{}
	for _, n := range rep.Networks {
		if n.BPF == nil {
			t.Errorf("network %s is not in the BPF maps", n.Bridge)
			continue
		}
		if other, ok := ids[n.BPF.ID]; ok {
			t.Errorf("networks %s and %s share BPF id %d", other, n.Bridge, n.BPF.ID)
		}
		ids[n.BPF.ID] = n.Bridge
		if mac := strings.TrimSpace(s.MustRun(s.Host, "cat", "/sys/class/net/"+n.Bridge+"/address")); n.BPF.RouterMAC != mac {
			t.Errorf("network %s: router MAC %s in BPF, the bridge's is %s", n.Bridge, n.BPF.RouterMAC, mac)
		}
		c := n.BPF.Counts
		t.Logf("network %s (bpf id %d): %+v", n.Bridge, n.BPF.ID, c)
		switch {
		case dp == "kernel" && c.FwdRedirected+c.EgressLocal+c.EgressFIB != 0:
			t.Errorf("network %s: the kernel dataplane forwarded in BPF: %+v", n.Bridge, c)
		case dp != "kernel" && (c.FwdRedirected == 0 || c.NSAnswered == 0):
			t.Errorf("network %s: BPF answered or delivered nothing for it: %+v", n.Bridge, c)
		case dp != "kernel" && n.Bridge == nets[1].bridge && c.EgressLocal == 0:
			t.Errorf("network %s: a0's pings to another network's container were not delivered by BPF: %+v", n.Bridge, c)
		}
	}
	for _, ep := range rep.Endpoints {
		for _, a := range ep.Addrs {
			ip := netip.MustParseAddr(a)
			for _, n := range nets {
				if netip.MustParsePrefix(n.prefix).Contains(ip) && ep.Network != n.bridge {
					t.Errorf("%s is listed under network %s, want %s", a, ep.Network, n.bridge)
				}
			}
		}
	}
	if dp != "kernel" {
		if c := s.counters(t, dp); c["ns_answered"] == 0 {
			t.Errorf("BPF answered no NS: %v", c)
		}
	}

	// A stopped container on a user network stops answering.
	gone := netip.MustParseAddr(addrs[s.name("a1")])
	e.mustDocker(t, "stop", s.name("a1"))
	conn, err := topo.ListenNDP(s.Router, s.RouterIf)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	eventually(t, 2*time.Second, func() error { return unanswered(conn, gone, 150*time.Millisecond) })
	s.MustRun(s.Router, "ping", "-c", "1", "-W", "2", addrs[s.name("a0")])
	t.Logf("v6dp status:\n%s", s.mustV6dp(t, "status"))
}
