package test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
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

// With no bpffs at /sys/fs/bpf (a minimal host) the daemon mounts one and
// runs the BPF dataplane on it. The daemon runs in a mount namespace of
// its own with /sys/fs/bpf unmounted, so the test's bpffs is not touched.
func TestBPFFSMounted(t *testing.T) {
	s := newSeed(t, "2001:db8::c008/125")
	log := s.LogFile("daemon-bpffs")
	script := `umount /sys/fs/bpf && exec nsenter --net=/run/netns/` + s.Host + ` -- "$@"`
	args := append([]string{"--mount", "--propagation", "private", "--", "sh", "-c", script, "sh", v6dpBin}, s.daemonArgs("tc")...)
	cmd := exec.Command("unshare", args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.Defer(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	eventually(t, 30*time.Second, func() error {
		select {
		case <-exited:
			return fmt.Errorf("daemon exited")
		default:
		}
		b, _ := os.ReadFile(log.Name())
		if !strings.Contains(string(b), "daemon running") {
			return fmt.Errorf("daemon not running yet")
		}
		return nil
	})
	mnt := fmt.Sprintf("--mount=/proc/%d/ns/mnt", cmd.Process.Pid)
	if out := s.MustRun("", "nsenter", mnt, "findmnt", "-n", "-o", "FSTYPE", "/sys/fs/bpf"); strings.TrimSpace(out) != "bpf" {
		t.Errorf("in the daemon's mount namespace /sys/fs/bpf is %q, want bpf", strings.TrimSpace(out))
	}
	st := s.MustRun("", "nsenter", mnt, "--net=/run/netns/"+s.Host, v6dpBin, "status", "--state-dir", s.StateDir)
	for _, want := range []string{`dataplane:\s+tc \(tcx\)`, s.PinDir + "/v6dp_endpoints", s.PinDir + "/link_tcx_"} {
		if !regexp.MustCompile(want).MatchString(st) {
			t.Errorf("status in the daemon's mount namespace lacks %q:\n%s", want, st)
		}
	}
	if _, err := os.Stat(s.PinDir); err == nil {
		t.Errorf("the pins went into the test's bpffs, not a new one")
	}
}
