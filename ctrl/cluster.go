package ctrl

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/v6dp/v6dp/ctrl/bgp"
)

// ClusterStatus is the multi-host part of `v6dp status`, written by the
// daemon to cluster.json in the state directory whenever it changes.
type ClusterStatus struct {
	Peers []PeerState `json:"peers,omitempty"`
	// PeerError is the last error of the peer route reconciler, if any.
	PeerError string `json:"peer_error,omitempty"`
	// BGP is the routed layout's speaker, nil without --bgp-router.
	BGP *bgp.Status `json:"bgp,omitempty"`
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
// the peer route reconciler (switched layout) and the BGP speaker (routed
// layout). It has its own goroutines so that nothing it waits for (a
// router that does not answer) slows the endpoints down.
type cluster struct {
	cfg     *Resolved
	store   Store
	peers   []PeerRoute
	speaker *bgp.Speaker

	mu     sync.Mutex
	status ClusterStatus
	done   chan struct{}
}

// startCluster starts what the configuration asks for of the multi-host
// layouts; it returns a nil cluster when it asks for nothing. Close stops
// it.
func startCluster(ctx context.Context, r *Resolved, st Store, m *metrics) (*cluster, error) {
	// A daemon that announced before (and was not cleaned up since) may
	// have routes held as stale by the routers: it restarts.
	prev, _ := st.ClusterStatus()
	restarting := prev != nil && prev.BGP != nil
	_ = st.remove(clusterStatusFile)
	if len(r.Peers) == 0 {
		// A restart without --peer takes back what an earlier daemon
		// installed.
		if err := RemovePeerRoutes(); err != nil {
			slog.Warn("removing peer routes", "err", err)
		}
		if !r.BGP() {
			return nil, nil
		}
	}
	peers, err := ParsePeers(r.Peers, r.Cluster.own(r), r.Uplink)
	if err != nil {
		return nil, err
	}
	c := &cluster{cfg: r, store: st, peers: peers, done: make(chan struct{})}
	if r.BGP() {
		cfg, err := speakerConfig(r)
		if err != nil {
			return nil, err
		}
		cfg.Restarting = restarting
		sp, err := bgp.Start(cfg, c.speakerChanged)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		c.speaker = sp
		c.mu.Unlock()
		c.speakerChanged()
		slog.Info("bgp speaker started", "restarting", cfg.Restarting, "asn", cfg.ASN, "router_id", cfg.RouterID, "next_hop", cfg.NextHop,
			"announce", cfg.Prefixes, "routers", cfg.Routers)
		c.watchWithdraw(ctx)
	}
	if len(peers) > 0 {
		c.syncPeers()
		go c.run(ctx)
	} else {
		c.saveLocked()
		close(c.done)
	}
	if m != nil {
		m.cluster.Store(c)
	}
	return c, nil
}

// Close stops the reconciler and the speaker. Routes stay, and the
// speaker leaves without a word so that the routers keep the host's routes
// (graceful restart): traffic between hosts goes on while no daemon runs.
func (c *cluster) Close() {
	if c == nil {
		return
	}
	<-c.done
	if c.speaker != nil {
		c.speaker.Stop()
	}
}

// WithdrawSignal tells a running daemon that the withdraw marker
// (`v6dp withdraw`, `v6dp announce`) changed.
const WithdrawSignal = syscall.SIGUSR1

// withdrawnFile in the state directory marks a host taken out of service:
// its daemon announces nothing, also after a restart, until `v6dp
// announce` removes it.
const withdrawnFile = "bgp-withdrawn"

// Withdrawn reports whether the host is marked out of service.
func (s Store) Withdrawn() bool {
	_, err := os.Stat(s.path(withdrawnFile))
	return err == nil
}

// SetWithdrawn sets or clears the out-of-service mark.
func (s Store) SetWithdrawn(withdrawn bool) error {
	if !withdrawn {
		return s.remove(withdrawnFile)
	}
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(s.path(withdrawnFile), []byte("v6dp withdraw: this host announces nothing until `v6dp announce`\n"), 0o644)
}

// watchWithdraw follows the out-of-service mark on WithdrawSignal until
// ctx ends.
func (c *cluster) watchWithdraw(ctx context.Context) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, WithdrawSignal)
	go func() {
		defer signal.Stop(sig)
		for {
			select {
			case <-ctx.Done():
				return
			case <-sig:
			}
			w := c.store.Withdrawn()
			slog.Info("bgp announcements", "withdrawn", w)
			if err := c.speaker.SetWithdrawn(w); err != nil {
				slog.Warn("bgp announcements", "err", err)
			}
		}
	}()
}

// speakerChanged records the speaker's new status; it is called from the
// speaker's goroutines, the first times before startCluster has it.
func (c *cluster) speakerChanged() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.speaker == nil {
		return
	}
	st := c.speaker.Status()
	c.status.BGP = &st
	c.saveLocked()
}

// checkCluster checks, before anything is changed on the host, what the
// cluster layouts need of it: with BGP, a global address on the uplink to
// announce as next hop (and a router id to derive from it).
func checkCluster(r *Resolved) error {
	if !r.BGP() {
		return nil
	}
	_, err := speakerConfig(r)
	return err
}

// speakerConfig derives the speaker's configuration: the next hop is the
// uplink's global address, the router id its low 32 bits unless given.
func speakerConfig(r *Resolved) (bgp.Config, error) {
	cfg := bgp.Config{ASN: uint32(r.BGPASN), PeerASN: uint32(r.BGPPeerASN), Prefixes: r.Cluster.own(r),
		Withdrawn: Store{Dir: r.StateDir}.Withdrawn(), Log: slog.Default()}
	for _, s := range r.BGPRouters {
		cfg.Routers = append(cfg.Routers, netip.MustParseAddr(s))
	}
	nh, err := uplinkGlobalAddr(r.Uplink)
	if err != nil {
		return cfg, err
	}
	cfg.NextHop = nh
	if r.BGPRouterID != "" {
		cfg.RouterID = netip.MustParseAddr(r.BGPRouterID)
	} else {
		b := nh.As16()
		cfg.RouterID = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
		if cfg.RouterID.IsUnspecified() {
			return cfg, fmt.Errorf("bgp-router-id: cannot derive one from %s (its low 32 bits are zero); give --bgp-router-id", nh)
		}
	}
	return cfg, nil
}

// uplinkGlobalAddr returns the uplink's first usable global address.
func uplinkGlobalAddr(name string) (netip.Addr, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("uplink: %q: %w", name, err)
	}
	addrs, err := netlink.AddrList(l, netlink.FAMILY_V6)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("uplink: addresses of %s: %w", name, err)
	}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || ip.IsLinkLocalUnicast() || !ip.IsGlobalUnicast() ||
			a.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED|unix.IFA_F_DEPRECATED|unix.IFA_F_TEMPORARY) != 0 {
			continue
		}
		return ip.Unmap(), nil
	}
	return netip.Addr{}, fmt.Errorf("bgp-router: uplink %s has no global IPv6 address to announce as the next hop", name)
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

// networksChanged announces the prefixes of the networks served now: a
// network found under --network-parent is announced from the moment it is
// served, and withdrawn when its bridge loses its address.
func (c *cluster) networksChanged(nets []Network) {
	if c == nil || c.speaker == nil {
		return
	}
	if err := c.speaker.SetPrefixes(c.cfg.Cluster.ownWith(c.cfg, nets)); err != nil {
		slog.Warn("bgp: announcing the networks", "err", err)
	}
}
