package appsync

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are an Engine's Prometheus collectors. They exist even without a
// Registerer, so that recording needs no nil checks.
type metrics struct {
	changes   *prometheus.CounterVec
	conflicts *prometheus.CounterVec
	errors    *prometheus.CounterVec
	lagEvents *prometheus.GaugeVec
	lagSecs   *prometheus.GaugeVec
	cursor    *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "appsync_changes_total", Help: "Changes a sync task is done with, by task, change kind and outcome (applied, skipped, rejected).",
		}, []string{"task", "kind", "outcome"}),
		conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "appsync_conflicts_total", Help: "Conflicts a sync task stopped at, by task and reason.",
		}, []string{"task", "reason"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "appsync_errors_total", Help: "Failed attempts of a sync task (source, target or state store errors), each retried.",
		}, []string{"task"}),
		lagEvents: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "appsync_lag_events", Help: "Changes of the source's feed after the sync task's cursor.",
		}, []string{"task"}),
		lagSecs: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "appsync_lag_seconds", Help: "Age of the oldest change the sync task has not done; 0 when caught up.",
		}, []string{"task"}),
		cursor: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "appsync_cursor", Help: "Seq of the last change the sync task is done with.",
		}, []string{"task"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.changes, m.conflicts, m.errors, m.lagEvents, m.lagSecs, m.cursor} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("appsync: register metrics: another engine uses this registerer: %w", err)
			}
			return nil, fmt.Errorf("appsync: register metrics: %w", err)
		}
	}
	return m, nil
}

// forget drops a stopped task's gauges, so that they do not linger at their
// last values.
func (m *metrics) forget(task string) {
	for _, g := range []*prometheus.GaugeVec{m.lagEvents, m.lagSecs, m.cursor} {
		g.DeleteLabelValues(task)
	}
}
