// Integration tests: the seed's topologies in network namespaces made by
// the tests, the real v6dp binary, real kernels on both sides. Root only.
package test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/v6dp/v6dp/test/topo"
)

var v6dpBin string

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Println("integration tests need root: skipped")
		os.Exit(0)
	}
	os.Exit(topo.Main(m, func() (func(), error) {
		dir, err := topo.MkdirTemp("bin", topo.RunTag())
		if err != nil {
			return nil, err
		}
		v6dpBin = filepath.Join(dir, "v6dp")
		if out, err := exec.Command("go", "build", "-o", v6dpBin, "../cmd/v6dp").CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("building v6dp: %v\n%s", err, out)
		}
		return func() { os.RemoveAll(dir) }, nil
	}))
}

// seed is the original document's NDP proxy example: the router on-link
// for 2001:db8::/64, the host at 2001:db8::c001 on eth0, Docker's
// containers in a prefix behind the bridge.
type seed struct {
	*topo.Topo
	Router, Host string
	// RouterIf is the router's interface. Its name is unique per test:
	// Go's net package caches interface names to indexes for up to a
	// minute, process-wide, and the NDP sockets the tests open in each
	// router namespace resolve their zone by name.
	RouterIf string
	// Uplink is the host's interface towards the router: eth0, or a
	// VLAN-style name such as eth0.100.
	Uplink   string
	StateDir string
	PinDir   string
	Prefix   string
}

const (
	routerAddr = "2001:db8::1"
	hostAddr   = "2001:db8::c001"
)

func newSeed(t *testing.T, prefix string) *seed {
	t.Helper()
	return newSeedOn(t, prefix, "eth0")
}

// newSeedOn is newSeed with the host's uplink called uplink.
func newSeedOn(t *testing.T, prefix, uplink string) *seed {
	t.Helper()
	tp := topo.New(t)
	// Not t.TempDir: that would be removed before the topology's own
	// cleanup, which needs the state to find the containers and to run
	// `v6dp cleanup`. Registered first, it is removed last.
	stateDir, err := topo.MkdirTemp("state", tp.Tag)
	if err != nil {
		t.Fatal(err)
	}
	tp.Defer(func() { os.RemoveAll(stateDir) })
	s := &seed{Topo: tp, Uplink: uplink, Prefix: prefix, StateDir: stateDir, PinDir: "/sys/fs/bpf/" + topo.Name("pins", tp.Tag)}
	s.Router = tp.NS("router")
	s.Host = tp.NS("host")
	s.RouterIf = "rt" + tp.Tag
	tp.Veth(s.Router, s.RouterIf, s.Host, uplink)
	// Fresh links start with a tentative link-local address for a second
	// (DAD), during which the host cannot forward; a real uplink has long
	// been up. Skip DAD on the test links so timings are a host's.
	tp.Sysctl(s.Router, "net.ipv6.conf."+s.RouterIf+".accept_dad", "0")
	tp.Sysctl(s.Host, "net.ipv6.conf."+sysctlIf(uplink)+".accept_dad", "0")
	tp.MustRun(s.Router, "ip", "addr", "add", routerAddr+"/64", "dev", s.RouterIf, "nodad")
	tp.MustRun(s.Router, "ip", "link", "set", s.RouterIf, "up")
	tp.Sysctl(s.Host, "net.ipv6.conf."+sysctlIf(uplink)+".accept_ra", "1")
	tp.MustRun(s.Host, "ip", "addr", "add", hostAddr+"/64", "dev", uplink, "nodad")
	tp.MustRun(s.Host, "ip", "link", "set", uplink, "up")
	tp.MustRun(s.Host, "ip", "-6", "route", "add", "default", "via", routerAddr, "dev", uplink)
	// Runs after the namespaces are gone (cleanups run last in, first
	// out): whatever v6dp left in the shared filesystem goes too.
	tp.Defer(func() {
		os.RemoveAll(s.PinDir)
		for _, c := range s.containers() {
			topo.DeleteNS(c)
		}
	})
	return s
}

// containers lists the container namespaces v6dp recorded for this test.
func (s *seed) containers() []string {
	ents, _ := os.ReadDir(filepath.Join(s.StateDir, "containers"))
	var out []string
	for _, e := range ents {
		out = append(out, strings.TrimSuffix(e.Name(), ".json"))
	}
	return out
}

// name makes a container name unique to this test run.
func (s *seed) name(n string) string { return topo.Name(n, s.Tag) }

// v6dp runs the v6dp CLI in the host namespace, with the host's bpffs.
func (s *seed) v6dp(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	full := append(args, "--state-dir", s.StateDir)
	cmd := topo.Nsenter(ctx, s.Host, append([]string{v6dpBin}, full...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("v6dp %s: %w: %s", strings.Join(full, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func (s *seed) mustV6dp(t *testing.T, args ...string) string {
	t.Helper()
	out, err := s.v6dp(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// daemon is a running `v6dp daemon`.
type daemon struct {
	t    *testing.T
	s    *seed
	args []string
	cmd  *exec.Cmd
	log  *os.File
}

// daemonArgs are the seed's flags for the proxy example.
func (s *seed) daemonArgs(dataplane string, extra ...string) []string {
	a := []string{"daemon", "--ipv6", "--fixed-cidr-v6", s.Prefix, "--uplink", s.Uplink, "--ndp-proxy",
		"--dataplane", dataplane, "--pin-dir", s.PinDir, "--state-dir", s.StateDir, "--log-level", "debug"}
	return append(a, extra...)
}

func (s *seed) startDaemon(t *testing.T, args []string) *daemon {
	t.Helper()
	d := &daemon{t: t, s: s, args: args, log: s.LogFile("daemon")}
	d.start()
	s.Defer(func() {
		d.stop()
		// Remove what v6dp made on the host, as an operator would.
		_, _ = s.v6dp("cleanup")
	})
	return d
}

func (d *daemon) start() {
	d.t.Helper()
	// The log holds every earlier run too: wait for one more start line.
	prev, _ := os.ReadFile(d.log.Name())
	starts := strings.Count(string(prev), "daemon running")
	d.cmd = topo.Nsenter(context.Background(), d.s.Host, append([]string{v6dpBin}, d.args...)...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	eventually(d.t, 10*time.Second, func() error {
		b, _ := os.ReadFile(d.log.Name())
		if strings.Count(string(b), "daemon running") > starts {
			return nil
		}
		if d.cmd.ProcessState != nil {
			return fmt.Errorf("daemon exited")
		}
		return fmt.Errorf("daemon not running yet")
	})
}

// stop sends SIGTERM and waits; the dataplane stays behind.
func (d *daemon) stop() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = d.cmd.Process.Kill()
		<-done
	}
	d.cmd = nil
}

// kill ends the daemon with SIGKILL: nothing of its own shutdown runs.
func (d *daemon) kill() {
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Kill()
	_ = d.cmd.Wait()
	d.cmd = nil
}

// eventually retries f until it succeeds or the time is up.
func eventually(t *testing.T, limit time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	var err error
	for {
		if err = f(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", limit, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// endpointReport mirrors `v6dp endpoints --json`.
type endpointReport struct {
	Name        string   `json:"name"`
	Addrs       []string `json:"addrs"`
	MAC         string   `json:"mac"`
	Veth        string   `json:"veth"`
	KernelProxy bool     `json:"kernel_proxy"`
	BPF         bool     `json:"bpf"`
}

func (s *seed) endpoints(t *testing.T) map[string]endpointReport {
	t.Helper()
	out := s.mustV6dp(t, "endpoints", "--json")
	var eps []endpointReport
	if err := json.Unmarshal([]byte(out), &eps); err != nil {
		t.Fatalf("endpoints --json: %v: %s", err, out)
	}
	m := map[string]endpointReport{}
	for _, e := range eps {
		for _, a := range e.Addrs {
			m[a] = e
		}
	}
	return m
}

// addContainer runs `v6dp container add` and returns its address.
func (s *seed) addContainer(t *testing.T, name string, extra ...string) string {
	t.Helper()
	out := s.mustV6dp(t, append([]string{"container", "add", name}, extra...)...)
	f := strings.Fields(out)
	if len(f) < 2 {
		t.Fatalf("container add %s: unexpected output %q", name, out)
	}
	return f[1]
}

// waitLive waits until the daemon has the address in its answer set
// (kernel proxy entry; and BPF map entry when bpf is set).
func (s *seed) waitLive(t *testing.T, addr string, bpf bool) {
	t.Helper()
	eventually(t, 5*time.Second, func() error {
		e, ok := s.endpoints(t)[addr]
		if !ok || !e.KernelProxy || (bpf && !e.BPF) {
			return fmt.Errorf("%s not live yet: %+v", addr, e)
		}
		return nil
	})
}

func (s *seed) hostMAC(t *testing.T) string {
	t.Helper()
	return strings.TrimSpace(s.MustRun(s.Host, "cat", "/sys/class/net/"+s.Uplink+"/address"))
}

// sysctlIf writes an interface name as sysctl(8) wants it in a dotted
// key: its own dots become slashes (eth0.100 is eth0/100).
func sysctlIf(name string) string { return strings.ReplaceAll(name, ".", "/") }

// routerLikeNIC makes the router's end of the uplink behave like a
// physical NIC towards native XDP: a veth delivers native XDP_TX and
// redirected frames only if its far end runs XDP too, so an XDP_PASS
// program goes there, and the daemon then picks native XDP. Offloads stay
// at their defaults: the router's stack leaves TCP and UDP checksums to
// "hardware" (a partial checksum), which the dataplane must carry intact.
func (s *seed) routerLikeNIC(t *testing.T) {
	t.Helper()
	s.MustRun(s.Router, "ip", "link", "set", "dev", s.RouterIf, "xdpdrv", "obj", "../loader/pass_bpfel.o", "sec", "xdp")
}
