//go:build ignore
/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Programs for the uplink's ingress: xdp_uplink (XDP, native or generic)
 * and tc_uplink (TCX or clsact ingress), one object sharing its maps. Both
 * answer Neighbor Solicitations for live endpoints in place, forward
 * packets for forwarding endpoints straight into their veth, and pass
 * everything else to the kernel. Classification is shared; resizing,
 * sending back and redirecting differ between the two hooks.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "v6dp.h"
#include "lib/eth.h"
#include "lib/fwd.h"
#include "lib/icmp6.h"
#include "lib/ipv6.h"
#include "lib/maps.h"
#include "lib/ndp.h"
#include "lib/ratelimit.h"
#include "lib/skb.h"

/*
 * Emit the flag enums into BTF so bpf2go generates them for Go. The section
 * is neither .data nor .bss, so the loader creates no map for it.
 */
const enum endpoint_flags *btf_endpoint_flags SEC(".v6dp.btf") __attribute__((unused));
const enum uplink_flags *btf_uplink_flags SEC(".v6dp.btf") __attribute__((unused));
const enum port_flags *btf_port_flags SEC(".v6dp.btf") __attribute__((unused));
const enum network_flags *btf_network_flags SEC(".v6dp.btf") __attribute__((unused));
const enum v6dp_limits *btf_v6dp_limits SEC(".v6dp.btf") __attribute__((unused));

/* What an uplink program does with a frame. */
enum uplink_action {
	UPLINK_PASS,
	UPLINK_DROP,
	UPLINK_NDP_REPLY,
	/* Into the endpoint's veth; the hook still checks the MTU. */
	UPLINK_FORWARD,
};

/* The hook a classification runs in: its jobs are in uplink_config.flags. */
enum uplink_hook {
	HOOK_XDP,
	HOOK_TC,
};

/* The result of classifying one frame. */
struct uplink_pkt {
	/* Valid for UPLINK_NDP_REPLY. */
	struct ndp_ns ns;
	/* The target (UPLINK_NDP_REPLY) or destination (UPLINK_FORWARD) endpoint. */
	const struct endpoint_info *ep;
	/* The destination endpoint's network, for UPLINK_FORWARD. */
	const struct network_info *net;
	/* The uplink the frame came in on, and its slot. */
	const struct uplink_config *cfg;
	__u32 slot;
	/* Why the frame is passed or dropped; CNT_MAX: another hook's job. */
	enum counter_id reason;
};

static __always_inline enum uplink_action uplink_verdict(struct uplink_pkt *pkt,
							 enum uplink_action action,
							 enum counter_id reason)
{
	pkt->reason = reason;
	return action;
}

static __always_inline enum uplink_action uplink_pass(struct uplink_pkt *pkt,
						      enum counter_id reason)
{
	return uplink_verdict(pkt, UPLINK_PASS, reason);
}

static __always_inline bool uplink_has_job(const struct uplink_config *cfg, enum uplink_hook hook,
					   __u32 xdp_job, __u32 tc_job)
{
	return cfg->flags & (hook == HOOK_XDP ? xdp_job : tc_job);
}

/*
 * uplink_for_us reports whether the frame is addressed to the uplink: its
 * own MAC, or for an NS (dst_mcast) the MAC of the IPv6 group it is sent
 * to. The kernel drops frames for other hosts' MACs (PACKET_OTHERHOST) and
 * never forwards a unicast packet that came in a broadcast or multicast
 * frame; BPF must not act on them either.
 */
static __always_inline bool uplink_for_us(const struct ethhdr *eth, const struct ipv6hdr *ip6,
					  const struct uplink_config *cfg)
{
	if (mac_equal(eth->h_dest, cfg->mac))
		return true;
	return ipv6_addr_is_multicast(&ip6->daddr) &&
	       eth_is_ipv6_mcast_of(eth->h_dest, ip6->daddr.s6_addr);
}

/* uplink_classify_ns decides between answering an NS, passing and dropping it. */
static __always_inline enum uplink_action uplink_classify_ns(void *data, void *data_end,
							     struct ethhdr *eth,
							     struct ipv6hdr *ip6,
							     struct icmp6hdr *icmp,
							     struct uplink_pkt *pkt)
{
	struct endpoint_info *ep;
	int ret;

	ret = ndp_ns_validate(data, data_end, eth, ip6, icmp, &pkt->ns);
	if (ret)
		return uplink_pass(pkt, ret);
	if (!uplink_for_us(eth, ip6, pkt->cfg))
		return uplink_pass(pkt, CNT_FWD_PASS_MAC);
	/*
	 * Only NS that would be acted on are charged: a routed or malformed
	 * one (the kernel drops it for free) must not use up the buckets the
	 * router's own NS need.
	 */
	if (!ns_admit(&ip6->saddr, eth->h_source))
		return uplink_verdict(pkt, UPLINK_DROP, CNT_NS_RATE_LIMITED);
	/* Never answer for an address that is not a live endpoint. */
	ep = endpoint_lookup(pkt->ns.target.s6_addr);
	if (!ep || !(ep->flags & ENDPOINT_F_PROXY))
		return uplink_pass(pkt, CNT_NS_NOT_LIVE);
	/*
	 * Nor for one whose container has gone while no daemon ran. Dropped,
	 * not passed: the kernel's proxy entry for it is as stale as the map
	 * entry until a daemon prunes both, and would answer.
	 */
	if (!port_present(ep->ifindex))
		return uplink_verdict(pkt, UPLINK_DROP, CNT_NS_PORT_GONE);
	/*
	 * The kernel answers on an uplink only for its own proxy entries:
	 * those of the networks on that uplink.
	 */
	if (network_uplink(ep->net) != pkt->slot)
		return uplink_pass(pkt, CNT_NS_OTHER_UPLINK);
	/*
	 * The kernel's answer meets the host's firewall (the NS at prerouting
	 * and input, the NA at output and postrouting); an answer from here
	 * would skip it. While rules sit there, or no daemon has confirmed
	 * lately that none do, the kernel answers from its proxy entries, or
	 * not, as its rules say. DAD defences included.
	 */
	if (pkt->cfg->flags & UPLINK_F_NDP_FILTERED)
		return uplink_pass(pkt, CNT_NS_PASS_FILTERED);
	if (uplink_policy_stale(pkt->cfg))
		return uplink_pass(pkt, CNT_NS_PASS_STALE);
	pkt->ep = ep;
	return UPLINK_NDP_REPLY;
}

/*
 * uplink_classify_fwd decides whether BPF forwards a frame to a local
 * endpoint. It forwards only what the kernel would forward, and only where
 * nothing the kernel would apply is skipped: anything else goes to the
 * kernel, which drops it, forwards it through netfilter, or answers with
 * an ICMPv6 error.
 */
static __always_inline enum uplink_action uplink_classify_fwd(struct ethhdr *eth,
							      struct ipv6hdr *ip6,
							      struct icmp6hdr *icmp,
							      enum uplink_hook hook,
							      struct uplink_pkt *pkt)
{
	const struct uplink_config *cfg = pkt->cfg;
	const struct network_info *net;
	struct endpoint_info *ep;

	/*
	 * Endpoint addresses are unicast, so multicast misses here too.
	 * Extension headers other than hop-by-hop are forwarded untouched,
	 * as a router does: only the fixed header is rewritten.
	 */
	ep = endpoint_lookup(ip6->daddr.s6_addr);
	if (!ep)
		return uplink_pass(pkt, CNT_FWD_PASS_NOT_LOCAL);
	/* An endpoint that is only proxied keeps the kernel's forwarding. */
	if (!(ep->flags & ENDPOINT_F_FORWARD))
		return uplink_pass(pkt, ipv6_is_exthdr(ip6->nexthdr) ? CNT_PASS_EXTHDR
								     : CNT_PASS_NOT_NS);
	if (icmp && icmp6_is_ndp(icmp->icmp6_type))
		return uplink_pass(pkt, CNT_FWD_PASS_NDP);
	/* A network the control plane has not described: the kernel forwards. */
	net = network_get(ep->net);
	if (!net)
		return uplink_pass(pkt, CNT_FWD_PASS_NOT_LOCAL);
	/* Its routes may lead elsewhere: the kernel decides, as for any interface. */
	if (net->uplink != pkt->slot)
		return uplink_pass(pkt, CNT_FWD_PASS_OTHER_UPLINK);
	/* The host's firewall must see every forwarded packet. */
	if (cfg->flags & UPLINK_F_FILTERED)
		return uplink_pass(pkt, CNT_FWD_PASS_FILTERED);
	if (uplink_policy_stale(cfg))
		return uplink_pass(pkt, CNT_FWD_PASS_STALE);
	if (!mac_equal(eth->h_dest, cfg->mac))
		return uplink_pass(pkt, CNT_FWD_PASS_MAC);
	if (ipv6_src_never_forwarded(&ip6->saddr))
		return uplink_pass(pkt, CNT_FWD_PASS_SRC);
	if (!fwd_hop_limit_ok(ip6))
		return uplink_pass(pkt, CNT_FWD_PASS_HOPLIMIT);
	/*
	 * Native XDP on a veth cannot tell a partial checksum from a full one,
	 * and a redirect loses the difference: only ICMPv6 (always summed in
	 * full by the sender's stack) is forwarded there.
	 */
	if (hook == HOOK_XDP && (cfg->flags & UPLINK_F_XDP_L4_PASS) &&
	    ip6->nexthdr != IPPROTO_ICMPV6)
		return uplink_pass(pkt, CNT_FWD_PASS_L4CSUM);
	pkt->ep = ep;
	pkt->net = net;
	return UPLINK_FORWARD;
}

/*
 * uplink_classify decides what to do with the frame between data and
 * data_end, which came in on interface ifindex, in the hook given: each job (answering NS,
 * forwarding) is done by the hook the control plane gave it, and passed on uncounted by the other.
 */
static __always_inline enum uplink_action uplink_classify(void *data, void *data_end, __u32 ifindex,
							  enum uplink_hook hook,
							  struct uplink_pkt *pkt)
{
	struct icmp6hdr *icmp = NULL;
	struct ipv6hdr *ip6;
	struct ethhdr *eth;

	pkt->slot = 0;
	pkt->cfg = uplink_config_for(ifindex, &pkt->slot);
	if (!pkt->cfg)
		return uplink_pass(pkt,
				   uplink_config_get() ? CNT_PASS_NOT_UPLINK : CNT_PASS_DISABLED);

	eth = eth_parse(data, data_end);
	if (!eth)
		return uplink_pass(pkt, CNT_PASS_TRUNCATED);
	/* A VLAN the host has a device for reaches that device's programs. */
	if (eth_is_vlan(eth->h_proto))
		return uplink_pass(pkt, CNT_PASS_VLAN);
	if (eth->h_proto != bpf_htons(ETH_P_IPV6))
		return uplink_pass(pkt, CNT_PASS_NOT_IPV6);
	ip6 = ipv6_parse(data, data_end);
	if (!ip6)
		return uplink_pass(pkt, CNT_PASS_TRUNCATED);
	if (ip6->version != 6)
		return uplink_pass(pkt, CNT_PASS_NOT_IPV6);
	/*
	 * The kernel proxies NDP and forwards only while the host forwards
	 * (ndisc_recv_ns checks the uplink's forwarding): neither does BPF.
	 */
	if (!(pkt->cfg->flags & UPLINK_F_ROUTER))
		return uplink_pass(pkt, CNT_PASS_NO_FORWARDING);
	/*
	 * A hop-by-hop header must be examined by every node on the path (RFC
	 * 8200 section 4.3): the kernel's job. NDP never carries one.
	 */
	if (ip6->nexthdr == IPPROTO_HOPOPTS)
		return uplink_pass(pkt, CNT_PASS_EXTHDR);
	/* Only ICMPv6 directly after the fixed header can be an NS. */
	if (ip6->nexthdr == IPPROTO_ICMPV6) {
		icmp = icmp6_parse(ip6, data_end);
		if (!icmp)
			return uplink_pass(pkt, CNT_PASS_TRUNCATED);
		if (icmp->icmp6_type == ICMP6_NEIGHBOR_SOLICIT) {
			if (!uplink_has_job(pkt->cfg, hook, UPLINK_F_XDP_NDP, UPLINK_F_TC_NDP))
				return uplink_pass(pkt, CNT_MAX);
			return uplink_classify_ns(data, data_end, eth, ip6, icmp, pkt);
		}
	}
	/* Everything else is a forwarding candidate. */
	if (!uplink_has_job(pkt->cfg, hook, UPLINK_F_XDP_FWD, UPLINK_F_TC_FWD))
		return uplink_pass(pkt, CNT_MAX);
	return uplink_classify_fwd(eth, ip6, icmp, hook, pkt);
}

static __always_inline enum counter_id ndp_answered_counter(const struct ndp_ns *ns)
{
	return ns->dad ? CNT_NS_DAD_ANSWERED : CNT_NS_ANSWERED;
}

/*
 * xdp_ndp_reply resizes the NS to the NA's fixed length and rewrites it.
 * bpf_xdp_adjust_tail leaves the frame untouched when it fails (no
 * tailroom), so passing it on is still safe then.
 */
static __always_inline int xdp_ndp_reply(struct xdp_md *ctx, const struct uplink_pkt *pkt)
{
	int delta = (int)NDP_NA_FRAME_LEN - (int)(ctx->data_end - ctx->data);

	if (delta && bpf_xdp_adjust_tail(ctx, delta)) {
		counter_inc(CNT_ERROR);
		return XDP_PASS;
	}
	if (ndp_na_build((void *)(long)ctx->data, (void *)(long)ctx->data_end, &pkt->ns,
			 pkt->cfg)) {
		counter_inc(CNT_ERROR);
		return XDP_PASS;
	}
	counter_inc(ndp_answered_counter(&pkt->ns));
	net_stat_inc(pkt->ep->net, ns_answered);
	/* Back out of the port it came in on. */
	return XDP_TX;
}

/*
 * xdp_forward redirects the frame into the endpoint's host-side veth
 * through the devmap; the veth hands it to its peer, the endpoint's eth0.
 * The source MAC is its network's bridge's: the endpoint knows its router
 * by it.
 */
static __always_inline int xdp_forward(struct xdp_md *ctx, const struct uplink_pkt *pkt)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	const struct endpoint_info *ep = pkt->ep;
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6;
	__u32 ifindex = ep->ifindex;

	ip6 = ipv6_parse(data, data_end);
	if (!ip6) {
		counter_inc(CNT_ERROR);
		return XDP_PASS;
	}
	/* The kernel sends the Packet Too Big (RFC 8201, RFC 4443 3.2). */
	if (data_end - data - sizeof(*eth) > ep->mtu) {
		counter_inc(CNT_FWD_PASS_MTU);
		return XDP_PASS;
	}
	/*
	 * Look before rewriting: a miss (the loader adds the port a moment
	 * after the address, or the device is going) must leave the frame
	 * as it came for the kernel.
	 */
	if (!bpf_map_lookup_elem(&v6dp_devmap, &ifindex)) {
		counter_inc(CNT_FWD_PASS_NOT_LOCAL);
		return XDP_PASS;
	}
	fwd_route(eth, ip6, ep->mac, pkt->net->bridge_mac);
	counter_inc(CNT_FWD_REDIRECTED);
	net_stat_inc(ep->net, fwd_redirected);
	/* A miss now (the entry went since the lookup) drops: XDP_ABORTED. */
	return bpf_redirect_map(&v6dp_devmap, ifindex, 0);
}

SEC("xdp")
int xdp_uplink(struct xdp_md *ctx)
{
	struct uplink_pkt pkt;

	switch (uplink_classify((void *)(long)ctx->data, (void *)(long)ctx->data_end,
				ctx->ingress_ifindex, HOOK_XDP, &pkt)) {
	case UPLINK_NDP_REPLY:
		return xdp_ndp_reply(ctx, &pkt);
	case UPLINK_FORWARD:
		return xdp_forward(ctx, &pkt);
	case UPLINK_DROP:
		counter_inc(pkt.reason);
		return XDP_DROP;
	case UPLINK_PASS:
		break;
	}
	counter_inc(pkt.reason);
	return XDP_PASS;
}

/* Bytes of the answer that skb->csum covers: the IPv6 header and the NA. */
#define NDP_NA_L3_LEN (NDP_NA_FRAME_LEN - (__u32)sizeof(struct ethhdr))

/*
 * tc_ndp_reply is xdp_ndp_reply for an skb. Besides resizing, it keeps a
 * CHECKSUM_COMPLETE skb->csum (NICs report one) true for the rewritten
 * bytes: a stale value makes the receiver of a veth peer log a checksum
 * fault. bpf_skb_change_tail already accounts for the trimmed or zeroed
 * grown bytes; the diff of the 72 rewritten bytes does the rest.
 */
static __always_inline int tc_ndp_reply(struct __sk_buff *skb, const struct uplink_pkt *pkt)
{
	__u8 old[NDP_NA_L3_LEN];
	void *data, *data_end;

	if (skb->len != NDP_NA_FRAME_LEN && bpf_skb_change_tail(skb, NDP_NA_FRAME_LEN, 0)) {
		counter_inc(CNT_ERROR);
		return TC_ACT_UNSPEC;
	}
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	if (data + NDP_NA_FRAME_LEN > data_end) {
		counter_inc(CNT_ERROR);
		return TC_ACT_UNSPEC;
	}
	__builtin_memcpy(old, data + sizeof(struct ethhdr), sizeof(old));
	if (ndp_na_build(data, data_end, &pkt->ns, pkt->cfg)) {
		counter_inc(CNT_ERROR);
		return TC_ACT_UNSPEC;
	}
	/* Only acts on CHECKSUM_COMPLETE skbs; an error otherwise is expected. */
	bpf_csum_update(skb,
			bpf_csum_diff((__be32 *)old, sizeof(old),
				      (__be32 *)(data + sizeof(struct ethhdr)), NDP_NA_L3_LEN, 0));
	counter_inc(ndp_answered_counter(&pkt->ns));
	net_stat_inc(pkt->ep->net, ns_answered);
	/* Egress of the device it came in on (TC_ACT_REDIRECT). */
	return bpf_redirect(skb->ifindex, 0);
}

/*
 * Longest skb made linear before parsing: the longest NS validated plus its
 * headers. NDP from a veth or a NIC is linear anyway; this covers GRO'd or
 * paged skbs without pulling bulk traffic.
 */
#define TC_PULL_MAX (NDP_NS_MAX_LEN + (__u32)(sizeof(struct ethhdr) + sizeof(struct ipv6hdr)))

/*
 * tc_forward moves the skb from the uplink's ingress to the endpoint's
 * eth0. The router sends it to the uplink's MAC, the one the proxy's NA
 * gave out, so it arrives PACKET_HOST: pkt_type is left alone.
 */
static __always_inline int tc_forward(struct __sk_buff *skb, const struct uplink_pkt *pkt)
{
	int rc = skb_fwd_peer(skb, pkt->ep, pkt->net->bridge_mac, false, CNT_FWD_REDIRECTED);

	if (rc == TC_ACT_REDIRECT)
		net_stat_inc(pkt->ep->net, fwd_redirected);
	return rc;
}

/*
 * Passing returns TC_ACT_UNSPEC (TCX_NEXT) rather than TC_ACT_OK: under TCX
 * and clsact it hands the packet to the next program or filter, so v6dp
 * does not cut other ingress programs off; with none left it is a pass.
 */
SEC("tc")
int tc_uplink(struct __sk_buff *skb)
{
	struct uplink_pkt pkt;

	/*
	 * The kernel takes a VLAN tag off before TC ingress (skb_vlan_untag):
	 * the frame belongs to the VLAN's device, or to nobody when the host
	 * has none, never to the uplink's programs.
	 */
	if (skb->vlan_present) {
		counter_inc(CNT_PASS_VLAN);
		return TC_ACT_UNSPEC;
	}
	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		/* A possible NS whole, else the headers forwarding reads. */
		skb_pull_headers(skb, skb->len <= TC_PULL_MAX ? skb->len : SKB_FWD_HDR_LEN);

	switch (uplink_classify((void *)(long)skb->data, (void *)(long)skb->data_end, skb->ifindex,
				HOOK_TC, &pkt)) {
	case UPLINK_NDP_REPLY:
		return tc_ndp_reply(skb, &pkt);
	case UPLINK_FORWARD:
		return tc_forward(skb, &pkt);
	case UPLINK_DROP:
		counter_inc(pkt.reason);
		return TC_ACT_SHOT;
	case UPLINK_PASS:
		break;
	}
	counter_inc(pkt.reason);
	return TC_ACT_UNSPEC;
}

char __license[] SEC("license") = "Dual BSD/GPL";
