package ctrl

import (
	"log/slog"
	"sync/atomic"
	"time"
)

// later is the daemon's slow per-port kernel work, done in chunks between
// event batches instead of inside them: turning a new port's IPv6 off and
// attaching its endpoint program. Neither is needed to serve the port
// (answer for its addresses, forward to it): until its program is there,
// the port's traffic takes the kernel's path, as on a stock host, and
// with its IPv6 still on it is a stock host's port. Both wait on the
// kernel: the sysctl walks the host's routes, and a qdisc on a port that
// is up waits for an RCU grace period under the RTNL lock. Measured at
// 10,000 ports joining in one burst, they took 1.4 ms and 3.4 ms a port
// and held the endpoint maps back by tens of seconds when done first.
//
// The daemon's loop selects ready() beside its event channels, armed only
// while no event waits: serving comes first, and the work runs between
// event batches, or after waiting a second if events keep coming. Done
// later, the sysctl costs more in all (every port of a burst is up with
// its IPv6 and routes when the walks begin): measured at 10,000 ports,
// the daemon's CPU until idle stayed about the same (22 s against 25 s).
type later struct {
	off      []string        // ports whose IPv6 is to be turned off, in order
	offSet   map[string]bool // the same, as a set
	guards   []laterGuard    // ports whose program is to be attached, in order
	guardSet map[int]bool
	// now is closed: what ready returns while work is queued; last is
	// when the last chunk ran.
	now  chan struct{}
	last time.Time
	// doOff turns IPv6 off on ports, all at once; doGuard attaches one
	// port's program.
	doOff   func(names []string) error
	doGuard func(idx int, name string) error
	// queued are the counts for /metrics (read from its goroutine).
	queuedOff, queuedGuards atomic.Int64
}

// count publishes the queue's lengths.
func (w *later) count() {
	w.queuedOff.Store(int64(len(w.off)))
	w.queuedGuards.Store(int64(len(w.guards)))
}

type laterGuard struct {
	idx  int
	name string
}

// laterStarve is the longest the work waits for events that keep coming.
const laterStarve = time.Second

// laterDrain is how long a stopping daemon goes on attaching programs.
const laterDrain = 3 * time.Second

// Chunk sizes (also the most done at once, without the queue): measured at 10,000 ports, a program took 0.6 ms a port,
// and IPv6 off up to 7 ms (the walk of the routes of every port still on).
const (
	laterOffChunk   = 16
	laterGuardChunk = 32
)

func newLater(doOff func([]string) error, doGuard func(int, string) error) *later {
	now := make(chan struct{})
	close(now)
	return &later{offSet: map[string]bool{}, guardSet: map[int]bool{}, now: now, doOff: doOff, doGuard: doGuard}
}

// portIPv6Off queues ports to have their IPv6 turned off.
func (w *later) portIPv6Off(names []string) {
	for _, n := range names {
		if !w.offSet[n] {
			w.offSet[n] = true
			w.off = append(w.off, n)
		}
	}
	w.count()
}

// queued reports whether a port waits for either kind of work.
func (w *later) queued(idx int, name string) bool { return w.guardSet[idx] || w.offSet[name] }

// guard queues a port for its program.
func (w *later) guard(idx int, name string) {
	if !w.guardSet[idx] {
		w.guardSet[idx] = true
		w.guards = append(w.guards, laterGuard{idx, name})
	}
	w.count()
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

// pending counts the queued ports of each kind.
func (w *later) pending() (off, guards int) { return len(w.off), len(w.guards) }

// ready returns a channel that is ready while work is queued, nil (never
// ready) otherwise. busy: events are waiting; then the work waits for
// them, unless it has waited laterStarve since its last chunk.
func (w *later) ready(busy bool) <-chan struct{} {
	if len(w.off) == 0 && len(w.guards) == 0 {
		return nil
	}
	if busy && time.Since(w.last) < laterStarve {
		return nil
	}
	return w.now
}

// run does one chunk: programs first, as they guard the ports; IPv6 once
// every port has its program. A chunk of either takes tens of
// milliseconds, so that an event waits no longer than that.
func (w *later) run() {
	start := time.Now()
	defer func() { w.last = time.Now() }()
	var n, m int
	if m = min(len(w.guards), laterGuardChunk); m > 0 {
		for _, g := range w.guards[:m] {
			if err := w.doGuard(g.idx, g.name); err != nil {
				slog.Warn("attaching the endpoint program", "err", err)
			}
			delete(w.guardSet, g.idx)
		}
		w.guards = w.guards[m:]
	} else if n = min(len(w.off), laterOffChunk); n > 0 {
		chunk := w.off[:n]
		if err := w.doOff(chunk); err != nil {
			slog.Warn("ports' ipv6 off", "ports", n, "err", err)
		}
		for _, name := range chunk {
			delete(w.offSet, name)
		}
		w.off = w.off[n:]
	}
	w.count()
	if n+m > 0 {
		slog.Debug("deferred port work", "ipv6_off", n, "guards", m, "left", len(w.off)+len(w.guards), "took", time.Since(start))
	}
}
