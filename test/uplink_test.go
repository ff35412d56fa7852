package test

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/v6dp/v6dp/test/topo"
)

// plugUplink connects the host's uplink to the router again, through a
// new veth pair whose router end is routerIf, set up as newSeed does.
func (s *seed) plugUplink(t *testing.T, routerIf string) {
	t.Helper()
	s.Veth(s.Router, routerIf, s.Host, s.Uplink)
	s.RouterIf = routerIf
	s.Sysctl(s.Router, "net.ipv6.conf."+routerIf+".accept_dad", "0")
	s.Sysctl(s.Host, "net.ipv6.conf."+sysctlIf(s.Uplink)+".accept_dad", "0")
	s.MustRun(s.Router, "ip", "addr", "add", routerAddr+"/64", "dev", routerIf, "nodad")
	s.MustRun(s.Router, "ip", "link", "set", routerIf, "up")
	s.Sysctl(s.Host, "net.ipv6.conf."+sysctlIf(s.Uplink)+".accept_ra", "1")
	s.MustRun(s.Host, "ip", "addr", "add", hostAddr+"/64", "dev", s.Uplink, "nodad")
	s.MustRun(s.Host, "ip", "link", "set", s.Uplink, "up")
	s.MustRun(s.Host, "ip", "-6", "route", "add", "default", "via", routerAddr, "dev", s.Uplink)
}

// answeredWith waits until a multicast NS from the router for addr is
// answered with mac as the target link-layer address (and the Ethernet
// source), the whole NA valid (RFC 4861 7.1.2, S set, O clear; R and the
// source address are the dataplane's, checked elsewhere).
func (s *seed) answeredWith(t *testing.T, conn *topo.NDPConn, addr, mac string, limit time.Duration) {
	t.Helper()
	target := netip.MustParseAddr(addr)
	hw, err := net.ParseMAC(mac)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, limit, func() error {
		ans, err := conn.Solicit(target, topo.SolicitNodeGroup(target), 300*time.Millisecond)
		if err != nil {
			return err
		}
		return ans.Check(conn.Expect(target, hw, true, ans.NA.Router))
	})
}

// The uplink's MAC changes (a bond fails over, a NIC is replaced): the
// answers carry the new MAC at once, and unsolicited NAs tell the router,
// whose neighbour entry follows without asking.
func TestUplinkMACChange(t *testing.T) {
	for _, dp := range []string{"kernel", "tc"} {
		t.Run(dp, func(t *testing.T) {
			s := newSeed(t, "2001:db8::c008/125")
			d := s.startDaemon(t, s.daemonArgs(dp))
			addr := s.addContainer(t, s.name("mac"))
			s.waitLive(t, addr, dp != "kernel")
			s.MustRun(s.Router, "ping", "-c", "1", "-W", "2", addr)
			old := s.hostMAC(t)
			nas, err := topo.ListenNA(s.Router, s.RouterIf)
			if err != nil {
				t.Fatal(err)
			}
			defer nas.Close()
			conn, err := topo.ListenNDP(s.Router, s.RouterIf)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			before := s.counters(t, dp)
			n := len(d.logLines())

			const newMAC = "02:00:5e:00:53:01"
			start := time.Now()
			s.MustRun(s.Host, "ip", "link", "set", "dev", "eth0", "address", newMAC)
			mac, _ := net.ParseMAC(newMAC)
			na, err := nas.Unsolicited(net.ParseIP(addr), mac, 5*time.Second)
			if err != nil {
				t.Fatalf("no unsolicited NA for %s with the new MAC: %v", addr, err)
			}
			t.Logf("unsolicited NA with the new MAC %s after the change", time.Since(start).Round(time.Millisecond))
			if !na.Override {
				t.Errorf("unsolicited NA for %s: O clear, the router would keep the old MAC", addr)
			}
			s.answeredWith(t, conn, addr, newMAC, 5*time.Second)
			t.Logf("answers carry the new MAC %s after the change", time.Since(start).Round(time.Millisecond))
			d.waitRepaired(t, n, `"uplink MAC" uplink=eth0 from=`+old+` to=`+newMAC)
			if dp != "kernel" {
				if after := s.counters(t, dp); after["ns_answered"] <= before["ns_answered"] {
					t.Errorf("the new MAC's answers did not come from BPF (ns_answered %d -> %d)", before["ns_answered"], after["ns_answered"])
				}
			}
			// The router took the new MAC from the announcement.
			eventually(t, 5*time.Second, func() error {
				out := s.MustRun(s.Router, "ip", "-6", "neigh", "show", addr, "dev", s.RouterIf)
				return s.contains(out, "lladdr "+newMAC)
			})
			s.MustRun(s.Router, "ping", "-c", "1", "-W", "2", addr)
		})
	}
}

// The uplink is deleted and created again (a NIC replaced, a VLAN
// interface re-made): without a restart the daemon takes up the new
// interface: sysctls, proxy entries, the program and its config.
func TestUplinkRecreated(t *testing.T) {
	s := newSeed(t, "2001:db8::c008/125")
	d := s.startDaemon(t, s.daemonArgs("tc", "--resync-interval", "1s"))
	addr := s.addContainer(t, s.name("upl"))
	s.waitLive(t, addr, true)
	n := len(d.logLines())
	s.MustRun(s.Host, "ip", "link", "del", "eth0")
	s.plugUplink(t, "rn"+s.Tag)
	d.waitRepaired(t, n, `"uplink re-created" uplink=eth0`)
	before := s.counters(t, "tc")
	conn, err := topo.ListenNDP(s.Router, s.RouterIf)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	s.answeredWith(t, conn, addr, s.hostMAC(t), 10*time.Second)
	if after := s.counters(t, "tc"); after["ns_answered"] <= before["ns_answered"] {
		t.Errorf("the new uplink's answers did not come from BPF (ns_answered %d -> %d)", before["ns_answered"], after["ns_answered"])
	}
	for k, want := range map[string]string{"conf.eth0.proxy_ndp": "1", "neigh.eth0.proxy_delay": "0", "conf.eth0.accept_ra": "2"} {
		if err := s.sysctlIs("net.ipv6."+k, want); err != nil {
			t.Errorf("new uplink: %v", err)
		}
	}
	s.MustRun(s.Router, "ping", "-c", "1", "-W", "2", addr)
	for _, p := range s.status(t).Pins {
		if p.Kind == "link" && p.Hook == "uplink" && (p.Defunct || p.Interface != "eth0") {
			t.Errorf("an uplink link pin not on the new eth0: %+v", p)
		}
	}
	if err := s.linkLive(t, "uplink"); err != nil {
		t.Error(err)
	}
}

// The bridge is deleted (which only releases its ports) and made again:
// the daemon re-creates what it made, puts its containers' ports back and
// forwards and answers for them as before.
func TestBridgeRecreated(t *testing.T) {
	s := newSeed(t, "2001:db8::c008/125")
	d := s.startDaemon(t, s.daemonArgs("tc", "--resync-interval", "1s"))
	c := s.name("brg")
	addr := s.addContainer(t, c)
	s.waitLive(t, addr, true)
	n := len(d.logLines())
	s.MustRun(s.Host, "ip", "link", "del", "docker0")
	d.waitRepaired(t, n, `"bridge re-created" bridge=docker0`)
	d.waitRepaired(t, n, `"container port" container=`+c)
	s.waitLive(t, addr, true)
	before := s.counters(t, "tc")
	eventually(t, 10*time.Second, func() error {
		_, err := s.Run(s.Router, "ping", "-c", "1", "-W", "1", addr)
		return err
	})
	s.MustRun(s.Router, "ping", "-c", "3", "-i", "0.2", "-W", "1", addr)
	if after := s.counters(t, "tc"); after["fwd_redirected"] <= before["fwd_redirected"] {
		t.Errorf("after the bridge came back BPF forwarded nothing (fwd_redirected %d -> %d)", before["fwd_redirected"], after["fwd_redirected"])
	}
	if err := s.contains(s.MustRun(s.Host, "ip", "-6", "addr", "show", "dev", "docker0"), "inet6 fe80::1/64"); err != nil {
		t.Error(err)
	}
}
