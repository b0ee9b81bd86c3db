package dnsctl

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// metricTypes are the query types with a label of their own; others count as "other".
var metricTypes = []uint16{
	dns.TypeA, dns.TypeAAAA, dns.TypeCNAME, dns.TypeSRV, dns.TypeTXT, dns.TypeMX, dns.TypePTR,
	dns.TypeNS, dns.TypeSOA, dns.TypeANY, dns.TypeAXFR, dns.TypeIXFR,
}

const maxRcode = 24 // rcodes above count as "other"

// metrics are one server's Prometheus collectors.
type metrics struct {
	queries     *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	cacheHits   prometheus.Counter
	cacheMisses prometheus.Counter
	upstreams   *prometheus.CounterVec
	transfers   *prometheus.CounterVec

	// counters caches queries' children: WithLabelValues hashes and locks, which
	// the answer path should not pay per query.
	counters [][maxRcode + 1]atomic.Pointer[prometheus.Counter]
	typeIdx  map[uint16]int
	byKind   map[string]prometheus.Observer
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dnsctl_queries_total", Help: "DNS queries answered, by query type and response code.",
		}, []string{"type", "rcode"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "dnsctl_query_duration_seconds", Help: "Time to answer a query, by source of the answer (auth, cache, forward, error).",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"source"}),
		cacheHits:   prometheus.NewCounter(prometheus.CounterOpts{Name: "dnsctl_cache_hits_total", Help: "Forwarded queries answered from the cache."}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{Name: "dnsctl_cache_misses_total", Help: "Forwarded queries not in the cache."}),
		upstreams: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dnsctl_upstream_requests_total", Help: "Requests to upstream resolvers, by upstream and result (ok, error).",
		}, []string{"upstream", "result"}),
		transfers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dnsctl_transfers_total", Help: "Zone transfers, by direction (in, out) and result (ok, error).",
		}, []string{"direction", "result"}),
		counters: make([][maxRcode + 1]atomic.Pointer[prometheus.Counter], len(metricTypes)+1),
		typeIdx:  map[uint16]int{},
		byKind:   map[string]prometheus.Observer{},
	}
	for i, t := range metricTypes {
		m.typeIdx[t] = i
	}
	for _, k := range []string{"auth", "cache", "forward", "error"} {
		m.byKind[k] = m.duration.WithLabelValues(k)
	}
	var registered []prometheus.Collector
	for _, c := range []prometheus.Collector{m.queries, m.duration, m.cacheHits, m.cacheMisses, m.upstreams, m.transfers} {
		if err := reg.Register(c); err != nil {
			for _, r := range registered {
				reg.Unregister(r)
			}
			return nil, fmt.Errorf("dnsctl: register metrics: %w", err)
		}
		registered = append(registered, c)
	}
	return m, nil
}

func (m *metrics) query(qtype uint16, rcode int, kind string, d time.Duration) {
	ti, ok := m.typeIdx[qtype]
	if !ok {
		ti = len(metricTypes)
	}
	ri := min(rcode, maxRcode)
	slot := &m.counters[ti][ri]
	c := slot.Load()
	if c == nil {
		typ, rc := "other", "other"
		if ti < len(metricTypes) {
			typ = dns.TypeToString[qtype]
		}
		if s, ok := dns.RcodeToString[rcode]; ok && rcode < maxRcode {
			rc = s
		}
		counter := m.queries.WithLabelValues(typ, rc)
		c = &counter
		slot.Store(c)
	}
	(*c).Inc()
	if kind == "" {
		kind = "error"
	}
	m.byKind[kind].Observe(d.Seconds())
}

func (m *metrics) upstream(addr string, err error) {
	result := "ok"
	var rc *rcodeError
	switch {
	case errors.As(err, &rc):
		result = "rcode"
	case err != nil:
		result = "error"
	}
	m.upstreams.WithLabelValues(addr, result).Inc()
}

func (m *metrics) transfer(direction, result string) {
	m.transfers.WithLabelValues(direction, result).Inc()
}
