package test

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/v6dp/v6dp/test/frame"
	"github.com/v6dp/v6dp/test/topo"
)

// DAD denial of service (RFC 3756 4.1.3): while a victim's new address is
// tentative, an attacker sends Duplicate Address Detection probes for it
// (NS from ::). The victim takes them for another node doing DAD for the
// same address (RFC 4862 5.4.3) and gives the address up. No NA is needed,
// so the NA-target guard does not see it; a guard must drop a DAD probe
// from a port for an address that port's container does not hold. Beyond
// the list of issue 9, so a test of its own; the endpoint guard is one
// program on every BPF dataplane, so it runs under tc (and once without
// v6dp, to show the probes do their harm).
func TestHostileDAD(t *testing.T) {
	t.Run("unguarded link", func(t *testing.T) {
		tp := topo.New(t)
		atk, vic := tp.NS("atk"), tp.NS("vic")
		tp.Veth(atk, "eth0", vic, "eth0")
		for _, ns := range []string{atk, vic} {
			tp.Sysctl(ns, "net.ipv6.conf.eth0.accept_dad", "0")
			tp.MustRun(ns, "ip", "link", "set", "eth0", "up")
		}
		// Both links ready: a usable link-local address on each.
		atkMAC, _ := ifaceAddrs(t, atk, "eth0")
		ifaceAddrs(t, vic, "eth0")
		if dadProbed(t, atk, vic, atkMAC) == "" {
			t.Fatalf("the DAD probes did not make the victim give up its tentative address")
		}
	})
	t.Run("tc", func(t *testing.T) {
		s := newSeed(t, hostilePrefix)
		s.startDaemon(t, s.daemonArgs("tc"))
		atk, vic := s.name("atk"), s.name("vic")
		addrs := map[string]string{}
		for _, n := range []string{atk, vic} {
			addrs[n] = s.addContainer(t, n)
			s.waitLive(t, addrs[n], true)
		}
		atkMAC, _ := ifaceAddrs(t, atk, "eth0")
		if harm := dadProbed(t, atk, vic, atkMAC); harm != "" {
			t.Errorf("%s", harm)
		}
		if c := s.counters(t, "tc"); c["egress_dad_confined"] == 0 {
			t.Errorf("no DAD probe was confined: %v", c)
		}
		// Control: DAD still finds a real duplicate. The attacker takes
		// the victim's live address with DAD: the probe reaches the
		// victim, which defends it, and the attacker's DAD fails.
		vicAddr := netip.MustParseAddr(addrs[vic])
		if flags := dadOwn(t, atk, vicAddr); flags&unix.IFA_F_DADFAILED == 0 {
			t.Errorf("%s took %s, live at %s, and DAD did not fail (flags %#x): the owner never saw the probe", atk, vicAddr, vic, flags)
		}
		// And the host defends its own: fe80::1 on the bridge.
		if flags := dadOwn(t, atk, netip.MustParseAddr("fe80::1")); flags&unix.IFA_F_DADFAILED == 0 {
			t.Errorf("%s took the gateway's fe80::1 and DAD did not fail (flags %#x): the host never saw the probe", atk, flags)
		}
	})
}

// dadOwn has ns add addr with DAD and returns the address's flags once DAD
// has ended.
func dadOwn(t *testing.T, ns string, addr netip.Addr) int {
	t.Helper()
	dadAtOnce(t, ns)
	bits := 128
	if addr.IsLinkLocalUnicast() {
		bits = 64
	}
	if _, err := topo.Run(ns, "ip", "addr", "add", fmt.Sprintf("%s/%d", addr, bits), "dev", "eth0"); err != nil {
		t.Fatal(err)
	}
	return dadEnded(t, ns, addr)
}

// dadAtOnce makes ns's eth0 run DAD at once (no random delay), one probe,
// a second to wait.
func dadAtOnce(t *testing.T, ns string) {
	t.Helper()
	for k, v := range map[string]string{
		"net.ipv6.conf.eth0.accept_dad":                "1",
		"net.ipv6.conf.eth0.dad_transmits":             "1",
		"net.ipv6.conf.eth0.router_solicitation_delay": "0",
		"net.ipv6.neigh.eth0.retrans_time_ms":          "1000",
	} {
		if _, err := topo.Run(ns, "sysctl", "-qw", k+"="+v); err != nil {
			t.Fatal(err)
		}
	}
}

// dadEnded waits until DAD for addr in ns has ended (the address usable,
// or failed) and returns its flags.
func dadEnded(t *testing.T, ns string, addr netip.Addr) int {
	t.Helper()
	var flags int
	eventually(t, 5*time.Second, func() error {
		nh := nsHandle(t, ns)
		defer nh.Close()
		as, err := nh.AddrList(nil, netlink.FAMILY_V6)
		if err != nil {
			return err
		}
		for _, a := range as {
			if ip, ok := netip.AddrFromSlice(a.IP); ok && ip == addr {
				flags = a.Flags
				if flags&unix.IFA_F_TENTATIVE != 0 && flags&unix.IFA_F_DADFAILED == 0 {
					return fmt.Errorf("%s still tentative", addr)
				}
				return nil
			}
		}
		return fmt.Errorf("%s gone from %s", addr, ns)
	})
	return flags
}

// dadProbed has vic add a new address with DAD while atk probes for it,
// and returns the harm done ("" if none): the address failed DAD.
func dadProbed(t *testing.T, atk, vic string, atkMAC net.HardwareAddr) string {
	t.Helper()
	addr := netip.MustParseAddr("2001:db8::1:50")
	dadAtOnce(t, vic)
	snd, err := frame.NewSender(atk, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	defer snd.Close()
	g := frame.SolicitedNode(addr)
	probe := frame.Frame(frame.Ether{Dst: frame.MulticastMAC(g), Src: atkMAC},
		frame.IPv6{Src: netip.IPv6Unspecified(), Dst: g, HopLimit: 255, Proto: frame.ProtoICMPv6, Payload: frame.NS(addr)})
	if _, err := topo.Run(vic, "ip", "addr", "add", addr.String()+"/112", "dev", "eth0"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 8; i++ {
		if err := snd.Send(probe); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// DAD ends a second after its probe: the address is either usable
	// or failed by then.
	flags := dadEnded(t, vic, addr)
	if flags&unix.IFA_F_DADFAILED != 0 {
		return fmt.Sprintf("%s gave up its new address %s: DAD failed on the attacker's probes", vic, addr)
	}
	return ""
}
