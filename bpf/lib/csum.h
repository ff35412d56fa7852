/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Internet checksum (RFC 1071) for ICMPv6 (RFC 4443 section 2.3, RFC 8200
 * section 8.1). Words are added in host byte order: the one's-complement sum
 * is byte-order independent, so the folded result is stored back as loaded.
 */
#ifndef V6DP_LIB_CSUM_H
#define V6DP_LIB_CSUM_H

#include <linux/bpf.h>
#include <linux/in6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

/* csum_fold folds a 64-bit accumulator into a 16-bit one's-complement sum. */
static __always_inline __u16 csum_fold(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

static __always_inline __u64 csum_add_in6(__u64 sum, const struct in6_addr *a)
{
	return sum + a->s6_addr32[0] + a->s6_addr32[1] + a->s6_addr32[2] + a->s6_addr32[3];
}

/*
 * csum_ipv6_pseudo sums the IPv6 pseudo header: source, destination, 32-bit
 * upper-layer length, three zero bytes and the next header.
 */
static __always_inline __u64 csum_ipv6_pseudo(const struct in6_addr *saddr,
					      const struct in6_addr *daddr, __u32 len, __u8 nexthdr)
{
	__u64 sum = 0;

	sum = csum_add_in6(sum, saddr);
	sum = csum_add_in6(sum, daddr);
	sum += bpf_htonl(len);
	sum += bpf_htonl(nexthdr);
	return sum;
}

#endif /* V6DP_LIB_CSUM_H */
