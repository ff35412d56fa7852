package ctrl

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// The deferred port work: each port once however often queued, programs
// before IPv6, in chunks, a failed program dropped from the queue (the
// next apply queues it again), and ready only while work is queued.
func TestLater(t *testing.T) {
	var log []string
	w := newLater(func(names []string) error {
		log = append(log, fmt.Sprintf("off %d", len(names)))
		return nil
	}, func(idx int, name string) error {
		log = append(log, "guard "+name)
		if idx == 2 {
			return errors.New("refused")
		}
		return nil
	})
	if w.ready(false) != nil {
		t.Fatal("ready with nothing queued")
	}
	names := make([]string, laterOffChunk+3)
	for i := range names {
		names[i] = fmt.Sprintf("p%d", i)
	}
	w.portIPv6Off(names)
	w.portIPv6Off(names[:5]) // again: still once
	w.guard(1, "p1")
	w.guard(2, "p2")
	w.guard(1, "p1")
	if off, guards := w.pending(); off != len(names) || guards != 2 {
		t.Fatalf("pending %d, %d; want %d, 2", off, guards, len(names))
	}
	if !w.queued(1, "x") || !w.queued(99, "p0") || w.queued(99, "x") {
		t.Error("queued does not know the queued ports")
	}
	w.last = time.Now()
	if w.ready(true) != nil {
		t.Error("ready while events wait, a moment after the last chunk")
	}
	w.last = time.Now().Add(-laterStarve)
	if w.ready(true) == nil {
		t.Error("not ready while events wait, a second after the last chunk: starved")
	}
	for w.ready(false) != nil {
		w.run()
	}
	want := []string{"guard p1", "guard p2", fmt.Sprintf("off %d", laterOffChunk), "off 3"}
	if fmt.Sprint(log) != fmt.Sprint(want) {
		t.Errorf("work done %q, want %q", log, want)
	}
	if w.queuedGuards.Load() != 0 || w.queuedOff.Load() != 0 {
		t.Error("the metrics' counts are not back to 0")
	}
	w.guard(2, "p2") // queued again after its failure
	if _, guards := w.pending(); guards != 1 {
		t.Errorf("a port whose program failed cannot be queued again")
	}
}

// A bridge port notice rewrites the ports map only when a port with an
// entry changes as the guard reads it (unknown counts as blocked).
func TestPortFlagsSet(t *testing.T) {
	var f portFlags
	entries := map[int]*Endpoint{1: {}, 2: {}}
	if !f.set(map[int]bool{1: false}, entries) {
		t.Error("port 1 known unblocked for the first time (was taken as blocked): want a rewrite")
	}
	if f.set(map[int]bool{1: false, 3: false}, entries) {
		t.Error("nothing changed for the ports with entries: want no rewrite")
	}
	if !f.set(map[int]bool{1: true}, entries) {
		t.Error("port 1 isolated: want a rewrite")
	}
	if f.set(map[int]bool{2: true}, entries) {
		t.Error("port 2 unknown (blocked) then blocked: want no rewrite")
	}
	if f.set(map[int]bool{4: true}, nil) {
		t.Error("no entries: want no rewrite")
	}
}
