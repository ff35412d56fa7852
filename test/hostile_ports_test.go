package test

import (
	"testing"
	"time"

	"github.com/v6dp/v6dp/test/frame"
)

// Hostile cases about the ports themselves: a port whose container takes
// a neighbour's MAC.

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
