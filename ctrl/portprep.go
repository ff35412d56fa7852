package ctrl

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// portPrep turns the new ports' IPv6 off beside the event loop, as soon as
// the ports are seen, while the loop goes on resolving and publishing.
//
// Turning a port's IPv6 off is a sysctl that takes the RTNL lock with a
// trylock and restarts the write until it gets it. In a burst the lock is
// the engine's (each port's master and up), the kernel's link work's and
// the multicast work's: measured at 10,000 ports, 1 to 1.7 ms a port while
// the ports were joining, 0.13 ms once they had joined. In the loop, that
// held the endpoints of each batch back by seconds (4,036 ports: 3.9 s
// before their entries were written). Serving a port needs none of it:
// IPv6 off is for the host's own routing (each port with IPv6 on adds
// routes that multicast lookups walk), not for what the port may send.
//
// It is not deferred until the events stop, either: a burst's ports then
// kept IPv6 for a minute, and the kernel's own link work lagged so far
// behind that thousands of containers could not send (see later).
type portPrep struct {
	// off turns the ports' IPv6 off, journal first (portsIPv6Off).
	off func(names []string) error

	mu    sync.Mutex
	queue []string
	// early are the ports queued by earlyPort, by ifindex, with their
	// names: each port's several link messages queue it once. The
	// lifecycle's own request for a port is queued too: done already, it
	// costs a read of the port's sysctl (portsIPv6Off skips a port that
	// is off), and it covers whatever the early path missed.
	early map[int]string
	// wake has a token while the queue has names; stopped is closed by
	// stop, exited when the worker is gone.
	wake    chan struct{}
	stopped chan struct{}
	exited  chan struct{}
	once    sync.Once
	// queued is the count for /metrics: queued and being worked on.
	queued atomic.Int64
}

func newPortPrep(off func([]string) error) *portPrep {
	p := &portPrep{off: off, wake: make(chan struct{}, 1), stopped: make(chan struct{}), exited: make(chan struct{}),
		early: map[int]string{}}
	go p.run()
	return p
}

// add queues ports; they are taken up at once, all that are queued in one
// batch (one journal write).
func (p *portPrep) add(names []string) {
	if len(names) == 0 {
		return
	}
	p.mu.Lock()
	p.queue = append(p.queue, names...)
	p.queued.Add(int64(len(names)))
	p.mu.Unlock()
	p.kick()
}

// port queues one port as its link message is read, once for its
// ifindex and name (a renamed port again, under its new name).
func (p *portPrep) port(idx int, name string) {
	p.mu.Lock()
	if old, seen := p.early[idx]; seen && old == name {
		p.mu.Unlock()
		return
	}
	p.early[idx] = name
	p.queue = append(p.queue, name)
	p.queued.Add(1)
	p.mu.Unlock()
	p.kick()
}

// gone forgets a deleted port (its ifindex may come back as another
// port) and drops its name from the queue: the name may be another
// interface's by the time the worker gets to it.
func (p *portPrep) gone(idx int, name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.early, idx)
	if name == "" {
		return
	}
	kept := p.queue[:0]
	for _, n := range p.queue {
		if n != name {
			kept = append(kept, n)
		}
	}
	p.queued.Add(-int64(len(p.queue) - len(kept)))
	p.queue = kept
}

func (p *portPrep) kick() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *portPrep) run() {
	defer close(p.exited)
	for {
		select {
		case <-p.wake:
		case <-p.stopped:
			return
		}
		p.batch()
	}
}

// batch works off everything queued now.
func (p *portPrep) batch() {
	p.mu.Lock()
	names := p.queue
	p.queue = nil
	p.mu.Unlock()
	if len(names) == 0 {
		return
	}
	for len(names) > 0 {
		select {
		case <-p.stopped:
			// Stopping: what is left stays on, for the next start.
			return
		default:
		}
		chunk := names[:min(len(names), portPrepChunk)]
		names = names[len(chunk):]
		start := time.Now()
		if err := p.off(chunk); err != nil {
			slog.Warn("ports' ipv6 off", "ports", len(chunk), "err", err)
		}
		p.queued.Add(-int64(len(chunk)))
		slog.Debug("ports' ipv6 off", "ports", len(chunk), "took", time.Since(start))
	}
}

// portPrepChunk is the most ports turned off (and journaled) at once: a
// stopping daemon waits for one chunk at most, 1-6 ms a port in a burst.
const portPrepChunk = 256

// stop ends the worker after what is queued is done, waiting at most
// limit: a stopping daemon leaves its ports as it set them, and a port
// left on is turned off by the next daemon's resync.
func (p *portPrep) stop(limit time.Duration) {
	p.once.Do(func() {
		end := time.Now().Add(limit)
		for p.queued.Load() > 0 && time.Now().Before(end) {
			time.Sleep(5 * time.Millisecond)
		}
		close(p.stopped)
		<-p.exited
		p.mu.Lock()
		left := int64(len(p.queue))
		p.mu.Unlock()
		if n := max(p.queued.Load(), left); n > 0 {
			slog.Warn("stopping with ports whose IPv6 is still on; the next start turns it off", "ports", n)
		}
	})
}

// earlyPort queues a port of a served bridge for its IPv6 off as soon as
// its link message is read, before the message waits for the loop: in a
// burst the loop is seconds behind the kernel, and every port left with
// IPv6 on makes each later one slower to turn off (the kernel walks every
// route of the host for each) and the kernel's own work on the ports
// slower. The lifecycle's request for the same port (prepare) then finds
// it done. Runs on the event reader's goroutine.
func (d *Daemon) earlyPort(ev linkEvent) {
	if ev.BridgePort || ev.Index == 0 {
		return
	}
	if ev.Deleted {
		d.prep.gone(ev.Index, ev.Name)
		return
	}
	if served := d.served.Load(); ev.Veth && served != nil && (*served)[ev.Master] && ev.Name != "" {
		d.prep.port(ev.Index, ev.Name)
	}
}

// noteBridges publishes the served bridges that exist for earlyPort.
func (d *Daemon) noteBridges() {
	cur := d.served.Load()
	if cur != nil && len(*cur) == len(d.eps.bridges) {
		same := true
		for idx := range d.eps.bridges {
			if !(*cur)[idx] {
				same = false
				break
			}
		}
		if same {
			return
		}
	}
	m := make(map[int]bool, len(d.eps.bridges))
	for idx := range d.eps.bridges {
		m[idx] = true
	}
	d.served.Store(&m)
}
