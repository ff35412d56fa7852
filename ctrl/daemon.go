package ctrl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sort"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Daemon keeps the kernel (and the BPF maps) in line with the endpoints on
// the bridge until its context ends. It leaves everything in place when it
// stops, so traffic and NDP answers go on while no daemon runs.
type Daemon struct {
	cfg   *Resolved
	store Store
	disc  *Discoverer
	host  *Host
	accel accel
	ann   *Announcer

	endpoints map[int]*Endpoint // by host-side ifindex
	pending   map[int]retry     // ports whose far end has no address yet
	live      map[netip.Addr]bool
	metrics   *metrics // nil without --metrics-addr
}

type retry struct {
	next     time.Time
	deadline time.Time
	delay    time.Duration
}

// Port retries: fast at first (Docker configures the address a few ms
// after the port appears), then slower, then left to the periodic resync.
const (
	retryFirst = 10 * time.Millisecond
	retryMax   = 500 * time.Millisecond
	retryFor   = time.Minute
)

// RunDaemon sets the host up, then reconciles until ctx ends.
func RunDaemon(ctx context.Context, r *Resolved) error {
	st := Store{Dir: r.StateDir}
	// Check what can be checked before changing anything.
	if _, err := CheckUplink(r.Uplink); err != nil {
		return err
	}
	if rt, err := st.Runtime(); err == nil && rt.PID != os.Getpid() {
		return fmt.Errorf("state-dir: a daemon (pid %d) already runs with %s", rt.PID, r.StateDir)
	}
	j, err := st.Journal()
	if err != nil {
		return err
	}
	host, err := EnsureHost(r, j)
	if serr := st.SaveJournal(j); serr != nil {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return err
	}
	d := &Daemon{
		cfg: r, store: st, host: host,
		disc:      &Discoverer{Bridge: r.Bridge, Prefix: r.Prefix, Dirs: r.NetnsDirs},
		endpoints: map[int]*Endpoint{},
		pending:   map[int]retry{},
		live:      map[netip.Addr]bool{},
	}
	rt := &Runtime{PID: os.Getpid(), Started: time.Now().UTC(), Config: r.Config, Addressing: r.Addressing}
	d.accel, rt.Dataplane, rt.Attach, rt.Reason = startAccel(r, host, j)
	if serr := st.SaveJournal(j); serr != nil {
		slog.Warn("saving journal", "err", serr)
	}
	slog.Info("dataplane selected", "dataplane", rt.Dataplane, "attach", rt.Attach, "reason", rt.Reason)
	if r.NDPProxy && host.Uplink != nil {
		d.ann = NewAnnouncer(r.Uplink, r.IPForward)
	}
	defer d.ann.Close()
	if d.accel != nil {
		defer d.accel.Close()
	}
	if err := st.SaveRuntime(rt); err != nil {
		return fmt.Errorf("state-dir: %w", err)
	}
	if r.MetricsAddr != "" {
		d.metrics = newMetrics(r.PinDir, rt.Dataplane)
		if err := serveMetrics(ctx, r.MetricsAddr, d.metrics); err != nil {
			return fmt.Errorf("metrics-addr: %w", err)
		}
	}
	defer os.Remove(st.path("daemon.json"))

	sub, err := subscribeLinks()
	if err != nil {
		return err
	}
	defer func() { sub.close() }()
	d.resync(false)
	slog.Info("daemon running", "bridge", r.Bridge, "uplink", r.Uplink, "prefix", r.Prefix,
		"addressing", r.Addressing, "endpoints", len(d.endpoints), "addresses", len(d.live))

	full := time.NewTicker(r.Resync.Duration)
	defer full.Stop()
	fast := time.NewTicker(retryFirst)
	defer fast.Stop()
	for {
		select {
		case <-ctx.Done():
			slog.Info("daemon stopping; dataplane stays in place", "addresses", len(d.live))
			return nil
		case err := <-sub.errs:
			// Lost events (ENOBUFS under a burst of thousands of ports):
			// the library closes the subscription; open a new one, then
			// a full resync repairs whatever was missed.
			slog.Warn("link events lost; resubscribing and resyncing", "err", err)
			sub.close()
			if sub, err = subscribeLinks(); err != nil {
				return err
			}
			d.resync(true)
		case u, ok := <-sub.updates:
			if !ok {
				// Closed after an error; the error case resubscribes.
				sub.updates = nil
				continue
			}
			changed := d.onLink(u)
			// Drain what is queued so a burst costs one apply.
			for more := true; more; {
				select {
				case u, ok := <-sub.updates:
					if !ok {
						sub.updates, more = nil, false
						break
					}
					changed = d.onLink(u) || changed
				default:
					more = false
				}
			}
			if changed {
				d.apply()
			}
		case <-fast.C:
			if len(d.pending) > 0 && d.retryPending() {
				d.apply()
			}
		case <-full.C:
			d.resync(true)
		}
	}
}

// linkSub is a subscription to the kernel's link events.
type linkSub struct {
	updates chan netlink.LinkUpdate
	errs    chan error
	done    chan struct{}
}

// linkEventBuffer is the socket buffer for link events: a burst of port
// changes at thousands of containers overflows the default and the kernel
// drops events (ENOBUFS).
const linkEventBuffer = 8 << 20

func subscribeLinks() (*linkSub, error) {
	s := &linkSub{updates: make(chan netlink.LinkUpdate, 4096), errs: make(chan error, 1), done: make(chan struct{})}
	err := netlink.LinkSubscribeWithOptions(s.updates, s.done, netlink.LinkSubscribeOptions{
		ReceiveBufferSize:      linkEventBuffer,
		ReceiveBufferForceSize: true,
		ErrorCallback: func(err error) {
			select {
			case s.errs <- err:
			default:
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("subscribing to link events: %w", err)
	}
	return s, nil
}

func (s *linkSub) close() {
	select {
	case <-s.done:
	default:
		close(s.done)
	}
}

// onLink handles one link event and reports whether the endpoint set
// changed.
func (d *Daemon) onLink(u netlink.LinkUpdate) bool {
	a := u.Link.Attrs()
	idx := a.Index
	// The bridge's MAC and MTU are part of what BPF forwards with.
	if idx == d.host.Bridge.Attrs().Index {
		return d.accel != nil
	}
	bridge := d.host.Bridge.Attrs().Index
	gone := u.Header.Type == unix.RTM_DELLINK
	if !gone && (a.MasterIndex != bridge || u.Link.Type() != "veth") {
		// Not (or no longer) a veth port of the bridge, as far as this
		// message says. Some notifications carry only part of a link's
		// attributes (no master, no link kind); withdrawing a live
		// endpoint on one of those cut every container off, so ask the
		// kernel before believing it.
		_, known := d.endpoints[idx]
		_, waiting := d.pending[idx]
		if !known && !waiting {
			return false
		}
		l, err := netlink.LinkByIndex(idx)
		if err == nil && l.Attrs().MasterIndex == bridge && l.Type() == "veth" {
			return false
		}
		gone = true
	}
	if gone {
		delete(d.pending, idx)
		if _, ok := d.endpoints[idx]; ok {
			delete(d.endpoints, idx)
			return true
		}
		return false
	}
	if _, known := d.endpoints[idx]; known {
		return false
	}
	if _, waiting := d.pending[idx]; waiting {
		return false
	}
	if err := d.portIPv6Off(a.Name); err != nil && !isGone(err) {
		slog.Warn("port ipv6 off", "port", a.Name, "err", err)
	}
	now := time.Now()
	d.pending[idx] = retry{next: now, deadline: now.Add(retryFor), delay: retryFirst}
	return d.retryPending()
}

// retryPending resolves the ports that are due and reports whether any
// became an endpoint.
func (d *Daemon) retryPending() bool {
	now := time.Now()
	changed := false
	for idx, r := range d.pending {
		if now.Before(r.next) {
			continue
		}
		ep, err := d.disc.Port(idx)
		switch {
		case err == nil && len(ep.Addrs) > 0:
			d.endpoints[idx] = ep
			delete(d.pending, idx)
			changed = true
			continue
		case err != nil && isGone(err):
			delete(d.pending, idx)
			continue
		}
		if now.After(r.deadline) {
			// The periodic resync picks it up if it ever gets an address.
			delete(d.pending, idx)
			continue
		}
		r.delay = min(r.delay*2, retryMax)
		r.next = now.Add(r.delay)
		d.pending[idx] = r
	}
	return changed
}

// resync rebuilds the endpoint set from the kernel and re-applies the host
// configuration: the repair for lost events, crashed daemons and hands
// that changed things behind v6dp's back.
func (d *Daemon) resync(periodic bool) {
	if periodic {
		j, err := d.store.Journal()
		if err == nil {
			forgetGonePorts(j)
			if h, err := EnsureHost(d.cfg, j); err != nil {
				slog.Warn("host configuration", "err", err)
			} else {
				d.host = h
			}
			_ = d.store.SaveJournal(j)
		}
	}
	eps, err := d.disc.Scan()
	if err != nil {
		// Keep answering for what is known rather than for nothing.
		slog.Warn("scanning the bridge; keeping the current endpoints", "err", err)
		return
	}
	next := map[int]*Endpoint{}
	for i := range eps {
		ep := eps[i]
		if ep.Err != nil {
			// A port that is still there but could not be read this
			// time keeps what was known of it.
			if old, ok := d.endpoints[ep.HostIndex]; ok && !isGone(ep.Err) {
				next[ep.HostIndex] = old
			} else if !periodic {
				slog.Info("port not resolved", "port", ep.HostIf, "err", ep.Err)
			}
			continue
		}
		if !periodic {
			if err := d.portIPv6Off(ep.HostIf); err != nil && !isGone(err) {
				slog.Warn("port ipv6 off", "port", ep.HostIf, "err", err)
			}
		}
		if len(ep.Addrs) == 0 {
			continue
		}
		next[ep.HostIndex] = &ep
	}
	d.endpoints = next
	d.apply()
}

// apply pushes the endpoint set into the kernel proxy entries and the BPF
// maps, and announces the addresses that are new.
func (d *Daemon) apply() {
	want := map[netip.Addr]bool{}
	for _, ep := range d.endpoints {
		for _, a := range ep.Addrs {
			want[a] = true
		}
	}
	var fresh []netip.Addr
	for a := range want {
		if !d.live[a] {
			fresh = append(fresh, a)
		}
	}
	// The BPF map first: it answers before the kernel would.
	if d.accel != nil {
		if err := d.accel.Sync(d.endpoints); err != nil {
			slog.Warn("bpf endpoints", "err", err)
		}
	}
	if d.cfg.NDPProxy && d.host.Uplink != nil {
		if _, _, err := SyncProxy(d.host.Uplink.Attrs().Index, d.cfg.Prefix, want); err != nil {
			slog.Warn("proxy entries", "err", err)
		}
	}
	var gone []netip.Addr
	for a := range d.live {
		if !want[a] {
			gone = append(gone, a)
		}
	}
	sort.Slice(fresh, func(i, j int) bool { return fresh[i].Less(fresh[j]) })
	for _, a := range fresh {
		slog.Info("endpoint address live", "addr", a)
	}
	for _, a := range gone {
		slog.Info("endpoint address gone", "addr", a)
	}
	d.live = want
	if d.metrics != nil {
		d.metrics.addresses.Store(int64(len(want)))
		d.metrics.endpoints.Store(int64(len(d.endpoints)))
	}
	d.ann.Withdraw(gone)
	d.ann.Announce(fresh)
}
