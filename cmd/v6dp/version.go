package main

import (
	"fmt"
	"io"
	"runtime/debug"
	"strings"
)

// version and commit are set at build time (make build: -ldflags
// "-X main.version=... -X main.commit=..."); without them the module
// version and the VCS stamp of Go's build info are shown.
var (
	version = ""
	commit  = ""
)

// versionString says which v6dp this is: the version, the commit it was
// built from (marked when the tree had changes) and the Go release.
func versionString() string {
	v, rev := version, commit
	var when string
	dirty := false
	bi, ok := debug.ReadBuildInfo()
	if ok {
		if v == "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if rev == "" {
					rev = s.Value
				}
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	parts := []string{}
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if dirty {
			rev += "-modified"
		}
		parts = append(parts, "commit "+rev)
	}
	if when != "" {
		parts = append(parts, when)
	}
	if ok {
		parts = append(parts, bi.GoVersion)
	}
	if len(parts) == 0 {
		return "v6dp " + v
	}
	return fmt.Sprintf("v6dp %s (%s)", v, strings.Join(parts, ", "))
}

func cmdVersion(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("version", "version", stderr)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("version: unexpected argument %q", pos[0])
	}
	fmt.Fprintln(stdout, versionString())
	return nil
}
