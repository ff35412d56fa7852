package ctrl

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// TestPortPrep checks the worker that turns ports' IPv6 off beside the
// loop: each port once however many link messages it has, the loop's
// own request for an early port skipped, a gone port forgotten (its name
// comes back as a new port), and stop waiting for what is queued.
func TestPortPrep(t *testing.T) {
	var mu sync.Mutex
	var done []string
	release := make(chan struct{})
	p := newPortPrep(func(names []string) error {
		<-release
		mu.Lock()
		done = append(done, names...)
		mu.Unlock()
		return nil
	})
	d := &Daemon{prep: p}
	served := map[int]bool{10: true}
	d.served.Store(&served)

	// Three messages for one port of a served bridge, one for a port of
	// another bridge, one not a veth, one bridge notice.
	d.earlyPort(linkEvent{Index: 100, Name: "vethA", Master: 10, Veth: true})
	d.earlyPort(linkEvent{Index: 100, Name: "vethA", Master: 10, Veth: true})
	d.earlyPort(linkEvent{Index: 101, Name: "vethB", Master: 11, Veth: true})
	d.earlyPort(linkEvent{Index: 102, Name: "tap0", Master: 10})
	d.earlyPort(linkEvent{Index: 100, Master: 10, BridgePort: true})
	d.earlyPort(linkEvent{Index: 100, Name: "vethA", Master: 10, Veth: true})
	// The loop's request: vethA is the early path's, vethC is new.
	p.add([]string{"vethA", "vethC"})
	if n := p.queued.Load(); n != 2 {
		t.Errorf("queued %d, want 2 (vethA once, vethC)", n)
	}
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for p.queued.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	mu.Lock()
	got := slices.Clone(done)
	mu.Unlock()
	slices.Sort(got)
	if !slices.Equal(got, []string{"vethA", "vethC"}) {
		t.Errorf("turned off %v, want [vethA vethC]", got)
	}

	// Gone, then its name again as another port: queued again.
	d.earlyPort(linkEvent{Index: 100, Name: "vethA", Deleted: true})
	d.earlyPort(linkEvent{Index: 103, Name: "vethA", Master: 10, Veth: true})
	// Renamed: the new name is the port's.
	d.earlyPort(linkEvent{Index: 103, Name: "vethA2", Master: 10, Veth: true})
	p.stop(5 * time.Second)
	if n := p.queued.Load(); n != 0 {
		t.Errorf("stopped with %d queued", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(done[2:], []string{"vethA", "vethA2"}) && !slices.Equal(done[2:], []string{"vethA2", "vethA"}) {
		t.Errorf("after gone and rename: %v, want vethA and vethA2", done[2:])
	}
	p.add([]string{"late"}) // after stop: no worker, no panic
}
