/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Helpers for TC programs, where a packet is an skb. */
#ifndef V6DP_LIB_SKB_H
#define V6DP_LIB_SKB_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>

#include "fwd.h"

/*
 * Bytes a forwarding decision reads: Ethernet, IPv6 and the longest TCP
 * header (for the segment size of a GSO skb) or the NA target.
 */
#define SKB_FWD_HDR_LEN ((__u32)(sizeof(struct ethhdr) + sizeof(struct ipv6hdr) + 60))

/*
 * skb_pull_headers makes the first want bytes (at most the whole skb)
 * linear, so that direct packet access reaches them. Skbs from veths and
 * NICs have their headers linear already; this costs nothing then. On
 * failure the parse that follows finds the frame truncated.
 */
static __always_inline void skb_pull_headers(struct __sk_buff *skb, __u32 want)
{
	if (want > skb->len)
		want = skb->len;
	if (skb->data_end - skb->data < want)
		bpf_skb_pull_data(skb, want);
}

/*
 * skb_l3_seg_len returns the IPv6 length of the largest packet the skb
 * stands for on the wire. A GSO skb (GRO on receive, TSO from a local
 * socket) is many packets of gso_size payload each; comparing its whole
 * length with an MTU would send every one of them to the slow path, as
 * skb_gso_validate_network_len knows. Unknown GSO types count whole.
 */
static __always_inline __u32 skb_l3_seg_len(const struct __sk_buff *skb, const struct ipv6hdr *ip6,
					    void *data_end)
{
	__u32 len = skb->len - (__u32)sizeof(struct ethhdr);
	struct tcphdr *th;

	if (!skb->gso_size)
		return len;
	switch (ip6->nexthdr) {
	case IPPROTO_TCP:
		th = (void *)(ip6 + 1);
		if ((void *)(th + 1) > data_end)
			return len;
		return (__u32)sizeof(*ip6) + th->doff * 4 + skb->gso_size;
	case IPPROTO_UDP:
		return (__u32)(sizeof(*ip6) + sizeof(struct udphdr)) + skb->gso_size;
	}
	return len;
}

/*
 * skb_fwd_route is fwd_route for an skb. A CHECKSUM_COMPLETE skb->csum
 * (NICs report one) covers the IPv6 header, so the hop limit's word is
 * diffed into it; a stale value makes the receiver log a checksum fault.
 * bpf_csum_update does nothing for other skbs.
 */
static __always_inline void skb_fwd_route(struct __sk_buff *skb, struct ethhdr *eth,
					  struct ipv6hdr *ip6, const __u8 dst[ETH_ALEN],
					  const __u8 src[ETH_ALEN])
{
	/* payload length, next header and hop limit: one aligned word. */
	__be32 *word = (__be32 *)ip6 + 1;
	__be32 old = *word, new;

	fwd_route(eth, ip6, dst, src);
	new = *word;
	bpf_csum_update(skb, bpf_csum_diff(&old, sizeof(old), &new, sizeof(new), 0));
}

#endif /* V6DP_LIB_SKB_H */
