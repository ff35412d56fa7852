/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The kernel's FIB, asked from BPF (bpf_fib_lookup). */
#ifndef V6DP_LIB_FIB_H
#define V6DP_LIB_FIB_H

#include <linux/bpf.h>
#include <linux/in6.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#ifndef AF_INET6
#define AF_INET6 10
#endif

/* Traffic class and flow label: the first word without the version. */
#define IPV6_FLOWINFO_MASK bpf_htonl(0x0FFFFFFF)

/*
 * fib_lookup_routed looks up the route for ip6 as the kernel would for a
 * packet of l3_len bytes arriving on iif (the forwarding sysctl of iif
 * applies, and l3_len is checked against the route's MTU). On SUCCESS
 * and NO_NEIGH it fills *oif and the next hop for bpf_redirect_neigh.
 * It returns the helper's result: < 0 for bad input, else
 * BPF_FIB_LKUP_RET_*.
 */
static __always_inline int fib_lookup_routed(void *ctx, const struct ipv6hdr *ip6, __u32 l3_len,
					     __u32 iif, struct bpf_redir_neigh *nh, __u32 *oif)
{
	struct bpf_fib_lookup p = {};
	int rc;

	p.family = AF_INET6;
	p.flowinfo = *(const __be32 *)ip6 & IPV6_FLOWINFO_MASK;
	p.l4_protocol = ip6->nexthdr;
	p.tot_len = l3_len;
	p.ifindex = iif;
	__builtin_memcpy(p.ipv6_src, &ip6->saddr, sizeof(p.ipv6_src));
	__builtin_memcpy(p.ipv6_dst, &ip6->daddr, sizeof(p.ipv6_dst));

	rc = bpf_fib_lookup(ctx, &p, sizeof(p), 0);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS || rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		*oif = p.ifindex;
		/* ipv6_dst now holds the gateway, or the destination if on-link. */
		nh->nh_family = AF_INET6;
		__builtin_memcpy(nh->ipv6_nh, p.ipv6_dst, sizeof(nh->ipv6_nh));
	}
	return rc;
}

#endif /* V6DP_LIB_FIB_H */
