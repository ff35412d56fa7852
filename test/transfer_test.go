package test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/v6dp/v6dp/test/topo"
)

// TestTransfer moves TCP and UDP both ways between the router and a
// container, and between two containers, on every dataplane and both
// kinds of uplink (the router's end with and without XDP, as a NIC with
// an XDP driver and one without), with every offload at its default. A
// mode that cannot carry some traffic itself must hand it to the kernel,
// never lose it: TCP must deliver every byte it was given.
func TestTransfer(t *testing.T) {
	for _, uplink := range []string{"plain", "xdp-far-end"} {
		for _, dp := range []string{"kernel", "xdp", "tc", "auto"} {
			t.Run(uplink+"/"+dp, func(t *testing.T) { testTransfer(t, dp, uplink == "xdp-far-end") })
		}
	}
	// auto's split, as on a physical NIC: native XDP answers, TC forwards.
	t.Run("xdp-far-end/auto-split", func(t *testing.T) { testTransfer(t, "auto", true, "--ndp-hook", "xdp") })
}

func testTransfer(t *testing.T, dp string, farXDP bool, extra ...string) {
	s := newSeed(t, "2001:db8::c008/125")
	if farXDP {
		s.routerLikeNIC(t)
	}
	s.startDaemon(t, s.daemonArgs(dp, extra...))
	st := s.mustV6dp(t, "status")
	names := []string{s.name("ta"), s.name("tb")}
	var addrs []string
	for _, n := range names {
		addrs = append(addrs, s.addContainer(t, n))
	}
	for _, a := range addrs {
		s.waitLive(t, a, dp != "kernel")
	}
	before := s.counters(t, dp)

	for _, c := range []struct {
		what           string
		client, server string
		addr           string
		udp            bool
	}{
		{"TCP router to container", s.Router, names[0], addrs[0], false},
		{"TCP container to router", names[0], s.Router, routerAddr, false},
		{"TCP container to container", names[1], names[0], addrs[0], false},
		{"UDP router to container", s.Router, names[0], addrs[0], true},
		{"UDP container to router", names[0], s.Router, routerAddr, true},
	} {
		if c.udp {
			sent, intact := udpTransfer(t, c.client, c.server, c.addr)
			if intact < sent*9/10 {
				t.Errorf("%s: %d of %d datagrams arrived intact", c.what, intact, sent)
			}
			t.Logf("%s: %d of %d datagrams intact", c.what, intact, sent)
			continue
		}
		n, took := tcpTransfer(t, c.client, c.server, c.addr)
		t.Logf("%s: %d bytes intact, %.2f Gbit/s", c.what, n, float64(n)*8/took.Seconds()/1e9)
	}

	if dp == "kernel" {
		return
	}
	after := s.counters(t, dp)
	delta := func(c string) uint64 { return after[c] - before[c] }
	if n := delta("error"); n != 0 {
		t.Errorf("counter error rose by %d", n)
	}
	// Where each job ran: TC forwards in auto; native XDP on a veth
	// forwards only ICMPv6 and hands TCP/UDP on (counted), never drops them.
	nativeXDP := strings.Contains(st, "xdp-native")
	switch {
	case dp == "xdp" && nativeXDP:
		if delta("fwd_pass_l4csum") == 0 {
			t.Errorf("native XDP on a veth: TCP/UDP not handed to the kernel (fwd_pass_l4csum did not rise)")
		}
	default:
		if delta("fwd_redirected") == 0 {
			t.Errorf("fwd_redirected did not rise: the transfers did not take the BPF path")
		}
		if delta("fwd_pass_l4csum") != 0 {
			t.Errorf("fwd_pass_l4csum rose by %d on a hook that keeps checksum state", delta("fwd_pass_l4csum"))
		}
	}
	if delta("egress_fib") == 0 || delta("egress_local") == 0 {
		t.Errorf("container egress did not take the BPF path: egress_fib +%d, egress_local +%d", delta("egress_fib"), delta("egress_local"))
	}
	if len(extra) > 0 && (!regexp.MustCompile(`ndp-answers:\s+xdp-native`).MatchString(st) || !regexp.MustCompile(`uplink-to-container:\s+tc`).MatchString(st)) {
		t.Errorf("auto --ndp-hook=xdp: want native XDP for NDP and TC for forwarding:\n%s", st)
	}
}

// tcpSize is what each TCP transfer moves: enough for many full-size and
// offloaded segments.
const tcpSize = 32 << 20

// tcpTransfer sends tcpSize random bytes over TCP from the client
// namespace to a listener on addr in the server namespace and checks that
// the same bytes (by SHA-256) arrived, every one of them.
func tcpTransfer(t *testing.T, client, server, addr string) (int64, time.Duration) {
	t.Helper()
	ln, err := topo.Listen(server, "tcp6", net.JoinHostPort(addr, "5201"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		n   int64
		sum []byte
		err error
	}
	got := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- result{err: err}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		h := sha256.New()
		n, err := io.Copy(h, c)
		got <- result{n, h.Sum(nil), err}
	}()
	data := make([]byte, tcpSize)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(data)
	start := time.Now()
	c, err := topo.Dial(client, "tcp6", net.JoinHostPort(addr, "5201"))
	if err != nil {
		t.Fatalf("TCP to %s: %v", addr, err)
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write(data); err != nil {
		c.Close()
		t.Fatalf("TCP to %s: writing: %v", addr, err)
	}
	c.Close()
	r := <-got
	took := time.Since(start)
	if r.err != nil {
		t.Fatalf("TCP to %s: receiving: %v after %d bytes", addr, r.err, r.n)
	}
	if r.n != tcpSize || !bytes.Equal(r.sum, want[:]) {
		t.Fatalf("TCP to %s: %d of %d bytes arrived, checksum match %v", addr, r.n, tcpSize, bytes.Equal(r.sum, want[:]))
	}
	return r.n, took
}

// udpTransfer sends numbered 1200-byte datagrams, each carrying the
// SHA-256 of its body, and counts the ones that arrive intact. A corrupted
// datagram fails the UDP checksum in the receiver's kernel, or the body's
// own here; either way it does not count.
func udpTransfer(t *testing.T, client, server, addr string) (sent, intact int) {
	t.Helper()
	pc, err := topo.ListenPacket(server, "udp6", net.JoinHostPort(addr, "5202"))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	// Room for a burst while the receiver is not scheduled (2 busy CPUs).
	if u, ok := pc.(*net.UDPConn); ok {
		_ = u.SetReadBuffer(4 << 20)
	}
	const count, size = 4000, 1200
	seen := make(chan int, 1)
	go func() {
		buf := make([]byte, 2048)
		ok := map[uint32]bool{}
		for {
			_ = pc.SetReadDeadline(time.Now().Add(time.Second))
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				seen <- len(ok)
				return
			}
			if n != size {
				continue
			}
			sum := sha256.Sum256(buf[32:n])
			if bytes.Equal(sum[:], buf[:32]) {
				ok[binary.BigEndian.Uint32(buf[32:])] = true
			}
		}
	}()
	c, err := topo.Dial(client, "udp6", net.JoinHostPort(addr, "5202"))
	if err != nil {
		t.Fatalf("UDP to %s: %v", addr, err)
	}
	defer c.Close()
	msg := make([]byte, size)
	for i := 0; i < count; i++ {
		_, _ = rand.Read(msg[36:])
		binary.BigEndian.PutUint32(msg[32:], uint32(i))
		sum := sha256.Sum256(msg[32:])
		copy(msg, sum[:])
		if _, err := c.Write(msg); err == nil {
			sent++
		}
		// Paced (about 50 Mbit/s) so that socket buffers, not the
		// dataplane, are never what loses datagrams.
		if i%50 == 49 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	return sent, <-seen
}
