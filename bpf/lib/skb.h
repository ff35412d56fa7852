/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Helpers for TC programs, where a packet is an skb. */
#ifndef V6DP_LIB_SKB_H
#define V6DP_LIB_SKB_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/in.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>

#include "v6dp.h"
#include "fwd.h"
#include "ipv6.h"
#include "maps.h"

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
 * skb_hop_limit_dec lowers the hop limit of a forwarded packet. A
 * CHECKSUM_COMPLETE skb->csum (NICs report one) covers the IPv6 header, so
 * the hop limit's word is diffed into it; a stale value makes the receiver
 * log a checksum fault. bpf_csum_update does nothing for other skbs.
 */
static __always_inline void skb_hop_limit_dec(struct __sk_buff *skb, struct ipv6hdr *ip6)
{
	/* payload length, next header and hop limit: one aligned word. */
	__be32 *word = (__be32 *)ip6 + 1;
	__be32 old = *word, new;

	ip6->hop_limit--;
	new = *word;
	bpf_csum_update(skb, bpf_csum_diff(&old, sizeof(old), &new, sizeof(new), 0));
}

/* skb_fwd_route is fwd_route for an skb, keeping skb->csum true. */
static __always_inline void skb_fwd_route(struct __sk_buff *skb, struct ethhdr *eth,
					  struct ipv6hdr *ip6, const __u8 dst[ETH_ALEN],
					  const __u8 src[ETH_ALEN])
{
	fwd_set_macs(eth, dst, src);
	skb_hop_limit_dec(skb, ip6);
}

/*
 * skb_fwd_peer delivers the skb to the local endpoint ep, straight to the
 * ingress of its eth0 across the namespace, without the bridge and the
 * backlog queue (bpf_redirect_peer). The redirect fails later, dropping
 * the skb, if the veth went or is down: never into another device.
 *
 * router_mac set means routed delivery, rewritten by skb_fwd_route with it
 * as source; NULL means switched, the frame goes as it is. set_host marks
 * the skb PACKET_HOST first, for callers whose skb may be PACKET_OTHERHOST:
 * kernels before 6.15 keep pkt_type over a peer redirect, and the
 * endpoint's stack drops such an skb. done counts the delivery.
 *
 * Anything over the endpoint's MTU goes to the kernel (TC_ACT_UNSPEC):
 * routed, it sends the Packet Too Big (RFC 8201, RFC 4443 3.2); switched,
 * the veth drops it, as without v6dp. So does a failed helper.
 */
static __always_inline int skb_fwd_peer(struct __sk_buff *skb, const struct endpoint_info *ep,
					const __u8 *router_mac, bool set_host, enum counter_id done)
{
	void *data = (void *)(long)skb->data, *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6;

	ip6 = ipv6_parse(data, data_end);
	if (!ip6) {
		counter_inc(CNT_ERROR);
		return TC_ACT_UNSPEC;
	}
	if (skb_l3_seg_len(skb, ip6, data_end) > ep->mtu) {
		counter_inc(CNT_FWD_PASS_MTU);
		return TC_ACT_UNSPEC;
	}
	if (router_mac)
		skb_fwd_route(skb, eth, ip6, ep->mac, router_mac);
	if (set_host && bpf_skb_change_type(skb, PACKET_HOST)) {
		counter_inc(CNT_ERROR);
		return TC_ACT_UNSPEC;
	}
	counter_inc(done);
	return bpf_redirect_peer(ep->ifindex, 0);
}

#endif /* V6DP_LIB_SKB_H */
