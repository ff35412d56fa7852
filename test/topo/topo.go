// Package topo builds throw-away test topologies of network namespaces and
// veth pairs for v6dp's integration tests and benchmarks, and removes them
// again, also when a test fails. Everything it makes is named Prefix + what
// + "-" + tag, the tag starting with the run's id, so runs never clash with
// each other or with the host, and what a killed run left behind is swept
// away by the next (see Main).
//
// It needs root and iproute2.
package topo

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Topo is a set of namespaces made for one test.
type Topo struct {
	TB  testing.TB
	Tag string

	mu       sync.Mutex
	cleanups []func()
}

// New makes an empty topology whose namespaces are removed when tb ends.
func New(tb testing.TB) *Topo {
	tb.Helper()
	t := &Topo{TB: tb, Tag: newTag()}
	tb.Cleanup(t.Close)
	return t
}

// Defer registers f to run when the topology is torn down (last in, first out).
func (t *Topo) Defer(f func()) {
	t.mu.Lock()
	t.cleanups = append(t.cleanups, f)
	t.mu.Unlock()
}

// Close tears everything down. It is safe to call more than once.
func (t *Topo) Close() {
	t.mu.Lock()
	c := t.cleanups
	t.cleanups = nil
	t.mu.Unlock()
	for i := len(c) - 1; i >= 0; i-- {
		c[i]()
	}
}

// NS creates a namespace named Prefix + name + "-" + tag with lo up and
// returns its name.
func (t *Topo) NS(name string) string {
	t.TB.Helper()
	ns := Name(name, t.Tag)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.TB.Fatalf("ip netns add %s: %v: %s", ns, err, out)
	}
	t.Defer(func() { DeleteNS(ns) })
	t.MustRun(ns, "ip", "link", "set", "lo", "up")
	return ns
}

// DeleteNS removes a namespace, killing what still runs in it first so that
// it really goes away.
func DeleteNS(ns string) {
	if out, _ := exec.Command("ip", "netns", "pids", ns).Output(); len(out) > 0 {
		for _, pid := range strings.Fields(string(out)) {
			_ = exec.Command("kill", "-9", pid).Run()
		}
	}
	_ = exec.Command("ip", "netns", "del", ns).Run()
}

// Veth connects nsA/ifA with nsB/ifB. The pair is made inside the two
// namespaces at once: nothing of it ever exists in the caller's namespace,
// so an interrupted test leaves no link there.
func (t *Topo) Veth(nsA, ifA, nsB, ifB string) {
	t.TB.Helper()
	t.MustHost("ip", "link", "add", ifA, "netns", nsA, "type", "veth", "peer", "name", ifB, "netns", nsB)
}

// Run runs a command in ns (through `ip netns exec`) and returns its
// combined output.
func (t *Topo) Run(ns string, args ...string) (string, error) {
	return Run(ns, args...)
}

// Run runs a command in ns (through `ip netns exec`, empty ns: the caller's
// namespace) with a minute's limit and returns its combined output.
func Run(ns string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	full := args
	if ns != "" {
		full = append([]string{"ip", "netns", "exec", ns}, args...)
	}
	cmd := exec.CommandContext(ctx, full[0], full[1:]...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	if err != nil {
		return buf.String(), fmt.Errorf("%s: %w: %s", strings.Join(full, " "), err, strings.TrimSpace(buf.String()))
	}
	return buf.String(), nil
}

// MustRun is Run that fails the test on error.
func (t *Topo) MustRun(ns string, args ...string) string {
	t.TB.Helper()
	out, err := Run(ns, args...)
	if err != nil {
		t.TB.Fatal(err)
	}
	return out
}

// MustHost runs a command in the test's own namespace.
func (t *Topo) MustHost(args ...string) string {
	t.TB.Helper()
	return t.MustRun("", args...)
}

// Nsenter returns a command that runs in ns's network namespace but keeps
// the caller's mount namespace. `ip netns exec` remounts /sys, which hides
// the host's bpffs and cgroups; daemons (v6dp, dockerd) need both.
func Nsenter(ctx context.Context, ns string, args ...string) *exec.Cmd {
	full := append([]string{"--net=/run/netns/" + ns, "--"}, args...)
	return exec.CommandContext(ctx, "nsenter", full...)
}

// Sysctl writes a sysctl in ns.
func (t *Topo) Sysctl(ns, key, value string) {
	t.TB.Helper()
	t.MustRun(ns, "sysctl", "-qw", key+"="+value)
}

// ReadSysctl reads a sysctl in ns.
func (t *Topo) ReadSysctl(ns, key string) string {
	t.TB.Helper()
	return strings.TrimSpace(t.MustRun(ns, "sysctl", "-n", key))
}

// LogFile returns a file for a process's output that is printed into the
// test log if the test fails. V6DP_KEEP_LOGS=1 keeps the files (in the
// temp dir) for a look after a run that did not fail.
func (t *Topo) LogFile(name string) *os.File {
	t.TB.Helper()
	f, err := os.CreateTemp("", Name("log-"+name, t.Tag)+"-*.log")
	if err != nil {
		t.TB.Fatal(err)
	}
	t.Defer(func() {
		if t.TB.Failed() {
			b, _ := os.ReadFile(f.Name())
			t.TB.Logf("--- %s log:\n%s", name, b)
		}
		f.Close()
		if os.Getenv("V6DP_KEEP_LOGS") == "" {
			os.Remove(f.Name())
		}
	})
	return f
}
