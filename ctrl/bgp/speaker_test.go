package bgp

import (
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	for failed, want := range map[int]time.Duration{
		1: 5 * time.Second, 2: 10 * time.Second, 3: 20 * time.Second, 4: 40 * time.Second, 5: time.Minute, 12: time.Minute,
	} {
		if got := retryAfter(failed); got != want {
			t.Errorf("retryAfter(%d) = %s, want %s", failed, got, want)
		}
	}
}

// A router nobody answers for (nothing listens on [::1]:179 here): the
// speaker keeps running, says why in its status, and backs off after the
// second failed connect.
func TestUnreachableRouterBacksOff(t *testing.T) {
	old := connectRetry
	connectRetry = 2 * time.Second
	t.Cleanup(func() { connectRetry = old })
	changed := make(chan struct{}, 100)
	sp, err := Start(Config{
		ASN: 65001, PeerASN: 65000, RouterID: netip.MustParseAddr("0.0.0.1"),
		Routers: []netip.Addr{netip.MustParseAddr("::1")}, NextHop: netip.MustParseAddr("::1"),
		Prefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8:1:1::/64")},
		Log:      slog.New(slog.DiscardHandler),
	}, func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Stop()
	deadline := time.After(20 * time.Second)
	for {
		st := sp.Status()
		s := st.Sessions[0]
		if s.FailedConnects >= 2 && !s.NextConnect.IsZero() {
			if !strings.HasPrefix(s.LastError, "connect: ") || s.State == "established" {
				t.Fatalf("session %+v: want the failed connect as its last error", s)
			}
			if wait := time.Until(s.NextConnect); wait < 2*time.Second || wait > 4*time.Second {
				t.Errorf("after %d failed connects the next one is %s away, want about %s", s.FailedConnects, wait.Round(time.Millisecond), retryAfter(s.FailedConnects))
			}
			if len(st.Announced) != 1 {
				t.Errorf("announced %v while the router is away, want the prefix kept", st.Announced)
			}
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("after 20s: session %+v: want two failed connects and a backoff", s)
		}
	}
}
