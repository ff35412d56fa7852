package ctrl

import (
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// proxyWork writes the kernel proxy entries beside the event loop where
// BPF answers the NS (the entries are the fallback, and the uplink's
// solicited-node memberships): the loop publishes the BPF maps and goes
// on to the next batch of ports while the entries are written.
//
// In a burst of joins the entries were most of some publishes: measured
// at 10,000 ports, 300-340 ms for 500-600 new entries (each NeighAdd
// waits for the RTNL lock the engine, the kernel's link work and the
// ports' IPv6 off keep busy), so the last ports of a burst waited for
// the entries of the batch before theirs.
//
// Only the latest set is written (a newer one replaces one still
// waiting). Withdrawals stay in the loop, before the BPF maps change:
// the kernel must never answer for an address that BPF no longer does.
type proxyWork struct {
	d *Daemon

	mu      sync.Mutex
	pending *proxyJob
	working bool // a job is being written
	// busy: a job waiting or being written (repairs wait for it to end
	// before they call a missing entry lost).
	busy    atomic.Bool
	wake    chan struct{}
	stopped chan struct{}
	exited  chan struct{}
	once    sync.Once
}

// proxyJob is one set of entries: the addresses, and each uplink's
// networks' prefixes (read in the loop: the worker touches no daemon
// state but the tables, under proxyMu).
type proxyJob struct {
	prefixes map[int][]netip.Prefix
	want     map[netip.Addr]bool
}

func newProxyWork(d *Daemon) *proxyWork {
	w := &proxyWork{d: d, wake: make(chan struct{}, 1), stopped: make(chan struct{}), exited: make(chan struct{})}
	go w.run()
	return w
}

// submit queues the set; want must not change afterwards.
func (w *proxyWork) submit(j *proxyJob) {
	w.mu.Lock()
	w.pending = j
	w.busy.Store(true)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *proxyWork) run() {
	defer close(w.exited)
	for {
		select {
		case <-w.stopped:
			return
		case <-w.wake:
		}
		w.mu.Lock()
		j := w.pending
		w.pending = nil
		w.working = j != nil
		w.mu.Unlock()
		if j != nil {
			start := time.Now()
			w.d.proxyMu.Lock()
			err := w.d.proxy.syncPrefixes(j.prefixes, j.want)
			w.d.proxyMu.Unlock()
			if err != nil {
				slog.Warn("proxy entries", "err", err)
			}
			slog.Debug("proxy entries written", "addresses", len(j.want), "took", time.Since(start))
		}
		w.mu.Lock()
		w.working = false
		w.busy.Store(w.pending != nil)
		w.mu.Unlock()
	}
}

// drop forgets the set still waiting: called before a withdrawal, so that
// no older set (with an address that just left) is written after it.
func (w *proxyWork) drop() {
	w.mu.Lock()
	w.pending = nil
	w.busy.Store(w.working)
	w.mu.Unlock()
}

// stop ends the worker after the set being written, if any; a set still
// waiting is left to the next start (its first sync lists and writes
// them all).
func (w *proxyWork) stop() {
	w.once.Do(func() { close(w.stopped) })
	<-w.exited
}
