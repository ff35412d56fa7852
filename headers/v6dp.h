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
	/* The endpoint's network: index into v6dp_networks and v6dp_net_stats. */
	__u32 net;
};

/* endpoint_info.flags bits (an enum so that bpf2go generates them for Go). */
enum endpoint_flags {
	/* The endpoint answers NDP on the uplink (always set for live endpoints). */
	ENDPOINT_F_PROXY = 1U << 0,
	/* Packets for the endpoint may be forwarded in BPF. */
	ENDPOINT_F_FORWARD = 1U << 1,
};

/* Sizes of the per-network and per-uplink maps (an enum for bpf2go). */
enum v6dp_limits {
	/* Networks (bridge, prefix) one daemon serves: ids 0 to this minus one. */
	V6DP_MAX_NETWORKS = 256,
	/* Uplinks: slots of v6dp_uplink_cfg. */
	V6DP_MAX_UPLINKS = 8,
};

/*
 * Per-uplink settings, one slot of the v6dp_uplink_cfg array per uplink.
 * The uplink programs find their slot by the interface a frame came in on;
 * the port program uses the slot of its network's uplink. Slot 0 always
 * holds a config (the first network's uplink, or its bridge when the
 * daemon has no uplink): the port program's guards run on it.
 */
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
	 * Until when (CLOCK_MONOTONIC_COARSE, ns) the host policy the control
	 * plane last read holds: the daemon renews it every second. Past it
	 * (no daemon is watching the host's firewall and forwarding), BPF
	 * forwards nothing and answers no NS, and the kernel applies whatever
	 * is set now. 0: no expiry (packet tests only).
	 */
	__u64 policy_until_ns;
};

/* uplink_config.flags bits (an enum so that bpf2go generates them for Go). */
enum uplink_flags {
	/* Answer with the R (router) flag: the host forwards for its containers. */
	UPLINK_F_ROUTER = 1U << 0,
	/* Source NAs from the uplink's link-local address instead of the target. */
	UPLINK_F_NA_SRC_LL = 1U << 1,
	/* The config entry is valid; until then every program passes everything. */
	UPLINK_F_ENABLED = 1U << 2,
	/*
	 * Which hook does which job (auto puts each job on its measured-best
	 * hook): the XDP program answers NS / forwards to endpoints, the TC
	 * program answers NS / forwards. A hook without a job passes the
	 * frames of that job uncounted: the hook that owns the job counts them.
	 */
	UPLINK_F_XDP_NDP = 1U << 3,
	UPLINK_F_XDP_FWD = 1U << 4,
	UPLINK_F_TC_NDP = 1U << 5,
	UPLINK_F_TC_FWD = 1U << 6,
	/*
	 * Native XDP on an uplink whose frames may carry a partial checksum
	 * (a veth: the far end's stack left TCP/UDP checksums to "hardware").
	 * Redirecting such a frame drops that state and the endpoint sees a
	 * bad checksum, so XDP hands TCP and UDP to the next hook instead.
	 */
	UPLINK_F_XDP_L4_PASS = 1U << 7,
	/*
	 * The host's IPv6 firewall filters forwarded traffic (netfilter
	 * FORWARD rules, a drop policy, bridge filtering): BPF forwards
	 * nothing, so every forwarded packet meets the host's rules.
	 */
	UPLINK_F_FILTERED = 1U << 8,
	/*
	 * tc_endpoint delivers container egress itself (to local endpoints,
	 * or off-host through the FIB); without it the port program only
	 * guards (the kernel dataplane) and the bridge and kernel forward.
	 */
	UPLINK_F_EGRESS_FWD = 1U << 9,
	/*
	 * The host's IPv6 firewall may act on an NS the uplink receives for
	 * the host or on the NA it sends (netfilter prerouting, input, output
	 * or postrouting rules, netdev chains): BPF answers no NS, the kernel
	 * answers from its proxy entries through the host's rules, or not.
	 */
	UPLINK_F_NDP_FILTERED = 1U << 10,
};

/*
 * One network (a bridge and its prefix), by id (the v6dp_networks array):
 * what BPF needs to forward for its endpoints.
 */
struct network_info {
	/*
	 * The network's bridge. Its MAC is the endpoints' router MAC (the
	 * owner of their gateway): frames sent to it are routed, and routed
	 * deliveries carry it as source. Its ifindex is the ingress interface
	 * of the FIB lookup for endpoint egress, as the kernel sees routed
	 * endpoint traffic arrive on the bridge.
	 */
	__u32 bridge_ifindex;
	/* The slot of the network's uplink in v6dp_uplink_cfg. */
	__u32 uplink;
	__u8 bridge_mac[6];
	/* NETWORK_F_* bits. */
	__u16 flags;
};

/* network_info.flags bits. */
enum network_flags {
	/*
	 * The entry is complete: BPF may forward for the network. Without it
	 * (an id the control plane has not written) the kernel forwards.
	 */
	NETWORK_F_ENABLED = 1U << 0,
};

/*
 * Per-network packet counts (the v6dp_net_stats per-CPU array, by network
 * id): what each network's endpoints got and sent through BPF. The verdict
 * counters (enum counter_id) say why; these say for whom.
 */
struct net_stats {
	/* NS for the network's endpoints answered on the uplink. */
	__u64 ns_answered;
	/* Packets from the uplink delivered to its endpoints. */
	__u64 fwd_redirected;
	/* Packets from its endpoints delivered to local endpoints. */
	__u64 egress_local;
	/* Packets from its endpoints sent out of the uplink. */
	__u64 egress_fib;
	/* Frames from its endpoints' ports dropped by the port guards. */
	__u64 egress_drop;
};

/*
 * Per-port settings, keyed by the host-side veth's ifindex (the
 * v6dp_ports map): what an endpoint may send. A port without an entry
 * sends no IPv6 at all (default deny) except DAD and MLD from ::.
 */
struct port_info {
	/* MAC of the endpoint's own interface: the only Ethernet source allowed. */
	__u8 mac[6];
	__u8 pad[2];
	/* The endpoint's link-local address, once learned (zero until then). */
	__u8 link_local[16];
	/* PORT_F_* bits. */
	__u32 flags;
	/* The port's network (its bridge's): index into v6dp_networks. */
	__u32 net;
};

/* port_info.flags bits. */
enum port_flags {
	/* link_local is valid. */
	PORT_F_LL = 1U << 0,
	/*
	 * Guarded, then left to bridge and kernel: BPF delivers nothing the
	 * port sends (its network is not forwarded in BPF).
	 */
	PORT_F_GUARD_ONLY = 1U << 1,
	/*
	 * The bridge keeps this port from reaching others itself (an isolated
	 * or locked port, VLAN filtering): BPF never switches its frames to
	 * another port, the bridge decides.
	 */
	PORT_F_NO_SWITCH = 1U << 2,
};

/*
 * NS flood limits (RFC 6583), written by the control plane (key 0 of
 * v6dp_ns_limit): GCRA buckets in BPF, one per NS source address and one
 * per CPU for the uplink as a whole. An interval of 0 means no limit.
 */
struct ns_limit_config {
	/* Nanoseconds between NS from one source at the sustained rate. */
	__u64 source_interval_ns;
	/* The same for all sources together, per CPU (the global rate / CPUs). */
	__u64 global_interval_ns;
	/* NS a bucket may take at once beyond the sustained rate. */
	__u64 burst;
};

/* Who sent an NS, for its bucket: the source address and the source MAC. */
struct ns_source {
	__u8 addr[16];
	__u8 mac[6];
	__u8 pad[2];
};

/* A GCRA bucket: the theoretical arrival time of the next NS. */
struct ns_bucket {
	__u64 tat_ns;
};

/* Counter ids: one per verdict reason, indexes of the per-CPU counters map. */
enum counter_id {
	CNT_NS_ANSWERED = 0,	/* NS for a live endpoint answered with an NA */
	CNT_NS_DAD_ANSWERED,	/* DAD NS (source ::) defended, NA to ff02::1 */
	CNT_NS_NOT_LIVE,	/* NS for an address that is not a live endpoint */
	CNT_NS_MALFORMED,	/* NS failing RFC 4861 7.1.1 validation, passed */
	CNT_PASS_NOT_IPV6,	/* not IPv6 */
	CNT_PASS_EXTHDR,	/* IPv6 with extension headers or fragments */
	CNT_PASS_NOT_NS,	/* IPv6 but not a Neighbor Solicitation */
	CNT_PASS_TRUNCATED,	/* shorter than the headers it claims */
	CNT_PASS_DISABLED,	/* uplink config not set: everything to the kernel */
	CNT_FWD_REDIRECTED,	/* forwarded to an endpoint in BPF */
	CNT_FWD_PASS_HOPLIMIT,	/* hop limit <= 1: kernel sends Time Exceeded */
	CNT_FWD_PASS_MTU,	/* larger than the endpoint MTU: kernel sends PTB */
	CNT_FWD_PASS_NOT_LOCAL, /* destination not a live endpoint */
	CNT_EGRESS_SPOOF_DROP,	/* endpoint sent from an address not its own */
	CNT_EGRESS_LOCAL,	/* endpoint to local endpoint in BPF */
	CNT_EGRESS_FIB,		/* endpoint to off-host via fib lookup */
	CNT_EGRESS_PASS,	/* endpoint traffic left to the kernel */
	CNT_ERROR,		/* a helper failed; packet passed to the kernel */
	CNT_FWD_PASS_NDP,	/* NDP message for an endpoint: the kernel's proxy takes it */
	CNT_EGRESS_PASS_FIB,	/* endpoint egress the FIB cannot route here: to the kernel */
	CNT_EGRESS_DISABLED, /* egress passed while the config is unset: guarded, not forwarded */
	CNT_FWD_PASS_L4CSUM, /* native XDP on a veth: TCP/UDP may carry a partial checksum, passed
			      */
	CNT_PASS_VLAN,	     /* VLAN-tagged frame: the kernel's VLAN demux decides */
	CNT_FWD_PASS_SRC, /* uplink source a router never forwards (link-local, multicast, ::, ::1)
			   */
	CNT_FWD_PASS_MAC, /* frame not addressed to the uplink's MAC: the kernel drops it */
	CNT_FWD_PASS_FILTERED,	/* the host's firewall filters forwarding: the kernel forwards */
	CNT_PASS_NO_FORWARDING, /* host forwarding off: no answers, no forwarding (as the kernel) */
	CNT_NS_PORT_GONE,	/* NS for an endpoint whose port has left the devmap: dropped */
	CNT_NS_RATE_LIMITED,	/* NS over the per-source or global rate: dropped */
	CNT_EGRESS_DROP_NO_PORT, /* IPv6 from a port v6dp has no entry for (default deny) */
	CNT_EGRESS_DROP_MAC,	 /* Ethernet source not the endpoint's own MAC */
	CNT_EGRESS_DROP_RA,	 /* Router Advertisement or Redirect from an endpoint (RA guard) */
	CNT_EGRESS_DROP_NDP_EXTHDR, /* NDP behind extension headers or fragments, or a chain too
				       long */
	CNT_EGRESS_DROP_NDP_LLADDR, /* NDP link-layer address option not the endpoint's MAC */
	CNT_EGRESS_DROP_NA_TARGET,  /* NA for an address the endpoint does not own */
	CNT_EGRESS_DROP_VLAN,	    /* VLAN-tagged frame from an endpoint */
	CNT_EGRESS_DROP_TRUNCATED,  /* IPv6 from an endpoint shorter than its headers */
	CNT_EGRESS_DROP_UNSPEC,	    /* from :: but not DAD, RS or an MLD report */
	CNT_FWD_PASS_STALE,  /* no daemon has confirmed the host policy lately: the kernel forwards
			      */
	CNT_NS_OTHER_UPLINK, /* NS for an endpoint whose network is on another uplink */
	CNT_FWD_PASS_OTHER_UPLINK, /* for an endpoint whose network is on another uplink */
	CNT_PASS_NOT_UPLINK,	   /* frame on an interface with no uplink config slot */
	CNT_EGRESS_DAD_CONFINED,   /* DAD probe delivered to the host and the target's owner only */
	CNT_NS_PASS_FILTERED,	   /* the host firewall filters the NDP path: the kernel answers */
	CNT_NS_PASS_STALE, /* no daemon has confirmed the host policy lately: the kernel answers */
	CNT_MAX,
};

#endif /* V6DP_HEADERS_H */
