package loader

import (
	"net/netip"
	"testing"
)

// TestSyncsWriteOnlyChanges: the syncs compare against what this process
// wrote, adopt what an earlier process pinned, and see the kernel's maps
// again after Reread (the daemon's periodic resync), repairing what was
// changed behind their back.
func TestSyncsWriteOnlyChanges(t *testing.T) {
	d := newTestDataplane(t)
	a := netip.MustParseAddr("2001:db8::a")
	b := netip.MustParseAddr("2001:db8::b")
	c := netip.MustParseAddr("2001:db8::c")
	ep := func(addr netip.Addr, idx uint32) Endpoint {
		return Endpoint{Addr: addr, Ifindex: idx, MAC: epAMAC, HostMAC: uplinkMAC, MTU: 1500, Flags: EndpointProxy}
	}
	want := map[netip.Addr]Endpoint{a: ep(a, 1), b: ep(b, 1)}
	if err := d.SyncEndpoints(want); err != nil {
		t.Fatal(err)
	}
	have := func() map[netip.Addr]bool {
		t.Helper()
		eps, err := d.Endpoints()
		if err != nil {
			t.Fatal(err)
		}
		out := map[netip.Addr]bool{}
		for k := range eps {
			out[k] = true
		}
		return out
	}
	if got := have(); !got[a] || !got[b] || len(got) != 2 {
		t.Fatalf("after the first sync: %v", got)
	}

	// Another hand deletes a and adds c. A sync that trusts what it
	// wrote changes nothing; after Reread it repairs both.
	k, _ := endpointKey(a)
	if err := d.objs.V6dpEndpoints.Delete(&k); err != nil {
		t.Fatal(err)
	}
	kc, vc, err := endpointKV(ep(c, 1))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.objs.V6dpEndpoints.Put(&kc, &vc); err != nil {
		t.Fatal(err)
	}
	if err := d.SyncEndpoints(want); err != nil {
		t.Fatal(err)
	}
	if got := have(); got[a] || !got[c] {
		t.Fatalf("a sync before Reread read the map (want a missing, c there): %v", got)
	}
	d.Reread()
	if err := d.SyncEndpoints(want); err != nil {
		t.Fatal(err)
	}
	if got := have(); !got[a] || !got[b] || got[c] || len(got) != 2 {
		t.Fatalf("after Reread and a sync: %v, want a and b", got)
	}

	// A second process on the same pins adopts the entries: its first
	// sync deletes what it does not want.
	d2, err := Open(d.pinDir)
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if err := d2.SyncEndpoints(map[netip.Addr]Endpoint{b: ep(b, 1)}); err != nil {
		t.Fatal(err)
	}
	if got := have(); got[a] || !got[b] || len(got) != 1 {
		t.Fatalf("after the second process's sync: %v, want only b", got)
	}
	// The ports map: the same, and its devmap entry went with a's port.
	if err := d2.SyncPorts(map[uint32]Port{1: {MAC: epAMAC}, 3: {MAC: uplinkMAC}}); err != nil {
		t.Fatal(err)
	}
	if err := d2.SyncPorts(map[uint32]Port{1: {MAC: epAMAC}}); err != nil {
		t.Fatal(err)
	}
	ports, err := d2.GuardedPorts()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ports[3]; ok || len(ports) != 1 {
		t.Fatalf("ports map %v, want only port 1", ports)
	}
	if err := d2.SyncEndpoints(nil); err != nil {
		t.Fatal(err)
	}
	dev, err := d2.ForwardPorts()
	if err != nil {
		t.Fatal(err)
	}
	if len(dev) != 0 {
		t.Fatalf("devmap %v after the last endpoint went, want empty", dev)
	}
}
