package loader

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/ndp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// How long to wait for an NA that must come, and for one that must not:
// the latter only after an answer proved the path, so it can be short.
const (
	answerWait  = 2 * time.Second
	silenceWait = 400 * time.Millisecond
)

// topology is a veth pair between two network namespaces made by the test:
// "up0" in the host namespace is the uplink, "rt0" in the router namespace
// plays the router that solicits.
type topology struct {
	host, router     netns.NsHandle
	hostNS, routerNS string
	upIndex          int
}

func ipCmd(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// addNetns makes a network namespace named prefix and a random suffix, and
// deletes it in t.Cleanup, also when the test fails half-way.
func addNetns(t testing.TB, prefix string) string {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("iproute2 missing (run `make deps`):", err)
	}
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	name := prefix + hex.EncodeToString(b)
	ipCmd(t, "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("deleting netns %s: %v: %s", name, err, out)
		}
	})
	return name
}

// newTopology builds the namespaces and the pair and deletes both in
// t.Cleanup, also when the test fails half-way.
func newTopology(t *testing.T) *topology {
	t.Helper()
	tp := &topology{hostNS: addNetns(t, "v6dpt-h-"), routerNS: addNetns(t, "v6dpt-r-")}
	for _, name := range []string{tp.hostNS, tp.routerNS} {
		// No DAD: link-local addresses are usable as soon as the link is up.
		ipCmd(t, "netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0")
	}
	ipCmd(t, "-n", tp.hostNS, "link", "add", "up0", "address", uplinkMAC.String(), "type", "veth",
		"peer", "name", "rt0", "address", peerMAC.String(), "netns", tp.routerNS)
	// Explicit link-local addresses: the automatic ones appear only once
	// the carrier is seen, a moment after "up".
	ipCmd(t, "-n", tp.hostNS, "addr", "add", uplinkLL.String()+"/64", "dev", "up0", "nodad")
	ipCmd(t, "-n", tp.routerNS, "addr", "add", peerLL.String()+"/64", "dev", "rt0", "nodad")
	ipCmd(t, "-n", tp.hostNS, "link", "set", "up0", "up")
	ipCmd(t, "-n", tp.routerNS, "link", "set", "rt0", "up")

	var err error
	if tp.host, err = netns.GetFromName(tp.hostNS); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tp.host.Close() })
	if tp.router, err = netns.GetFromName(tp.routerNS); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tp.router.Close() })
	h, err := netlink.NewHandleAt(tp.host)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	up, err := h.LinkByName("up0")
	if err != nil {
		t.Fatal(err)
	}
	tp.upIndex = up.Attrs().Index
	waitOperUp(t, h, "up0")
	rh, err := netlink.NewHandleAt(tp.router)
	if err != nil {
		t.Fatal(err)
	}
	defer rh.Close()
	waitOperUp(t, rh, "rt0")
	return tp
}

// waitOperUp waits until the link is operationally up. The kernel's
// linkwatch work sets that some time after the carrier, one run at a time
// for every device of the machine; until then IPv6 has no multicast route
// on the link (ENETUNREACH). With thousands of veths coming and going on
// the machine (a scale benchmark) that took seconds, so the bound is
// generous.
func waitOperUp(t testing.TB, h *netlink.Handle, name string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		l, err := h.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if l.Attrs().OperState == netlink.OperUp {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not operationally up after 30s: %s", name, l.Attrs().OperState)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// in runs f on a thread switched into ns, as the loader does.
func in(t *testing.T, ns netns.NsHandle, f func() error) error {
	t.Helper()
	return inNetns(ns, ns.String(), f)
}

// solicit sends a multicast NS for target from the router side and returns
// the NA that comes back within wait.
func (tp *topology) solicit(t *testing.T, target netip.Addr, wait time.Duration) (*ndp.NeighborAdvertisement, netip.Addr, error) {
	t.Helper()
	var (
		c   *ndp.Conn
		ifi *net.Interface
	)
	err := in(t, tp.router, func() error {
		var err error
		if ifi, err = net.InterfaceByName("rt0"); err != nil {
			return err
		}
		// The socket stays in the router namespace once made. It binds
		// to peerLL, added with nodad: the automatic link-local address
		// stays tentative until the kernel's address work has run after
		// the carrier came up, which on a loaded machine is a while;
		// binding to it fails (EADDRNOTAVAIL) and answers to it are lost.
		c, _, err = ndp.Listen(ifi, ndp.Addr(peerLL.String()))
		return err
	})
	if err != nil {
		t.Fatalf("listening on rt0: %v", err)
	}
	defer c.Close()
	group, err := ndp.SolicitedNodeMulticast(target)
	if err != nil {
		t.Fatal(err)
	}
	m := &ndp.NeighborSolicitation{TargetAddress: target, Options: []ndp.Option{sllao(peerMAC)}}
	deadline := time.Now().Add(wait)
	if err := c.SetReadDeadline(deadline); err != nil {
		t.Fatal(err)
	}
	// Resend: right after "up" the multicast route and the carrier may
	// not be there yet (ENETUNREACH), and the first NS may be lost.
	var lastErr error
	for time.Now().Before(deadline) {
		if lastErr = c.WriteTo(m, nil, group); lastErr != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if err := c.SetReadDeadline(time.Now().Add(300 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		for {
			msg, _, from, err := c.ReadFrom()
			if err != nil {
				break
			}
			if na, ok := msg.(*ndp.NeighborAdvertisement); ok && na.TargetAddress == target {
				return na, from, nil
			}
		}
	}
	return nil, netip.Addr{}, errors.Join(fmt.Errorf("no NA within %v", wait), lastErr)
}

func (tp *topology) checkAnswered(t *testing.T, d *Dataplane) {
	t.Helper()
	before, err := d.Counters()
	if err != nil {
		t.Fatal(err)
	}
	na, from, err := tp.solicit(t, liveAddr, answerWait)
	if err != nil {
		t.Fatalf("soliciting %s: %v", liveAddr, err)
	}
	if !na.Router || !na.Solicited || na.Override {
		t.Errorf("flags R=%v S=%v O=%v, want R=1 S=1 O=0", na.Router, na.Solicited, na.Override)
	}
	if from.WithZone("") != liveAddr {
		t.Errorf("NA from %s, want the target %s", from, liveAddr)
	}
	var tlla net.HardwareAddr
	for _, o := range na.Options {
		if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Target {
			tlla = lla.Addr
		}
	}
	if !bytes.Equal(tlla, uplinkMAC) {
		t.Errorf("TLLA %s, want %s", tlla, uplinkMAC)
	}
	after, err := d.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if after["ns_answered"] <= before["ns_answered"] {
		t.Errorf("ns_answered did not move: %v", counterDelta(before, after))
	}
}

func (tp *topology) setUplink(t *testing.T, d *Dataplane) {
	t.Helper()
	cfg := testUplink()
	cfg.Ifindex = tp.upIndex
	if err := d.SetUplink(cfg); err != nil {
		t.Fatal(err)
	}
}

func TestAttach(t *testing.T) {
	for _, tc := range []struct {
		name   string
		attach func(t *testing.T, d *Dataplane, tp *topology) (Mode, error)
		want   Mode
	}{
		{
			name: "xdp generic", want: ModeXDPGeneric,
			attach: func(t *testing.T, d *Dataplane, tp *topology) (Mode, error) {
				return d.AttachXDP(tp.upIndex, false)
			},
		},
		{
			// veth delivers XDP_TX frames of a native program only to a
			// peer whose NAPI is on, which an XDP program there enables.
			name: "xdp native", want: ModeXDPNative,
			attach: func(t *testing.T, d *Dataplane, tp *topology) (Mode, error) {
				err := in(t, tp.router, func() error {
					rt, err := net.InterfaceByName("rt0")
					if err != nil {
						return err
					}
					c, err := AttachXDPPass(rt.Index)
					if err == nil {
						t.Cleanup(func() { c.Close() })
					}
					return err
				})
				if err != nil {
					t.Fatalf("attaching xdp_pass to rt0: %v", err)
				}
				return d.AttachXDP(tp.upIndex, true)
			},
		},
		{
			name: "tcx", want: ModeTCX,
			attach: func(t *testing.T, d *Dataplane, tp *topology) (Mode, error) {
				return d.AttachTC(tp.upIndex)
			},
		},
		{
			name: "tc clsact", want: ModeTCLegacy,
			attach: func(t *testing.T, d *Dataplane, tp *topology) (Mode, error) {
				return d.attachTCLegacy(tp.upIndex)
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newTestDataplane(t)
			tp := newTopology(t)
			tp.setUplink(t, d)
			var mode Mode
			err := in(t, tp.host, func() error {
				var err error
				mode, err = tc.attach(t, d, tp)
				return err
			})
			if err != nil {
				t.Fatalf("attach: %v", err)
			}
			if mode != tc.want {
				t.Errorf("mode %q, want %q", mode, tc.want)
			}
			var attached []Attachment
			if err := in(t, tp.host, func() error {
				var err error
				attached, err = Attached(d.pinDir)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if len(attached) != 1 || attached[0].Ifindex != tp.upIndex || attached[0].Mode != tc.want || attached[0].ProgramID == 0 {
				t.Errorf("Attached = %+v, want one %s attachment on ifindex %d", attached, tc.want, tp.upIndex)
			}

			tp.checkAnswered(t, d)
			if _, _, err := tp.solicit(t, deadAddr, silenceWait); err == nil {
				t.Errorf("answered for %s, which is not live", deadAddr)
			}

			if err := in(t, tp.host, func() error { return d.Detach(tp.upIndex) }); err != nil {
				t.Fatalf("Detach: %v", err)
			}
			if err := in(t, tp.host, func() error { return d.Detach(tp.upIndex) }); !errors.Is(err, ErrNotAttached) {
				t.Errorf("second Detach: %v, want ErrNotAttached", err)
			}
			// Detached: the kernel in the host namespace has no proxy entry, so nobody answers.
			if _, _, err := tp.solicit(t, liveAddr, silenceWait); err == nil {
				t.Errorf("still answered after Detach")
			}
		})
	}
}

// TestRestart simulates a daemon that exits (or is killed) and starts again:
// the pinned link keeps answering in between, and the new daemon adopts the
// maps with their endpoints and the link.
func TestRestart(t *testing.T) {
	first := newTestDataplane(t)
	tp := newTopology(t)
	tp.setUplink(t, first)
	for _, tc := range []struct {
		name   string
		attach func(d *Dataplane) (Mode, error)
	}{
		{"xdp", func(d *Dataplane) (Mode, error) { return d.AttachXDP(tp.upIndex, false) }},
		{"tcx", func(d *Dataplane) (Mode, error) { return d.AttachTC(tp.upIndex) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Open(first.pinDir)
			if err != nil {
				t.Fatal(err)
			}
			if err := in(t, tp.host, func() error { _, err := tc.attach(d); return err }); err != nil {
				t.Fatal(err)
			}
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			// Nobody holds a file descriptor now: only the pins keep it running.
			tp.checkAnswered(t, first)

			again, err := Open(first.pinDir)
			if err != nil {
				t.Fatal(err)
			}
			defer again.Close()
			eps, err := again.Endpoints()
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := eps[liveAddr]; !ok {
				t.Errorf("endpoint %s lost over the restart: %v", liveAddr, eps)
			}
			var before, after []Attachment
			err = in(t, tp.host, func() error {
				var err error
				if before, err = Attached(first.pinDir); err != nil {
					return err
				}
				if _, err := tc.attach(again); err != nil {
					return err
				}
				after, err = Attached(first.pinDir)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(before) != 1 || len(after) != 1 || before[0].ProgramID == after[0].ProgramID {
				t.Errorf("program not replaced in the adopted link: before %+v, after %+v", before, after)
			}
			tp.checkAnswered(t, again)
			if err := in(t, tp.host, func() error { return again.Detach(tp.upIndex) }); err != nil {
				t.Fatal(err)
			}
		})
	}
}
