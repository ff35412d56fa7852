package ctrl

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ClusterStatus is the multi-host part of `v6dp status`, written by the
// daemon to cluster.json in the state directory whenever it changes.
type ClusterStatus struct {
	Peers []PeerState `json:"peers,omitempty"`
	// PeerError is the last error of the peer route reconciler, if any.
	PeerError string `json:"peer_error,omitempty"`
}

// clusterStatusFile is the name of ClusterStatus in the state directory.
const clusterStatusFile = "cluster.json"

// ClusterStatus returns what the daemon last wrote, nil if it runs
// without a cluster layout.
func (s Store) ClusterStatus() (*ClusterStatus, error) {
	c := &ClusterStatus{}
	if err := s.read(clusterStatusFile, c); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	return c, nil
}

// cluster runs the multi-host layouts beside the daemon's endpoint loop:
// the peer route reconciler (switched layout). It has its own goroutine so
// that nothing it waits for slows the endpoints down.
type cluster struct {
	cfg   *Resolved
	store Store
	peers []PeerRoute

	mu     sync.Mutex
	status ClusterStatus
	done   chan struct{}
}

// startCluster starts what the configuration asks for of the multi-host
// layouts; it returns nil when it asks for nothing. Close stops it.
func startCluster(ctx context.Context, r *Resolved, st Store) (*cluster, error) {
	_ = st.remove(clusterStatusFile)
	if len(r.Peers) == 0 {
		// A restart without --peer takes back what an earlier daemon
		// installed.
		if err := RemovePeerRoutes(); err != nil {
			slog.Warn("removing peer routes", "err", err)
		}
		return nil, nil
	}
	peers, err := ParsePeers(r.Peers, r.Cluster.own(r.Prefix), r.Uplink)
	if err != nil {
		return nil, err
	}
	c := &cluster{cfg: r, store: st, peers: peers, done: make(chan struct{})}
	c.syncPeers()
	go c.run(ctx)
	return c, nil
}

// Close stops the reconciler and waits for it. Routes stay: traffic
// between hosts goes on while no daemon runs.
func (c *cluster) Close() {
	if c == nil {
		return
	}
	<-c.done
}

// run repairs the peer routes on route events (a route deleted behind
// v6dp's back comes back at once) and on the periodic resync.
func (c *cluster) run(ctx context.Context) {
	defer close(c.done)
	full := time.NewTicker(c.cfg.Resync.Duration)
	defer full.Stop()
	for {
		events, stop, err := c.subscribeRoutes()
		if err != nil {
			slog.Warn("route events; relying on the periodic resync", "err", err)
		}
		lost := false
		for !lost {
			select {
			case <-ctx.Done():
				close(stop)
				return
			case u, ok := <-events:
				if !ok {
					lost = true
					break
				}
				if !c.concerns(u.Route) {
					continue
				}
				// A burst of events (our own changes among them) costs
				// one sync.
				for drained := false; !drained; {
					select {
					case _, ok := <-events:
						lost = lost || !ok
						drained = !ok
					case <-time.After(5 * time.Millisecond):
						drained = true
					}
				}
				c.syncPeers()
			case <-full.C:
				c.syncPeers()
			}
		}
		close(stop)
		c.syncPeers()
	}
}

func (c *cluster) subscribeRoutes() (chan netlink.RouteUpdate, chan struct{}, error) {
	ch, stop := make(chan netlink.RouteUpdate, 256), make(chan struct{})
	err := netlink.RouteSubscribeWithOptions(ch, stop, netlink.RouteSubscribeOptions{ErrorCallback: func(error) {}})
	if err != nil {
		return nil, stop, err
	}
	return ch, stop, nil
}

// concerns says whether a route event may need a repair: one of v6dp's
// routes, or any route to a peer prefix.
func (c *cluster) concerns(r netlink.Route) bool {
	if r.Family != unix.AF_INET6 && r.Family != 0 {
		return false
	}
	if r.Protocol == RouteProtocol {
		return true
	}
	p, ok := ipNetPrefix(r)
	if !ok {
		return false
	}
	for _, w := range c.peers {
		if w.Prefix == p {
			return true
		}
	}
	return false
}

func (c *cluster) syncPeers() {
	uplink := 0
	if c.cfg.Uplink != "" {
		if l, err := netlink.LinkByName(c.cfg.Uplink); err == nil {
			uplink = l.Attrs().Index
		}
	}
	states, err := SyncPeerRoutes(uplink, c.peers)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.status.Peers = states
	c.status.PeerError = ""
	if err != nil {
		c.status.PeerError = err.Error()
		slog.Warn("peer routes", "err", err)
	}
	c.saveLocked()
}

func (c *cluster) saveLocked() {
	if err := c.store.write(clusterStatusFile, &c.status); err != nil {
		slog.Warn("saving cluster status", "err", err)
	}
}

func (s Store) remove(name string) error {
	err := os.Remove(s.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
