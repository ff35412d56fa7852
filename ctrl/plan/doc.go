// Package plan computes and checks the address plans of the original
// document ("Docker and IPv6", the Docker 1.x guide) for `v6dp plan`: how to
// cut a prefix into the part a host keeps for itself and the part its
// containers get through --fixed-cidr-v6, which addressing mode that leaves,
// whether the host must answer Neighbor Solicitations for its containers
// (NDP proxy), which routes the router or the other hosts need, and the
// `v6dp daemon` flags for each host.
//
// The roles follow the document's examples:
//
//   - split80: one host's /64; eth0 keeps the first /80
//     (2001:db8:23:42::/80) and docker0 gets the second
//     (2001:db8:23:42:1::/80).
//   - split78: several hosts sharing one /64; each host is given a /78 and
//     splits it like split80 (first /80 for itself, second for Docker).
//     The document says "/78 for the hosts, /80 for the containers" and then
//     "4096 hosts with 16 /80s each", which is the arithmetic of a /76; the
//     /78 is what it names, so that is what is planned: 16384 hosts of a
//     /64, four /80s in each /78, two of them left spare.
//   - halves: a provider's small range split in two equal halves, the first
//     for the host and the second for Docker: 2001:db8::c000/124 gives
//     2001:db8::c000/125 and 2001:db8::c008/125. Halves longer than /80
//     cannot hold a MAC, so containers are numbered sequentially from
//     2001:db8::c009.
//   - switched: the switched cluster. Hosts share the first /64 of PREFIX
//     (2001:db8::/64, host N at 2001:db8::N), host N's containers get
//     2001:db8:N::/64, and every host routes the other hosts' container
//     prefixes via their addresses.
//   - routed: the routed cluster. Host N is given 2001:db8:N::/48, keeps
//     2001:db8:N::/64 for its own services and gives Docker
//     2001:db8:N:1::/64; the router holds one route per host
//     (2001:db8:N::/48 via host N), so adding a host changes only the router.
//
// In the single-segment roles (split80, split78, halves) the upstream router
// treats the surrounding /64 as on-link, so it solicits container addresses
// on the host's uplink and the host must answer them: that is the NDP proxy
// v6dp provides. If the operator controls the router, Options.RouterRoutes
// plans a route per container prefix instead.
//
// The package has no OS effects: it only does address arithmetic, so it runs
// anywhere and needs no particular kernel.
package plan
