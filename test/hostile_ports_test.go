package test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	ebpflink "github.com/cilium/ebpf/link"

	"github.com/v6dp/v6dp/test/frame"
	"github.com/v6dp/v6dp/test/topo"
)

// Hostile cases about the ports themselves: a port whose container has no
// address in the prefix, a port v6dp cannot resolve, and a port whose
// container takes a neighbour's MAC.

// unaddressedPort: a port whose container has no address in the prefix
// (an IPv4-only container, one whose address comes later) is guarded
// too, from the moment it joins the bridge, and by its own entry: it
// sends from its own link-local address, and only with its own MAC
// (IPv4, ARP and other frames included), and nothing it sends is
// published or forwarded as an endpoint address.
func (h *hostile) unaddressedPort(t *testing.T) {
	l := h.l
	ns := h.NS("bare")
	port := "vb" + h.Tag
	// The highest unicast MAC for the port: a bridge without a MAC of
	// its own set takes the lowest of its ports' (v6dp sets the bridge's
	// only when BPF forwards), which would turn the gateway MAC the
	// cases send to into a stale one.
	h.MustRun(h.Host, "ip", "link", "add", port, "address", "fe:ff:ff:ff:ff:01", "type", "veth", "peer", "name", "tb"+h.Tag)
	h.MustRun(h.Host, "ip", "link", "set", "tb"+h.Tag, "netns", ns)
	h.MustRun(ns, "ip", "link", "set", "tb"+h.Tag, "name", "eth0")
	h.Sysctl(ns, "net.ipv6.conf.eth0.accept_dad", "0")
	h.MustRun(ns, "ip", "link", "set", "eth0", "up")
	h.MustRun(h.Host, "ip", "link", "set", port, "master", "docker0", "up")
	if mac, _ := ifaceAddrs(t, h.Host, "docker0"); mac.String() != l.GwMAC.String() {
		t.Fatalf("the bridge's MAC changed from %s to %s when a port joined", l.GwMAC, mac)
	}
	bare := party{NS: ns, If: "eth0"}
	bare.MAC, bare.LL = ifaceAddrs(t, ns, "eth0")
	if h.guarded {
		guard := func(port string) error { return h.ingressProgram(port) }
		// Control: the check sees the victim's port program.
		if err := guard(h.endpoints(t)[l.Vic.Addr.String()].Veth); err != nil {
			t.Fatalf("the victim's port: %v", err)
		}
		eventually(t, 5*time.Second, func() error { return guard(port) })
	}
	snd, err := frame.NewSender(ns, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	defer snd.Close()
	// Control: the container's own link-local traffic, raw and as its
	// kernel sends it, to the victim and to the host, with the answers
	// (and the NDP before them) coming back.
	h.toVictim(t, snd, bare)
	eventually(t, 5*time.Second, func() error {
		if out, err := h.Run(l.Vic.NS, "ping", "-c", "1", "-W", "1", bare.LL.String()+"%eth0"); err != nil {
			return fmt.Errorf("the victim cannot ping the unaddressed container's link-local address %s: %v\n%s", bare.LL, err, out)
		}
		return nil
	})
	h.MustRun(ns, "ping", "-c", "1", "-W", "2", l.Vic.LL.String()+"%eth0")
	h.MustRun(h.Host, "ping", "-c", "1", "-W", "2", bare.LL.String()+"%docker0")
	// Nothing of it is published: no endpoint, no proxy entry.
	for a, e := range h.endpoints(t) {
		if e.Veth == port {
			t.Errorf("the unaddressed port is published with %s: %+v", a, e)
		}
	}
	vicPort := h.endpoints(t)[l.Vic.Addr.String()].Veth
	if p := h.fdbPort(t, l.Vic.MAC); p != vicPort {
		t.Fatalf("before the attack the bridge has the victim's MAC on %q, want %s", p, vicPort)
	}
	hostCap, err := frame.NewCapture(h.Host, "docker0")
	if err != nil {
		t.Fatal(err)
	}
	defer hostCap.Close()
	before := h.counters(t)
	spoofM := h.marker("bare-spoof")
	bl := *l
	bl.Atk = bare
	// Each frame, and the counter that must count it.
	fs := []struct {
		f       []byte
		counter string
	}{
		{echoFrame(frame.Ether{Dst: l.GwMAC, Src: bare.MAC}, l.Vic.Addr, l.Router, spoofM), "egress_spoof_drop"},
		{frame.Frame(toAllNodes(&bl), ndpFrom(&bl, frame.AllNodes, nil,
			frame.NA(frame.NARouter|frame.NAOverride, l.Gw, frame.TLLA(bare.MAC)))), "egress_drop_na_target"},
		{frame.Frame(toAllNodes(&bl), ndpFrom(&bl, frame.AllNodes, nil,
			frame.RA(1800, frame.SLLA(bare.MAC), frame.PrefixInfo(l.Rogue, 3600, 1800)))), "egress_drop_ra"},
		// Its own link-local address behind the victim's MAC.
		{echoFrame(frame.Ether{Dst: l.Nb.MAC, Src: l.Vic.MAC}, bare.LL, l.Nb.LL, h.marker("bare-mac")), "egress_drop_mac"},
		// Not IPv6: what a port without an entry sends with any MAC.
		{frame.Raw(frame.Ether{Dst: frame.Broadcast, Src: l.Vic.MAC, Type: frame.EtherTypeLocal}, h.marker("bare-mac-raw")), "egress_drop_mac"},
	}
	for _, x := range fs {
		if err := snd.Send(x.f); err != nil {
			t.Fatal(err)
		}
	}
	// Control, and the end of the attack: the container's own echo
	// request to the host's link-local address reaches the bridge after
	// everything before it. Nothing has made the victim send since, so
	// the bridge's forwarding table still shows whether a frame with
	// the victim's MAC got through.
	m := h.marker("bare-to-host")
	if err := sendUntilSeen(snd, echoFrame(frame.Ether{Dst: l.GwMAC, Src: bare.MAC}, bare.LL, l.Gw, m), hostCap, hasMarker(m)); err != nil {
		t.Fatalf("control: the host did not get an echo request from the unaddressed container's own link-local address: %v", err)
	}
	p := h.fdbPort(t, l.Vic.MAC)
	if p != vicPort {
		defer h.MustRun(l.Vic.NS, "ping", "-c", "1", "-W", "2", l.Nb.Addr.String())
	}
	after := h.counters(t)
	// For the victim's capture.
	h.toVictim(t, snd, bare)
	// The spoofed echo goes through the host: wait for a control from
	// the attacker on the same path.
	h.toRouter(t)
	harm := []string{neighHarm(t, l.Vic, l.Gw, bare.MAC), routeHarm(t, &bl)}
	if strings.Join(harm, "") != "" {
		defer h.repair(t)
		defer func() {
			_, _ = h.Run(l.Vic.NS, "ip", "-6", "route", "del", "default", "via", bare.LL.String(), "dev", "eth0")
		}()
	}
	if !h.guarded {
		t.Logf("unguarded ports: harm %q, the victim's MAC on %s", harm, p)
		return
	}
	if got := h.rtrCap.Match(hasMarker(spoofM)); len(got) > 0 {
		t.Errorf("the router got an echo request from the victim's address %s sent by the unaddressed port", l.Vic.Addr)
	}
	for i, x := range fs[1:3] {
		if len(h.vicCap.Match(sameL3(x.f))) > 0 {
			t.Errorf("frame %d (NDP from the unaddressed port) reached the victim", i+1)
		}
	}
	for _, x := range harm {
		if x != "" {
			t.Errorf("victim harmed: %s", x)
		}
	}
	if p != vicPort {
		t.Errorf("the bridge learned the victim's MAC %s on port %q (the unaddressed port is %s), want the victim's %s", l.Vic.MAC, p, port, vicPort)
	}
	want := map[string]uint64{}
	for _, x := range fs {
		want[x.counter]++
	}
	for c, n := range want {
		if d := after[c] - before[c]; d < n {
			t.Errorf("%s rose by %d, want at least %d", c, d, n)
		}
	}
}

// unresolvedPort: a port whose far end v6dp cannot resolve (here it sits
// in the host's own namespace, so it is no container's) gets no entry:
// it sends no IPv6 at all, not even from its own link-local address, and
// `v6dp status` says why.
func (h *hostile) unresolvedPort(t *testing.T) {
	l := h.l
	port, far := "vu"+h.Tag, "tu"+h.Tag
	h.MustRun(h.Host, "ip", "link", "add", port, "address", "fe:ff:ff:ff:ff:02", "type", "veth", "peer", "name", far)
	h.Defer(func() { _, _ = h.Run(h.Host, "ip", "link", "del", port) })
	h.Sysctl(h.Host, "net.ipv6.conf."+far+".accept_dad", "0")
	h.MustRun(h.Host, "ip", "link", "set", far, "up")
	h.MustRun(h.Host, "ip", "link", "set", port, "master", "docker0", "up")
	defer func() { _, _ = h.Run(h.Host, "ip", "link", "del", port) }()
	mac, ll := ifaceAddrs(t, h.Host, far)
	eventually(t, 5*time.Second, func() error {
		st := h.mustV6dp(t, "status")
		if !strings.Contains(st, "not resolved: port "+port) {
			return fmt.Errorf("status does not list %s as not resolved:\n%s", port, st)
		}
		return h.ingressProgram(port)
	})
	snd, err := frame.NewSender(h.Host, far)
	if err != nil {
		t.Fatal(err)
	}
	defer snd.Close()
	before := h.counters(t)
	m := h.marker("unresolved")
	f := echoFrame(frame.Ether{Dst: l.Vic.MAC, Src: mac}, ll, l.Vic.LL, m)
	if err := snd.Send(f); err != nil {
		t.Fatal(err)
	}
	// Control: a frame the attacker sends later reaches the victim.
	h.toVictim(t, h.atk, l.Atk)
	if !h.guarded {
		return
	}
	if len(h.vicCap.Match(hasMarker(m))) > 0 {
		t.Errorf("the victim got an echo request from the unresolved port's own link-local address %s", ll)
	}
	if after := h.counters(t); after["egress_drop_no_port"] <= before["egress_drop_no_port"] {
		t.Errorf("egress_drop_no_port did not rise (%d before, %d after)", before["egress_drop_no_port"], after["egress_drop_no_port"])
	}
}

// macTaken: with CAP_NET_ADMIN the attacker gives its eth0 the victim's
// MAC. The daemon rereads the port, but the MAC is the victim's: frames
// from it must not move the victim's MAC to the attacker's port in the
// bridge's forwarding table, and the router still reaches the victim.
func (h *hostile) macTaken(t *testing.T) {
	l := h.l
	vicPort := h.endpoints(t)[l.Vic.Addr.String()].Veth
	h.MustRun(l.Atk.NS, "ip", "link", "set", "eth0", "address", l.Vic.MAC.String())
	// Past a resync of the daemon.
	time.Sleep(1500 * time.Millisecond)
	// The victim keeps its own MAC, and its traffic.
	if out, err := h.Run(l.Vic.NS, "ping", "-c", "1", "-W", "2", l.Nb.Addr.String()); err != nil {
		t.Errorf("the victim cannot reach its neighbour once the attacker has its MAC: %v\n%s", err, out)
	}
	before := h.counters(t)
	fs := [][]byte{
		echoFrame(frame.Ether{Dst: l.GwMAC, Src: l.Vic.MAC}, l.Atk.Addr, l.Router, h.marker("mactaken")),
		frame.Raw(frame.Ether{Dst: frame.Broadcast, Src: l.Vic.MAC, Type: frame.EtherTypeLocal}, h.marker("mactaken-raw")),
	}
	if err := h.atk.Send(fs...); err != nil {
		t.Fatal(err)
	}
	// The attacker's own traffic from now on, as its kernel sends it.
	_, _ = h.Run(l.Atk.NS, "ping", "-c", "1", "-W", "1", routerAddr)
	p := h.fdbPort(t, l.Vic.MAC)
	if !h.guarded {
		t.Logf("unguarded ports: the bridge has the victim's MAC on %s (victim's port %s)", p, vicPort)
		return
	}
	if p != vicPort {
		t.Errorf("the bridge learned the victim's MAC %s on port %q, want the victim's %s", l.Vic.MAC, p, vicPort)
	}
	if out, err := h.Run(h.Router, "ping", "-c", "2", "-i", "0.2", "-W", "2", l.Vic.Addr.String()); err != nil {
		t.Errorf("the router cannot reach the victim once the attacker has its MAC: %v\n%s", err, out)
	}
	h.checkDrops(t, before, len(fs))
}

// ingressProgram reports an error unless a BPF program runs at the ingress
// of the host's interface ifname: TCX (asked of the kernel), or a tc
// filter (clsact or ingress qdisc).
func (h *hostile) ingressProgram(ifname string) error {
	var n int
	err := topo.InNS(h.Host, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		res, err := ebpflink.QueryPrograms(ebpflink.QueryOptions{Target: ifi.Index, Attach: ebpf.AttachTCXIngress})
		if err != nil {
			return fmt.Errorf("querying TCX ingress of %s: %w", ifname, err)
		}
		n = len(res.Programs)
		return nil
	})
	if err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	if out, _ := h.Run(h.Host, "tc", "filter", "show", "dev", ifname, "ingress"); strings.Contains(out, " bpf ") {
		return nil
	}
	return fmt.Errorf("no BPF program at the ingress of %s (TCX or tc filter)", ifname)
}
