/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Rate limits for Neighbor Solicitations on the uplink (RFC 6583 section
 * 7: a flood of NS must not make the host send or do unbounded work). The
 * Generic Cell Rate Algorithm keeps one timestamp per bucket: a packet is
 * admitted while the bucket's theoretical arrival time is at most burst
 * intervals ahead of now.
 */
#ifndef V6DP_LIB_RATELIMIT_H
#define V6DP_LIB_RATELIMIT_H

#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in6.h>
#include <bpf/bpf_helpers.h>

#include "v6dp.h"
#include "maps.h"

/*
 * gcra_admit reports whether one more packet fits bucket b at time now,
 * and charges it if so. Buckets shared between CPUs (per source) race
 * without atomics: two CPUs may both admit the last packet of a burst,
 * an error of at most one packet per CPU.
 */
static __always_inline bool gcra_admit(struct ns_bucket *b, __u64 now, __u64 interval, __u64 burst)
{
	__u64 tat = b->tat_ns;

	if (tat < now)
		tat = now;
	if (tat - now > interval * burst)
		return false;
	b->tat_ns = tat + interval;
	return true;
}

/*
 * ns_admit reports whether a valid NS from src (sent from mac) may be
 * acted on; false means drop it. A source is its address and its MAC, so
 * that every host's DAD (from ::) has a bucket of its own and a flood
 * from one MAC cannot spend another's. The per-source bucket is checked
 * first, so that one flooding source cannot use up the uplink's.
 */
static __always_inline bool ns_admit(const struct in6_addr *src, const __u8 mac[ETH_ALEN])
{
	const struct ns_limit_config *cfg;
	struct ns_bucket *b, fresh = {};
	struct ns_source key = {};
	__u32 zero = 0;
	__u64 now;

	cfg = bpf_map_lookup_elem(&v6dp_ns_limit, &zero);
	if (!cfg || (!cfg->source_interval_ns && !cfg->global_interval_ns))
		return true;
	now = bpf_ktime_get_ns();
	if (cfg->source_interval_ns) {
		__builtin_memcpy(key.addr, src->s6_addr, sizeof(key.addr));
		__builtin_memcpy(key.mac, mac, ETH_ALEN);
		b = bpf_map_lookup_elem(&v6dp_ns_sources, &key);
		if (!b) {
			fresh.tat_ns = now + cfg->source_interval_ns;
			bpf_map_update_elem(&v6dp_ns_sources, &key, &fresh, BPF_NOEXIST);
		} else if (!gcra_admit(b, now, cfg->source_interval_ns, cfg->burst)) {
			return false;
		}
	}
	if (cfg->global_interval_ns) {
		b = bpf_map_lookup_elem(&v6dp_ns_global, &zero);
		if (b && !gcra_admit(b, now, cfg->global_interval_ns, cfg->burst))
			return false;
	}
	return true;
}

#endif /* V6DP_LIB_RATELIMIT_H */
