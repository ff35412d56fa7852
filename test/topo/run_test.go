package topo

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	os.Exit(Main(m, func() (func(), error) { return func() {}, nil }))
}

// helperEnv makes the test binary play a test run that builds a topology,
// starts a process group (as the bench's trafgen) and waits to be stopped.
const helperEnv = "V6DP_TOPO_HELPER"

func TestHelperRun(t *testing.T) {
	if os.Getenv(helperEnv) == "" {
		return // only as the child of TestInterruptedRunLeavesNothing
	}
	tp := New(t)
	ns := tp.NS("victim")
	dir, err := MkdirTemp("state", tp.Tag)
	if err != nil {
		t.Fatal(err)
	}
	pins := filepath.Join("/sys/fs/bpf", Name("pins", tp.Tag))
	if err := os.Mkdir(pins, 0o755); err != nil {
		t.Fatal(err)
	}
	// A process in the namespace, one naming the directory, and a
	// process group of its own in neither.
	inNS := exec.Command("ip", "netns", "exec", ns, "sleep", "600")
	naming := exec.Command("sh", "-c", "sleep 600; true", dir+"/")
	group := exec.Command("sleep", "600")
	group.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	for _, c := range []*exec.Cmd{inNS, naming, group} {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
	}
	TrackGroup(group.Process.Pid)
	fmt.Printf("READY %s %s %s %d %d %d\n", ns, dir, pins, inNS.Process.Pid, naming.Process.Pid, group.Process.Pid)
	time.Sleep(time.Minute)
}

// A run stopped by a signal removes what it made and stops its process
// groups; a run killed outright (as a timeout does) is swept by the next.
func TestInterruptedRunLeavesNothing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: namespaces and bpffs")
	}
	for _, how := range []syscall.Signal{syscall.SIGINT, syscall.SIGKILL} {
		t.Run(how.String(), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperRun$", "-test.v")
			cmd.Env = append(os.Environ(), helperEnv+"=1")
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var f []string
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if l, ok := strings.CutPrefix(sc.Text(), "READY "); ok {
					f = strings.Fields(l)
					break
				}
			}
			if len(f) != 6 {
				_ = cmd.Process.Kill()
				t.Fatalf("helper run did not get ready")
			}
			go func() {
				for sc.Scan() {
				}
			}()
			_ = cmd.Process.Signal(how)
			_ = cmd.Wait()
			if how == syscall.SIGKILL {
				// What the next run does first.
				sweepDead()
			}
			deadline := time.Now().Add(5 * time.Second)
			for _, p := range f[:3] {
				if p == f[0] {
					p = "/run/netns/" + p
				}
				if _, err := os.Stat(p); err == nil {
					t.Errorf("after %s: %s still there", how, p)
				}
			}
			pids := f[3:]
			if how == syscall.SIGKILL {
				// The group outside every namespace and directory of the
				// run is beyond a sweep; trafgen runs in the router's
				// namespace and goes with it.
				var n int
				fmt.Sscan(pids[2], &n)
				_ = syscall.Kill(-n, syscall.SIGKILL)
				pids = pids[:2]
			}
			for _, pid := range pids {
				var n int
				fmt.Sscan(pid, &n)
				for syscall.Kill(n, 0) == nil && time.Now().Before(deadline) {
					time.Sleep(50 * time.Millisecond)
				}
				if syscall.Kill(n, 0) == nil {
					t.Errorf("after %s: process %d still runs", how, n)
					_ = syscall.Kill(n, syscall.SIGKILL)
				}
			}
		})
	}
}

// The default directories of a namespace that is gone are removed; those
// of one that lives are kept.
func TestSweepGoneNetnsDirs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: /run/v6dp and bpffs")
	}
	tp := New(t)
	ns := tp.NS("alive")
	var st syscall.Stat_t
	if err := syscall.Stat("/run/netns/"+ns, &st); err != nil {
		t.Fatal(err)
	}
	alive := fmt.Sprintf("/run/v6dp/ns-%d", st.Ino)
	// An inode no namespace has: the largest possible.
	gone := "/run/v6dp/ns-18446744073709551615"
	gonePins := "/sys/fs/bpf/v6dp-ns-18446744073709551615"
	if _, err := os.Stat("/run/v6dp"); err != nil {
		t.Cleanup(func() { os.Remove("/run/v6dp") })
	}
	for _, d := range []string{alive, gone, gonePins} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { os.RemoveAll(alive) })
	removed := sweepGoneNetnsDirs()
	for _, d := range []string{gone, gonePins} {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("%s of a namespace that is gone is still there (removed: %v)", d, removed)
			os.RemoveAll(d)
		}
	}
	if _, err := os.Stat(alive); err != nil {
		t.Errorf("%s of a live namespace was removed", alive)
	}
}
