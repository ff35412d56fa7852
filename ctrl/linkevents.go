package ctrl

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// linkSub is a subscription to the kernel's link events, each read into
// the little the lifecycle needs (linkEvent) on a socket of its own:
// thousands of ports joining at once are tens of thousands of messages,
// and a full decoding of each (netlink.LinkSubscribe) cost more than the
// daemon's work for them, while its queue of decoded links filled and
// the socket overflowed (ENOBUFS, then a full resync).
type linkSub struct {
	updates chan linkEvent
	errs    chan error
	done    chan struct{}
	// early sees each event as it is read, before it waits in updates
	// (nil: none); it must not block.
	early func(linkEvent)
}

// linkEventBuffer is the socket buffer for link events: a burst of port
// changes at thousands of containers overflows the default and the kernel
// drops events (ENOBUFS). linkEventQueue is how many decoded events wait
// for the daemon (a few dozen bytes each).
const (
	linkEventBuffer = 32 << 20
	linkEventQueue  = 1 << 16
)

func subscribeLinks(early func(linkEvent)) (*linkSub, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("subscribing to link events: %w", err)
	}
	s := &linkSub{updates: make(chan linkEvent, linkEventQueue), errs: make(chan error, 1), done: make(chan struct{}), early: early}
	tv := unix.NsecToTimeval(int64(250 * time.Millisecond))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("subscribing to link events: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, linkEventBuffer); err != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, linkEventBuffer)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1 << (unix.RTNLGRP_LINK - 1)}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("subscribing to link events: %w", err)
	}
	go s.read(fd)
	return s, nil
}

func (s *linkSub) read(fd int) {
	defer unix.Close(fd)
	defer close(s.updates)
	buf := make([]byte, 1<<20)
	for {
		select {
		case <-s.done:
			return
		default:
		}
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
			continue
		}
		if err != nil {
			// ENOBUFS: events were lost; the daemon subscribes again
			// and resyncs.
			select {
			case s.errs <- fmt.Errorf("link events: %w", err):
			default:
			}
			return
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			continue
		}
		for i := range msgs {
			ev, ok := parseLinkMsg(&msgs[i])
			if !ok {
				continue
			}
			if s.early != nil {
				s.early(ev)
			}
			select {
			case s.updates <- ev:
			case <-s.done:
				return
			}
		}
	}
}

func (s *linkSub) close() {
	select {
	case <-s.done:
	default:
		close(s.done)
	}
}

// parseLinkMsg reads an RTM_NEWLINK or RTM_DELLINK message: the index,
// name, master and whether the link kind is veth. The bridge's own port
// notifications (AF_BRIDGE) are skipped: they carry no link kind, and a
// port's joining or leaving comes as the link's full message too.
func parseLinkMsg(m *syscall.NetlinkMessage) (linkEvent, bool) {
	var ev linkEvent
	if (m.Header.Type != unix.RTM_NEWLINK && m.Header.Type != unix.RTM_DELLINK) || len(m.Data) < unix.SizeofIfInfomsg {
		return ev, false
	}
	ev.Index = int(int32(binary.NativeEndian.Uint32(m.Data[4:8])))
	if m.Data[0] == unix.AF_BRIDGE {
		// The bridge's port notifications: partial (a port's joining or
		// leaving comes as the link's own full message too), but the
		// only word of a port's flags changing (isolated, locked).
		ev.BridgePort = true
		ev.Blocked = brportBlocked(m.Data[unix.SizeofIfInfomsg:])
		return ev, true
	}
	if m.Data[0] != unix.AF_UNSPEC {
		return ev, false
	}
	ev.Deleted = m.Header.Type == unix.RTM_DELLINK
	h := &hostLink{netnsID: -1}
	attrs, err := syscall.ParseNetlinkRouteAttr(m)
	if err != nil {
		return ev, false
	}
	for _, a := range attrs {
		switch a.Attr.Type {
		case unix.IFLA_IFNAME:
			ev.Name = cString(a.Value)
		case unix.IFLA_MASTER:
			if len(a.Value) >= 4 {
				ev.Master = int(binary.NativeEndian.Uint32(a.Value))
			}
		case unix.IFLA_LINKINFO:
			ev.Veth = linkKind(a.Value) == "veth"
		case unix.IFLA_ADDRESS:
			h.mac = append([]byte(nil), a.Value...)
		case unix.IFLA_MTU:
			if len(a.Value) >= 4 {
				h.mtu = int(binary.NativeEndian.Uint32(a.Value))
			}
		case unix.IFLA_LINK:
			if len(a.Value) >= 4 {
				h.peer = int(int32(binary.NativeEndian.Uint32(a.Value)))
			}
		case unix.IFLA_LINK_NETNSID:
			if len(a.Value) >= 4 {
				h.netnsID = int(int32(binary.NativeEndian.Uint32(a.Value)))
			}
		}
	}
	if ev.Veth && !ev.Deleted {
		ev.host = h
	}
	return ev, true
}

// hostLink is what a veth's link message says of it, enough to resolve it
// as a port without reading the link again.
type hostLink struct {
	mac           []byte
	mtu           int
	peer, netnsID int
}

// link is the netlink.Link that ev and h describe.
func (h *hostLink) link(ev linkEvent) netlink.Link {
	return &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Index: ev.Index, Name: ev.Name, MasterIndex: ev.Master,
		HardwareAddr: h.mac, MTU: h.mtu, ParentIndex: h.peer, NetNsID: h.netnsID}}
}

// linkKind is IFLA_INFO_KIND inside an IFLA_LINKINFO attribute.
func linkKind(b []byte) string {
	kind := ""
	eachAttr(b, func(t uint16, v []byte) bool {
		if t == unix.IFLA_INFO_KIND {
			kind = cString(v)
			return false
		}
		return true
	})
	return kind
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// brportBlocked reads the flags of a bridge port message (a notice or a
// dump entry; attrs are its attributes after the ifinfomsg): whether the
// bridge keeps the port from reaching others (isolated or locked). A
// message it cannot read counts as blocked, the safe answer; one without
// flags says nothing of them.
func brportBlocked(attrs []byte) bool {
	blocked := false
	ok := eachAttr(attrs, func(t uint16, v []byte) bool {
		if t == unix.IFLA_PROTINFO {
			blocked = protinfoBlocked(v)
			return false
		}
		return true
	})
	return blocked || !ok
}

// protinfoBlocked reads IFLA_BRPORT_ISOLATED and IFLA_BRPORT_LOCKED.
func protinfoBlocked(b []byte) bool {
	blocked := false
	ok := eachAttr(b, func(t uint16, v []byte) bool {
		if (t == unix.IFLA_BRPORT_ISOLATED || t == unix.IFLA_BRPORT_LOCKED) && len(v) > 0 && v[0] != 0 {
			blocked = true
			return false
		}
		return true
	})
	return blocked || !ok
}

// eachAttr calls f with the type (flags masked off) and value of each
// netlink attribute in b, every length checked, until f returns false;
// it reports false if b ends in an attribute whose length is wrong.
func eachAttr(b []byte, f func(typ uint16, v []byte) bool) bool {
	for len(b) >= unix.SizeofRtAttr {
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		t := binary.NativeEndian.Uint16(b[2:4]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
		if l < unix.SizeofRtAttr || l > len(b) {
			return false
		}
		if !f(t, b[unix.SizeofRtAttr:l]) {
			return true
		}
		b = b[min(rtaAlign(l), len(b)):]
	}
	return true
}

func rtaAlign(l int) int { return (l + unix.RTA_ALIGNTO - 1) &^ (unix.RTA_ALIGNTO - 1) }
