/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* ICMPv6 header access. */
#ifndef V6DP_LIB_ICMP6_H
#define V6DP_LIB_ICMP6_H

#include <linux/bpf.h>
#include <linux/icmpv6.h>
#include <bpf/bpf_helpers.h>

#include "ipv6.h"

/* RFC 4861 section 4.3 and 4.4; the uapi headers do not define them. */
/* NDP message types, RFC 4861 section 4. */
#define ICMP6_ROUTER_SOLICIT 133
#define ICMP6_ROUTER_ADVERT 134
#define ICMP6_NEIGHBOR_SOLICIT 135
#define ICMP6_NEIGHBOR_ADVERT 136
#define ICMP6_REDIRECT 137

/*
 * icmp6_parse returns the ICMPv6 header that directly follows ip6, or NULL
 * when the frame ends before its first 4 bytes (type, code, checksum).
 */
static __always_inline struct icmp6hdr *icmp6_parse(struct ipv6hdr *ip6, void *data_end)
{
	struct icmp6hdr *icmp = (void *)(ip6 + 1);

	if ((void *)icmp + 4 > data_end)
		return NULL;
	return icmp;
}

#endif /* V6DP_LIB_ICMP6_H */
