package gateway

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
)

// metrics are the gateway's Prometheus series. Labels are bounded: api is
// a configured API's name ("" for requests that matched none) and code one
// of Codes, "http_4xx", "http_5xx", "client_closed" or "ok". Consumers are
// not a label (there may be thousands); per-consumer counts are in Stats.
type metrics struct {
	reg      prometheus.Registerer
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	applies  *prometheus.CounterVec
	circuit  *prometheus.GaugeVec
	cs       []prometheus.Collector
	g        *Gateway
}

func newMetrics(g *Gateway, reg prometheus.Registerer) (*metrics, error) {
	cl := prometheus.Labels{"gateway": g.name}
	m := &metrics{reg: reg, g: g}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shuanghuo_gateway_requests_total", Help: "Requests by API and outcome code (ok for success).", ConstLabels: cl,
	}, []string{"api", "code"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "shuanghuo_gateway_request_duration_seconds", Help: "Time the gateway spent per request, by API.", ConstLabels: cl,
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"api"})
	m.applies = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shuanghuo_gateway_config_applies_total", Help: "Config pushes by result.", ConstLabels: cl,
	}, []string{"result"})
	m.circuit = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "shuanghuo_gateway_circuit_open", Help: "1 while the API's circuit is open, 0.5 half-open, 0 closed.", ConstLabels: cl,
	}, []string{"api"})
	m.cs = []prometheus.Collector{m.requests, m.duration, m.applies, circuitCollector{m}}
	for i, c := range m.cs {
		if err := reg.Register(c); err != nil {
			for _, r := range m.cs[:i] {
				reg.Unregister(r)
			}
			return nil, fmt.Errorf("gateway: register metrics: %w", err)
		}
	}
	return m, nil
}

// circuitCollector refreshes the circuit gauge from the breakers at scrape time.
type circuitCollector struct{ m *metrics }

func (c circuitCollector) Describe(ch chan<- *prometheus.Desc) { c.m.circuit.Describe(ch) }

func (c circuitCollector) Collect(ch chan<- prometheus.Metric) {
	if s := c.m.g.snap.Load(); s != nil {
		for name, a := range s.apis {
			v := 0.0
			switch a.breaker.cb.State() {
			case gobreaker.StateOpen:
				v = 1
			case gobreaker.StateHalfOpen:
				v = 0.5
			}
			c.m.circuit.WithLabelValues(name).Set(v)
		}
	}
	c.m.circuit.Collect(ch)
}

// apiMetrics caches the series of one API of one config version: the
// success counter and the duration histogram, looked up on first use.
type apiMetrics struct {
	ok       atomic.Pointer[prometheus.Counter]
	duration atomic.Pointer[prometheus.Observer]
	retired  atomic.Bool // the API's series were deleted: look them up each time
}

// forAPI returns the series cache of an API; nil without metrics.
func (m *metrics) forAPI() *apiMetrics {
	if m == nil {
		return nil
	}
	return &apiMetrics{}
}

// observe counts a finished request of the API called api, whose series
// am caches when not nil.
func (m *metrics) observe(am *apiMetrics, api, code string, lat time.Duration) {
	if m == nil {
		return
	}
	if am == nil || am.retired.Load() {
		if code == "" {
			code = "ok"
		}
		m.requests.WithLabelValues(api, code).Inc()
		m.duration.WithLabelValues(api).Observe(lat.Seconds())
		return
	}
	if code != "" {
		m.requests.WithLabelValues(api, code).Inc()
	} else if c := am.ok.Load(); c != nil {
		(*c).Inc()
	} else {
		c := m.requests.WithLabelValues(api, "ok")
		am.ok.Store(&c)
		c.Inc()
	}
	d := am.duration.Load()
	if d == nil {
		o := m.duration.WithLabelValues(api)
		d = &o
		am.duration.Store(d)
	}
	(*d).Observe(lat.Seconds())
}

func (m *metrics) applied(ok bool) {
	if m == nil {
		return
	}
	if ok {
		m.applies.WithLabelValues("ok").Inc()
	} else {
		m.applies.WithLabelValues("rejected").Inc()
	}
}

// retire drops the series of APIs that the new config removed.
func (m *metrics) retire(old, cur *snapshot) {
	if m == nil || old == nil {
		return
	}
	for name, a := range old.apis {
		if _, ok := cur.apis[name]; !ok {
			if a.metrics != nil {
				a.metrics.retired.Store(true)
			}
			l := prometheus.Labels{"api": name}
			m.requests.DeletePartialMatch(l)
			m.duration.DeletePartialMatch(l)
			m.circuit.DeletePartialMatch(l)
		}
	}
}

func (m *metrics) unregister() {
	if m == nil {
		return
	}
	for _, c := range m.cs {
		m.reg.Unregister(c)
	}
}
