package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	bgppkt "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// Config is what the speaker announces and to whom.
type Config struct {
	ASN      uint32
	PeerASN  uint32
	RouterID netip.Addr // IPv4
	Routers  []netip.Addr
	// NextHop is the host's uplink address: the session's source and the
	// announced next hop.
	NextHop  netip.Addr
	Prefixes []netip.Prefix
	// Withdrawn starts the speaker announcing nothing (the host is out of
	// service): the routers drop what they hold of the host as stale at
	// the first End-of-RIB.
	Withdrawn bool
	// Restarting says an earlier speaker of this host announced (and the
	// dataplane it set up still forwards): the routers may hold its routes
	// as stale.
	Restarting bool
	// Log receives the speaker's own messages (GoBGP's at debug level).
	Log *slog.Logger
}

// Timers. A router that loses the session (the daemon killed, restarting)
// keeps the host's routes for RestartTime (RFC 4724 3) and the restarted
// speaker waits at most DeferralTime for the routers' End-of-RIB before it
// announces (4.1). A router that cannot be reached is tried about
// firstConnect after start (GoBGP's fixed first delay), again connectRetry
// later, and from then on with the wait doubling up to maxConnectRetry
// (backoff), GoBGP adding up to 25% jitter.
const (
	RestartTime     = 120 * time.Second
	DeferralTime    = 5 * time.Second
	firstConnect    = 2 * time.Second
	maxConnectRetry = 60 * time.Second
	holdTime        = 30 * time.Second
	keepalive       = 10 * time.Second
)

// connectRetry is a variable for the tests' sake (GoBGP's least is 2 s).
var connectRetry = 5 * time.Second

// retryAfter is the wait before the next connect after failed failed
// connects in a row.
func retryAfter(failed int) time.Duration {
	d := connectRetry
	for i := 1; i < failed && d < maxConnectRetry; i++ {
		d *= 2
	}
	return min(d, maxConnectRetry)
}

// Session is one router's BGP session as `v6dp status` shows it.
type Session struct {
	Router string `json:"router"`
	// State is idle, connect, active, opensent, openconfirm or established.
	State string    `json:"state"`
	Since time.Time `json:"since"`
	// FailedConnects counts TCP connects that failed since the session
	// was last established.
	FailedConnects int `json:"failed_connects,omitempty"`
	// LastError says why the session is not (or was last not) up.
	LastError string `json:"last_error,omitempty"`
	// GracefulRestart is set when both sides negotiated RFC 4724.
	GracefulRestart bool `json:"graceful_restart"`
	// Established counts how often the session came up.
	Established int `json:"established"`
	// NextConnect is when the router is tried again while backing off.
	NextConnect time.Time `json:"next_connect,omitzero"`
	backingOff  bool
}

// Status is the speaker's state.
type Status struct {
	ASN       uint32    `json:"asn"`
	PeerASN   uint32    `json:"peer_asn"`
	RouterID  string    `json:"router_id"`
	NextHop   string    `json:"next_hop"`
	Announced []string  `json:"announced"`
	Withdrawn bool      `json:"withdrawn,omitempty"`
	Sessions  []Session `json:"sessions"`
}

// Speaker is a running BGP speaker.
type Speaker struct {
	cfg      Config
	srv      *server.BgpServer
	onChange func()
	ctx      context.Context
	cancel   context.CancelFunc

	mu        sync.Mutex
	sessions  map[string]*Session
	withdrawn bool
}

// Start starts the speaker: it announces cfg.Prefixes and connects to every
// router, retrying for as long as it runs. onChange is called (from another
// goroutine) whenever the Status changes.
func Start(cfg Config, onChange func()) (*Speaker, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	sp := &Speaker{cfg: cfg, onChange: onChange, ctx: ctx, cancel: cancel, sessions: map[string]*Session{}, withdrawn: cfg.Withdrawn}
	now := time.Now().UTC()
	for _, r := range cfg.Routers {
		sp.sessions[r.String()] = &Session{Router: r.String(), State: "idle", Since: now}
	}
	// GoBGP logs every connect attempt at debug level; the handler keeps
	// the reason of the last failure for the status.
	lvl := &slog.LevelVar{}
	lvl.Set(slog.LevelDebug)
	sp.srv = server.NewBgpServer(server.LoggerOption(slog.New(&watchHandler{next: cfg.Log.Handler(), sp: sp}), lvl))
	go sp.srv.Serve()
	err := sp.start(ctx)
	if err != nil {
		sp.Stop()
		return nil, err
	}
	return sp, nil
}

func (sp *Speaker) start(ctx context.Context) error {
	c := sp.cfg
	if err := sp.srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: c.ASN, RouterId: c.RouterID.String(),
		// The speaker only connects out: the routers accept the hosts
		// as dynamic neighbours and never connect in.
		ListenPort: -1,
	}}); err != nil {
		return fmt.Errorf("starting BGP: %w", err)
	}
	if err := sp.srv.WatchEvent(ctx, server.WatchEventMessageCallbacks{OnPeerUpdate: sp.onPeer}, server.WatchPeer()); err != nil {
		return fmt.Errorf("watching sessions: %w", err)
	}
	if !c.Withdrawn {
		if _, err := sp.srv.AddPath(apiutil.AddPathRequest{Paths: sp.paths()}); err != nil {
			return fmt.Errorf("announcing %v: %w", c.Prefixes, err)
		}
	}
	for _, r := range c.Routers {
		if err := sp.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: sp.peer(r)}); err != nil {
			return fmt.Errorf("bgp-router %s: %w", r, err)
		}
	}
	return nil
}

// peer is router r's session configuration.
func (sp *Speaker) peer(r netip.Addr) *api.Peer {
	c := sp.cfg
	v6 := &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
	return &api.Peer{
		Conf: &api.PeerConf{NeighborAddress: r.String(), PeerAsn: c.PeerASN},
		Timers: &api.Timers{Config: &api.TimersConfig{
			ConnectRetry: uint64(connectRetry / time.Second), HoldTime: uint64(holdTime / time.Second),
			KeepaliveInterval: uint64(keepalive / time.Second),
		}},
		Transport: &api.Transport{LocalAddress: c.NextHop.String()},
		// The dataplane lives in the kernel and outlives the daemon,
		// so a restarted speaker comes back with its forwarding
		// state preserved (the R and F bits, RFC 4724 3): the
		// router keeps the host's routes until the new End-of-RIB
		// instead of flushing them. A restarting speaker waits for
		// the routers' End-of-RIB before it announces (4.1), which
		// BIRD 2.0 sends up to 3 s late to a new dynamic neighbour;
		// a first start has nothing to keep and announces at once.
		GracefulRestart: &api.GracefulRestart{
			Enabled: true, RestartTime: uint32(RestartTime / time.Second),
			DeferralTime: uint32(DeferralTime / time.Second), LocalRestarting: c.Restarting,
		},
		AfiSafis: []*api.AfiSafi{{
			Config:            &api.AfiSafiConfig{Family: v6, Enabled: true},
			MpGracefulRestart: &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}},
		}},
	}
}

// backoff takes router addr's peer out for wait, so that the next connect
// comes retryAfter its failures, then puts it back (GoBGP connects
// firstConnect after a peer is added).
func (sp *Speaker) backoff(addr string, wait time.Duration) {
	defer func() {
		sp.mu.Lock()
		if s, ok := sp.sessions[addr]; ok {
			s.backingOff, s.NextConnect = false, time.Time{}
		}
		sp.mu.Unlock()
	}()
	r := netip.MustParseAddr(addr)
	if err := sp.srv.DeletePeer(sp.ctx, &api.DeletePeerRequest{Address: addr}); err != nil {
		return
	}
	t := time.NewTimer(max(wait-firstConnect, 0))
	defer t.Stop()
	select {
	case <-sp.ctx.Done():
		return
	case <-t.C:
	}
	if err := sp.srv.AddPeer(sp.ctx, &api.AddPeerRequest{Peer: sp.peer(r)}); err != nil && sp.ctx.Err() == nil {
		sp.cfg.Log.Warn("bgp-router: re-adding after backoff", "router", addr, "err", err)
	}
}

func (sp *Speaker) paths() []*apiutil.Path { return pathsFor(sp.cfg.Prefixes, sp.cfg.NextHop) }

func pathsFor(prefixes []netip.Prefix, nextHop netip.Addr) []*apiutil.Path {
	var out []*apiutil.Path
	for _, p := range prefixes {
		nlri, _ := bgppkt.NewIPAddrPrefix(p)
		reach, _ := bgppkt.NewPathAttributeMpReachNLRI(bgppkt.RF_IPv6_UC, []bgppkt.PathNLRI{{NLRI: nlri}}, nextHop)
		out = append(out, &apiutil.Path{Family: bgppkt.RF_IPv6_UC, Nlri: nlri, Attrs: []bgppkt.PathAttributeInterface{
			bgppkt.NewPathAttributeOrigin(bgppkt.BGP_ORIGIN_ATTR_TYPE_IGP), reach,
		}})
	}
	return out
}

func (sp *Speaker) onPeer(ev *apiutil.WatchEventMessage_PeerEvent, _ time.Time) {
	if ev.Type != apiutil.PEER_EVENT_STATE {
		return
	}
	addr := ev.Peer.State.NeighborAddress.String()
	sp.mu.Lock()
	s, ok := sp.sessions[addr]
	if !ok {
		sp.mu.Unlock()
		return
	}
	state := fsmState(ev.Peer.State.SessionState)
	if state != s.State {
		s.State, s.Since = state, time.Now().UTC()
		switch state {
		case "established":
			s.Established++
			s.FailedConnects, s.LastError = 0, ""
			s.GracefulRestart = hasGR(ev.Peer.State.RemoteCap)
		case "idle", "active":
			if msg := disconnectReason(ev.Peer.State); msg != "" {
				s.LastError = msg
			}
		}
	}
	sp.mu.Unlock()
	sp.cfg.Log.Info("bgp session", "router", addr, "state", state)
	sp.onChange()
}

// connectFailed records a failed TCP connect to router addr and, past the
// second, backs off.
func (sp *Speaker) connectFailed(addr, reason string) {
	sp.mu.Lock()
	s, ok := sp.sessions[addr]
	if ok {
		s.FailedConnects++
		s.LastError = "connect: " + reason
		if wait := retryAfter(s.FailedConnects); wait > connectRetry && !s.backingOff {
			s.backingOff, s.NextConnect = true, time.Now().UTC().Add(wait)
			go sp.backoff(addr, wait)
		}
	}
	sp.mu.Unlock()
	if ok {
		sp.onChange()
	}
}

// Status returns the speaker's state.
func (sp *Speaker) Status() Status {
	st := Status{ASN: sp.cfg.ASN, PeerASN: sp.cfg.PeerASN, RouterID: sp.cfg.RouterID.String(), NextHop: sp.cfg.NextHop.String()}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	st.Withdrawn = sp.withdrawn
	if !sp.withdrawn {
		for _, p := range sp.cfg.Prefixes {
			st.Announced = append(st.Announced, p.String())
		}
	}
	for _, s := range sp.sessions {
		st.Sessions = append(st.Sessions, *s)
	}
	sort.Slice(st.Sessions, func(i, j int) bool { return st.Sessions[i].Router < st.Sessions[j].Router })
	return st
}

// SetWithdrawn takes the host out of service (true): every prefix is
// withdrawn, and the routers drop the host's routes at once; or puts it
// back (false). The sessions stay up either way.
func (sp *Speaker) SetWithdrawn(withdrawn bool) error {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if withdrawn == sp.withdrawn {
		return nil
	}
	var err error
	if withdrawn {
		err = sp.srv.DeletePath(apiutil.DeletePathRequest{Paths: sp.paths()})
	} else {
		_, err = sp.srv.AddPath(apiutil.AddPathRequest{Paths: sp.paths()})
	}
	if err != nil {
		return fmt.Errorf("announcing %v: %w", sp.cfg.Prefixes, err)
	}
	sp.withdrawn = withdrawn
	go sp.onChange()
	return nil
}

// SetPrefixes makes ps the announced prefixes: the new ones are announced
// and the ones no longer in ps withdrawn (while the host is out of
// service, only remembered for when it is back).
func (sp *Speaker) SetPrefixes(ps []netip.Prefix) error {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	var added, gone []netip.Prefix
	for _, p := range ps {
		if !slices.Contains(sp.cfg.Prefixes, p) {
			added = append(added, p)
		}
	}
	for _, p := range sp.cfg.Prefixes {
		if !slices.Contains(ps, p) {
			gone = append(gone, p)
		}
	}
	if len(added) == 0 && len(gone) == 0 {
		return nil
	}
	if !sp.withdrawn {
		if len(gone) > 0 {
			if err := sp.srv.DeletePath(apiutil.DeletePathRequest{Paths: pathsFor(gone, sp.cfg.NextHop)}); err != nil {
				return fmt.Errorf("withdrawing %v: %w", gone, err)
			}
		}
		if len(added) > 0 {
			if _, err := sp.srv.AddPath(apiutil.AddPathRequest{Paths: pathsFor(added, sp.cfg.NextHop)}); err != nil {
				return fmt.Errorf("announcing %v: %w", added, err)
			}
		}
	}
	sp.cfg.Prefixes = append([]netip.Prefix(nil), ps...)
	go sp.onChange()
	return nil
}

// Stop ends the speaker without a word to the routers. The process exits
// right after, the kernel closes the sessions' sockets, and the routers
// keep the host's routes as stale (graceful restart) until the next daemon
// re-announces them.
func (sp *Speaker) Stop() {
	sp.cancel()
}

func fsmState(s bgppkt.FSMState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "BGP_FSM_"))
}

func hasGR(caps []bgppkt.ParameterCapabilityInterface) bool {
	for _, c := range caps {
		if c.Code() == bgppkt.BGP_CAP_GRACEFUL_RESTART {
			return true
		}
	}
	return false
}

func disconnectReason(st apiutil.PeerState) string {
	if st.DisconnectReason == api.PeerState_DISCONNECT_REASON_UNSPECIFIED {
		return ""
	}
	r := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(st.DisconnectReason.String(), "DISCONNECT_REASON_"), "_", " "))
	if st.DisconnectMessage != "" {
		r += ": " + st.DisconnectMessage
	}
	return r
}

// watchHandler passes GoBGP's log records on at the daemon's level and
// picks out the failed connects, which GoBGP reports only at debug level.
type watchHandler struct {
	next  slog.Handler
	sp    *Speaker
	attrs []slog.Attr
}

func (h *watchHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *watchHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "failed to connect" {
		var reason string
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "Error" {
				reason = a.Value.String()
			}
			return true
		})
		for _, a := range h.attrs {
			if a.Key == "Key" {
				h.sp.connectFailed(a.Value.String(), reason)
			}
		}
	}
	if !h.next.Enabled(ctx, r.Level) {
		return nil
	}
	return h.next.Handle(ctx, r)
}

func (h *watchHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &watchHandler{next: h.next.WithAttrs(as), sp: h.sp, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h *watchHandler) WithGroup(name string) slog.Handler {
	return &watchHandler{next: h.next.WithGroup(name), sp: h.sp, attrs: h.attrs}
}
