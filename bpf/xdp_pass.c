//go:build ignore
/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * xdp_pass does nothing but pass. Attached in native mode to the far end of
 * a veth, it makes the veth driver enable NAPI there, without which frames
 * sent by XDP_TX or XDP_REDIRECT into the pair are dropped.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char __license[] SEC("license") = "Dual BSD/GPL";
