//go:build ignore
/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * tc_endpoint runs at the ingress of each endpoint's host-side veth (TCX or
 * clsact), on everything the endpoint sends. It drops what the endpoint
 * sends from an address that is not its own (source address validation,
 * BCP 38 / RFC 8704 at the first hop), delivers to another local endpoint
 * straight into that endpoint's eth0, sends routed traffic off-host out of
 * the uplink, and leaves the rest to the bridge and the kernel. It shares
 * the uplink programs' maps through their pins.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "v6dp.h"
#include "lib/eth.h"
#include "lib/fib.h"
#include "lib/fwd.h"
#include "lib/icmp6.h"
#include "lib/ipv6.h"
#include "lib/maps.h"
#include "lib/ndp.h"
#include "lib/skb.h"

/* What the endpoint program does with a frame. */
enum egress_action {
	EGRESS_PASS,
	EGRESS_DROP,
	/* Routed to another local endpoint: rewrite, then into its eth0. */
	EGRESS_LOCAL_ROUTED,
	/* Switched to another local endpoint (on-link, its own MAC): as is. */
	EGRESS_LOCAL_SWITCHED,
	/* Routed elsewhere: FIB lookup. */
	EGRESS_ROUTE,
};

/* The result of classifying one frame. */
struct egress_pkt {
	/* The destination endpoint, for EGRESS_LOCAL_*. */
	const struct endpoint_info *ep;
	/* Why the frame is passed or dropped. */
	enum counter_id reason;
};

static __always_inline enum egress_action egress_verdict(struct egress_pkt *pkt,
							 enum egress_action action,
							 enum counter_id reason)
{
	pkt->reason = reason;
	return action;
}

/*
 * egress_addr_owned reports whether the endpoint behind the port ifindex
 * may use address a: one of its own live addresses (the endpoints map says
 * which port owns each), or link-local, which the kernel keeps on the link
 * anyway.
 */
static __always_inline bool egress_addr_owned(const struct in6_addr *a, __u32 ifindex)
{
	const struct endpoint_info *own;

	if (ipv6_addr_is_link_local(a))
		return true;
	own = endpoint_lookup(a->s6_addr);
	return own && own->ifindex == ifindex;
}

/*
 * egress_source_ok is source address validation: the source must be an
 * address the endpoint owns. The unspecified address is allowed for ICMPv6
 * and hop-by-hop packets only: Duplicate Address Detection (RFC 4862
 * 5.4.2) and MLD reports (RFC 3810 5.2.13, behind a Router Alert) are sent
 * from it.
 */
static __always_inline bool egress_source_ok(const struct ipv6hdr *ip6, __u32 ifindex)
{
	if (ipv6_addr_is_any(&ip6->saddr))
		return ip6->nexthdr == IPPROTO_ICMPV6 || ip6->nexthdr == IPPROTO_HOPOPTS;
	return egress_addr_owned(&ip6->saddr, ifindex);
}

/*
 * The same rule applies to the target of a Neighbor Advertisement: an
 * endpoint may advertise only its own addresses, so it cannot take over a
 * neighbour's address on the bridge with a spoofed NA sent from its own
 * link-local address.
 */
static __always_inline bool egress_na_target_ok(const struct ndp_msg *na, __u32 ifindex)
{
	return egress_addr_owned(&na->target, ifindex);
}

static __always_inline enum egress_action egress_classify(void *data, void *data_end,
							  __u32 ifindex,
							  const struct uplink_config *cfg,
							  struct egress_pkt *pkt)
{
	const struct endpoint_info *ep;
	struct icmp6hdr *icmp = NULL;
	struct ipv6hdr *ip6;
	struct ethhdr *eth;
	struct ndp_msg *na;
	bool local;

	eth = eth_parse(data, data_end);
	if (!eth)
		return egress_verdict(pkt, EGRESS_PASS, CNT_PASS_TRUNCATED);
	/* v6dp validates and forwards IPv6 only; IPv4 and ARP stay the kernel's. */
	if (eth->h_proto != bpf_htons(ETH_P_IPV6))
		return egress_verdict(pkt, EGRESS_PASS, CNT_PASS_NOT_IPV6);
	ip6 = ipv6_parse(data, data_end);
	if (!ip6)
		return egress_verdict(pkt, EGRESS_PASS, CNT_PASS_TRUNCATED);
	/* ipv6_rcv drops it; nothing to validate. */
	if (ip6->version != 6)
		return egress_verdict(pkt, EGRESS_PASS, CNT_PASS_NOT_IPV6);

	if (!egress_source_ok(ip6, ifindex))
		return egress_verdict(pkt, EGRESS_DROP, CNT_EGRESS_SPOOF_DROP);
	if (ip6->nexthdr == IPPROTO_ICMPV6) {
		icmp = icmp6_parse(ip6, data_end);
		if (!icmp)
			return egress_verdict(pkt, EGRESS_PASS, CNT_PASS_TRUNCATED);
		if (icmp->icmp6_type == ICMP6_NEIGHBOR_ADVERT) {
			na = (void *)icmp;
			if ((void *)(na + 1) > data_end)
				return egress_verdict(pkt, EGRESS_PASS, CNT_PASS_TRUNCATED);
			if (!egress_na_target_ok(na, ifindex))
				return egress_verdict(pkt, EGRESS_DROP, CNT_EGRESS_SPOOF_DROP);
		}
		/* NDP, also unicast, is the bridge's and the kernel's business. */
		if (icmp6_is_ndp(icmp->icmp6_type))
			return egress_verdict(pkt, EGRESS_PASS, CNT_EGRESS_PASS);
	}
	/* Multicast and link-local destinations stay on the bridge. */
	if (ipv6_addr_is_multicast(&ip6->daddr) || ipv6_addr_is_link_local(&ip6->daddr))
		return egress_verdict(pkt, EGRESS_PASS, CNT_EGRESS_PASS);
	if (ip6->nexthdr == IPPROTO_HOPOPTS)
		return egress_verdict(pkt, EGRESS_PASS, CNT_PASS_EXTHDR);

	ep = endpoint_lookup(ip6->daddr.s6_addr);
	/* A destination that is only proxied keeps the kernel's forwarding. */
	local = ep && (ep->flags & ENDPOINT_F_FORWARD);
	/*
	 * A frame for the bridge's MAC is one the kernel would route; any
	 * other unicast MAC is one the bridge would switch. Endpoints on the
	 * same prefix reach each other switched (the prefix is on-link on
	 * their eth0), so that case keeps MACs and hop limit as they are.
	 */
	if (!mac_equal(eth->h_dest, cfg->bridge_mac)) {
		if (local && mac_equal(eth->h_dest, ep->mac)) {
			pkt->ep = ep;
			return EGRESS_LOCAL_SWITCHED;
		}
		return egress_verdict(pkt, EGRESS_PASS, CNT_EGRESS_PASS);
	}
	if (!fwd_hop_limit_ok(ip6))
		return egress_verdict(pkt, EGRESS_PASS, CNT_FWD_PASS_HOPLIMIT);
	if (local) {
		pkt->ep = ep;
		return EGRESS_LOCAL_ROUTED;
	}
	/* Ours but only proxied: the kernel forwards it. */
	if (ep)
		return egress_verdict(pkt, EGRESS_PASS, CNT_EGRESS_PASS);
	return EGRESS_ROUTE;
}

/*
 * egress_local hands the skb to the destination endpoint's eth0, as the
 * bridge and veth would but without them: rewritten when routed, as it is
 * when switched. The skb arrived for another host's MAC (PACKET_OTHERHOST
 * on the veth), so skb_fwd_peer sets PACKET_HOST.
 */
static __always_inline int egress_local(struct __sk_buff *skb, const struct egress_pkt *pkt,
					const struct uplink_config *cfg, bool routed)
{
	return skb_fwd_peer(skb, pkt->ep, routed ? cfg->bridge_mac : NULL, true, CNT_EGRESS_LOCAL);
}

/*
 * egress_route sends routed traffic for elsewhere out of the uplink, after
 * the kernel's own FIB lookup (routes, rules, MTU), with the L2 header
 * from the kernel's neighbour table. Anything the lookup does not clear
 * for the uplink goes to the kernel, which answers with the ICMPv6 error
 * or delivers locally.
 */
static __always_inline int egress_route(struct __sk_buff *skb, const struct uplink_config *cfg)
{
	void *data = (void *)(long)skb->data, *data_end = (void *)(long)skb->data_end;
	struct bpf_redir_neigh nh;
	struct ipv6hdr *ip6;
	__u32 oif;
	int rc;

	ip6 = ipv6_parse(data, data_end);
	if (!ip6) {
		counter_inc(CNT_ERROR);
		return TC_ACT_UNSPEC;
	}
	rc = fib_lookup_routed(skb, ip6, skb_l3_seg_len(skb, ip6, data_end), cfg->bridge_ifindex,
			       &nh, &oif);
	/*
	 * SUCCESS and NO_NEIGH both go to bpf_redirect_neigh: it transmits
	 * through the neighbour entry, so a missing one is resolved (the
	 * packet queued meanwhile) and a stale one re-probed, as for the
	 * kernel's own forwarding. The other results (local destination,
	 * unreachable, prohibited, FRAG_NEEDED, forwarding off, errors) are
	 * the kernel's to answer.
	 */
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH) {
		counter_inc(CNT_EGRESS_PASS_FIB);
		return TC_ACT_UNSPEC;
	}
	/* Only the uplink: other devices (the bridge itself, tunnels) need the kernel. */
	if (oif != cfg->ifindex) {
		counter_inc(CNT_EGRESS_PASS_FIB);
		return TC_ACT_UNSPEC;
	}
	/* Re-derived: the helper call ends the verifier's knowledge of ip6. */
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	ip6 = ipv6_parse(data, data_end);
	if (!ip6) {
		counter_inc(CNT_ERROR);
		return TC_ACT_UNSPEC;
	}
	/* The MACs are the neighbour layer's; only the hop limit here. */
	skb_hop_limit_dec(skb, ip6);
	counter_inc(CNT_EGRESS_FIB);
	return bpf_redirect_neigh(oif, &nh, sizeof(nh), 0);
}

/*
 * Passing returns TC_ACT_UNSPEC (TCX_NEXT), like tc_uplink: other programs
 * on the port still run; with none left the bridge takes the frame.
 */
SEC("tc")
int tc_endpoint(struct __sk_buff *skb)
{
	const struct uplink_config *cfg;
	struct egress_pkt pkt = {};
	enum egress_action action;

	cfg = uplink_config_get();
	if (!cfg) {
		counter_inc(CNT_EGRESS_DISABLED);
		return TC_ACT_UNSPEC;
	}
	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		skb_pull_headers(skb, SKB_FWD_HDR_LEN);

	action = egress_classify((void *)(long)skb->data, (void *)(long)skb->data_end,
				 skb->ifindex, cfg, &pkt);
	switch (action) {
	case EGRESS_DROP:
		counter_inc(pkt.reason);
		return TC_ACT_SHOT;
	case EGRESS_LOCAL_ROUTED:
		return egress_local(skb, &pkt, cfg, true);
	case EGRESS_LOCAL_SWITCHED:
		return egress_local(skb, &pkt, cfg, false);
	case EGRESS_ROUTE:
		return egress_route(skb, cfg);
	case EGRESS_PASS:
		break;
	}
	counter_inc(pkt.reason);
	return TC_ACT_UNSPEC;
}

char __license[] SEC("license") = "Dual BSD/GPL";
