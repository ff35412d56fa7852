package topo

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Prefix starts the name of everything a test run makes outside its own
// namespaces: namespaces, pin directories, temporary directories and files,
// cgroups. A name is Prefix + what + "-" + tag (maybe + "-" + more), and a
// tag starts with the run's id, so that a later run can tell what an
// earlier one left behind.
const Prefix = "v6dpt-"

// runsDir holds one lock file per test run, held (flock) while the run's
// process lives. A lock file nobody holds is a run that died without
// cleaning up: a timeout, a kill, a crash.
var runsDir = filepath.Join(os.TempDir(), Prefix+"runs")

var (
	runID   = newRunID()
	tagSeq  atomic.Uint32
	groupMu sync.Mutex
	groups  = map[int]bool{}
)

func newRunID() string {
	b := make([]byte, 2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// RunTag names things that belong to the whole run (the test binary's
// build directory), not to one topology.
func RunTag() string { return runID + "00" }

// newTag is the next topology's tag: the run id and a counter, 6 hex
// digits in all (interface names built from it stay within 15 bytes).
func newTag() string { return fmt.Sprintf("%s%02x", runID, 1+tagSeq.Add(1)%255) }

// Name is Prefix + what + "-" + tag: how a topology names what it makes.
func Name(what, tag string) string { return Prefix + what + "-" + tag }

// Main is TestMain for packages that build topologies: it sweeps away what
// earlier runs left behind (their processes die with their namespaces and
// directories), marks this run as alive, and on SIGINT, SIGTERM or SIGHUP
// stops the process groups started with TrackGroup and removes everything
// of this run before exiting. Cleanups registered with the testing package
// do not run on a signal or a timeout; this does, or the next run does.
func Main(m *testing.M, setup func() (cleanup func(), err error)) int {
	if err := os.MkdirAll(runsDir, 0o755); err != nil {
		fmt.Println("test runs directory:", err)
		return 1
	}
	sweepDead()
	var lockPath string
	var lock *os.File
	for try := 0; ; try++ {
		lockPath = filepath.Join(runsDir, runID+".lock")
		f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			fmt.Println("run lock:", err)
			return 1
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err == nil {
			lock = f
			break
		} else if try == 9 {
			fmt.Println("run lock:", err)
			return 1
		}
		// Another live run drew the same id.
		f.Close()
		runID = newRunID()
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sigs
		fmt.Printf("\n%s: stopping child process groups and removing run %s's namespaces, pins and directories\n", s, runID)
		stopGroups()
		Sweep(runID)
		os.Remove(lockPath)
		os.Exit(1)
	}()
	cleanup, err := setup()
	if err != nil {
		fmt.Println(err)
		os.Remove(lockPath)
		return 1
	}
	code := m.Run()
	stopGroups()
	cleanup()
	if left := Sweep(runID); len(left) > 0 && code == 0 {
		fmt.Printf("the run left behind (removed now): %s\n", strings.Join(left, ", "))
		code = 1
	}
	os.Remove(lockPath)
	lock.Close()
	return code
}

// TrackGroup records a child process group (a process started with
// Setpgid, such as trafgen, whose worker outlives a signal to its parent
// alone) to be killed if the run is interrupted; the returned function
// forgets it once the caller has stopped it.
func TrackGroup(pgid int) (forget func()) {
	groupMu.Lock()
	groups[pgid] = true
	groupMu.Unlock()
	return func() {
		groupMu.Lock()
		delete(groups, pgid)
		groupMu.Unlock()
	}
}

func stopGroups() {
	groupMu.Lock()
	defer groupMu.Unlock()
	for pgid := range groups {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		delete(groups, pgid)
	}
}

// liveNetns returns the inodes of every network namespace that still
// exists: those of each thread of each process, and those bound to files
// (iproute2's /run/netns, an engine's own netns directories).
func liveNetns() map[uint64]bool {
	live := map[uint64]bool{}
	add := func(path string) {
		var st unix.Stat_t
		if unix.Stat(path, &st) == nil {
			live[st.Ino] = true
		}
	}
	tasks, _ := filepath.Glob("/proc/[0-9]*/task/[0-9]*/ns/net")
	for _, t := range tasks {
		add(t)
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			for i, x := range fields {
				if x == "-" && i+1 < len(fields) && fields[i+1] == "nsfs" && len(fields) > 4 {
					add(unescapeMount(fields[4]))
				}
			}
		}
		f.Close()
	}
	return live
}

// sweepGoneNetnsDirs removes the default state and pin directories v6dp
// derives for a network namespace that is not the initial one
// (/run/v6dp/ns-INODE, /sys/fs/bpf/v6dp-ns-INODE; the cluster tests run
// their daemons on those defaults) once that namespace is gone: nothing
// can use them any more.
func sweepGoneNetnsDirs() []string {
	var dirs []string
	a, _ := filepath.Glob("/run/v6dp/ns-[0-9]*")
	b, _ := filepath.Glob("/sys/fs/bpf/v6dp-ns-[0-9]*")
	dirs = append(a, b...)
	if len(dirs) == 0 {
		return nil
	}
	live := liveNetns()
	var out []string
	for _, d := range dirs {
		i := strings.LastIndex(d, "ns-")
		ino, err := strconv.ParseUint(d[i+3:], 10, 64)
		if err != nil || live[ino] {
			continue
		}
		if os.RemoveAll(d) == nil {
			out = append(out, d)
		}
	}
	return out
}

// sweepDead removes what runs that died left behind.
func sweepDead() {
	if gone := sweepGoneNetnsDirs(); len(gone) > 0 {
		fmt.Printf("removed the state and pins of network namespaces that are gone: %s\n", strings.Join(gone, ", "))
	}
	ents, _ := os.ReadDir(runsDir)
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".lock")
		if !ok || id == runID {
			continue
		}
		p := filepath.Join(runsDir, e.Name())
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			continue
		}
		// Held: that run is alive (another test binary on this machine).
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			if left := Sweep(id); len(left) > 0 {
				fmt.Printf("removed what an earlier test run (%s) left behind: %s\n", id, strings.Join(left, ", "))
			}
			os.Remove(p)
		}
		f.Close()
	}
}

// Sweep removes everything named with run id's tags and returns what it
// found: processes in its namespaces or naming its directories, the
// namespaces, pin directories, cgroups (after killing their processes),
// mounts and directories below the temporary directory.
func Sweep(id string) []string {
	re := regexp.MustCompile(`^` + Prefix + `.*-` + id + `[0-9a-f]{2}(-[a-z0-9-]+)?$`)
	var found []string
	// Directories first: the processes that name them (dockerd,
	// containerd, shims; daemons given a state dir) run in namespaces of
	// the run, or in the caller's namespace.
	var dirs []string
	tmp, _ := os.ReadDir(os.TempDir())
	keepLogs := os.Getenv("V6DP_KEEP_LOGS") != ""
	for _, e := range tmp {
		log := strings.HasSuffix(e.Name(), ".log")
		if log && keepLogs {
			continue
		}
		if re.MatchString(strings.TrimSuffix(e.Name(), ".log")) {
			dirs = append(dirs, filepath.Join(os.TempDir(), e.Name()))
		}
	}
	for _, d := range dirs {
		for _, pid := range pidsNaming(d + "/") {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if ents, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range ents {
			if re.MatchString(e.Name()) {
				found = append(found, v6dpNetnsDirs(e.Name())...)
				DeleteNS(e.Name())
				found = append(found, "netns "+e.Name())
			}
		}
	}
	for _, cg := range removeCgroups(cgroupsNamed(re)) {
		found = append(found, "cgroup "+cg)
	}
	if ents, err := os.ReadDir("/sys/fs/bpf"); err == nil {
		for _, e := range ents {
			if re.MatchString(e.Name()) {
				_ = os.RemoveAll(filepath.Join("/sys/fs/bpf", e.Name()))
				found = append(found, "pins /sys/fs/bpf/"+e.Name())
			}
		}
	}
	for _, d := range dirs {
		for _, m := range MountsUnder(d) {
			_ = unix.Unmount(m, unix.MNT_DETACH)
		}
		_ = os.RemoveAll(d)
		found = append(found, d)
	}
	return found
}

// RemoveCgroup kills the processes in the cgroup named name (directly
// below each hierarchy's root: the v2 tree or every v1 controller) and its
// children, and removes them, deepest first. It returns what it removed.
func RemoveCgroup(name string) []string {
	return removeCgroups(cgroupsNamed(regexp.MustCompile("^" + regexp.QuoteMeta(name) + "$")))
}

// removeCgroups kills the processes in cgs and removes them (deepest
// first, as cgroupsNamed lists them).
func removeCgroups(cgs []string) []string {
	for _, cg := range cgs {
		b, _ := os.ReadFile(filepath.Join(cg, "cgroup.procs"))
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	// Killed processes leave their cgroup a moment later.
	var out []string
	for try := 0; try < 20 && len(cgs) > 0; try++ {
		var left []string
		for _, cg := range cgs {
			if err := os.Remove(cg); err == nil || os.IsNotExist(err) {
				out = append(out, cg)
			} else {
				left = append(left, cg)
			}
		}
		if cgs = left; len(cgs) > 0 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	return out
}

// PidsNaming lists the processes whose command line contains s.
func PidsNaming(s string) []int { return pidsNaming(s) }

// pidsNaming lists the processes whose command line contains s.
func pidsNaming(s string) []int {
	var out []int
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if strings.Contains(string(b), s) {
			out = append(out, pid)
		}
	}
	return out
}

// cgroupsNamed lists the cgroups (v2 tree or v1 controllers) whose top
// directory below the hierarchy's root matches re, deepest first.
func cgroupsNamed(re *regexp.Regexp) []string {
	var tops []string
	for _, root := range []string{"/sys/fs/cgroup"} {
		ents, _ := os.ReadDir(root)
		for _, e := range ents {
			if !e.IsDir() {
				continue
			}
			if re.MatchString(e.Name()) {
				tops = append(tops, filepath.Join(root, e.Name()))
				continue
			}
			sub, _ := os.ReadDir(filepath.Join(root, e.Name()))
			for _, s := range sub {
				if s.IsDir() && re.MatchString(s.Name()) {
					tops = append(tops, filepath.Join(root, e.Name(), s.Name()))
				}
			}
		}
	}
	var dirs []string
	for _, top := range tops {
		_ = filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
	}
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	return dirs
}

// MountsUnder lists the mount points below dir (dir itself included),
// deepest first, from this process's mount table.
func MountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// MkdirTemp makes Prefix + what + "-" + tag below the temporary directory,
// empty (an earlier directory of that name is removed).
func MkdirTemp(what, tag string) (string, error) {
	d := filepath.Join(os.TempDir(), Name(what, tag))
	if err := os.RemoveAll(d); err != nil {
		return "", err
	}
	return d, os.Mkdir(d, 0o755)
}
