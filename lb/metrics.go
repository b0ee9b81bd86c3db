package lb

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// collector exports the balancer's state at scrape time. Its series carry
// the config's name as the "balancer" label, so balancers sharing a
// registry need distinct names (or registerers wrapped with a label of
// their own). It reads the same
// counters as Status, so the request path pays for no label lookups, and a
// push that removes a server removes its series.
//
// A registry cannot unregister an unchecked collector, so the collector
// ends the series itself: it sends nothing before the first applied config
// (the series would carry balancer="") nor after Close, and lets go of the
// closed balancer, keeping only itself in the registry.
type collector struct {
	b atomic.Pointer[Balancer] // nil once closed

	applies [2]atomic.Uint64 // rejected, applied
}

var (
	descServerUp = prometheus.NewDesc("lb_server_up",
		"1 if the server takes requests (up and not draining), else 0.",
		[]string{"balancer", "group", "server", "zone", "role"}, nil)
	descServerState = prometheus.NewDesc("lb_server_state",
		"1 for the server's current state (up, down, draining).",
		[]string{"balancer", "group", "server", "state"}, nil)
	descActive = prometheus.NewDesc("lb_server_active_requests",
		"Requests (tcp: connections) in flight to the server.",
		[]string{"balancer", "group", "server"}, nil)
	descRequests = prometheus.NewDesc("lb_server_requests_total",
		"Requests sent to the server, retries included.",
		[]string{"balancer", "group", "server"}, nil)
	descErrors = prometheus.NewDesc("lb_server_errors_total",
		"Failed requests to the server: connect errors, resets, timeouts, 5xx.",
		[]string{"balancer", "group", "server"}, nil)
	descLatency = prometheus.NewDesc("lb_server_request_duration_seconds",
		"Time from picking the server to the end of the response.",
		[]string{"balancer", "group", "server"}, nil)
	descConns = prometheus.NewDesc("lb_listener_connections",
		"Open client connections of the listener.",
		[]string{"balancer", "listener"}, nil)
	descVersion = prometheus.NewDesc("lb_config_version",
		"Version of the running config.", []string{"balancer"}, nil)
	descApplies = prometheus.NewDesc("lb_config_pushes_total",
		"Config pushes by result (applied, rejected).", []string{"balancer", "result"}, nil)
	descRejected = prometheus.NewDesc("lb_rejected_requests_total",
		"Answers the balancer gave itself, by status.", []string{"balancer", "code"}, nil)
)

// Describe sends nothing: the collector is unchecked, because its series
// follow the pushed config.
func (c *collector) Describe(chan<- *prometheus.Desc) {}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	b := c.b.Load()
	if b == nil {
		return
	}
	b.mu.Lock()
	cur := b.current
	b.mu.Unlock()
	if cur == nil {
		return
	}
	st := b.Status()
	name := st.Name
	ch <- prometheus.MustNewConstMetric(descVersion, prometheus.GaugeValue, float64(st.Version), name)
	ch <- prometheus.MustNewConstMetric(descApplies, prometheus.CounterValue, float64(c.applies[1].Load()), name, "applied")
	ch <- prometheus.MustNewConstMetric(descApplies, prometheus.CounterValue, float64(c.applies[0].Load()), name, "rejected")
	for code, n := range st.Rejected {
		ch <- prometheus.MustNewConstMetric(descRejected, prometheus.CounterValue, float64(n), name, strconv.Itoa(code))
	}
	for _, l := range st.Listeners {
		ch <- prometheus.MustNewConstMetric(descConns, prometheus.GaugeValue, float64(l.Conns), name, l.Name)
	}
	for _, gs := range st.Groups {
		latency := make(map[string]*histogram)
		if g := cur.groups[gs.Name]; g != nil {
			for _, m := range g.members {
				latency[m.srv.id] = &m.srv.latency
			}
		}
		for _, s := range gs.Servers {
			up := 0.0
			if s.State == StateUp {
				up = 1
			}
			ch <- prometheus.MustNewConstMetric(descServerUp, prometheus.GaugeValue, up, name, gs.Name, s.Name, s.Zone, string(s.Role))
			ch <- prometheus.MustNewConstMetric(descServerState, prometheus.GaugeValue, 1, name, gs.Name, s.Name, string(s.State))
			ch <- prometheus.MustNewConstMetric(descActive, prometheus.GaugeValue, float64(s.Active), name, gs.Name, s.Name)
			ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(s.Requests), name, gs.Name, s.Name)
			ch <- prometheus.MustNewConstMetric(descErrors, prometheus.CounterValue, float64(s.Errors), name, gs.Name, s.Name)
			if h := latency[s.Name]; h != nil {
				buckets := make(map[float64]uint64, len(latencyBuckets))
				var cum uint64
				for j, ub := range latencyBuckets {
					cum += h.counts[j].Load()
					buckets[ub] = cum
				}
				cum += h.counts[len(latencyBuckets)].Load()
				ch <- prometheus.MustNewConstHistogram(descLatency, cum, float64(h.sumNs.Load())/1e9, buckets, name, gs.Name, s.Name)
			}
		}
	}
}

func (b *Balancer) countApply(ok bool) {
	if b.metrics == nil {
		return
	}
	i := 0
	if ok {
		i = 1
	}
	b.metrics.applies[i].Add(1)
}

var _ prometheus.Collector = (*collector)(nil)
