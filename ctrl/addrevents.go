package ctrl

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// addrSub receives the IPv6 address events of every namespace that this
// namespace has an id for: one socket for all containers, with
// NETLINK_LISTEN_ALL_NSID (Linux 4.6), each message carrying its
// namespace's id in a control message. Every veth port's far end has an
// id here (the kernel assigns it for IFLA_LINK_NETNSID), so every
// container's address changes arrive, in milliseconds, without opening
// its namespace.
type addrSub struct {
	fd int
	// nsids carries the id of each namespace whose addresses changed,
	// hostNsid for this one's.
	nsids chan int
	errs  chan error
	done  chan struct{}
	// hostLinkLocal, if set, is told the interface of each of the
	// host's link-local address changes (from the reading goroutine);
	// they go nowhere else.
	hostLinkLocal func(ifindex int)
}

// hostNsid stands for this namespace's own address events on nsids.
const hostNsid = -1

// addrEventBuffer is the socket buffer for address events: thousands of
// containers starting at once each add two or three addresses.
const addrEventBuffer = 4 << 20

func subscribeAddrs(hostLinkLocal func(ifindex int)) (*addrSub, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("address events: %w", err)
	}
	s := &addrSub{fd: fd, nsids: make(chan int, 4096), errs: make(chan error, 1), done: make(chan struct{}), hostLinkLocal: hostLinkLocal}
	// A blocked receive does not end when another thread closes the
	// socket: wake up now and then to see whether to stop.
	tv := unix.NsecToTimeval(int64(250 * time.Millisecond))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("address events: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_LISTEN_ALL_NSID, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("address events of all namespaces (NETLINK_LISTEN_ALL_NSID): %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, addrEventBuffer); err != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, addrEventBuffer)
	}
	sa := &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1 << (unix.RTNLGRP_IPV6_IFADDR - 1)}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("address events: bind: %w", err)
	}
	go s.read()
	return s, nil
}

func (s *addrSub) read() {
	defer unix.Close(s.fd)
	defer close(s.nsids)
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(4)*4)
	for {
		select {
		case <-s.done:
			return
		default:
		}
		n, oobn, _, _, err := unix.Recvmsg(s.fd, buf, oob, 0)
		if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
			continue
		}
		if err != nil {
			// ENOBUFS: events were lost; the caller resubscribes and
			// resyncs.
			select {
			case s.errs <- err:
			default:
			}
			return
		}
		nsid, ok := cmsgNsid(oob[:oobn])
		if !ok {
			// This namespace's own addresses.
			nsid = hostNsid
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			continue
		}
		for i := range msgs {
			m := &msgs[i]
			if m.Header.Type == unix.RTM_NEWADDR || m.Header.Type == unix.RTM_DELADDR {
				if a, _, ok := parseAddrMsg(m); ok && nsid == hostNsid && a.Addr.IsLinkLocalUnicast() {
					// The host's link-local addresses (a new port's,
					// before its IPv6 goes off) are nobody's endpoint
					// and name no network: re-reading the host's
					// addresses for each of thousands cost O(n^2).
					// Only the port guard's reserved ones care.
					if s.hostLinkLocal != nil {
						s.hostLinkLocal(a.Index)
					}
					continue
				}
				select {
				case s.nsids <- nsid:
				case <-s.done:
					return
				}
				break
			}
		}
	}
}

// cmsgNsid returns the namespace id a message came from.
func cmsgNsid(oob []byte) (int, bool) {
	cms, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, false
	}
	for _, c := range cms {
		if c.Header.Level == unix.SOL_NETLINK && c.Header.Type == unix.NETLINK_LISTEN_ALL_NSID && len(c.Data) >= 4 {
			return int(int32(binary.NativeEndian.Uint32(c.Data))), true
		}
	}
	return 0, false
}

// close stops the subscription; its socket is closed by the reader.
func (s *addrSub) close() {
	select {
	case <-s.done:
	default:
		close(s.done)
	}
}
