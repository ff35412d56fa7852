package ctrl

import (
	"context"
	"log/slog"

	"golang.org/x/sys/unix"
)

// subscribeNetconf returns a channel that receives a value whenever the
// kernel announces an IPv6 netconf change (RTM_NEWNETCONF: forwarding,
// proxy_ndp and the like, for any interface), until ctx ends. Without the
// subscription the channel never fires and the caller's poll is all there
// is.
func subscribeNetconf(ctx context.Context) <-chan struct{} {
	return subscribeNetlink(ctx, "netconf", unix.NETLINK_ROUTE, unix.RTNLGRP_IPV6_NETCONF)
}

// subscribeNftables is the same for nftables ruleset changes (tables,
// chains and rules added or deleted: NFNLGRP_NFTABLES), which is where
// Debian's ip6tables (iptables-nft) writes too. Legacy ip6tables sends no
// events; the poll covers it.
func subscribeNftables(ctx context.Context) <-chan struct{} {
	return subscribeNetlink(ctx, "nftables", unix.NETLINK_NETFILTER, unix.NFNLGRP_NFTABLES)
}

// subscribeNetlink joins one multicast group of a netlink family and
// signals (coalesced) whenever a message arrives.
func subscribeNetlink(ctx context.Context, what string, family, group int) <-chan struct{} {
	out := make(chan struct{}, 1)
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, family)
	if err != nil {
		slog.Warn(what+" events unavailable; polling", "err", err)
		return out
	}
	sa := &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1 << (group - 1)}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		slog.Warn(what+" events unavailable; polling", "err", err)
		return out
	}
	// A receive timeout lets the reader notice ctx without a second fd.
	tv := unix.Timeval{Sec: 1}
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	go func() {
		defer unix.Close(fd)
		buf := make([]byte, 8192)
		for ctx.Err() == nil {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil || n <= 0 {
				// Timeouts, and ENOBUFS after a burst: the poll covers both.
				continue
			}
			select {
			case out <- struct{}{}:
			default:
			}
		}
	}()
	return out
}
