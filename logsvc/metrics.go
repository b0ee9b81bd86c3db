package logsvc

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are one collector's Prometheus collectors; without a Registerer they count
// unregistered, which costs less than checking for nil on every line.
type metrics struct {
	linesRead  prometheus.Counter
	shipped    prometheus.Counter
	truncated  prometheus.Counter
	shipErrors prometheus.Counter
	lag        *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		linesRead:  prometheus.NewCounter(prometheus.CounterOpts{Name: "logsvc_collector_lines_read_total", Help: "Lines read from files."}),
		shipped:    prometheus.NewCounter(prometheus.CounterOpts{Name: "logsvc_collector_records_shipped_total", Help: "Records the sink acknowledged."}),
		truncated:  prometheus.NewCounter(prometheus.CounterOpts{Name: "logsvc_collector_truncated_lines_total", Help: "Records cut at the line length limit."}),
		shipErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "logsvc_collector_ship_errors_total", Help: "Failed attempts to ship a batch (each is retried)."}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "logsvc_collector_lag_bytes", Help: "Bytes of a file not yet acknowledged by the sink, by file path.",
		}, []string{"file"}),
	}
	if reg == nil {
		return m, nil
	}
	var registered []prometheus.Collector
	for _, c := range []prometheus.Collector{m.linesRead, m.shipped, m.truncated, m.shipErrors, m.lag} {
		if err := reg.Register(c); err != nil {
			for _, r := range registered {
				reg.Unregister(r)
			}
			return nil, fmt.Errorf("logsvc: register metrics: %w", err)
		}
		registered = append(registered, c)
	}
	return m, nil
}
