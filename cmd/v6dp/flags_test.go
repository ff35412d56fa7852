package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Flags over the config file over the defaults, for every kind of
// setting (string, bool, duration, int, list).
func TestConfigPrecedence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "daemon.json")
	file := `{"ipv6": true, "fixed-cidr-v6": "2001:db8:1::/64", "bridge": "br-file", "ip-forward": false,
		"resync-interval": "30s", "max-addrs-per-port": 4, "network": ["br-a=2001:db8:2::/64"],
		"exec-root": "/var/run/docker-other", "log-driver": "json-file"}`
	if err := os.WriteFile(path, []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		args    []string
		bridge  string
		forward bool
		resync  time.Duration
		max     int
		network []string
	}{
		{"defaults", nil, "docker0", true, 10 * time.Second, 16, nil},
		{"file", []string{"--config", path}, "br-file", false, 30 * time.Second, 4, []string{"br-a=2001:db8:2::/64"}},
		{"flags over the file", []string{"--config", path, "--bridge", "br-flag", "--ip-forward=true", "--resync-interval", "5s",
			"--max-addrs-per-port", "8", "--network", "br-b=2001:db8:3::/64", "--network", "br-c=2001:db8:4::/64"},
			"br-flag", true, 5 * time.Second, 8, []string{"br-b=2001:db8:3::/64", "br-c=2001:db8:4::/64"}},
		{"flag order does not matter", []string{"--bridge", "br-flag", "--config", path}, "br-flag", false, 30 * time.Second, 4, []string{"br-a=2001:db8:2::/64"}},
		{"comma list", []string{"--network", "br-b=2001:db8:3::/64,br-c=2001:db8:4::/64"}, "docker0", true, 10 * time.Second, 16,
			[]string{"br-b=2001:db8:3::/64", "br-c=2001:db8:4::/64"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, err := loadConfig(newFlags("daemon", "daemon", io.Discard), tc.args)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Bridge != tc.bridge || cfg.IPForward != tc.forward || cfg.Resync.Duration != tc.resync ||
				cfg.MaxAddrsPerPort != tc.max || !slices.Equal(cfg.Network, tc.network) {
				t.Errorf("got bridge %q forward %v resync %s max %d network %q\nwant bridge %q forward %v resync %s max %d network %q",
					cfg.Bridge, cfg.IPForward, cfg.Resync, cfg.MaxAddrsPerPort, cfg.Network,
					tc.bridge, tc.forward, tc.resync, tc.max, tc.network)
			}
		})
	}
	// dockerd's exec-root adds its netns directory to the hints.
	cfg, _, err := loadConfig(newFlags("daemon", "daemon", io.Discard), []string{"--config", path})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(cfg.NetnsDirs, "/var/run/docker-other/netns") {
		t.Errorf("netns-dirs %q lack exec-root's netns", cfg.NetnsDirs)
	}
}

// Every bad flag or file is one line that names the field.
func TestBadFlags(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	base := []string{"daemon", "--ipv6", "--fixed-cidr-v6", "2001:db8:1::/64", "--uplink", "eth0", "--state-dir", dir}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"daemon", "--nope"}, "daemon: flag provided but not defined: -nope"},
		{"bad duration", append(base, "--resync-interval", "soon"), `daemon: invalid value "soon" for flag -resync-interval`},
		{"bad int", append(base, "--max-addrs-per-port", "many"), `daemon: invalid value "many" for flag -max-addrs-per-port`},
		{"cap out of range", append(base, "--max-addrs-per-port", "0"), "max-addrs-per-port: 0 is out of range (1 to 1024)"},
		{"network without prefix", append(base, "--network", "br-a"), `network: "br-a" is not BRIDGE=PREFIX`},
		{"network overlapping", append(base, "--network", "br-a=2001:db8:1:0:1::/80"), `network: "br-a=2001:db8:1:0:1::/80": 2001:db8:1:0:1::/80 overlaps 2001:db8:1::/64 of bridge docker0`},
		{"positional", append(base, "extra"), `daemon: unexpected argument "extra"`},
		{"unknown key", append(base, "--config", write("typo.json", `{"ipv6": true, "fixd-cidr-v6": "x"}`)), `config ` + dir + `/typo.json: unknown key "fixd-cidr-v6"`},
		{"wrong type", append(base, "--config", write("type.json", `{"max-addrs-per-port": "16"}`)), `config ` + dir + `/type.json: key "max-addrs-per-port": want int, got string`},
		{"no command", nil, "no command given"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(tc.args, io.Discard, io.Discard)
			if err == nil {
				t.Fatalf("want error %q, got none", tc.want)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error:\n got  %q\n want %q...", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

// --help prints each command's flags, including the ones for several
// networks, and is not an error the user sees.
func TestHelp(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"help"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "v6dp daemon [flags]") {
		t.Errorf("usage lacks the daemon:\n%s", out.String())
	}
	for _, cmd := range []string{"daemon", "status", "endpoints"} {
		var errOut bytes.Buffer
		err := run([]string{cmd, "--help"}, io.Discard, &errOut)
		if !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%s --help: %v, want flag.ErrHelp (main prints nothing more)", cmd, err)
		}
		for _, want := range []string{"Usage: v6dp " + cmd, "-network", "-max-addrs-per-port", "-netns-dirs", "-fixed-cidr-v6"} {
			if !strings.Contains(errOut.String(), want) {
				t.Errorf("%s --help lacks %q:\n%s", cmd, want, errOut.String())
			}
		}
	}
}
