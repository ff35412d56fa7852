/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The maps shared by the uplink programs, each beside its lookup wrapper.
 * All are pinned by name under the loader's pin directory, so a restarted
 * daemon adopts them with their contents; the v6dp_ prefix keeps them
 * recognisable in `bpftool map list` (kernel names are cut at 15 bytes).
 */
#ifndef V6DP_LIB_MAPS_H
#define V6DP_LIB_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "v6dp.h"

/* Live endpoint addresses: the only addresses the responder answers for. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	/* Not preallocated: hosts run a few hundred endpoints, not 65536. */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct endpoint_key);
	__type(value, struct endpoint_info);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} v6dp_endpoints SEC(".maps");

/* Settings of each uplink, written by the control plane (a slot each). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, V6DP_MAX_UPLINKS);
	__type(key, __u32);
	__type(value, struct uplink_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} v6dp_uplink_cfg SEC(".maps");

/* The networks, by id: bridge, router MAC and uplink of each. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, V6DP_MAX_NETWORKS);
	__type(key, __u32);
	__type(value, struct network_info);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} v6dp_networks SEC(".maps");

/* Per-CPU packet counts per network (struct net_stats), by network id. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, V6DP_MAX_NETWORKS);
	__type(key, __u32);
	__type(value, struct net_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} v6dp_net_stats SEC(".maps");

/* Per-CPU packet counters, one per verdict reason (enum counter_id). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CNT_MAX);
	__type(key, enum counter_id);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} v6dp_counters SEC(".maps");

/*
 * The host-side veths that XDP may redirect into, keyed and valued by
 * ifindex. The loader keeps it equal to the ifindexes of the forwarding
 * endpoints, and the kernel drops an entry itself when its device goes, so
 * a redirect never reaches a stale ifindex. Devmaps take no BTF for keys
 * and values; the loader creates it without.
 */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} v6dp_devmap SEC(".maps");

/*
 * What each port's endpoint may send, by the host-side veth's ifindex
 * (struct port_info). tc_endpoint drops the IPv6 of a port without one.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct port_info);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} v6dp_ports SEC(".maps");

/* NS flood limits (key 0), see struct ns_limit_config. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ns_limit_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} v6dp_ns_limit SEC(".maps");

/*
 * One bucket per NS source address. LRU: a flood from many sources evicts
 * the oldest buckets instead of failing, and the global bucket still holds.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct ns_source);
	__type(value, struct ns_bucket);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} v6dp_ns_sources SEC(".maps");

/* The uplink's bucket, one per CPU so that CPUs never contend for it. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ns_bucket);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} v6dp_ns_global SEC(".maps");

/* port_lookup returns what the endpoint behind port ifindex may send, or NULL. */
static __always_inline const struct port_info *port_lookup(__u32 ifindex)
{
	return bpf_map_lookup_elem(&v6dp_ports, &ifindex);
}

/*
 * port_present reports whether the port is still in the devmap. The kernel
 * deletes a device's entry when the device goes, so this holds even while
 * no daemon runs: a deleted container stops being answered at once.
 */
static __always_inline bool port_present(__u32 ifindex)
{
	return bpf_map_lookup_elem(&v6dp_devmap, &ifindex) != NULL;
}

/* endpoint_lookup returns the live endpoint owning addr, or NULL. */
static __always_inline struct endpoint_info *endpoint_lookup(const __u8 addr[16])
{
	struct endpoint_key key;

	__builtin_memcpy(key.addr, addr, sizeof(key.addr));
	return bpf_map_lookup_elem(&v6dp_endpoints, &key);
}

/*
 * uplink_config_slot returns the settings in uplink slot slot, or NULL
 * until the control plane has written a complete entry there
 * (UPLINK_F_ENABLED): an all-zero entry would answer with a zero MAC.
 */
static __always_inline const struct uplink_config *uplink_config_slot(__u32 slot)
{
	const struct uplink_config *cfg = bpf_map_lookup_elem(&v6dp_uplink_cfg, &slot);

	if (!cfg || !(cfg->flags & UPLINK_F_ENABLED))
		return NULL;
	return cfg;
}

/* uplink_config_get returns slot 0's settings: the guards' config. */
static __always_inline const struct uplink_config *uplink_config_get(void)
{
	return uplink_config_slot(0);
}

/*
 * uplink_config_for returns the settings of the uplink with this ifindex
 * and its slot, or NULL when the interface has none (the programs are
 * attached to it but the control plane has not written its slot yet).
 * Slots are filled from 0 without gaps, so the first empty one ends the
 * search; one uplink costs one lookup.
 */
static __always_inline const struct uplink_config *uplink_config_for(__u32 ifindex, __u32 *slot)
{
	const struct uplink_config *cfg;
	__u32 i;

	for (i = 0; i < V6DP_MAX_UPLINKS; i++) {
		cfg = uplink_config_slot(i);
		if (!cfg)
			return NULL;
		if (cfg->ifindex == ifindex) {
			*slot = i;
			return cfg;
		}
	}
	return NULL;
}

/*
 * network_get returns network net, or NULL for an id out of range or not
 * written completely (NETWORK_F_ENABLED): BPF forwards nothing for it.
 */
static __always_inline const struct network_info *network_get(__u32 net)
{
	const struct network_info *n = bpf_map_lookup_elem(&v6dp_networks, &net);

	if (!n || !(n->flags & NETWORK_F_ENABLED))
		return NULL;
	return n;
}

/* network_uplink returns the uplink slot of network net (slot 0 if unset). */
static __always_inline __u32 network_uplink(__u32 net)
{
	const struct network_info *n = bpf_map_lookup_elem(&v6dp_networks, &net);

	return n ? n->uplink : 0;
}

/* net_stat_inc counts one packet of network net in field of struct net_stats. */
#define net_stat_inc(net, field)                                                                   \
	do {                                                                                       \
		__u32 __k = (net);                                                                 \
		struct net_stats *__s = bpf_map_lookup_elem(&v6dp_net_stats, &__k);                \
		if (__s)                                                                           \
			__s->field += 1;                                                           \
	} while (0)

/*
 * uplink_policy_stale reports whether the host policy in cfg has expired:
 * no daemon has re-read the host's firewall and forwarding for a while, so
 * BPF must neither forward nor answer past them.
 */
static __always_inline bool uplink_policy_stale(const struct uplink_config *cfg)
{
	return cfg->policy_until_ns && bpf_ktime_get_coarse_ns() > cfg->policy_until_ns;
}

/*
 * counter_inc counts one verdict. CNT_MAX counts nothing: the verdict of a
 * frame that a hook passes on to the hook whose job it is.
 */
static __always_inline void counter_inc(enum counter_id id)
{
	__u64 *c = bpf_map_lookup_elem(&v6dp_counters, &id);

	/* Per-CPU slot: no other writer, no atomic needed. */
	if (c)
		*c += 1;
}

#endif /* V6DP_LIB_MAPS_H */
