package ctrl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzConfigFile: any file is loaded without a panic, and every error, of
// the loader or of Validate, is one line naming the file or the field.
func FuzzConfigFile(f *testing.F) {
	for _, s := range []string{
		`{"ipv6": true, "fixed-cidr-v6": "2001:db8::c008/125"}`,
		`{"ipv6": true, "fixed-cidr-v6": "2001:db8:1::/64", "default-gateway-v6": "2001:db8:1::1", "exec-root": "/var/run/docker"}`,
		`{"ipv6": true, "fixed-cidr-v6": "2001:db8:1::/96", "addressing": "mac"}`,
		`{"ipv6": "yes"}`,
		`{"bogus": 1}`,
		`[1, 2]`,
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "daemon.json")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		cfg := DefaultConfig()
		if err := LoadConfigFile(path, &cfg); err != nil {
			if msg := err.Error(); strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "config") {
				t.Fatalf("load error is not one line naming the config: %q", msg)
			}
			return
		}
		if _, err := cfg.Validate(); err != nil {
			msg := err.Error()
			field, _, ok := strings.Cut(msg, ":")
			if strings.Contains(msg, "\n") || !ok || strings.Contains(field, " ") {
				t.Fatalf("validation error is not one line starting with the field: %q", msg)
			}
		}
	})
}

// FuzzParsePeer: any --peer value parses without a panic, an error is one
// line starting "peer:", and what parses prints back to itself.
func FuzzParsePeer(f *testing.F) {
	for _, s := range []string{"2001:db8:2::/64=2001:db8::2", "2001:db8:2::1/64=2001:db8::2", "fe80::/64=2001:db8::2", "2001:db8:2::/64=2001:db8:2::5", "x=y", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePeer(s)
		if err != nil {
			if msg := err.Error(); strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "peer: ") {
				t.Fatalf("error is not one line starting with the flag: %q", msg)
			}
			return
		}
		again, err := ParsePeer(p.String())
		if err != nil || again != p {
			t.Fatalf("%q parsed to %s, which parses to %v, %v", s, p, again, err)
		}
	})
}
