// Package bench holds `make bench`: the NDP-proxy flood benchmark that puts
// v6dp's dataplanes side by side with the kernel's proxy_ndp and ndppd on
// one topology in network namespaces. Everything is in the _test files; it
// needs root, trafgen (netsniff-ng), ndppd and iproute2.
package bench
