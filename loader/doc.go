// Package loader loads v6dp's BPF programs and maps, attaches them to the
// uplink and gives the control plane typed access to the maps. It is the
// only package of v6dp that imports cilium/ebpf.
//
// The uplink programs answer IPv6 Neighbor Solicitations (RFC 4861) for live
// endpoint addresses with proxy Neighbor Advertisements, in place, from XDP
// (native or generic) or from TC ingress (TCX, or clsact where TCX is
// missing), and pass every other frame to the kernel.
//
// Maps and links are pinned under a directory in bpffs (default
// /sys/fs/bpf/v6dp): the programs keep answering after the daemon exits, and
// a restarted daemon adopts the maps with their contents and replaces the
// programs of the pinned links atomically.
//
// Minimum kernel: 5.9 (XDP attached through a pinnable bpf_link; growing an
// XDP frame with bpf_xdp_adjust_tail needs 5.8, bounded loops 5.3). TCX
// needs 6.6; older kernels get the clsact fallback. Developed and tested on
// 6.18.
package loader
