package ctrl

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// The deferred programs: each port once however often queued, in chunks,
// a failed one dropped from the queue (the next apply queues it again),
// ready only while work is queued and, while events wait, only after a
// second without a chunk.
func TestLater(t *testing.T) {
	var log []string
	w := newLater(func(idx int, name string) error {
		log = append(log, name)
		if idx == 2 {
			return errors.New("refused")
		}
		return nil
	})
	if w.ready(false) != nil {
		t.Fatal("ready with nothing queued")
	}
	for i := 0; i < laterGuardChunk+3; i++ {
		w.guard(i, fmt.Sprintf("p%d", i))
	}
	w.guard(1, "p1")
	if n := int(w.queued.Load()); n != laterGuardChunk+3 {
		t.Fatalf("pending %d, want %d", n, laterGuardChunk+3)
	}
	if !w.isQueued(1) || w.isQueued(99) {
		t.Error("isQueued does not know the queued ports")
	}
	w.last = time.Now()
	if w.ready(true) != nil {
		t.Error("ready while events wait, a moment after the last chunk")
	}
	w.last = time.Now().Add(-laterStarve)
	if w.ready(true) == nil {
		t.Error("not ready while events wait, a second after the last chunk: starved")
	}
	w.run()
	if len(log) != laterGuardChunk || int(w.queued.Load()) != 3 {
		t.Errorf("a chunk did %d, left %d; want %d, 3", len(log), int(w.queued.Load()), laterGuardChunk)
	}
	for w.ready(false) != nil {
		w.run()
	}
	if len(log) != laterGuardChunk+3 || w.queued.Load() != 0 {
		t.Errorf("did %d, the metric says %d left", len(log), w.queued.Load())
	}
	w.guard(2, "p2") // queued again after its failure
	if int(w.queued.Load()) != 1 {
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
