package dr

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are a Manager's Prometheus collectors. They exist even without a
// Registerer, so that recording needs no nil checks.
type metrics struct {
	state     *prometheus.GaugeVec
	linkUp    *prometheus.GaugeVec
	lagBytes  *prometheus.GaugeVec
	lagSecs   *prometheus.GaugeVec
	runs      *prometheus.CounterVec
	rto       *prometheus.GaugeVec
	rpoBytes  *prometheus.GaugeVec
	allGroups []*prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dr_group_state", Help: "1 for the state a DR group is in, 0 for the others.",
		}, []string{"group", "state"}),
		linkUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dr_group_link_up", Help: "1 when the DR group's replica replicates its primary, as last read.",
		}, []string{"group"}),
		lagBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dr_group_lag_bytes", Help: "Replication lag of the DR group in bytes, as last read; -1 when unknown.",
		}, []string{"group"}),
		lagSecs: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dr_group_lag_seconds", Help: "How long the DR group's replica, lacking writes, has not heard from its primary, as last read.",
		}, []string{"group"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dr_runs_total", Help: "Runs of DR plans that stopped, by plan, mode and final state.",
		}, []string{"plan", "mode", "state"}),
		rto: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dr_run_rto_seconds", Help: "RTO of the plan's last run (estimated for a drill).",
		}, []string{"plan", "mode"}),
		rpoBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dr_run_rpo_bytes", Help: "RPO in bytes of the plan's last run (estimated for a drill); -1 when unknown.",
		}, []string{"plan", "mode"}),
	}
	m.allGroups = []*prometheus.GaugeVec{m.linkUp, m.lagBytes, m.lagSecs}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.state, m.linkUp, m.lagBytes, m.lagSecs, m.runs, m.rto, m.rpoBytes} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("dr: register metrics: another manager uses this registerer: %w", err)
			}
			return nil, fmt.Errorf("dr: register metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) setState(group string, s State) {
	for st := range transitions {
		v := 0.0
		if st == s {
			v = 1
		}
		m.state.WithLabelValues(group, string(st)).Set(v)
	}
}

func (m *metrics) setStatus(group string, st Status) {
	link := 0.0
	if st.LinkUp {
		link = 1
	}
	m.linkUp.WithLabelValues(group).Set(link)
	bytes := float64(st.Lag.Bytes)
	if !st.Lag.Known {
		bytes = -1
	}
	m.lagBytes.WithLabelValues(group).Set(bytes)
	m.lagSecs.WithLabelValues(group).Set(time.Duration(st.Lag.Time).Seconds())
}

func (m *metrics) forget(group string) {
	m.state.DeletePartialMatch(prometheus.Labels{"group": group})
	for _, v := range m.allGroups {
		v.DeleteLabelValues(group)
	}
}

func (m *metrics) runEnded(r *Run) {
	m.runs.WithLabelValues(r.Plan, string(r.Mode), string(r.State)).Inc()
	if r.Report.RTO > 0 {
		m.rto.WithLabelValues(r.Plan, string(r.Mode)).Set(time.Duration(r.Report.RTO).Seconds())
	}
	m.rpoBytes.WithLabelValues(r.Plan, string(r.Mode)).Set(float64(r.Report.RPO.Bytes))
}
