package ctrl

import "github.com/prometheus/client_golang/prometheus"

// The multi-host layouts' metrics, read from the cluster's status at
// scrape time.
var (
	bgpSessionUp = prometheus.NewDesc("v6dp_bgp_session_up",
		"1 while the BGP session with the router is established.", []string{"router"}, nil)
	bgpEstablished = prometheus.NewDesc("v6dp_bgp_session_established_total",
		"Times the BGP session with the router came up.", []string{"router"}, nil)
	bgpConnectFailures = prometheus.NewDesc("v6dp_bgp_connect_failures",
		"Failed connects to the router since its session was last up.", []string{"router"}, nil)
	bgpAnnounced = prometheus.NewDesc("v6dp_bgp_announced_prefixes",
		"Prefixes the BGP speaker announces.", nil, nil)
	peerRoutes = prometheus.NewDesc("v6dp_peer_routes",
		"Peer routes of the switched layout, by state (installed, conflict, error).", []string{"state"}, nil)
)

func describeCluster(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{bgpSessionUp, bgpEstablished, bgpConnectFailures, bgpAnnounced, peerRoutes} {
		ch <- d
	}
}

func (c *cluster) collect(ch chan<- prometheus.Metric) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.peers) > 0 {
		n := map[string]int{"installed": 0, "conflict": 0, "error": 0}
		for _, p := range c.status.Peers {
			n[p.State]++
		}
		for state, v := range n {
			ch <- prometheus.MustNewConstMetric(peerRoutes, prometheus.GaugeValue, float64(v), state)
		}
	}
	if b := c.status.BGP; b != nil {
		ch <- prometheus.MustNewConstMetric(bgpAnnounced, prometheus.GaugeValue, float64(len(b.Announced)))
		for _, s := range b.Sessions {
			up := 0.0
			if s.State == "established" {
				up = 1
			}
			ch <- prometheus.MustNewConstMetric(bgpSessionUp, prometheus.GaugeValue, up, s.Router)
			ch <- prometheus.MustNewConstMetric(bgpEstablished, prometheus.CounterValue, float64(s.Established), s.Router)
			ch <- prometheus.MustNewConstMetric(bgpConnectFailures, prometheus.GaugeValue, float64(s.FailedConnects), s.Router)
		}
	}
}
