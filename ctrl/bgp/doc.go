// Package bgp is v6dp's embedded BGP speaker for the routed cluster layout:
// it announces the host's container prefix (and optionally the host's /48)
// to the routers with the host's uplink address as next hop, with graceful
// restart (RFC 4724) so that a router keeps the host's routes while the
// daemon restarts or is away. It wraps GoBGP (github.com/osrg/gobgp/v4) as a
// library; nothing else in v6dp imports GoBGP.
//
// GoBGP v4, not v3: v4 is the maintained line, logs through log/slog (as
// v6dp does) and takes net/netip types in its native API; v3 has its own
// logger interface and wants every path as protobuf messages. Both build
// with Go 1.26.
package bgp
