/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Ethernet parsing. */
#ifndef V6DP_LIB_ETH_H
#define V6DP_LIB_ETH_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <stdbool.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

/*
 * eth_parse returns the Ethernet header at the start of the frame, or NULL
 * when the frame is shorter than one. VLAN tags are not handled: the uplink
 * is an untagged port, and tagged frames are passed as "not IPv6".
 */
static __always_inline struct ethhdr *eth_parse(void *data, void *data_end)
{
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return NULL;
	return eth;
}

/* RFC 2464 section 7: the MAC for ff02::1 (all-nodes) is 33:33:00:00:00:01. */
/*
 * eth_is_vlan reports whether proto tags the frame with a VLAN (802.1Q,
 * 802.1ad): the kernel's VLAN demux must decide which device, if any, the
 * frame is for.
 */
static __always_inline bool eth_is_vlan(__be16 proto)
{
	return proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD);
}

/*
 * eth_is_ipv6_mcast_of reports whether mac is the multicast MAC of the IPv6
 * group daddr (RFC 2464 section 7: 33:33 and the group's low 32 bits).
 */
static __always_inline bool eth_is_ipv6_mcast_of(const __u8 mac[ETH_ALEN], const __u8 daddr[16])
{
	return mac[0] == 0x33 && mac[1] == 0x33 && mac[2] == daddr[12] && mac[3] == daddr[13] &&
	       mac[4] == daddr[14] && mac[5] == daddr[15];
}

static __always_inline void eth_set_all_nodes(__u8 mac[ETH_ALEN])
{
	mac[0] = 0x33;
	mac[1] = 0x33;
	mac[2] = 0;
	mac[3] = 0;
	mac[4] = 0;
	mac[5] = 1;
}

#endif /* V6DP_LIB_ETH_H */
