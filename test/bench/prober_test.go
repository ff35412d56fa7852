package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"time"

	"golang.org/x/sys/unix"

	"github.com/v6dp/v6dp/test/topo"
)

// prober measures answer latency from the router's side of the wire. It
// sends one solicitation frame at a time on a packet socket and takes the
// answer's arrival time from the kernel's receive timestamp
// (SO_TIMESTAMPNS), so the figure is the time on the wire and in the
// host, not Go's scheduler and poller wake-ups (tens of microseconds,
// more than what is measured).
type prober struct {
	fd      int
	ifindex int
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func newProber(ns, ifname string) (*prober, error) {
	p := &prober{fd: -1}
	err := topo.InNS(ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		p.ifindex = ifi.Index
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_IPV6)))
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		p.fd = fd
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IPV6), Ifindex: ifi.Index}); err != nil {
			return fmt.Errorf("bind %s: %w", ifname, err)
		}
		return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	})
	if err != nil && p.fd >= 0 {
		unix.Close(p.fd)
	}
	return p, err
}

func (p *prober) Close() { unix.Close(p.fd) }

// drain drops what the socket has queued.
func (p *prober) drain() {
	buf := make([]byte, 2048)
	for {
		if _, _, err := unix.Recvfrom(p.fd, buf, unix.MSG_DONTWAIT); err != nil {
			return
		}
	}
}

var errTimeout = errors.New("no answer")

// probe sends frame (an NS for target) and waits up to timeout for the
// Neighbor Advertisement for target (an unsolicited one, to a multicast
// group with S clear, is not the answer); it returns the time from just
// before the send to the answer's kernel receive timestamp, and the answer
// as it arrived, for the caller to validate whole.
func (p *prober) probe(frame []byte, target netip.Addr, timeout time.Duration) (time.Duration, *topo.Answer, error) {
	p.drain()
	buf := make([]byte, 2048)
	oob := make([]byte, 128)
	start := time.Now()
	deadline := start.Add(timeout)
	if err := unix.Sendto(p.fd, frame, 0, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IPV6), Ifindex: p.ifindex}); err != nil {
		return 0, nil, fmt.Errorf("send: %w", err)
	}
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return 0, nil, errTimeout
		}
		pfd := []unix.PollFd{{Fd: int32(p.fd), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, int(left/time.Millisecond)+1)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return 0, nil, err
		}
		if n <= 0 {
			continue
		}
		n, oobn, _, from, err := unix.Recvmsg(p.fd, buf, oob, unix.MSG_DONTWAIT)
		if err != nil {
			continue
		}
		now := time.Now()
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		a := topo.ParseNA(buf[:n])
		if a == nil || a.NA.TargetAddress != target || (a.Dest.IsMulticast() && !a.NA.Solicited) {
			continue
		}
		at := now
		if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
			for _, m := range msgs {
				if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_TIMESTAMPNS && len(m.Data) >= 16 {
					at = time.Unix(int64(binary.NativeEndian.Uint64(m.Data[0:8])), int64(binary.NativeEndian.Uint64(m.Data[8:16])))
				}
			}
		}
		return at.Sub(start), a, nil
	}
}

// latency is the outcome of a series of probes.
type latency struct {
	Sent, Answered int
	Median, P99    time.Duration
}

func summarize(rtts []time.Duration, sent int) latency {
	l := latency{Sent: sent, Answered: len(rtts)}
	if len(rtts) == 0 {
		return l
	}
	sort.Slice(rtts, func(i, j int) bool { return rtts[i] < rtts[j] })
	l.Median = rtts[len(rtts)/2]
	l.P99 = rtts[min(len(rtts)-1, (len(rtts)*99+99)/100-1)]
	return l
}
