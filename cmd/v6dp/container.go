package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"text/tabwriter"

	"github.com/v6dp/v6dp/ctrl"
)

func cmdContainer(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("container: want add, del or ls")
	}
	switch args[0] {
	case "add":
		fs := newFlags("container add", "container add NAME [--mac MAC] [daemon flags]", stderr)
		mac := fs.String("mac", "", "the container's MAC (default: next free 02:42:ac:11:xx:xx, Docker's scheme)")
		r, pos, err := containerConfig(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return fmt.Errorf("container add: want exactly one NAME")
		}
		spec := ctrl.ContainerSpec{Name: pos[0]}
		if *mac != "" {
			if spec.MAC, err = net.ParseMAC(*mac); err != nil || len(spec.MAC) != 6 {
				return fmt.Errorf("mac: %q is not a 48-bit MAC such as 02:42:ac:11:00:03", *mac)
			}
		}
		rec, err := ctrl.AddContainer(r, ctrl.Store{Dir: r.StateDir}, spec)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\t%s\t%s\t%s\n", rec.Name, rec.Addr, rec.MAC, rec.HostIf)
		return nil
	case "del", "rm":
		fs := newFlags("container del", "container del NAME", stderr)
		defState, _ := ctrl.NetnsDefaults()
		stateDir := fs.String("state-dir", defState, "directory for v6dp's runtime state (default: this network namespace's)")
		pos, err := parse(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return fmt.Errorf("container del: want exactly one NAME")
		}
		return ctrl.DelContainer(ctrl.Store{Dir: *stateDir}, pos[0])
	case "ls", "list":
		fs := newFlags("container ls", "container ls [--json] [daemon flags]", stderr)
		asJSON := fs.Bool("json", false, "print JSON")
		r, _, err := containerConfig(fs, args[1:])
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
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tADDRESS\tMAC\tVETH\tMADE BY")
		for _, e := range rep.Endpoints {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Name, joinAddrs(e.Addrs), e.MAC, e.HostIf, e.Owner)
		}
		return tw.Flush()
	default:
		return fmt.Errorf("container: unknown subcommand %q (want add, del or ls)", args[0])
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
