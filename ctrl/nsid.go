package ctrl

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// nsidRoute reads links and addresses of other network namespaces by
// their namespace id (as this namespace numbers them), with no file or
// process of the namespace at hand: rtnetlink takes IFLA_TARGET_NETNSID
// and IFA_TARGET_NETNSID in requests since Linux 4.20. Strict checking
// is turned on for the socket: without it, an address dump ignores the
// target and silently lists this namespace's own addresses.
type nsidRoute struct {
	mu  sync.Mutex
	fd  int
	seq uint32
	buf []byte // receive buffer, reused; replies are copied out of it
}

// ErrNoTargetNetnsid means the kernel ignored a target namespace id (a
// kernel older than 4.20): the namespace-file route has to be used.
var ErrNoTargetNetnsid = errors.New("kernel ignores IFA_TARGET_NETNSID (needs Linux 4.20)")

func newNsidRoute() (*nsidRoute, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("rtnetlink socket: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_GET_STRICT_CHK, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("rtnetlink strict checking: %w", err)
	}
	// A dump of a namespace with hundreds of addresses is several
	// messages; a larger buffer saves wake-ups, not correctness.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("rtnetlink bind: %w", err)
	}
	return &nsidRoute{fd: fd}, nil
}

func (r *nsidRoute) Close() error { return unix.Close(r.fd) }

// do sends one request and returns the replies up to NLMSG_DONE (a dump)
// or the single answer. The caller holds r.mu.
func (r *nsidRoute) do(typ uint16, flags int, payload []byte) ([]syscall.NetlinkMessage, error) {
	r.seq++
	req := nl.NewNetlinkRequest(int(typ), flags)
	req.Seq = r.seq
	req.AddRawData(payload)
	if err := unix.Sendto(r.fd, req.Serialize(), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, err
	}
	var out []syscall.NetlinkMessage
	if r.buf == nil {
		r.buf = make([]byte, 64<<10)
	}
	buf := r.buf
	for {
		n, _, err := unix.Recvfrom(r.fd, buf, 0)
		if err != nil {
			return nil, err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			if m.Header.Seq != r.seq {
				continue // a late reply to an earlier request
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				// A dump that failed says so in its DONE message (a
				// strict dump of a gone interface: ENODEV).
				if len(m.Data) >= 4 {
					if e := int32(binary.NativeEndian.Uint32(m.Data)); e < 0 {
						return nil, unix.Errno(-e)
					}
				}
				if m.Header.Flags&unix.NLM_F_DUMP_INTR != 0 {
					return out, netlink.ErrDumpInterrupted
				}
				return out, nil
			case unix.NLMSG_ERROR:
				if len(m.Data) < 4 {
					return nil, errors.New("short netlink error")
				}
				if e := int32(binary.NativeEndian.Uint32(m.Data)); e != 0 {
					return nil, unix.Errno(-e)
				}
				return out, nil
			}
			// A copy: what is parsed from a reply (a MAC) must not pin
			// the buffer, nor change when it is reused (measured: 64 KiB
			// kept alive per endpoint otherwise).
			out = append(out, syscall.NetlinkMessage{Header: m.Header, Data: bytes.Clone(m.Data)})
			if flags&unix.NLM_F_DUMP != unix.NLM_F_DUMP && m.Header.Flags&unix.NLM_F_MULTI == 0 {
				return out, nil
			}
		}
	}
}

func attr(typ uint16, v []byte) []byte {
	return nl.NewRtAttr(int(typ), v).Serialize()
}

func s32(v int) []byte {
	b := make([]byte, 4)
	binary.NativeEndian.PutUint32(b, uint32(int32(v)))
	return b
}

// nsAddr is one IPv6 address of an interface in another namespace.
type nsAddr struct {
	Index int
	Addr  netip.Addr
	Bits  int
	Flags uint32 // IFA_F_*
}

// Addrs dumps the IPv6 addresses of one interface (index > 0) or of every
// interface (index 0) in the namespace nsid: one dump per call.
func (r *nsidRoute) Addrs(nsid, index int) ([]nsAddr, error) {
	return r.addrs(index, nsid, true)
}

// OwnAddrs dumps the IPv6 addresses of one interface of the caller's own
// namespace. Strict checking makes the kernel dump only that interface's
// (a plain dump reads every address of the host: at 10,000 ports, each
// with a link-local address until its IPv6 goes off, 10-60 ms). An
// interface that is gone is ENODEV.
func (r *nsidRoute) OwnAddrs(index int) ([]nsAddr, error) {
	return r.addrs(index, 0, false)
}

// addrs is one address dump, of interface index (0: all), in the namespace
// nsid if byNsid, else in the caller's own; an interrupted dump is tried
// again, up to ten times.
func (r *nsidRoute) addrs(index, nsid int, byNsid bool) ([]nsAddr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	payload := make([]byte, unix.SizeofIfAddrmsg)
	payload[0] = unix.AF_INET6
	binary.NativeEndian.PutUint32(payload[4:], uint32(index))
	if byNsid {
		payload = append(payload, attr(unix.IFA_TARGET_NETNSID, s32(nsid))...)
	}
	var msgs []syscall.NetlinkMessage
	var err error
	for try := 0; try < 10; try++ {
		if msgs, err = r.do(unix.RTM_GETADDR, unix.NLM_F_DUMP, payload); !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	var out []nsAddr
	for i := range msgs {
		a, target, ok := parseAddrMsg(&msgs[i])
		if !ok {
			continue
		}
		if byNsid && target != nsid {
			return nil, ErrNoTargetNetnsid
		}
		if index == 0 || a.Index == index {
			out = append(out, a)
		}
	}
	return out, nil
}

// parseAddrMsg reads an RTM_NEWADDR/RTM_DELADDR message; target is its
// IFA_TARGET_NETNSID (-1 when absent).
func parseAddrMsg(m *syscall.NetlinkMessage) (a nsAddr, target int, ok bool) {
	target = -1
	if (m.Header.Type != unix.RTM_NEWADDR && m.Header.Type != unix.RTM_DELADDR) || len(m.Data) < unix.SizeofIfAddrmsg {
		return a, target, false
	}
	if m.Data[0] != unix.AF_INET6 {
		return a, target, false
	}
	a.Bits = int(m.Data[1])
	a.Flags = uint32(m.Data[2])
	a.Index = int(binary.NativeEndian.Uint32(m.Data[4:8]))
	attrs, err := syscall.ParseNetlinkRouteAttr(m)
	if err != nil {
		return a, target, false
	}
	var local, address netip.Addr
	for _, at := range attrs {
		switch at.Attr.Type {
		case unix.IFA_ADDRESS:
			address, _ = netip.AddrFromSlice(at.Value)
		case unix.IFA_LOCAL:
			local, _ = netip.AddrFromSlice(at.Value)
		case unix.IFA_FLAGS:
			if len(at.Value) >= 4 {
				a.Flags = binary.NativeEndian.Uint32(at.Value)
			}
		case unix.IFA_TARGET_NETNSID:
			if len(at.Value) >= 4 {
				target = int(int32(binary.NativeEndian.Uint32(at.Value)))
			}
		}
	}
	// IPv6 puts the address in IFA_ADDRESS (IFA_LOCAL only on
	// point-to-point links, where IFA_ADDRESS is the peer).
	a.Addr = address
	if local.IsValid() {
		a.Addr = local
	}
	return a, target, a.Addr.IsValid()
}

// nsLink is what a port's far end contributes to its endpoint.
type nsLink struct {
	Name string
	MAC  []byte
	MTU  int
}

// Links dumps the links of the namespace nsid, by ifindex: one dump for
// every far end there, read as little as the endpoints need.
func (r *nsidRoute) Links(nsid int) (map[int]nsLink, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	payload := append(msg.Serialize(), attr(unix.IFLA_TARGET_NETNSID, s32(nsid))...)
	var msgs []syscall.NetlinkMessage
	var err error
	for try := 0; try < 10; try++ {
		if msgs, err = r.do(unix.RTM_GETLINK, unix.NLM_F_DUMP, payload); !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	out := make(map[int]nsLink, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		if m.Header.Type != unix.RTM_NEWLINK || len(m.Data) < unix.SizeofIfInfomsg {
			continue
		}
		attrs, err := syscall.ParseNetlinkRouteAttr(m)
		if err != nil {
			continue
		}
		var l nsLink
		target := -1
		for _, at := range attrs {
			switch at.Attr.Type {
			case unix.IFLA_IFNAME:
				l.Name = string(bytes.TrimRight(at.Value, "\x00"))
			case unix.IFLA_ADDRESS:
				l.MAC = bytes.Clone(at.Value)
			case unix.IFLA_MTU:
				if len(at.Value) >= 4 {
					l.MTU = int(binary.NativeEndian.Uint32(at.Value))
				}
			case unix.IFLA_TARGET_NETNSID:
				if len(at.Value) >= 4 {
					target = int(int32(binary.NativeEndian.Uint32(at.Value)))
				}
			}
		}
		if target != nsid {
			return nil, ErrNoTargetNetnsid
		}
		out[int(int32(binary.NativeEndian.Uint32(m.Data[4:8])))] = l
	}
	return out, nil
}
