/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Forwarding rules shared by the uplink and endpoint programs: what BPF may
 * forward and the one rewrite a forwarded packet gets. Anything a router
 * has to answer with an ICMPv6 error (hop limit, MTU) is left to the kernel,
 * so traceroute and Path MTU Discovery see exactly the kernel's answers.
 */
#ifndef V6DP_LIB_FWD_H
#define V6DP_LIB_FWD_H

#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in6.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>

#include "v6dp.h"

/* RFC 4861 section 4: Router Solicitation (133) to Redirect (137). */
#define ICMP6_NDP_FIRST 133
#define ICMP6_NDP_LAST 137

/*
 * icmp6_is_ndp reports whether type is a Neighbor Discovery message. The
 * kernel hands NDP for a proxied address to its own input instead of
 * forwarding it (ip6_forward_proxy_check), so BPF passes it too.
 */
static __always_inline bool icmp6_is_ndp(__u8 type)
{
	return type >= ICMP6_NDP_FIRST && type <= ICMP6_NDP_LAST;
}

static __always_inline bool mac_equal(const __u8 a[ETH_ALEN], const __u8 b[ETH_ALEN])
{
	return *(const __u32 *)a == *(const __u32 *)b &&
	       *(const __u16 *)(a + 4) == *(const __u16 *)(b + 4);
}

/*
 * fwd_hop_limit_ok reports whether a router may forward the packet: one
 * with hop limit 1 or 0 must be discarded with a Time Exceeded (RFC 8200
 * section 3, RFC 4443 section 3.3), which the kernel sends.
 */
static __always_inline bool fwd_hop_limit_ok(const struct ipv6hdr *ip6)
{
	return ip6->hop_limit > 1;
}

/* fwd_set_macs addresses a routed frame: the next hop's MAC, from the router's. */
static __always_inline void fwd_set_macs(struct ethhdr *eth, const __u8 dst[ETH_ALEN],
					 const __u8 src[ETH_ALEN])
{
	__builtin_memcpy(eth->h_dest, dst, ETH_ALEN);
	__builtin_memcpy(eth->h_source, src, ETH_ALEN);
}

/*
 * fwd_route rewrites a frame for routed delivery: the next hop's MAC as
 * destination, the router's as source, hop limit minus one. Neither MACs
 * nor the hop limit are covered by a transport checksum (the hop limit is
 * not in the IPv6 pseudo-header), so no checksum changes.
 */
static __always_inline void fwd_route(struct ethhdr *eth, struct ipv6hdr *ip6,
				      const __u8 dst[ETH_ALEN], const __u8 src[ETH_ALEN])
{
	fwd_set_macs(eth, dst, src);
	ip6->hop_limit--;
}

#endif /* V6DP_LIB_FWD_H */
