/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The contract between v6dp's BPF programs and its Go control plane: map
 * keys and values, counter ids and flags. Go types are generated from this
 * file by bpf2go (-type), so nothing here is written twice.
 */
#ifndef V6DP_HEADERS_H
#define V6DP_HEADERS_H

#include <linux/types.h>

/* An endpoint's address: the key of the endpoints map (network order). */
struct endpoint_key {
	__u8 addr[16];
};

/* What the dataplane knows about one live endpoint address. */
struct endpoint_info {
	/* Host-side veth of the endpoint (on the bridge). */
	__u32 ifindex;
	/* ENDPOINT_F_* bits. */
	__u32 flags;
	/* MAC of the endpoint's own interface (eth0 inside the container). */
	__u8 mac[6];
	/* MAC of the host-side veth: the source MAC of frames delivered to it. */
	__u8 host_mac[6];
	/* MTU of the endpoint's link; larger packets go to the kernel. */
	__u32 mtu;
};

/* endpoint_info.flags bits (an enum so that bpf2go generates them for Go). */
enum endpoint_flags {
	/* The endpoint answers NDP on the uplink (always set for live endpoints). */
	ENDPOINT_F_PROXY = 1U << 0,
	/* Packets for the endpoint may be forwarded in BPF. */
	ENDPOINT_F_FORWARD = 1U << 1,
};

/* Per-uplink settings, one entry (key 0) in the uplink_config array. */
struct uplink_config {
	/* Interface the programs are attached to. */
	__u32 ifindex;
	/* UPLINK_F_* bits. */
	__u32 flags;
	/* MAC written into the Target Link-Layer Address option and as source. */
	__u8 mac[6];
	__u8 pad[2];
	/* Link-local address of the uplink, the NA source with UPLINK_F_NA_SRC_LL. */
	__u8 link_local[16];
	/*
	 * The bridge the endpoints hang off. Its MAC is the endpoints' router
	 * MAC (the owner of their gateway fe80::1): frames sent to it are
	 * routed, and routed deliveries carry it as source. Its ifindex is
	 * the ingress interface of the FIB lookup for endpoint egress, as the
	 * kernel sees routed endpoint traffic arrive on the bridge.
	 */
	__u32 bridge_ifindex;
	__u8 bridge_mac[6];
	__u8 pad2[2];
};

/* uplink_config.flags bits (an enum so that bpf2go generates them for Go). */
enum uplink_flags {
	/* Answer with the R (router) flag: the host forwards for its containers. */
	UPLINK_F_ROUTER = 1U << 0,
	/* Source NAs from the uplink's link-local address instead of the target. */
	UPLINK_F_NA_SRC_LL = 1U << 1,
	/* The config entry is valid; until then every program passes everything. */
	UPLINK_F_ENABLED = 1U << 2,
};

/* Counter ids: one per verdict reason, indexes of the per-CPU counters map. */
enum counter_id {
	CNT_NS_ANSWERED = 0,  /* NS for a live endpoint answered with an NA */
	CNT_NS_DAD_ANSWERED,  /* DAD NS (source ::) defended, NA to ff02::1 */
	CNT_NS_NOT_LIVE,      /* NS for an address that is not a live endpoint */
	CNT_NS_MALFORMED,     /* NS failing RFC 4861 7.1.1 validation, passed */
	CNT_PASS_NOT_IPV6,    /* not IPv6 */
	CNT_PASS_EXTHDR,      /* IPv6 with extension headers or fragments */
	CNT_PASS_NOT_NS,      /* IPv6 but not a Neighbor Solicitation */
	CNT_PASS_TRUNCATED,   /* shorter than the headers it claims */
	CNT_PASS_DISABLED,    /* uplink config not set: everything to the kernel */
	CNT_FWD_REDIRECTED,   /* forwarded to an endpoint in BPF */
	CNT_FWD_PASS_HOPLIMIT,/* hop limit <= 1: kernel sends Time Exceeded */
	CNT_FWD_PASS_MTU,     /* larger than the endpoint MTU: kernel sends PTB */
	CNT_FWD_PASS_NOT_LOCAL,/* destination not a live endpoint */
	CNT_EGRESS_SPOOF_DROP,/* endpoint sent from an address not its own */
	CNT_EGRESS_LOCAL,     /* endpoint to local endpoint in BPF */
	CNT_EGRESS_FIB,       /* endpoint to off-host via fib lookup */
	CNT_EGRESS_PASS,      /* endpoint traffic left to the kernel */
	CNT_ERROR,            /* a helper failed; packet passed to the kernel */
	CNT_FWD_PASS_NDP,     /* NDP message for an endpoint: the kernel's proxy takes it */
	CNT_EGRESS_PASS_FIB,  /* endpoint egress the FIB cannot route here: to the kernel */
	CNT_EGRESS_DISABLED,  /* endpoint egress while the config is unset: to the kernel */
	CNT_MAX,
};

#endif /* V6DP_HEADERS_H */
