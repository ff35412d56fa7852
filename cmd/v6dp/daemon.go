package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"strings"
	"syscall"

	"github.com/v6dp/v6dp/ctrl"
)

// configFlags registers the daemon configuration's flags on fs, writing
// into cfg. Names and meanings follow dockerd's where dockerd has one.
func configFlags(fs *flag.FlagSet, cfg *ctrl.Config) *string {
	fs.BoolVar(&cfg.IPv6, "ipv6", cfg.IPv6, "enable IPv6 on the bridge (required)")
	fs.StringVar(&cfg.FixedCIDRv6, "fixed-cidr-v6", cfg.FixedCIDRv6, "prefix containers get their addresses from, e.g. 2001:db8:1::/64")
	fs.StringVar(&cfg.DefaultGatewayV6, "default-gateway-v6", cfg.DefaultGatewayV6, "containers' default gateway (default fe80::1 on the bridge)")
	fs.BoolVar(&cfg.IPForward, "ip-forward", cfg.IPForward, "enable IPv6 forwarding (net.ipv6.conf.{all,default}.forwarding=1)")
	fs.StringVar(&cfg.Bridge, "bridge", cfg.Bridge, "bridge the containers hang off (created if missing, adopted if it exists)")
	fs.StringVar(&cfg.Uplink, "uplink", cfg.Uplink, "host interface towards the router")
	fs.BoolVar(&cfg.NDPProxy, "ndp-proxy", cfg.NDPProxy, "answer Neighbor Solicitations on the uplink for container addresses (off: none are answered, by BPF or the kernel)")
	fs.StringVar(&cfg.Addressing, "addressing", cfg.Addressing, "container addresses: auto (mac for /80 or shorter, else sequential), mac, sequential")
	fs.StringVar(&cfg.Dataplane, "dataplane", cfg.Dataplane, "auto, kernel, xdp or tc")
	fs.StringVar(&cfg.NDPHook, "ndp-hook", cfg.NDPHook, "with dataplane auto: where NS are answered, auto, xdp (native where it works) or tc; forwarding stays on tc")
	fs.StringVar(&cfg.NASource, "na-source", cfg.NASource, "source address of BPF answers: target or link-local")
	fs.StringVar(&cfg.StateDir, "state-dir", cfg.StateDir, "directory for v6dp's runtime state")
	fs.StringVar(&cfg.PinDir, "pin-dir", cfg.PinDir, "bpffs directory for pinned programs and maps")
	fs.Var((*dirList)(&cfg.NetnsDirs), "netns-dirs", "comma-separated directories with container namespace files: optional, only names endpoints (namespaces are read by netnsid)")
	fs.Var(&networkList{list: &cfg.Network}, "network", "another network of a container engine, BRIDGE=PREFIX[@UPLINK] (repeatable): its bridge is waited for and adopted, never created; @UPLINK: reached by that interface instead of --uplink")
	fs.StringVar(&cfg.NetworkParent, "network-parent", cfg.NetworkParent, "serve every bridge with an address in this prefix (an engine's gateway) as a network too, e.g. Docker's br-<id> networks")
	fs.IntVar(&cfg.MaxAddrsPerPort, "max-addrs-per-port", cfg.MaxAddrsPerPort, "most addresses published per container port; more are refused")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", cfg.MetricsAddr, "serve Prometheus metrics on host:port (off when empty)")
	fs.DurationVar(&cfg.Resync.Duration, "resync-interval", cfg.Resync.Duration, "period of the full resync with the kernel")
	clusterFlags(fs, &cfg.Cluster)
	fs.Uint64Var(&cfg.NSRatePerSource, "ns-rate-per-source", cfg.NSRatePerSource, "NS per second from one source that BPF looks at; more are dropped (0: no limit)")
	fs.Uint64Var(&cfg.NSRateGlobal, "ns-rate-global", cfg.NSRateGlobal, "NS per second from all sources together that BPF looks at (0: no limit)")
	return fs.String("config", "", "JSON config file (daemon.json keys; flags win)")
}

// dirList is a comma-separated list flag.
type dirList []string

func (d *dirList) String() string { return strings.Join(*d, ",") }

func (d *dirList) Set(s string) error {
	*d = strings.Split(s, ",")
	return nil
}

// networkList is the repeatable --network flag. Given on the command line
// it replaces the config file's list; a comma separates several too.
type networkList struct {
	list *[]string
	set  bool
}

func (n *networkList) String() string {
	if n.list == nil {
		return ""
	}
	return strings.Join(*n.list, ",")
}

func (n *networkList) Set(s string) error {
	if !n.set {
		*n.list, n.set = nil, true
	}
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*n.list = append(*n.list, v)
		}
	}
	return nil
}

// loadConfig parses the flags over the config file over the defaults.
func loadConfig(fs *flag.FlagSet, args []string) (*ctrl.Config, []string, error) {
	cfg := ctrl.DefaultConfig()
	path := configFlags(fs, &cfg)
	pos, err := parse(fs, args)
	if err != nil {
		return nil, nil, err
	}
	if *path != "" {
		fromFile := ctrl.DefaultConfig()
		if err := ctrl.LoadConfigFile(*path, &fromFile); err != nil {
			return nil, nil, err
		}
		// Flags given on the command line win over the file.
		fileFS := flag.NewFlagSet("file", flag.ContinueOnError)
		configFlags(fileFS, &fromFile)
		fs.Visit(func(f *flag.Flag) {
			if f.Name != "config" {
				_ = fileFS.Set(f.Name, f.Value.String())
			}
		})
		cfg = fromFile
	}
	return &cfg, pos, nil
}

func cmdDaemon(args []string, stderr io.Writer) error {
	fs := newFlags("daemon", "daemon [flags]", stderr)
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "text (key=value) or json (one object a line)")
	cfg, pos, err := loadConfig(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("daemon: unexpected argument %q", pos[0])
	}
	logs, err := logHandler(stderr, *logFormat, *logLevel)
	if err != nil {
		return err
	}
	r, err := cfg.Validate()
	if err != nil {
		return err
	}
	slog.SetDefault(slog.New(logs))
	ctrl.Version = versionString()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return ctrl.RunDaemon(ctx, r)
}

// containerConfig is the configuration the container commands act on: the
// running (or last) daemon's, with flags over it.
func containerConfig(fs *flag.FlagSet, args []string) (*ctrl.Resolved, []string, error) {
	cfg, pos, err := loadConfig(fs, args)
	if err != nil {
		return nil, nil, err
	}
	st := ctrl.Store{Dir: cfg.StateDir}
	if last, lerr := st.LastConfig(); lerr == nil {
		merged := *last
		mfs := flag.NewFlagSet("merge", flag.ContinueOnError)
		configFlags(mfs, &merged)
		fs.Visit(func(f *flag.Flag) {
			if f.Name != "config" && f.Name != "mac" && f.Name != "json" {
				_ = mfs.Set(f.Name, f.Value.String())
			}
		})
		cfg = &merged
	} else if cfg.FixedCIDRv6 == "" {
		return nil, nil, fmt.Errorf("no daemon configuration in %s: start `v6dp daemon` first or pass --ipv6 --fixed-cidr-v6", cfg.StateDir)
	}
	r, err := cfg.Validate()
	if err != nil {
		return nil, nil, err
	}
	return r, pos, nil
}
