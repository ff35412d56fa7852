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

/* Short skbs are made linear whole: every NDP message and its options. */
#define TC_EGRESS_PULL_MAX                                                                         \
	((__u32)(sizeof(struct ethhdr) + sizeof(struct ipv6hdr)) + EGRESS_NDP_MAX + 64)

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
	/* A DAD probe: to the host and the target's owner only. */
	EGRESS_DAD,
};

/* The result of classifying one frame. */
struct egress_pkt {
	/* The destination endpoint, for EGRESS_LOCAL_*, and its network. */
	const struct endpoint_info *ep;
	const struct network_info *dnet;
	/* The sending port's network id, if the port has an entry, and network. */
	__u32 src_net;
	bool known_port;
	const struct network_info *net;
	/* The settings of the uplink of the port's network. */
	const struct uplink_config *ucfg;
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
 * egress_addr_owned reports whether the endpoint behind port may use
 * address a: its own link-local address, or one of its own live global
 * addresses (the endpoints map says which port owns each). A neighbour's
 * link-local address, and the gateway's fe80::1, are not its own.
 */
static __always_inline bool egress_addr_owned(const struct in6_addr *a, __u32 ifindex,
					      const struct port_info *port)
{
	const struct endpoint_info *own;

	if (ipv6_addr_is_link_local(a))
		return (port->flags & PORT_F_LL) &&
		       ipv6_addr_equal(a, (const struct in6_addr *)port->link_local);
	own = endpoint_lookup(a->s6_addr);
	return own && own->ifindex == ifindex;
}

/* MLD listener reports and done (RFC 2710, RFC 3810): what MLD sends from ::. */
#define ICMP6_MLD_REPORT 131
#define ICMP6_MLD_DONE 132
#define ICMP6_MLD2_REPORT 143

/* RFC 3971 / RFC 7527: the Nonce option, the only one a DAD probe carries. */
#define NDP_OPT_NONCE 14
/* Nonce options a DAD probe may carry (Linux sends one, of 8 bytes). */
#define DAD_NONCE_OPTS_MAX 2

/*
 * dad_options_ok reports whether the options of a DAD probe, from off to
 * len in the NS at msg, are Nonce options only (RFC 7527 enhanced DAD,
 * which Linux does by default): never a Source Link-Layer Address, which
 * RFC 4861 7.1.1 forbids from ::.
 */
static __always_inline bool dad_options_ok(__u8 *msg, __u32 len, void *data_end)
{
	__u32 off = 24, i;

	for (i = 0; i < DAD_NONCE_OPTS_MAX; i++) {
		__u8 *opt;

		if (off >= len)
			break;
		opt = msg + off;
		if ((void *)(opt + 2) > data_end || opt[0] != NDP_OPT_NONCE || opt[1] == 0)
			return false;
		off += (__u32)opt[1] * 8;
	}
	return off == len;
}

/*
 * egress_unspecified_ok reports whether a packet from :: may leave a port:
 * a DAD probe (an NS with no options but nonces, RFC 4862 5.4.2, RFC 7527,
 * RFC 4861 7.1.1),
 * a Router Solicitation with no options (RFC 4861 6.3.7), or an MLD
 * report behind a hop-by-hop header (RFC 3810 5.2.13). Nothing else is
 * ever sent from ::, so nothing else is: no anonymous datagrams.
 */
static __always_inline bool egress_unspecified_ok(struct ipv6hdr *ip6, void *data_end)
{
	__u32 plen = bpf_ntohs(ip6->payload_len);
	__u8 *p = (void *)(ip6 + 1);

	if (ip6->nexthdr == IPPROTO_ICMPV6) {
		if ((void *)(p + 1) > data_end)
			return false;
		return (p[0] == ICMP6_NEIGHBOR_SOLICIT && plen >= 24 && plen <= 24 + 16 &&
			dad_options_ok(p, plen, data_end)) ||
		       (p[0] == ICMP6_ROUTER_SOLICIT && plen == 8);
	}
	if (ip6->nexthdr != IPPROTO_HOPOPTS)
		return false;
	/* Hop-by-hop (next header, length), then the ICMPv6 type. */
	if ((void *)(p + 2) > data_end || p[0] != IPPROTO_ICMPV6)
		return false;
	p += ((__u32)p[1] + 1) * 8;
	if ((void *)(p + 1) > data_end)
		return false;
	return p[0] == ICMP6_MLD2_REPORT || p[0] == ICMP6_MLD_REPORT || p[0] == ICMP6_MLD_DONE;
}

/* Extension headers walked to find NDP hidden behind them (RFC 7113). */
#define EGRESS_EXTHDR_MAX 8

/* The fixed part of the extension headers walked: next header and length. */
struct exthdr {
	__u8 nexthdr;
	__u8 len;
	__u16 frag_off; /* fragment header only: offset and M flag */
};

/*
 * egress_hides_ndp reports whether the extension header chain starting
 * after the fixed header leads to NDP, or cannot be followed to its end in
 * the bytes at hand (RFC 7112: a first fragment carries the whole chain).
 * Either is dropped: no valid NDP carries extension headers (RFC 6980
 * forbids fragments; an RA behind a destination-options header is the
 * RFC 7113 evasion of RA guards), and an unparseable chain is how one
 * hides. A later fragment carries no upper-layer header, so it ends the
 * walk harmlessly.
 */
static __always_inline bool egress_hides_ndp(struct ipv6hdr *ip6, void *data_end)
{
	__u8 nexthdr = ip6->nexthdr;
	void *p = ip6 + 1;
	struct exthdr *h;
	__u8 *type;
	__u32 i;

	for (i = 0; i < EGRESS_EXTHDR_MAX; i++) {
		if (!ipv6_is_exthdr(nexthdr))
			break;
		h = p;
		if ((void *)h + 8 > data_end)
			return true;
		switch (nexthdr) {
		case IPPROTO_FRAGMENT:
			/* Offset non-zero: a later fragment, no headers in it. */
			if (h->frag_off & bpf_htons(0xfff8))
				return false;
			p += 8;
			break;
		case IPPROTO_AH:
			/* RFC 4302: length in 4-byte units, minus 2. */
			p += ((__u32)h->len + 2) * 4;
			break;
		case IPPROTO_ESP:
			/* Encrypted from here on: nothing more to see. */
			return false;
		default:
			p += ((__u32)h->len + 1) * 8;
			break;
		}
		nexthdr = h->nexthdr;
	}
	if (ipv6_is_exthdr(nexthdr))
		return true;
	if (nexthdr != IPPROTO_ICMPV6)
		return false;
	type = p;
	if ((void *)(type + 1) > data_end)
		return true;
	return icmp6_is_ndp(*type);
}

/* Longest NDP message from an endpoint whose options are checked. */
#define EGRESS_NDP_MAX 256
/* Options walked at most: real messages have one or two. */
#define EGRESS_NDP_OPTS_MAX 8

/*
 * egress_ndp_lladdr_ok checks the link-layer address options of an NDP
 * message from an endpoint: a Source (NS, RS) or Target (NA) Link-Layer
 * Address must be the endpoint's own MAC, or a neighbour's cache would
 * point at another port (RFC 4861 7.2.3 caches the option as is). The
 * options start off bytes into the message; a message whose options run
 * past the bytes at hand or have a zero length is refused.
 */
static __always_inline bool egress_ndp_lladdr_ok(void *msg, __u32 off, __u32 len, void *data_end,
						 const struct port_info *port)
{
	__u32 i;

	for (i = 0; i < EGRESS_NDP_OPTS_MAX; i++) {
		__u8 *opt;

		if (off >= len)
			return true;
		if (off > EGRESS_NDP_MAX)
			return false;
		opt = msg + off;
		if ((void *)(opt + 8) > data_end || opt[1] == 0)
			return false;
		if ((opt[0] == NDP_OPT_SOURCE_LL || opt[0] == NDP_OPT_TARGET_LL) &&
		    !mac_equal(opt + 2, port->mac))
			return false;
		off += (__u32)opt[1] * 8;
	}
	return off >= len;
}

/*
 * egress_check_ndp applies the first-hop guards to an NDP message from an
 * endpoint and returns 0 to let it through or the counter of its drop.
 * Router Advertisements and Redirects come only from routers, and the
 * endpoints' router is the host (RA guard, RFC 6105). An NA may advertise
 * only the endpoint's own addresses, so that no neighbour's entry for
 * another address, the gateway's fe80::1 above all, can be rewritten.
 */
static __always_inline int egress_check_ndp(struct ipv6hdr *ip6, struct icmp6hdr *icmp,
					    void *data_end, __u32 ifindex,
					    const struct port_info *port)
{
	__u32 len = bpf_ntohs(ip6->payload_len);
	struct ndp_msg *msg = (void *)icmp;

	switch (icmp->icmp6_type) {
	case ICMP6_ROUTER_ADVERT:
	case ICMP6_REDIRECT:
		return CNT_EGRESS_DROP_RA;
	case ICMP6_ROUTER_SOLICIT:
		/* 4 bytes reserved after the header, then options. */
		return egress_ndp_lladdr_ok(icmp, 8, len, data_end, port)
			       ? 0
			       : CNT_EGRESS_DROP_NDP_LLADDR;
	case ICMP6_NEIGHBOR_ADVERT:
		if ((void *)(msg + 1) > data_end)
			return CNT_EGRESS_DROP_NA_TARGET;
		if (!egress_addr_owned(&msg->target, ifindex, port))
			return CNT_EGRESS_DROP_NA_TARGET;
		break;
	case ICMP6_NEIGHBOR_SOLICIT:
		if ((void *)(msg + 1) > data_end)
			return CNT_EGRESS_DROP_NDP_LLADDR;
		break;
	}
	return egress_ndp_lladdr_ok(icmp, sizeof(*msg), len, data_end, port)
		       ? 0
		       : CNT_EGRESS_DROP_NDP_LLADDR;
}

static __always_inline enum egress_action egress_classify(void *data, void *data_end, __u32 ifindex,
							  const struct uplink_config *cfg0,
							  struct egress_pkt *pkt)
{
	const struct uplink_config *ucfg;
	const struct network_info *net;
	const struct endpoint_info *ep;
	/* Stands in for a port without an entry: no MAC, no link-local. */
	struct port_info none = {};
	const struct port_info *port;
	struct icmp6hdr *icmp = NULL;
	struct ipv6hdr *ip6;
	struct ethhdr *eth;
	bool local;
	int drop;

	eth = eth_parse(data, data_end);
	if (!eth)
		return egress_verdict(pkt, EGRESS_PASS, CNT_PASS_TRUNCATED);
	port = port_lookup(ifindex);
	if (port) {
		pkt->known_port = true;
		pkt->src_net = port->net;
	}
	/*
	 * A known endpoint sends every frame, IPv4 and ARP included, from its
	 * own MAC: another would move a neighbour's MAC to this port in the
	 * bridge's forwarding table.
	 */
	if (port && !mac_equal(eth->h_source, port->mac))
		return egress_verdict(pkt, EGRESS_DROP, CNT_EGRESS_DROP_MAC);
	/*
	 * An endpoint has no VLANs on the bridge: a tagged frame would
	 * smuggle IPv6 past these checks to a VLAN-aware peer.
	 */
	if (eth_is_vlan(eth->h_proto))
		return egress_verdict(pkt, EGRESS_DROP, CNT_EGRESS_DROP_VLAN);
	/* v6dp validates and forwards IPv6 only; IPv4 and ARP stay the kernel's. */
	if (eth->h_proto != bpf_htons(ETH_P_IPV6))
		return egress_verdict(pkt, EGRESS_PASS, CNT_PASS_NOT_IPV6);
	ip6 = ipv6_parse(data, data_end);
	if (!ip6)
		return egress_verdict(pkt, EGRESS_DROP, CNT_EGRESS_DROP_TRUNCATED);
	/* ipv6_rcv drops it; nothing to validate. */
	if (ip6->version != 6)
		return egress_verdict(pkt, EGRESS_DROP, CNT_EGRESS_DROP_TRUNCATED);

	if (ipv6_addr_is_any(&ip6->saddr)) {
		/* DAD, RS and MLD only, from any port, known or not. */
		if (!egress_unspecified_ok(ip6, data_end))
			return egress_verdict(pkt, EGRESS_DROP, CNT_EGRESS_DROP_UNSPEC);
		/*
		 * A DAD probe (RFC 4862 5.4.2) from a known port goes to the
		 * host, which defends its own addresses, and to the port that
		 * owns the target, which defends it, never to the others: a
		 * probe for a neighbour's tentative address would make the
		 * neighbour give it up (RFC 3756 4.1.3). Two containers that
		 * take the same new address do not see each other's probes;
		 * the first one v6dp learns owns it (the other's traffic from
		 * it is dropped, the conflict shown by status).
		 */
		if (port && ip6->nexthdr == IPPROTO_ICMPV6) {
			struct ndp_msg *ns = (void *)(ip6 + 1);

			if ((void *)(ns + 1) <= data_end &&
			    ns->hdr.icmp6_type == ICMP6_NEIGHBOR_SOLICIT) {
				pkt->net = network_get(port->net);
				if (pkt->net) {
					ep = endpoint_lookup(ns->target.s6_addr);
					pkt->ep = ep && ep->ifindex != ifindex &&
								  port_present(ep->ifindex)
							  ? ep
							  : NULL;
					return EGRESS_DAD;
				}
			}
		}
		if (!port)
			port = &none;
	} else if (!port) {
		/* A port whose endpoint v6dp does not know yet: default deny. */
		return egress_verdict(pkt, EGRESS_DROP, CNT_EGRESS_DROP_NO_PORT);
	} else if (!egress_addr_owned(&ip6->saddr, ifindex, port)) {
		return egress_verdict(pkt, EGRESS_DROP, CNT_EGRESS_SPOOF_DROP);
	}

	if (ipv6_is_exthdr(ip6->nexthdr) && egress_hides_ndp(ip6, data_end))
		return egress_verdict(pkt, EGRESS_DROP, CNT_EGRESS_DROP_NDP_EXTHDR);
	if (ip6->nexthdr == IPPROTO_ICMPV6) {
		icmp = icmp6_parse(ip6, data_end);
		if (!icmp)
			return egress_verdict(pkt, EGRESS_DROP, CNT_EGRESS_DROP_TRUNCATED);
		if (icmp6_is_ndp(icmp->icmp6_type)) {
			drop = egress_check_ndp(ip6, icmp, data_end, ifindex, port);
			if (drop)
				return egress_verdict(pkt, EGRESS_DROP, drop);
			/* NDP, also unicast, is the bridge's and the kernel's business. */
			return egress_verdict(pkt, EGRESS_PASS, CNT_EGRESS_PASS);
		}
	}
	/* Only DAD and MLD come from ::, and they have been let through above. */
	if (ipv6_addr_is_any(&ip6->saddr))
		return egress_verdict(pkt, EGRESS_PASS, CNT_EGRESS_PASS);
	/* A port BPF does not deliver for: guarded, then bridge and kernel. */
	if (port->flags & PORT_F_GUARD_ONLY)
		return egress_verdict(pkt, EGRESS_PASS, CNT_EGRESS_PASS);
	/* Multicast and link-local destinations stay on the bridge. */
	if (ipv6_addr_is_multicast(&ip6->daddr) || ipv6_addr_is_link_local(&ip6->daddr))
		return egress_verdict(pkt, EGRESS_PASS, CNT_EGRESS_PASS);
	if (ip6->nexthdr == IPPROTO_HOPOPTS)
		return egress_verdict(pkt, EGRESS_PASS, CNT_PASS_EXTHDR);
	/* The port's network, and the uplink its traffic leaves by. */
	net = network_get(port->net);
	/* Slot 0, the common case, was read already. */
	ucfg = !net ? NULL : net->uplink ? uplink_config_slot(net->uplink) : cfg0;
	if (!ucfg)
		return egress_verdict(pkt, EGRESS_PASS, CNT_EGRESS_PASS);
	pkt->net = net;
	pkt->ucfg = ucfg;
	/*
	 * The host's firewall, and forwarding turned off, are the kernel's to
	 * apply: BPF delivers nothing then, not even between local endpoints.
	 */
	if (ucfg->flags & UPLINK_F_FILTERED)
		return egress_verdict(pkt, EGRESS_PASS, CNT_FWD_PASS_FILTERED);
	if (uplink_policy_stale(ucfg))
		return egress_verdict(pkt, EGRESS_PASS, CNT_FWD_PASS_STALE);
	/* Guarding only: the bridge and the kernel deliver. */
	if (!(ucfg->flags & UPLINK_F_EGRESS_FWD))
		return egress_verdict(pkt, EGRESS_PASS, CNT_EGRESS_PASS);

	ep = endpoint_lookup(ip6->daddr.s6_addr);
	/* A destination that is only proxied keeps the kernel's forwarding. */
	local = ep && (ep->flags & ENDPOINT_F_FORWARD) && port_present(ep->ifindex);
	/*
	 * A frame for the bridge's MAC is one the kernel would route; any
	 * other unicast MAC is one the bridge would switch. Endpoints on the
	 * same prefix reach each other switched (the prefix is on-link on
	 * their eth0), so that case keeps MACs and hop limit as they are. A
	 * bridge switches only between its own ports, and not at all for a
	 * port it isolates or locks or whose VLANs it filters: those frames
	 * are the bridge's to decide.
	 */
	if (!mac_equal(eth->h_dest, net->bridge_mac)) {
		if (local && ep->net == port->net && !(port->flags & PORT_F_NO_SWITCH) &&
		    mac_equal(eth->h_dest, ep->mac)) {
			pkt->ep = ep;
			return EGRESS_LOCAL_SWITCHED;
		}
		return egress_verdict(pkt, EGRESS_PASS, CNT_EGRESS_PASS);
	}
	if (!(ucfg->flags & UPLINK_F_ROUTER))
		return egress_verdict(pkt, EGRESS_PASS, CNT_PASS_NO_FORWARDING);
	if (!fwd_hop_limit_ok(ip6))
		return egress_verdict(pkt, EGRESS_PASS, CNT_FWD_PASS_HOPLIMIT);
	if (local) {
		/* Delivered by its own network's router: that bridge's MAC. */
		pkt->dnet = network_get(ep->net);
		if (!pkt->dnet)
			return egress_verdict(pkt, EGRESS_PASS, CNT_EGRESS_PASS);
		pkt->ep = ep;
		return EGRESS_LOCAL_ROUTED;
	}
	/* Ours but only proxied: the kernel forwards it. */
	if (ep)
		return egress_verdict(pkt, EGRESS_PASS, CNT_EGRESS_PASS);
	/*
	 * A link-local source never leaves its link (RFC 4291 2.5.6): the
	 * kernel answers with Destination Unreachable, "beyond scope".
	 */
	if (ipv6_addr_is_link_local(&ip6->saddr))
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
					bool routed)
{
	int rc = skb_fwd_peer(skb, pkt->ep, routed ? pkt->dnet->bridge_mac : NULL, true,
			      CNT_EGRESS_LOCAL);

	if (rc == TC_ACT_REDIRECT)
		net_stat_inc(pkt->src_net, egress_local);
	return rc;
}

/*
 * egress_route sends routed traffic for elsewhere out of the uplink, after
 * the kernel's own FIB lookup (routes, rules, MTU), with the L2 header
 * from the kernel's neighbour table. Anything the lookup does not clear
 * for the uplink goes to the kernel, which answers with the ICMPv6 error
 * or delivers locally.
 */
static __always_inline int egress_route(struct __sk_buff *skb, const struct egress_pkt *pkt)
{
	const struct uplink_config *cfg = pkt->ucfg;
	void *data = (void *)(long)skb->data, *data_end = (void *)(long)skb->data_end;
	struct bpf_redir_neigh nh;
	struct ipv6hdr *ip6;
	/* Set on every path: the verifier cannot pair rc with the helper's writes. */
	__u32 oif = 0;
	int rc;

	ip6 = ipv6_parse(data, data_end);
	if (!ip6) {
		counter_inc(CNT_ERROR);
		return TC_ACT_UNSPEC;
	}
	rc = fib_lookup_routed(skb, ip6, skb_l3_seg_len(skb, ip6, data_end),
			       pkt->net->bridge_ifindex, &nh, &oif);
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
	/*
	 * Only the network's uplink: other devices (the bridge itself,
	 * tunnels, another uplink's policy) need the kernel.
	 */
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
	net_stat_inc(pkt->src_net, egress_fib);
	return bpf_redirect_neigh(oif, &nh, sizeof(nh), 0);
}

/*
 * egress_dad delivers a DAD probe to the target's owner, if another port
 * owns it (a copy out of the owner's host-side veth into its eth0), and to
 * the host: into the bridge device's own receive path, as the bridge
 * would deliver it locally, without flooding it to the other ports.
 */
static __always_inline int egress_dad(struct __sk_buff *skb, const struct egress_pkt *pkt)
{
	if (pkt->ep && bpf_clone_redirect(skb, pkt->ep->ifindex, 0)) {
		counter_inc(CNT_ERROR);
		return TC_ACT_UNSPEC;
	}
	counter_inc(CNT_EGRESS_DAD_CONFINED);
	return bpf_redirect(pkt->net->bridge_ifindex, BPF_F_INGRESS);
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

	/*
	 * NULL until the control plane has written slot 0: the guards hold
	 * all the same (the ports map is the control plane's word on each
	 * port), only the forwarding waits for it.
	 */
	cfg = uplink_config_get();
	/* Tags are taken off before TC ingress: a tagged frame is refused. */
	if (skb->vlan_present) {
		counter_inc(CNT_EGRESS_DROP_VLAN);
		return TC_ACT_SHOT;
	}
	/*
	 * The headers forwarding reads; a short skb (NDP, small datagrams)
	 * whole, so that NDP options and extension headers are in reach.
	 */
	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		skb_pull_headers(skb, skb->len <= TC_EGRESS_PULL_MAX ? skb->len : SKB_FWD_HDR_LEN);

	action = egress_classify((void *)(long)skb->data, (void *)(long)skb->data_end, skb->ifindex,
				 cfg, &pkt);
	switch (action) {
	case EGRESS_DROP:
		counter_inc(pkt.reason);
		if (pkt.known_port)
			net_stat_inc(pkt.src_net, egress_drop);
		return TC_ACT_SHOT;
	case EGRESS_LOCAL_ROUTED:
		return egress_local(skb, &pkt, true);
	case EGRESS_LOCAL_SWITCHED:
		return egress_local(skb, &pkt, false);
	case EGRESS_ROUTE:
		return egress_route(skb, &pkt);
	case EGRESS_DAD:
		return egress_dad(skb, &pkt);
	case EGRESS_PASS:
		break;
	}
	counter_inc(cfg ? pkt.reason : CNT_EGRESS_DISABLED);
	return TC_ACT_UNSPEC;
}

char __license[] SEC("license") = "Dual BSD/GPL";
