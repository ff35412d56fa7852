package test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/v6dp/v6dp/test/topo"
)

// v6dpRaw runs the v6dp binary in the host namespace with exactly args
// (no --state-dir of the seed's added).
func (s *seed) v6dpRaw(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := topo.Nsenter(ctx, s.Host, append([]string{v6dpBin}, args...)...).CombinedOutput()
	return string(out), err
}

// logLines returns the daemon's log so far.
func (d *daemon) logLines() []string {
	b, _ := os.ReadFile(d.log.Name())
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// A second daemon for the same bridge in the same namespace is refused
// with one line naming the first, whatever its state and pin dirs; the
// first goes on. With --log-format json every log line is a JSON object.
func TestSecondDaemonRefused(t *testing.T) {
	s := newSeed(t, "2001:db8::c008/125")
	d := s.startDaemon(t, s.daemonArgs("tc", "--log-format", "json"))
	c := s.addContainer(t, s.name("one"))
	s.waitLive(t, c, true)
	pid := d.cmd.Process.Pid

	other := t.TempDir()
	args := append(s.daemonArgs("tc"), "--state-dir", other, "--pin-dir", s.PinDir+"-2")
	out, err := s.v6dpRaw(args...)
	want := fmt.Sprintf("v6dp: bridge: a v6dp daemon (pid %d) already manages bridge docker0 in this network namespace; stop it first", pid)
	if err == nil || strings.TrimSpace(out) != want {
		t.Errorf("second daemon, other state dir: got %v:\n%s\nwant the one line %q", err, out, want)
	}
	out, err = s.v6dp(s.daemonArgs("tc")...)
	want = fmt.Sprintf("v6dp: state-dir: a v6dp daemon (pid %d) already runs with %s", pid, s.StateDir)
	if err == nil || !strings.HasPrefix(strings.TrimSpace(out), want) || strings.Count(strings.TrimSpace(out), "\n") > 0 {
		t.Errorf("second daemon, same state dir: got %v:\n%s\nwant one line starting %q", err, out, want)
	}
	if _, err := os.Stat(s.PinDir + "-2"); err == nil {
		os.RemoveAll(s.PinDir + "-2")
		t.Errorf("the refused daemon made a pin dir")
	}
	if d.cmd.ProcessState != nil {
		t.Fatalf("the first daemon exited")
	}
	s.waitLive(t, c, true)

	lines := d.logLines()
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil || m["msg"] == nil || m["level"] == nil {
			t.Errorf("--log-format json: not a JSON log object: %q (%v)", l, err)
		}
	}
	if !strings.Contains(strings.Join(lines, "\n"), `"msg":"daemon running"`) {
		t.Errorf("--log-format json: no daemon running line")
	}
	// The daemon's log names its version.
	sc := bufio.NewScanner(strings.NewReader(strings.Join(lines, "\n")))
	found := false
	for sc.Scan() {
		found = found || strings.Contains(sc.Text(), `"msg":"v6dp daemon","version":"v6dp `)
	}
	if !found {
		t.Errorf("no \"v6dp daemon\" line with the version in the log")
	}
}
