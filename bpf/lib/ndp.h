/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Neighbor Discovery (RFC 4861): validating a Neighbor Solicitation and
 * turning it into the proxy Neighbor Advertisement that answers it. This is
 * the one place where the NS-to-NA rewrite lives; the entry programs only
 * resize the frame and send it back.
 */
#ifndef V6DP_LIB_NDP_H
#define V6DP_LIB_NDP_H

#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ipv6.h>
#include <linux/icmpv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "v6dp.h"
#include "csum.h"
#include "eth.h"
#include "icmp6.h"
#include "ipv6.h"

/* Option types, RFC 4861 section 4.6.1. */
#define NDP_OPT_SOURCE_LL 1
#define NDP_OPT_TARGET_LL 2

/* NS and NA share this layout: ICMPv6 header, then the target address. */
struct ndp_msg {
	struct icmp6hdr hdr;
	struct in6_addr target;
};

/* RFC 4861 7.1.1: an NS is at least 24 bytes (header + target). */
#define NDP_NS_MIN_LEN ((__u32)sizeof(struct ndp_msg))
/*
 * Longest NS validated here. The checksum is summed in 8-byte steps by a
 * bounded loop; real NSes are 24 to 40 bytes, longer ones go to the kernel.
 */
#define NDP_NS_MAX_LEN 512
/* The answer: NA header and target plus one 8-byte TLLA option. */
#define NDP_NA_LEN ((__u32)sizeof(struct ndp_msg) + 8)
/* The whole answer frame: 14 + 40 + 24 + 8 = 86 bytes. */
#define NDP_NA_FRAME_LEN ((__u32)(sizeof(struct ethhdr) + sizeof(struct ipv6hdr)) + NDP_NA_LEN)

/* NA flags in the first word after the checksum, RFC 4861 section 4.4. */
#define NDP_NA_F_ROUTER 0x80000000U
#define NDP_NA_F_SOLICITED 0x40000000U

/*
 * What the answer needs from a valid NS. It is copied out of the frame
 * because resizing the frame invalidates every packet pointer.
 */
struct ndp_ns {
	struct in6_addr src;
	struct in6_addr target;
	__u8 eth_src[ETH_ALEN];
	/* Source ::, i.e. Duplicate Address Detection (RFC 4862 5.4.2). */
	bool dad;
};

/*
 * ndp_ns_validate applies RFC 4861 section 7.1.1 to the NS at icmp and fills
 * ns. It returns 0 for a valid NS, else the counter id for passing it on:
 * CNT_PASS_TRUNCATED when the frame is shorter than its headers claim,
 * CNT_NS_MALFORMED when a check fails (the kernel then drops it itself).
 */
static __always_inline int ndp_ns_validate(void *data, void *data_end, struct ethhdr *eth,
					   struct ipv6hdr *ip6, struct icmp6hdr *icmp,
					   struct ndp_ns *ns)
{
	struct ndp_msg *msg = (void *)icmp;
	__u32 plen = bpf_ntohs(ip6->payload_len);
	__u32 frame_len = data_end - data;
	__u32 nwords, next_opt = NDP_NS_MIN_LEN / 8;
	bool has_sllao = false;
	__u64 sum;
	__u32 i;

	if ((void *)(msg + 1) > data_end)
		return CNT_PASS_TRUNCATED;
	/* Trailing bytes (Ethernet padding) are allowed, as in ipv6_rcv. */
	if (sizeof(*eth) + sizeof(*ip6) + plen > frame_len)
		return CNT_PASS_TRUNCATED;
	/* Hop limit 255 proves the NS was not forwarded by a router. */
	if (ip6->hop_limit != 255 || icmp->icmp6_code != 0 || plen < NDP_NS_MIN_LEN)
		return CNT_NS_MALFORMED;
	/*
	 * Options are whole 8-byte units and must end exactly at the end of
	 * the message (the kernel's ndisc_parse_options rejects a remainder).
	 */
	if (plen > NDP_NS_MAX_LEN || (plen & 7))
		return CNT_NS_MALFORMED;
	nwords = plen / 8;

	/*
	 * One pass over the message in 8-byte words: sum it for the checksum
	 * and, at each option boundary, check the option. The bound is a
	 * constant so the verifier sees a finite loop.
	 */
	sum = csum_ipv6_pseudo(&ip6->saddr, &ip6->daddr, plen, IPPROTO_ICMPV6);
	for (i = 0; i < NDP_NS_MAX_LEN / 8; i++) {
		__u32 *w = (void *)icmp + i * 8;
		__u8 *opt = (void *)w;

		if (i >= nwords)
			break;
		if ((void *)(w + 2) > data_end)
			return CNT_PASS_TRUNCATED;
		sum += w[0];
		sum += w[1];
		if (i != next_opt)
			continue;
		/* A zero length would loop forever in a receiver. */
		if (opt[1] == 0)
			return CNT_NS_MALFORMED;
		if (opt[0] == NDP_OPT_SOURCE_LL)
			has_sllao = true;
		next_opt += opt[1];
	}
	if (next_opt != nwords)
		return CNT_NS_MALFORMED;
	/* Summing a correct message including its checksum gives 0xffff. */
	if (csum_fold(sum) != 0xffff)
		return CNT_NS_MALFORMED;
	if (ipv6_addr_is_multicast(&msg->target))
		return CNT_NS_MALFORMED;
	/*
	 * The answer goes back to the NS source: a multicast or loopback
	 * source (RFC 4291 2.7, 2.5.3), or a group Ethernet source, would make
	 * it a reflection, never an answer.
	 */
	if (ipv6_addr_is_multicast(&ip6->saddr) || ipv6_addr_is_loopback(&ip6->saddr) ||
	    (eth->h_source[0] & 1))
		return CNT_NS_MALFORMED;

	ns->dad = ipv6_addr_is_any(&ip6->saddr);
	/*
	 * A DAD probe goes to the target's solicited-node group and has no
	 * SLLAO: there is no address to cache it under (RFC 4861 7.1.1).
	 */
	if (ns->dad && (has_sllao || !ipv6_is_solicited_node_of(&ip6->daddr, &msg->target)))
		return CNT_NS_MALFORMED;

	ns->src = ip6->saddr;
	ns->target = msg->target;
	__builtin_memcpy(ns->eth_src, eth->h_source, ETH_ALEN);
	return 0;
}

/*
 * ndp_na_build writes the proxy NA answering ns over the frame at data,
 * which the caller has resized to exactly NDP_NA_FRAME_LEN bytes. It returns
 * 0, or -1 if the frame is shorter than that.
 *
 * RFC 4861 7.2.4 and 7.2.8: the answer goes to the NS source, or to ff02::1
 * with S=0 for DAD; O=0 because a proxy must not override the real owner's
 * own answer; R says the host routes for its endpoints; a TLLA option is
 * always included (mandatory for a multicast NS, harmless for unicast).
 */
static __always_inline int ndp_na_build(void *data, void *data_end, const struct ndp_ns *ns,
					const struct uplink_config *cfg)
{
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6 = (void *)(eth + 1);
	struct ndp_msg *na = (void *)(ip6 + 1);
	__u8 *opt = (void *)(na + 1);
	__u32 flags = 0, *w = (void *)na;
	__u64 sum;

	if ((void *)(opt + 8) > data_end)
		return -1;

	if (ns->dad)
		eth_set_all_nodes(eth->h_dest);
	else
		__builtin_memcpy(eth->h_dest, ns->eth_src, ETH_ALEN);
	__builtin_memcpy(eth->h_source, cfg->mac, ETH_ALEN);
	eth->h_proto = bpf_htons(ETH_P_IPV6);

	/* Version 6, traffic class 0, flow label 0. */
	*(__be32 *)ip6 = bpf_htonl(0x60000000);
	ip6->payload_len = bpf_htons(NDP_NA_LEN);
	ip6->nexthdr = IPPROTO_ICMPV6;
	ip6->hop_limit = 255;
	if (cfg->flags & UPLINK_F_NA_SRC_LL)
		__builtin_memcpy(&ip6->saddr, cfg->link_local, sizeof(ip6->saddr));
	else
		ip6->saddr = ns->target;
	if (ns->dad)
		ipv6_set_all_nodes(&ip6->daddr);
	else
		ip6->daddr = ns->src;

	if (cfg->flags & UPLINK_F_ROUTER)
		flags |= NDP_NA_F_ROUTER;
	if (!ns->dad)
		flags |= NDP_NA_F_SOLICITED;
	na->hdr.icmp6_type = ICMP6_NEIGHBOR_ADVERT;
	na->hdr.icmp6_code = 0;
	na->hdr.icmp6_cksum = 0;
	na->hdr.icmp6_dataun.un_data32[0] = bpf_htonl(flags);
	na->target = ns->target;

	opt[0] = NDP_OPT_TARGET_LL;
	opt[1] = 1; /* in units of 8 bytes */
	__builtin_memcpy(opt + 2, cfg->mac, ETH_ALEN);

	/* The layout is fixed, so the full checksum is a fixed 32-byte sum. */
	sum = csum_ipv6_pseudo(&ip6->saddr, &ip6->daddr, NDP_NA_LEN, IPPROTO_ICMPV6);
	sum += w[0] + (__u64)w[1] + w[2] + w[3] + w[4] + w[5] + w[6] + w[7];
	na->hdr.icmp6_cksum = ~csum_fold(sum);
	return 0;
}

#endif /* V6DP_LIB_NDP_H */
