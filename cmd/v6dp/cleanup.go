package main

import (
	"fmt"
	"io"

	"github.com/v6dp/v6dp/ctrl"
)

func cmdCleanup(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("cleanup", "cleanup [--state-dir DIR]", stderr)
	defState, _ := ctrl.NetnsDefaults()
	stateDir := fs.String("state-dir", defState, "directory for v6dp's runtime state (default: this network namespace's)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("cleanup: unexpected argument %q", pos[0])
	}
	if err := ctrl.Cleanup(ctrl.Store{Dir: *stateDir}); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "v6dp: removed everything it had created")
	return nil
}
