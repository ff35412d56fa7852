package ctrl

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// TestPortPrep checks the worker that turns ports' IPv6 off beside the
// loop: an early port once however many link messages it has, none for a
// port of another bridge or a non-veth, the loop's own requests always
// queued, a deleted port's name dropped from the queue and its ifindex
// forgotten, a renamed port queued under its new name, and stop waiting
// for what is queued.
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
	wait := func() []string {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for p.queued.Load() > 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if n := p.queued.Load(); n != 0 {
			t.Fatalf("%d still queued", n)
		}
		mu.Lock()
		defer mu.Unlock()
		got := slices.Clone(done)
		done = nil
		slices.Sort(got)
		return got
	}

	// Three messages for one port of a served bridge, one for a port of
	// another bridge, one not a veth, one bridge notice; then the loop's
	// own request for vethA and vethC.
	d.earlyPort(linkEvent{Index: 100, Name: "vethA", Master: 10, Veth: true})
	d.earlyPort(linkEvent{Index: 100, Name: "vethA", Master: 10, Veth: true})
	d.earlyPort(linkEvent{Index: 101, Name: "vethB", Master: 11, Veth: true})
	d.earlyPort(linkEvent{Index: 102, Name: "tap0", Master: 10})
	d.earlyPort(linkEvent{Index: 100, Master: 10, BridgePort: true})
	d.earlyPort(linkEvent{Index: 100, Name: "vethA", Master: 10, Veth: true})
	p.add([]string{"vethA", "vethC"})
	close(release)
	if got := wait(); !slices.Equal(got, []string{"vethA", "vethA", "vethC"}) {
		t.Errorf("asked to turn off %v, want vethA (early, once) and vethA, vethC (the loop's)", got)
	}

	// The queue itself, with no worker taking from it: a port queued
	// and deleted before the worker got to it is dropped; its name as
	// another port later is queued again; a rename queues the new name.
	q := &portPrep{early: map[int]string{}, wake: make(chan struct{}, 1)}
	dq := &Daemon{prep: q}
	dq.served.Store(&served)
	dq.earlyPort(linkEvent{Index: 103, Name: "vethD", Master: 10, Veth: true})
	dq.earlyPort(linkEvent{Index: 100, Name: "vethA", Master: 10, Veth: true})
	dq.earlyPort(linkEvent{Index: 103, Name: "vethD", Deleted: true})
	dq.earlyPort(linkEvent{Index: 100, Name: "vethA", Deleted: true})
	dq.earlyPort(linkEvent{Index: 104, Name: "vethA", Master: 10, Veth: true})
	dq.earlyPort(linkEvent{Index: 104, Name: "vethA2", Master: 10, Veth: true})
	if !slices.Equal(q.queue, []string{"vethA", "vethA2"}) || q.queued.Load() != 2 {
		t.Errorf("queue after delete, reuse and rename: %v (%d counted), want [vethA vethA2]", q.queue, q.queued.Load())
	}

	p.add([]string{"vethE"})
	p.stop(5 * time.Second)
	if n := p.queued.Load(); n != 0 {
		t.Errorf("stopped with %d queued", n)
	}
	p.add([]string{"late"}) // after stop: no worker, no panic
}
