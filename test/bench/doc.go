// Package bench holds `make bench`: the NDP-proxy flood and the forwarding
// flood that put v6dp's dataplanes side by side with the kernel (tuned as
// an operator would) and ndppd on one topology in network namespaces. Every
// row passes a correctness gate counted in BPF at the far end (valid NAs
// for live targets only, intact datagrams only, no endpoint lost) or is
// FAILED and fails the run; figures are medians of several runs and never
// fail it. Everything is in the _test files; it needs root, trafgen
// (netsniff-ng), ndppd, iperf3 and iproute2.
package bench
