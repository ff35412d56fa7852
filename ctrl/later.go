package ctrl

import (
	"log/slog"
	"sync/atomic"
	"time"
)

// later attaches the endpoint programs of a burst of new ports in chunks
// between event batches, after the ports are served, instead of inside
// the apply that publishes them. A program is not needed to serve a
// port (answer for its addresses, forward to it): until it is there, the
// port's traffic takes the kernel's path, as on a stock host. But a
// clsact qdisc on a port that is up waits for an RCU grace period under
// the RTNL lock: 0.1 ms a port on a quiet host, up to 8 ms in a burst of
// thousands, which held the endpoint maps back by tens of seconds. A few
// ports at once (as engines start containers) get theirs in the same
// apply (see forwarder.attach).
//
// Turning a new port's IPv6 off is not deferred like this: measured at
// 10,000 ports, the burst's ports then kept IPv6 for a minute or more,
// and the kernel's own link work lagged so far behind that thousands of
// containers could not send (their veths not yet operationally up) for
// over a minute. It is done at once, beside the loop (portPrep).
//
// The daemon's loop selects ready() beside its event channels, armed only
// while no event waits and no port waits for its IPv6 off (each qdisc
// holds the RTNL lock that the IPv6 off spins for, and every port left
// with IPv6 on makes the kernel slower): serving comes first, and the work
// runs between event batches, or after waiting a second if events keep
// coming.
type later struct {
	guards   []laterGuard // ports whose program is to be attached, in order
	guardSet map[int]bool
	// now is closed: what ready returns while work is queued; last is
	// when the last chunk ran.
	now  chan struct{}
	last time.Time
	// doGuard attaches one port's program.
	doGuard func(idx int, name string) error
	// queued is the count for /metrics (read from its goroutine).
	queued atomic.Int64
}

type laterGuard struct {
	idx  int
	name string
}

// laterStarve is the longest the work waits for events that keep coming.
const laterStarve = time.Second

// laterDrain is how long a stopping daemon goes on attaching programs.
const laterDrain = 3 * time.Second

// laterGuardChunk is the chunk size, and the most ports attached at once
// without the queue: measured at 10,000 ports, 0.6-8 ms a port.
const laterGuardChunk = 32

func newLater(doGuard func(int, string) error) *later {
	now := make(chan struct{})
	close(now)
	return &later{guardSet: map[int]bool{}, now: now, doGuard: doGuard}
}

// isQueued reports whether a port waits for its program.
func (w *later) isQueued(idx int) bool { return w.guardSet[idx] }

// guard queues a port for its program.
func (w *later) guard(idx int, name string) {
	if !w.guardSet[idx] {
		w.guardSet[idx] = true
		w.guards = append(w.guards, laterGuard{idx, name})
	}
	w.queued.Store(int64(len(w.guards)))
}

// ready returns a channel that is ready while work is queued, nil (never
// ready) otherwise. busy: events or ports' IPv6 off are waiting; then the
// work waits for them, unless it has waited laterStarve since its last
// chunk.
func (w *later) ready(busy bool) <-chan struct{} {
	if len(w.guards) == 0 {
		return nil
	}
	if busy && time.Since(w.last) < laterStarve {
		return nil
	}
	return w.now
}

// run attaches one chunk of programs.
func (w *later) run() {
	start := time.Now()
	defer func() { w.last = time.Now() }()
	m := min(len(w.guards), laterGuardChunk)
	for _, g := range w.guards[:m] {
		if err := w.doGuard(g.idx, g.name); err != nil {
			slog.Warn("attaching the endpoint program", "err", err)
		}
		delete(w.guardSet, g.idx)
	}
	w.guards = w.guards[m:]
	w.queued.Store(int64(len(w.guards)))
	if m > 0 {
		slog.Debug("deferred port work", "guards", m, "left", len(w.guards), "took", time.Since(start))
	}
}

// drain attaches the queued programs until they are done or the time is
// up: a stopping daemon leaves its dataplane in place, and its ports
// should be guarded in it. The ports it could not do are taken up by the
// next daemon's first resync.
func (w *later) drain(limit time.Duration) {
	end := time.Now().Add(limit)
	for len(w.guards) > 0 && time.Now().Before(end) {
		w.run()
	}
	if len(w.guards) > 0 {
		slog.Warn("stopping with ports not yet guarded; the next start guards them", "ports", len(w.guards))
	}
}
