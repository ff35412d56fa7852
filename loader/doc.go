// Package loader loads v6dp's BPF programs and maps, attaches them to the
// uplink and gives the control plane typed access to the maps. It is the
// only package of v6dp that imports cilium/ebpf.
//
// The uplink programs answer IPv6 Neighbor Solicitations (RFC 4861) for live
// endpoint addresses with proxy Neighbor Advertisements, in place, and
// forward packets for endpoints into their veths, each job on the hook the
// uplink config gives it: XDP (native or generic) or TC ingress (TCX, or
// clsact where TCX is missing). Everything else goes to the kernel. The
// endpoint program on each bridge port guards what its endpoint sends
// (source, MAC, NDP) and, where BPF forwards, delivers it.
//
// Maps and links are pinned under a directory in bpffs (default
// /sys/fs/bpf/v6dp): the programs keep answering after the daemon exits, and
// a restarted daemon adopts the maps with their contents and replaces the
// programs of the pinned links atomically.
//
// Minimum kernel: 5.11 (bpf_ktime_get_coarse_ns for the host policy's
// expiry; XDP attached through a pinnable bpf_link needs 5.9, growing an
// XDP frame with bpf_xdp_adjust_tail 5.8, bounded loops 5.3). TCX needs
// 6.6; older kernels get the clsact fallback. Developed and tested on 6.18.
package loader
