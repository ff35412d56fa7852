package frame

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/v6dp/v6dp/test/topo"
)

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// Sender is a packet socket on one interface inside a namespace: what it
// sends goes onto the link exactly as given, as from a container with
// CAP_NET_RAW. It receives nothing.
type Sender struct {
	Iface *net.Interface
	fd    int
}

// NewSender opens a sender on ifname inside namespace ns.
func NewSender(ns, ifname string) (*Sender, error) {
	s := &Sender{fd: -1}
	err := topo.InNS(ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		// Protocol 0: a send-only socket that no frame is queued to.
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		s.Iface, s.fd = ifi, fd
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sender on %s in %s: %w", ifname, ns, err)
	}
	return s, nil
}

// Send puts the frames on the link in order.
func (s *Sender) Send(frames ...[]byte) error {
	for _, f := range frames {
		to := &unix.SockaddrLinklayer{Ifindex: s.Iface.Index, Halen: 6}
		copy(to.Addr[:], f[:6])
		if err := unix.Sendto(s.fd, f, 0, to); err != nil {
			return fmt.Errorf("sending a %d-byte frame on %s: %w", len(f), s.Iface.Name, err)
		}
	}
	return nil
}

// Close closes the socket.
func (s *Sender) Close() error { return unix.Close(s.fd) }

// Received is one captured frame.
type Received struct {
	*Decoded
	At time.Time
}

// Capture records every frame an interface receives (not the ones it
// sends), from the moment NewCapture returns.
type Capture struct {
	fd   int
	mu   sync.Mutex
	got  []Received
	err  error
	done chan struct{}
	stop chan struct{}
}

// NewCapture starts a capture on ifname inside namespace ns.
func NewCapture(ns, ifname string) (*Capture, error) {
	c := &Capture{fd: -1, done: make(chan struct{}), stop: make(chan struct{})}
	err := topo.InNS(ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		// Protocol 0 until bound: otherwise frames of every interface
		// in the namespace would be queued before bind.
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		c.fd = fd
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return err
		}
		tv := unix.NsecToTimeval((50 * time.Millisecond).Nanoseconds())
		return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	})
	if err != nil {
		return nil, fmt.Errorf("capture on %s in %s: %w", ifname, ns, err)
	}
	go c.read()
	return c, nil
}

func (c *Capture) read() {
	defer close(c.done)
	buf := make([]byte, 9216)
	for {
		select {
		case <-c.stop:
			return
		default:
		}
		n, from, err := unix.Recvfrom(c.fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			return
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		d, err := Parse(append([]byte(nil), buf[:n]...))
		if err != nil {
			continue
		}
		c.mu.Lock()
		c.got = append(c.got, Received{Decoded: d, At: time.Now()})
		c.mu.Unlock()
	}
}

// Frames returns what was received so far.
func (c *Capture) Frames() ([]Received, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Received(nil), c.got...), c.err
}

// Match returns the received frames for which match is true.
func (c *Capture) Match(match func(*Decoded) bool) []Received {
	got, _ := c.Frames()
	var out []Received
	for _, r := range got {
		if match(r.Decoded) {
			out = append(out, r)
		}
	}
	return out
}

// WaitFor waits up to timeout for a frame for which match is true.
func (c *Capture) WaitFor(match func(*Decoded) bool, timeout time.Duration) (Received, error) {
	deadline := time.Now().Add(timeout)
	for {
		if m := c.Match(match); len(m) > 0 {
			return m[0], nil
		}
		if _, err := c.Frames(); err != nil {
			return Received{}, err
		}
		if time.Now().After(deadline) {
			return Received{}, fmt.Errorf("no matching frame within %s", timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Close stops the capture.
func (c *Capture) Close() error {
	close(c.stop)
	<-c.done
	return unix.Close(c.fd)
}
