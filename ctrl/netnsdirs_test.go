package ctrl

import (
	"strings"
	"testing"
)

func TestNetnsDefaultsPaths(t *testing.T) {
	if got := NetnsStateDir(4026532000); got != "/run/v6dp/ns-4026532000" {
		t.Errorf("NetnsStateDir = %s", got)
	}
	// Beside, never under, the initial namespace's pins: cleanup removes
	// its pin directory whole.
	if got := NetnsPinDir(4026532000); got != "/sys/fs/bpf/v6dp-ns-4026532000" || strings.HasPrefix(got, DefaultPinDir+"/") {
		t.Errorf("NetnsPinDir = %s", got)
	}
	st, pin := NetnsDefaults()
	if (st == DefaultStateDir) != (pin == DefaultPinDir) {
		t.Errorf("NetnsDefaults = %s, %s: one plain, one derived", st, pin)
	}
}
