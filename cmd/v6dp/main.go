// Command v6dp is the IPv6 dataplane for container hosts: the daemon and
// the commands to inspect and drive it. Logic lives in package ctrl.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
)

const usage = `v6dp: IPv6 bridge networking for container hosts, with NDP answered and
packets forwarded in eBPF.

Usage:
  v6dp daemon [flags]                 set up the bridge and host, keep them and the
                                      NDP proxy in line with the containers
  v6dp container add NAME [--mac MAC] make a container (netns + veth + address)
  v6dp container del NAME             remove a container v6dp made
  v6dp container ls [--json]          list the containers on the bridge
  v6dp status [--json]                bridge, uplink, prefix, dataplane, endpoints, counters
  v6dp endpoints [--json]             every endpoint: address, MAC, veth, proxy state
  v6dp stats [--json]                 the BPF dataplane's counters
  v6dp plan PREFIX [--hosts N] [--role ROLE] [--json]
                                      compute and check an address plan
  v6dp withdraw                       routed cluster: take the host out of service
                                      (withdraw its prefixes, also across restarts)
  v6dp announce                       put it back (announce its prefixes again)
  v6dp cleanup                        remove everything v6dp created
  v6dp version                        the version, commit and Go release it was built with

Run "v6dp COMMAND --help" for a command's flags.
`

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(os.Stderr, "v6dp: %v\n", err)
			os.Exit(1)
		}
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	cmd, rest := args[0], args[1:]
	// Commands other than the daemon print results, not progress.
	slog.SetDefault(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	switch cmd {
	case "daemon":
		return cmdDaemon(rest, stderr)
	case "container":
		return cmdContainer(rest, stdout, stderr)
	case "status":
		return cmdStatus(rest, stdout, stderr)
	case "endpoints":
		return cmdEndpoints(rest, stdout, stderr)
	case "stats":
		return cmdStats(rest, stdout, stderr)
	case "plan":
		return cmdPlan(rest, stdout, stderr)
	case "cleanup":
		return cmdCleanup(rest, stdout, stderr)
	case "withdraw", "announce":
		return cmdWithdraw(cmd, rest, stdout, stderr)
	case "version", "--version":
		return cmdVersion(rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
}

// helpFor holds each FlagSet's --help text printer.
var helpFor = map[*flag.FlagSet]func(){}

// newFlags makes a FlagSet whose errors are returned, not printed and
// exited on, so every error reaches the user as one line.
func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	// The flag package calls Usage on every parse error; print it only
	// for --help (see parse) so an error stays one line.
	fs.Usage = func() {}
	helpFor[fs] = func() {
		fmt.Fprintf(stderr, "Usage: v6dp %s\n\nFlags:\n", synopsis)
		fs.SetOutput(stderr)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
}

// parse parses flags; --help prints the usage and returns flag.ErrHelp.
// Flags may come after positional arguments.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				helpFor[fs]()
				return nil, err
			}
			return nil, fmt.Errorf("%s: %w", fs.Name(), err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
