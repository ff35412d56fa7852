package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"syscall"
	"time"

	"github.com/v6dp/v6dp/ctrl"
	"github.com/v6dp/v6dp/ctrl/bgp"
)

// clusterFlags registers the multi-host layouts' flags.
func clusterFlags(fs *flag.FlagSet, c *ctrl.Cluster) {
	fs.Var(&listFlag{list: &c.Peers}, "peer", "switched layout: PREFIX=VIA, a route to another host's container prefix via its uplink address (repeatable)")
	fs.Var(&listFlag{list: &c.BGPRouters}, "bgp-router", "routed layout: a BGP router's address to announce the container prefix to (repeatable)")
	fs.Int64Var(&c.BGPASN, "bgp-asn", c.BGPASN, "this host's AS number (with --bgp-router)")
	fs.Int64Var(&c.BGPPeerASN, "bgp-peer-asn", c.BGPPeerASN, "the routers' AS number (with --bgp-router)")
	fs.StringVar(&c.BGPRouterID, "bgp-router-id", c.BGPRouterID, "BGP router id, a dotted quad (default: the low 32 bits of the uplink's global address)")
	fs.StringVar(&c.BGPAnnounceAggregate, "bgp-announce-aggregate", c.BGPAnnounceAggregate, "also announce this prefix holding --fixed-cidr-v6 (the host's /48)")
}

// listFlag is a repeatable flag. The first Set replaces what the config
// file gave, later ones append; a value may also hold a comma-separated
// list, which is how flags are replayed over the file.
type listFlag struct {
	list *[]string
	set  bool
}

func (l *listFlag) String() string {
	if l.list == nil {
		return ""
	}
	return strings.Join(*l.list, ",")
}

func (l *listFlag) Set(s string) error {
	if !l.set {
		*l.list, l.set = nil, true
	}
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l.list = append(*l.list, v)
		}
	}
	return nil
}

// printCluster adds the multi-host lines to `v6dp status`.
func printCluster(w io.Writer, c *ctrl.ClusterStatus) {
	if c == nil {
		return
	}
	for _, p := range c.Peers {
		fmt.Fprintf(w, "peer:\t%s via %s: %s", p.Prefix, p.Via, p.State)
		if p.Error != "" {
			fmt.Fprintf(w, " (%s)", p.Error)
		}
		fmt.Fprintln(w)
	}
	printBGP(w, c.BGP)
}

func printBGP(w io.Writer, b *bgp.Status) {
	if b == nil {
		return
	}
	ann := strings.Join(b.Announced, ", ")
	if b.Withdrawn {
		ann = "nothing (withdrawn)"
	}
	fmt.Fprintf(w, "bgp:\tAS %d to AS %d, router id %s, announcing %s via %s\n", b.ASN, b.PeerASN, b.RouterID, orDash(ann), b.NextHop)
	for _, s := range b.Sessions {
		fmt.Fprintf(w, "bgp router:\t%s %s since %s", s.Router, s.State, s.Since.Format("15:04:05Z"))
		if s.GracefulRestart {
			fmt.Fprint(w, " (graceful restart)")
		}
		if s.LastError != "" {
			fmt.Fprintf(w, "; last error: %s", s.LastError)
		}
		switch {
		case !s.NextConnect.IsZero():
			fmt.Fprintf(w, " (%d failed connects, next try %s)", s.FailedConnects, s.NextConnect.Format("15:04:05Z"))
		case s.FailedConnects > 0:
			fmt.Fprintf(w, " (%d failed connects, retrying)", s.FailedConnects)
		}
		fmt.Fprintln(w)
	}
}

// cmdWithdraw takes the host out of service (withdraw) or puts it back
// (announce): it sets or clears the mark in the state directory, which
// outlives daemon restarts, and tells a running daemon.
func cmdWithdraw(name string, args []string, stdout, stderr io.Writer) error {
	withdraw := name == "withdraw"
	fs := newFlags(name, name+" [--state-dir DIR]", stderr)
	defState, _ := ctrl.NetnsDefaults()
	stateDir := fs.String("state-dir", defState, "directory for v6dp's runtime state (default: this network namespace's)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%s: unexpected argument %q", name, pos[0])
	}
	st := ctrl.Store{Dir: *stateDir}
	if err := st.SetWithdrawn(withdraw); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	rt, err := st.Runtime()
	if err != nil {
		if withdraw {
			fmt.Fprintf(stdout, "v6dp: marked out of service; no daemon runs: the next one announces nothing\n")
		} else {
			fmt.Fprintf(stdout, "v6dp: marked in service; no daemon runs: the next one announces the host's prefixes\n")
		}
		return nil
	}
	if cs, _ := st.ClusterStatus(); cs == nil || cs.BGP == nil {
		return fmt.Errorf("%s: the daemon (pid %d) runs without --bgp-router: it announces nothing", name, rt.PID)
	}
	// The daemon handles the signal only with --bgp-router (checked above).
	if err := syscall.Kill(rt.PID, ctrl.WithdrawSignal); err != nil {
		return fmt.Errorf("%s: signalling pid %d: %w", name, rt.PID, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		cs, _ := st.ClusterStatus()
		if cs != nil && cs.BGP != nil && cs.BGP.Withdrawn == withdraw {
			var routers []string
			for _, s := range cs.BGP.Sessions {
				routers = append(routers, s.Router+" ("+s.State+")")
			}
			if withdraw {
				fmt.Fprintf(stdout, "v6dp: withdrew the host's prefixes from %s; it stays out of service until `v6dp announce`\n", strings.Join(routers, ", "))
			} else {
				fmt.Fprintf(stdout, "v6dp: announcing %s to %s\n", strings.Join(cs.BGP.Announced, ", "), strings.Join(routers, ", "))
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: the daemon (pid %d) has not confirmed after 10s; see its log", name, rt.PID)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
