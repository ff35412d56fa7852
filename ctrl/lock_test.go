package ctrl

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// A second daemon for the same state directory or the same bridge is
// refused with an error naming the holder; after release both are free.
func TestLockDaemonRefusesSecond(t *testing.T) {
	bridge := fmt.Sprintf("lk%d", os.Getpid()%100000)
	st := Store{Dir: t.TempDir()}
	first, err := lockDaemon(st, bridge)
	if err != nil {
		t.Fatal(err)
	}
	_, err = lockDaemon(Store{Dir: t.TempDir()}, bridge)
	want := fmt.Sprintf("bridge: a v6dp daemon (pid %d) already manages bridge %s in this network namespace", os.Getpid(), bridge)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("second daemon on the same bridge: got %v, want %q", err, want)
	}
	_, err = lockDaemon(st, bridge+"x")
	if err == nil || !strings.HasPrefix(err.Error(), "state-dir: another v6dp daemon already runs with "+st.Dir) {
		t.Errorf("second daemon on the same state-dir: got %v", err)
	}
	// Several networks: one taken bridge refuses all, and frees the rest.
	_, err = lockDaemon(Store{Dir: t.TempDir()}, bridge+"a", bridge)
	if err == nil || !strings.Contains(err.Error(), "already manages bridge "+bridge+" ") {
		t.Errorf("networks with a taken bridge: got %v", err)
	}
	other, err := lockDaemon(Store{Dir: t.TempDir()}, bridge+"a")
	if err != nil {
		t.Fatalf("a bridge of a refused daemon stayed locked: %v", err)
	}
	other.release()
	first.release()
	again, err := lockDaemon(st, bridge)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	again.release()
}
