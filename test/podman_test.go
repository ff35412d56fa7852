package test

// v6dp beside Debian's Podman 4.3, rootful, with a netavark bridge network
// that has an IPv6 subnet inside the router's on-link /64 (IPAM addresses,
// random MACs). v6dp starts first, as a service at boot would, with
// --network for the bridge Podman will make: it must wait for the bridge,
// not make it (Podman puts its gateway only on a bridge it made), and
// learn the containers when they come. Restarted after more containers
// came, it learns those too.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/v6dp/v6dp/test/docker"
	"github.com/v6dp/v6dp/test/topo"
)

const podmanImage = "localhost/v6dp-busybox:test"

// podmanMissing names what this machine lacks to run Podman, or "".
func podmanMissing() string {
	for _, b := range []string{"podman", "conmon", "nsenter"} {
		if _, err := exec.LookPath(b); err != nil {
			return b + " not installed (Debian: apt-get install podman)"
		}
	}
	if _, err := os.Stat("/usr/lib/podman/netavark"); err != nil {
		return "netavark not installed (Debian: apt-get install netavark)"
	}
	if _, err := os.Stat(docker.Busybox); err != nil {
		return docker.Busybox + " missing (Debian: apt-get install busybox-static)"
	}
	return ""
}

// podman is a rootful Podman whose state lives in the test's own
// directory; its commands run in the seed's host namespace.
type podman struct {
	t    *testing.T
	s    *seed
	root string
}

func newPodman(t *testing.T, s *seed) *podman {
	t.Helper()
	root, err := topo.MkdirTemp("pm", s.Tag)
	if err != nil {
		t.Fatal(err)
	}
	p := &podman{t: t, s: s, root: root}
	s.Defer(p.stop)
	return p
}

func (p *podman) args(args ...string) []string {
	return append([]string{"podman",
		"--root", filepath.Join(p.root, "storage"),
		"--runroot", filepath.Join(p.root, "run"),
		"--tmpdir", filepath.Join(p.root, "tmp"),
		"--network-config-dir", filepath.Join(p.root, "networks"),
		"--storage-driver", "vfs",
		"--cgroup-manager", "cgroupfs",
		"--events-backend", "file",
	}, args...)
}

// in runs podman in namespace ns.
func (p *podman) in(ns string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := topo.Nsenter(ctx, ns, p.args(args...)...)
	// Podman's own config files of the machine stay out of it.
	cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+filepath.Join(p.root, "containers.conf"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("podman %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func (p *podman) must(ns string, args ...string) string {
	p.t.Helper()
	out, err := p.in(ns, args...)
	if err != nil {
		p.t.Fatal(err)
	}
	return out
}

// run starts a container that sleeps on network net. The sandbox cannot
// raise limits, so they are given.
func (p *podman) run(name, net string) string {
	p.t.Helper()
	p.must(p.s.Host, "run", "-d", "--name", name, "--network", net, "--cgroup-parent", p.cgroup(),
		"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", podmanImage, "sleep", "3600")
	var info []struct {
		NetworkSettings struct {
			Networks map[string]struct {
				GlobalIPv6Address string
			}
		}
	}
	out := p.must(p.s.Host, "inspect", name)
	if err := json.Unmarshal([]byte(out), &info); err != nil || len(info) != 1 {
		p.t.Fatalf("podman inspect %s: %v: %s", name, err, out)
	}
	return info[0].NetworkSettings.Networks[net].GlobalIPv6Address
}

func (p *podman) stop() {
	if out, err := p.in(p.s.Host, "ps", "-aq"); err == nil && strings.TrimSpace(out) != "" {
		_, _ = p.in(p.s.Host, append([]string{"rm", "-f", "-t", "0"}, strings.Fields(out)...)...)
	}
	// conmon and the containers name the root on their command lines.
	for _, pid := range topo.PidsNaming(p.root) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, m := range topo.MountsUnder(p.root) {
		_ = syscall.Unmount(m, syscall.MNT_DETACH)
	}
	// The containers' cgroups (and conmon's), in every hierarchy.
	topo.RemoveCgroup(p.cgroup()[1:])
	if err := os.RemoveAll(p.root); err != nil {
		p.t.Logf("removing %s: %v", p.root, err)
	}
}

// cgroup is the containers' cgroup parent (cgroupfs), the test's own.
func (p *podman) cgroup() string { return "/" + topo.Name("pm", p.s.Tag) }

func TestPodman(t *testing.T) {
	if why := podmanMissing(); why != "" {
		t.Fatal(why)
	}
	// What Podman keeps outside its roots whatever the flags (netavark's
	// IPAM database, the image blob cache, runc's state): removed at the
	// end if the test made it.
	for _, d := range []string{"/run/containers", "/var/lib/containers", "/run/runc"} {
		if _, err := os.Stat(d); err != nil {
			t.Cleanup(func() { _ = os.RemoveAll(d) })
		}
	}
	tarball := filepath.Join(t.TempDir(), "busybox-rootfs.tar")
	if err := docker.WriteRootfsFile(tarball, docker.Busybox); err != nil {
		t.Fatalf("busybox root filesystem: %v", err)
	}
	for _, dp := range discoveryDataplanes() {
		t.Run(dp, func(t *testing.T) { testPodman(t, dp, tarball) })
	}
}

func testPodman(t *testing.T, dp, tarball string) {
	s := newSeed(t, "2001:db8:0:0:1::/80")
	p := newPodman(t, s)
	if err := os.WriteFile(filepath.Join(p.root, "containers.conf"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// `podman network create` refuses a subnet that the calling
	// namespace routes (the host's /64 covers it); the network is only a
	// file, so it is made from an empty namespace of the test's.
	const subnet = "2001:db8:0:0:2::/80"
	empty := s.NS("pmcreate")
	net := "v6dp-" + s.Tag
	p.must(empty, "network", "create", "--ipv6", "--subnet", subnet, "--disable-dns", net)
	bridge := strings.TrimSpace(p.must(empty, "network", "inspect", "-f", "{{.NetworkInterface}}", net))
	p.must(s.Host, "import", "--change", `CMD ["/bin/sh"]`, tarball, podmanImage)

	// v6dp first: Podman's bridge does not exist yet.
	args := append(s.daemonArgs(dp, "--bridge", "docker0"), "--network", bridge+"="+subnet)
	d := s.startDaemon(t, args)
	if _, err := s.Run(s.Host, "ip", "link", "show", bridge); err == nil {
		t.Fatalf("bridge %s exists before Podman ran a container", bridge)
	}
	var addrs []string
	for i := 0; i < 2; i++ {
		name := s.name(fmt.Sprintf("p%d", i))
		began := time.Now()
		a := p.run(name, net)
		ip, err := netip.ParseAddr(a)
		if err != nil || !netip.MustParsePrefix(subnet).Contains(ip) {
			t.Fatalf("%s: Podman gave %q, want an address of %s", name, a, subnet)
		}
		s.waitLive(t, a, dp != "kernel")
		ping := <-pingUntil(s, a, 10*time.Second)
		if ping.err != nil {
			t.Fatalf("router ping %s: %v", a, ping.err)
		}
		t.Logf("%s %s: router's first ping reply %s after `podman run` began", name, a, ms(ping.at.Sub(began)))
		addrs = append(addrs, a)
	}
	// Podman's gateway is on its bridge (it made the bridge itself).
	if br := s.MustRun(s.Host, "ip", "-6", "addr", "show", "dev", bridge); !strings.Contains(br, "inet6 2001:db8::2:0:0:1/80") {
		t.Errorf("%s lacks Podman's gateway 2001:db8::2:0:0:1/80:\n%s", bridge, br)
	}

	// Podman first: containers started while no daemon runs are learned
	// by the next one.
	d.stop()
	late := p.run(s.name("late"), net)
	d.start()
	// The log says "daemon running" from the first run already: wait
	// for the new daemon's own record.
	eventually(t, 10*time.Second, func() error {
		out, err := s.v6dp("status", "--json")
		if err != nil || !strings.Contains(out, `"daemon": "running"`) {
			return fmt.Errorf("daemon not running again yet: %v", err)
		}
		return nil
	})
	s.waitLive(t, late, dp != "kernel")
	if ping := <-pingUntil(s, late, 10*time.Second); ping.err != nil {
		t.Fatalf("router ping %s: %v", late, ping.err)
	}

	// A stopped container's address stops answering; the others answer.
	p.must(s.Host, "stop", "-t", "0", s.name("p1"))
	conn, err := topo.ListenNDP(s.Router, s.RouterIf)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	eventually(t, 2*time.Second, func() error { return unanswered(conn, netip.MustParseAddr(addrs[1]), 150*time.Millisecond) })
	s.MustRun(s.Router, "ping", "-c", "1", "-W", "2", addrs[0])
	t.Logf("v6dp status:\n%s", s.mustV6dp(t, "status"))
}
