/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* IPv6 header parsing and address predicates. */
#ifndef V6DP_LIB_IPV6_H
#define V6DP_LIB_IPV6_H

#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "eth.h"

/*
 * ipv6_parse returns the IPv6 header that follows the Ethernet header, or
 * NULL when the frame is too short to hold one.
 */
static __always_inline struct ipv6hdr *ipv6_parse(void *data, void *data_end)
{
	struct ipv6hdr *ip6 = data + sizeof(struct ethhdr);

	if ((void *)(ip6 + 1) > data_end)
		return NULL;
	return ip6;
}

/*
 * ipv6_is_exthdr reports whether nexthdr names an extension header (RFC 8200
 * section 4, plus the ones IANA lists since). They are not walked: NDP never
 * carries them in practice and RFC 6980 forbids fragmented NDP.
 */
static __always_inline bool ipv6_is_exthdr(__u8 nexthdr)
{
	switch (nexthdr) {
	case IPPROTO_HOPOPTS:
	case IPPROTO_ROUTING:
	case IPPROTO_FRAGMENT:
	case IPPROTO_ESP:
	case IPPROTO_AH:
	case IPPROTO_DSTOPTS:
	case IPPROTO_MH:
	case 139: /* HIP, RFC 7401 */
	case 140: /* Shim6, RFC 5533 */
		return true;
	}
	return false;
}

static __always_inline bool ipv6_addr_is_multicast(const struct in6_addr *a)
{
	return a->s6_addr[0] == 0xff;
}

/* fe80::/10, RFC 4291 section 2.5.6. */
static __always_inline bool ipv6_addr_is_link_local(const struct in6_addr *a)
{
	return a->s6_addr[0] == 0xfe && (a->s6_addr[1] & 0xc0) == 0x80;
}

/* ::1, RFC 4291 section 2.5.3. */
static __always_inline bool ipv6_addr_is_loopback(const struct in6_addr *a)
{
	return (a->s6_addr32[0] | a->s6_addr32[1] | a->s6_addr32[2]) == 0 &&
	       a->s6_addr32[3] == bpf_htonl(1);
}

static __always_inline bool ipv6_addr_equal(const struct in6_addr *a, const struct in6_addr *b)
{
	return ((a->s6_addr32[0] ^ b->s6_addr32[0]) | (a->s6_addr32[1] ^ b->s6_addr32[1]) |
		(a->s6_addr32[2] ^ b->s6_addr32[2]) | (a->s6_addr32[3] ^ b->s6_addr32[3])) == 0;
}

static __always_inline bool ipv6_addr_is_any(const struct in6_addr *a)
{
	return (a->s6_addr32[0] | a->s6_addr32[1] | a->s6_addr32[2] | a->s6_addr32[3]) == 0;
}

/*
 * ipv6_is_solicited_node_of reports whether group is the solicited-node
 * multicast address of target: ff02::1:ff00:0/104 plus the target's low 24
 * bits (RFC 4291 section 2.7.1).
 */
static __always_inline bool ipv6_is_solicited_node_of(const struct in6_addr *group,
						      const struct in6_addr *target)
{
	return group->s6_addr32[0] == bpf_htonl(0xff020000) && group->s6_addr32[1] == 0 &&
	       group->s6_addr32[2] == bpf_htonl(0x00000001) && group->s6_addr[12] == 0xff &&
	       group->s6_addr[13] == target->s6_addr[13] &&
	       group->s6_addr[14] == target->s6_addr[14] &&
	       group->s6_addr[15] == target->s6_addr[15];
}

/*
 * ipv6_src_never_forwarded reports whether a router must not forward a
 * packet from a: link-local (RFC 4291 2.5.6), multicast (RFC 4291 2.7:
 * never a source), unspecified and loopback (RFC 4291 2.5.2-3). The kernel
 * drops such packets in ip6_forward; BPF leaves them to it.
 */
static __always_inline bool ipv6_src_never_forwarded(const struct in6_addr *a)
{
	return ipv6_addr_is_link_local(a) || ipv6_addr_is_multicast(a) || ipv6_addr_is_any(a) ||
	       ipv6_addr_is_loopback(a);
}

/* ff02::1, the all-nodes group: where a DAD defence goes (RFC 4861 7.2.4). */
static __always_inline void ipv6_set_all_nodes(struct in6_addr *a)
{
	a->s6_addr32[0] = bpf_htonl(0xff020000);
	a->s6_addr32[1] = 0;
	a->s6_addr32[2] = 0;
	a->s6_addr32[3] = bpf_htonl(1);
}

#endif /* V6DP_LIB_IPV6_H */
