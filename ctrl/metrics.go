package ctrl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/vishvananda/netlink"

	"github.com/v6dp/v6dp/loader"
)

// metrics exports the dataplane's state for Prometheus. Values are read at
// scrape time (the BPF counters from the pinned maps), so nothing is
// copied on the packet path or kept twice.
type metrics struct {
	pinDir    string
	dataplane string
	addresses atomic.Int64
	endpoints atomic.Int64
	conflicts atomic.Int64
	cluster   atomic.Pointer[cluster]  // nil without a cluster layout
	later     atomic.Pointer[later]    // the deferred port work
	prep      atomic.Pointer[portPrep] // the ports whose IPv6 is being turned off

	packets       *prometheus.Desc
	netPackets    *prometheus.Desc
	live          *prometheus.Desc
	ports         *prometheus.Desc
	conflictsDesc *prometheus.Desc
	dataplaneInfo *prometheus.Desc
	pending       *prometheus.Desc
}

func newMetrics(pinDir, dataplane string) *metrics {
	return &metrics{
		pinDir:    pinDir,
		dataplane: dataplane,
		packets: prometheus.NewDesc("v6dp_bpf_packets_total",
			"Packets seen by the BPF programs, by verdict.", []string{"verdict"}, nil),
		netPackets: prometheus.NewDesc("v6dp_network_packets_total",
			"Packets of each network's endpoints through BPF, by bridge and what happened.", []string{"bridge", "what"}, nil),
		live: prometheus.NewDesc("v6dp_endpoint_addresses",
			"Live endpoint addresses answered for on the uplink.", nil, nil),
		ports: prometheus.NewDesc("v6dp_endpoints",
			"Endpoints (bridge ports with an address in the prefix).", nil, nil),
		conflictsDesc: prometheus.NewDesc("v6dp_address_conflicts_total",
			"Addresses claimed by a second endpoint while their owner held them (the claimant got nothing).", nil, nil),
		dataplaneInfo: prometheus.NewDesc("v6dp_dataplane_info",
			"The dataplane in use.", []string{"dataplane"}, nil),
		pending: prometheus.NewDesc("v6dp_ports_pending",
			"Served ports still waiting for work done beside the event loop: their endpoint program (guard), their IPv6 off (ipv6_off).", []string{"work"}, nil),
	}
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.packets
	ch <- m.netPackets
	ch <- m.live
	ch <- m.ports
	ch <- m.conflictsDesc
	ch <- m.dataplaneInfo
	ch <- m.pending
	describeCluster(ch)
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(m.live, prometheus.GaugeValue, float64(m.addresses.Load()))
	ch <- prometheus.MustNewConstMetric(m.ports, prometheus.GaugeValue, float64(m.endpoints.Load()))
	ch <- prometheus.MustNewConstMetric(m.conflictsDesc, prometheus.CounterValue, float64(m.conflicts.Load()))
	ch <- prometheus.MustNewConstMetric(m.dataplaneInfo, prometheus.GaugeValue, 1, m.dataplane)
	if w := m.later.Load(); w != nil {
		ch <- prometheus.MustNewConstMetric(m.pending, prometheus.GaugeValue, float64(w.queued.Load()), "guard")
	}
	if p := m.prep.Load(); p != nil {
		ch <- prometheus.MustNewConstMetric(m.pending, prometheus.GaugeValue, float64(p.queued.Load()), "ipv6_off")
	}
	m.cluster.Load().collect(ch)
	if m.dataplane == DataplaneKernel {
		return
	}
	_, counters, err := loader.ReadPinned(m.pinDir)
	if err != nil {
		return
	}
	for name, v := range counters {
		ch <- prometheus.MustNewConstMetric(m.packets, prometheus.CounterValue, float64(v), name)
	}
	nets, err := loader.ReadPinnedNetworks(m.pinDir)
	if err != nil {
		return
	}
	for idx, n := range nets {
		bridge := fmt.Sprint(idx)
		if l, err := netlink.LinkByIndex(idx); err == nil {
			bridge = l.Attrs().Name
		}
		c := n.Stats
		for what, v := range map[string]uint64{"ns_answered": c.NSAnswered, "fwd_redirected": c.FwdRedirected,
			"egress_local": c.EgressLocal, "egress_fib": c.EgressFIB, "egress_drop": c.EgressDrop} {
			ch <- prometheus.MustNewConstMetric(m.netPackets, prometheus.CounterValue, float64(v), bridge, what)
		}
	}
}

// serveMetrics serves /metrics on addr until ctx ends.
func serveMetrics(ctx context.Context, addr string, m *metrics) error {
	reg := prometheus.NewRegistry()
	// The daemon's own memory and CPU (process_resident_memory_bytes,
	// process_cpu_seconds_total) beside v6dp_endpoints: it grows by a few
	// KiB an endpoint (the Scale10k bench).
	reg.MustRegister(m, collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Warn("metrics server", "err", err)
		}
	}()
	slog.Info("metrics served", "addr", ln.Addr().String())
	return nil
}
