package main

import (
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/v6dp/v6dp/ctrl"
)

func joinAddrs(as []netip.Addr) string {
	if len(as) == 0 {
		return "-"
	}
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func cmdStatus(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("status", "status [--json] [daemon flags]", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	r, _, err := containerConfig(fs, args)
	if err != nil {
		return err
	}
	rep, err := ctrl.Report(r)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, rep)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "daemon:\t%s", rep.Daemon)
	if rep.PID > 0 {
		fmt.Fprintf(tw, " (pid %d, since %s", rep.PID, rep.Since.Format("2006-01-02 15:04:05Z"))
		if rep.RSSBytes > 0 {
			fmt.Fprintf(tw, ", %.1f MiB resident", float64(rep.RSSBytes)/(1<<20))
		}
		fmt.Fprint(tw, ")")
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "bridge:\t%s (up: %s)\n", rep.Bridge, yesNo(rep.BridgeUp))
	fmt.Fprintf(tw, "uplink:\t%s\n", orDash(rep.Uplink))
	fmt.Fprintf(tw, "prefix:\t%s (addressing %s, gateway %s)\n", rep.Prefix, rep.Addressing, rep.Gateway)
	fmt.Fprintf(tw, "ndp proxy:\t%s\n", yesNo(rep.NDPProxy))
	fmt.Fprintf(tw, "dataplane:\t%s", rep.Dataplane)
	if rep.Attach != "" {
		fmt.Fprintf(tw, " (%s)", rep.Attach)
	}
	fmt.Fprintln(tw)
	if rep.Reason != "" {
		fmt.Fprintf(tw, "why:\t%s\n", rep.Reason)
	}
	for _, h := range rep.Hooks {
		fmt.Fprintf(tw, "  %s:\t%s (%s)\n", h.Job, h.Hook, h.Why)
	}
	if rep.FastPath != "" {
		fmt.Fprintf(tw, "fast path:\t%s\n", rep.FastPath)
	}
	if rep.NSAnswers != "" {
		fmt.Fprintf(tw, "ns answers:\t%s\n", rep.NSAnswers)
	}
	fmt.Fprintf(tw, "endpoints:\t%d (kernel proxy entries %d, BPF map entries %d)\n", len(rep.Endpoints), rep.ProxyEntries, rep.BPFEntries)
	if rep.NeighTable != "" {
		fmt.Fprintf(tw, "neighbour table:\t%s\n", rep.NeighTable)
	}
	if rep.Version != "" {
		fmt.Fprintf(tw, "version:\t%s\n", rep.Version)
	}
	fmt.Fprintf(tw, "pin dir:\t%s\n", rep.PinDir)
	if rep.LastRepair != nil {
		fmt.Fprintf(tw, "last repair:\t%s %s %s (%d repairs)\n", rep.LastRepair.Time.Format("2006-01-02 15:04:05Z"),
			rep.LastRepair.What, rep.LastRepair.Detail, rep.Repairs)
	} else {
		fmt.Fprintf(tw, "last repair:\tnone\n")
	}
	printCluster(tw, rep.Cluster)
	tw.Flush()
	printPins(stdout, rep.Pins)
	if len(rep.Counters) > 0 {
		fmt.Fprintln(stdout, "\ncounters:")
		printCounters(stdout, rep.Counters)
	}
	for _, n := range rep.Networks {
		printNetwork(stdout, n, rep.Endpoints)
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(stdout, "problem: %s\n", p)
	}
	return nil
}

// printPins lists the programs (by their links) and maps v6dp pinned,
// with the ids bpftool takes.
func printPins(w io.Writer, pins []ctrl.PinReport) {
	var links, maps []ctrl.PinReport
	for _, p := range pins {
		if p.Kind == "link" {
			links = append(links, p)
		} else {
			maps = append(maps, p)
		}
	}
	if len(links) > 0 {
		fmt.Fprintln(w, "\nprograms:")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  HOOK\tINTERFACE\tIFINDEX\tATTACH\tPROGRAM ID\tLINK ID\tPIN")
		for _, p := range links {
			attach := p.Mode
			if p.Defunct {
				attach = p.Type + " (defunct)"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\t%d\t%d\t%s\n", p.Hook, orDash(p.Interface), p.Ifindex, attach, p.ProgramID, p.ID, p.Path)
		}
		tw.Flush()
	}
	if len(maps) > 0 {
		fmt.Fprintln(w, "\nmaps:")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  TYPE\tMAP ID\tPIN")
		for _, p := range maps {
			fmt.Fprintf(tw, "  %s\t%d\t%s\n", p.Type, p.ID, p.Path)
		}
		tw.Flush()
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func printCounters(w io.Writer, c map[string]uint64) {
	names := make([]string, 0, len(c))
	for k := range c {
		names = append(names, k)
	}
	sort.Strings(names)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, k := range names {
		fmt.Fprintf(tw, "  %s\t%d\n", k, c[k])
	}
	tw.Flush()
}

func printEndpoints(w io.Writer, eps []ctrl.EndpointReport) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tADDRESS\tMAC\tVETH\tKERNEL PROXY\tBPF\tMADE BY")
	for _, e := range eps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Name, joinAddrs(e.Addrs), e.MAC, e.HostIf,
			yesNo(e.KernelProxy), yesNo(e.BPF), e.Owner)
	}
	tw.Flush()
}

// printNetwork prints one network's line and its endpoints.
func printNetwork(w io.Writer, n ctrl.NetworkReport, all []ctrl.EndpointReport) {
	var eps []ctrl.EndpointReport
	for _, e := range all {
		if e.Network == n.Bridge {
			eps = append(eps, e)
		}
	}
	state := "--bridge, set up by v6dp"
	if n.Engine {
		state = "--network, an engine's bridge, adopted"
	}
	if n.Found {
		state = "found under --network-parent, an engine's bridge, adopted"
	}
	if !n.Exists {
		state += ", not there yet"
	}
	via := ""
	if n.Uplink != "" {
		via = " via " + n.Uplink
	}
	fmt.Fprintf(w, "\nnetwork %s %s%s (%s): %d endpoints, %d addresses\n", n.Bridge, n.Prefix, via, state, n.Endpoints, n.Addresses)
	fmt.Fprintf(w, "  addressing %s, gateway %s\n", n.Addressing, strings.Join(n.Gateway, " "))
	if b := n.BPF; b != nil {
		c := b.Counts
		fmt.Fprintf(w, "  bpf: network %d, router MAC %s, uplink slot %d; NS answered %d, forwarded in %d, local %d, out %d, dropped %d\n",
			b.ID, b.RouterMAC, b.Uplink, c.NSAnswered, c.FwdRedirected, c.EgressLocal, c.EgressFIB, c.EgressDrop)
	} else {
		fmt.Fprintln(w, "  bpf: not in the maps; the kernel forwards for this network")
	}
	if len(eps) > 0 {
		printEndpoints(w, eps)
	}
}

func cmdEndpoints(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("endpoints", "endpoints [--json] [daemon flags]", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	r, _, err := containerConfig(fs, args)
	if err != nil {
		return err
	}
	rep, err := ctrl.Report(r)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, rep.Endpoints)
	}
	printEndpoints(stdout, rep.Endpoints)
	return nil
}

func cmdStats(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("stats", "stats [--json] [daemon flags]", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	r, _, err := containerConfig(fs, args)
	if err != nil {
		return err
	}
	rep, err := ctrl.Report(r)
	if err != nil {
		return err
	}
	if rep.Counters == nil {
		return fmt.Errorf("stats: no BPF dataplane pinned under %s (dataplane: %s)", r.PinDir, rep.Dataplane)
	}
	if *asJSON {
		return writeJSON(stdout, rep.Counters)
	}
	printCounters(stdout, rep.Counters)
	return nil
}
