package plan

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"
)

// Format writes the plan as a table for people: one row per host, then the
// daemon command lines, the routes and the notes.
func (p *Plan) Format(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "prefix  %s\n", p.Prefix)
	fmt.Fprintf(&b, "role    %s, %s\n", p.Role, p.Summary)
	fmt.Fprintf(&b, "link    %s, on-link on the hosts' uplink segment\n\n", p.Link)

	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tBLOCK\tUPLINK\tOWN\tFIXED-CIDR-V6\tADDRESSING\tFIRST CONTAINER\tNDP PROXY")
	for _, h := range p.Hosts {
		fmt.Fprintf(tw, "%d\t%s\t%s %s\t%s\t%s %s\t%s\t%s\t%s\n",
			h.Number, h.Block, h.Uplink, h.UplinkAddr, orDash(h.Own),
			h.Bridge, h.FixedCIDRv6, h.Addressing, h.FirstContainer, yesNo(h.NDPProxy))
	}
	tw.Flush()

	b.WriteString("\ndaemon\n")
	for _, h := range p.Hosts {
		fmt.Fprintf(&b, "  host %d: %s\n", h.Number, strings.Join(h.Daemon, " "))
	}

	var routes []string
	for _, r := range p.RouterRoutes {
		if p.BIRD != "" {
			routes = append(routes, "  router: "+r.String()+" (learned by BGP)")
		} else {
			routes = append(routes, "  router: "+r.String())
		}
	}
	for _, h := range p.Hosts {
		for _, r := range h.Routes {
			routes = append(routes, fmt.Sprintf("  host %d: %s", h.Number, r))
		}
	}
	if len(routes) > 0 {
		b.WriteString("\nroutes\n")
		b.WriteString(strings.Join(routes, "\n"))
		b.WriteString("\n")
	}

	if p.BIRD != "" {
		b.WriteString("\nrouter (BIRD 2, bird.conf)\n")
		for _, l := range strings.Split(strings.TrimSuffix(p.BIRD, "\n"), "\n") {
			b.WriteString("  " + l + "\n")
		}
	}

	if len(p.Notes) > 0 {
		b.WriteString("\nnotes\n")
		for _, n := range p.Notes {
			fmt.Fprintf(&b, "  - %s\n", n)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// String reads as the arguments of `ip -6 route add`.
func (r Route) String() string {
	s := fmt.Sprintf("%s via %s", r.Prefix, r.Via)
	if r.Dev != "" {
		s += " dev " + r.Dev
	}
	return s
}

func orDash(p netip.Prefix) string {
	if !p.IsValid() {
		return "-"
	}
	return p.String()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
