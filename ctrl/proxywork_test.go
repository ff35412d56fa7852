package ctrl

import (
	"net/netip"
	"testing"
	"time"
)

// The worker writes the latest set, a dropped set is never written, busy
// says whether work is waiting or running, and stop waits for the worker.
// (No uplink here: the tables' netlink side is the integration tests'.)
func TestProxyWork(t *testing.T) {
	d := &Daemon{proxy: proxyTables{}}
	w := newProxyWork(d)
	a := netip.MustParseAddr("2001:db8::1")
	// Holding the tables' lock keeps the worker from finishing a set.
	d.proxyMu.Lock()
	w.submit(&proxyJob{want: map[netip.Addr]bool{a: true}})
	if !w.busy.Load() {
		t.Error("a set submitted: want busy")
	}
	// Wait until the worker has taken the set and waits for the lock.
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		w.mu.Lock()
		taken := w.working
		w.mu.Unlock()
		if taken {
			break
		}
		if time.Now().After(end) {
			t.Fatal("the worker did not take the set")
		}
	}
	w.submit(&proxyJob{want: map[netip.Addr]bool{}})
	w.drop()
	if !w.busy.Load() {
		t.Error("a set being written: want busy after the waiting one was dropped")
	}
	w.mu.Lock()
	if w.pending != nil {
		t.Error("the dropped set is still waiting")
	}
	w.mu.Unlock()
	d.proxyMu.Unlock()
	for end := time.Now().Add(5 * time.Second); w.busy.Load(); time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("still busy 5 s after the set could be written")
		}
	}
	// Idle: a drop leaves it idle.
	w.drop()
	if w.busy.Load() {
		t.Error("idle worker busy after a drop")
	}
	done := make(chan struct{})
	go func() { w.stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("stop did not return")
	}
}
