package topo

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/mdlayher/ndp"
	"golang.org/x/sys/unix"
)

// NAListener reads the Neighbor Advertisements that arrive on one
// interface of a test namespace, unsolicited ones (to ff02::1) included:
// what a router hears when a host announces a moved address.
type NAListener struct {
	fd int
}

// ListenNA opens the listener on ifname inside ns. It is bound to the
// interface only, not to an address, so multicast advertisements reach it.
func ListenNA(ns, ifname string) (*NAListener, error) {
	var l *NAListener
	err := InNS(ns, func() error {
		if _, err := net.InterfaceByName(ifname); err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMPV6)
		if err != nil {
			return fmt.Errorf("icmpv6 socket in %s: %w", ns, err)
		}
		if err := unix.BindToDevice(fd, ifname); err != nil {
			unix.Close(fd)
			return err
		}
		l = &NAListener{fd: fd}
		return nil
	})
	return l, err
}

// Close closes the socket.
func (l *NAListener) Close() error { return unix.Close(l.fd) }

// Unsolicited waits up to timeout for an unsolicited advertisement (S
// clear) for target whose Target Link-Layer Address is mac, and returns it.
// Advertisements with another (an older) MAC are skipped.
func (l *NAListener) Unsolicited(target net.IP, mac net.HardwareAddr, timeout time.Duration) (*ndp.NeighborAdvertisement, error) {
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 1500)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return nil, fmt.Errorf("%w (unsolicited, TLLA %s) for %s within %s", ErrNoAnswer, mac, target, timeout)
		}
		tv := unix.NsecToTimeval(left.Nanoseconds())
		if err := unix.SetsockoptTimeval(l.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return nil, err
		}
		n, _, err := unix.Recvfrom(l.fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		msg, err := ndp.ParseMessage(buf[:n])
		if err != nil {
			continue
		}
		na, ok := msg.(*ndp.NeighborAdvertisement)
		if !ok || na.Solicited || !net.IP(na.TargetAddress.AsSlice()).Equal(target) {
			continue
		}
		for _, o := range na.Options {
			if ll, ok := o.(*ndp.LinkLayerAddress); ok && ll.Direction == ndp.Target && bytes.Equal(ll.Addr, mac) {
				return na, nil
			}
		}
	}
}
