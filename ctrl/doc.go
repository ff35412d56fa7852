// Package ctrl is v6dp's control plane: the daemon's configuration and its
// validation, container addressing, endpoint discovery on the bridge, and the
// reconcilers that put the desired state into the kernel (bridge, addresses,
// routes, sysctls, kernel proxy neighbour entries) and into the BPF maps
// through package loader.
//
// The endpoint table (Discover) is the single source of truth for which
// addresses are live: the kernel proxy entries and the BPF endpoints map are
// both derived from it.
package ctrl
