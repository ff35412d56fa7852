package main

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// --peer and --bgp-router repeat; given on the command line they replace
// the config file's lists instead of adding to them.
func TestClusterListFlags(t *testing.T) {
	path := filepath.Join(t.TempDir(), "daemon.json")
	if err := os.WriteFile(path, []byte(`{"peers": ["2001:db8:9::/64=2001:db8::9"], "bgp-routers": ["2001:db8::fffe"]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name           string
		args           []string
		peers, routers []string
	}{
		{"file only", []string{"--config", path}, []string{"2001:db8:9::/64=2001:db8::9"}, []string{"2001:db8::fffe"}},
		{"flags win", []string{"--config", path, "--peer", "2001:db8:2::/64=2001:db8::2", "--peer", "2001:db8:3::/64=2001:db8::3"},
			[]string{"2001:db8:2::/64=2001:db8::2", "2001:db8:3::/64=2001:db8::3"}, []string{"2001:db8::fffe"}},
		{"no file", []string{"--bgp-router", "2001:db8::ffff", "--bgp-router", "2001:db8::fffe"}, nil, []string{"2001:db8::ffff", "2001:db8::fffe"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, err := loadConfig(newFlags("daemon", "daemon", io.Discard), tc.args)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cfg.Peers, tc.peers) || !slices.Equal(cfg.BGPRouters, tc.routers) {
				t.Errorf("peers %q, routers %q; want %q, %q", cfg.Peers, cfg.BGPRouters, tc.peers, tc.routers)
			}
		})
	}
}
