package deploy

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are a Manager's Prometheus collectors. They exist even without a
// Registerer, so that recording needs no nil checks.
type metrics struct {
	deployments    *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	actions        *prometheus.CounterVec
	healthFailures *prometheus.CounterVec
	uploadBytes    prometheus.Counter
	uploads        *prometheus.CounterVec
	eventSeq       prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		deployments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "deploy_deployments_total", Help: "Deployments that ended, by app, type and final state.",
		}, []string{"project", "app", "type", "state"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "deploy_deployment_duration_seconds", Help: "How long deployments ran, by type and final state.",
			Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800},
		}, []string{"type", "state"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "deploy_instance_actions_total", Help: "Start, stop and restart of single instances, by result.",
		}, []string{"action", "result"}),
		healthFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "deploy_health_check_failures_total", Help: "Failed health checks of starting instances, by app.",
		}, []string{"project", "app"}),
		uploadBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "deploy_artifact_upload_bytes_total", Help: "Bytes of artifacts uploaded, refused uploads included.",
		}),
		uploads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "deploy_artifact_uploads_total",
			Help: "Artifacts uploaded, by how they were checked (digest: hashed whole; pieces: each piece against the piece sums another center gave) and result (stored, refused).",
		}, []string{"check", "result"}),
		eventSeq: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "deploy_release_event_seq", Help: "Sequence number of the last release event published.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.deployments, m.duration, m.actions, m.healthFailures, m.uploadBytes, m.uploads, m.eventSeq} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("deploy: register metrics: another manager uses this registerer: %w", err)
			}
			return nil, fmt.Errorf("deploy: register metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) deploymentEnded(d *Deployment, took time.Duration) {
	m.deployments.WithLabelValues(d.Project, d.App, string(d.Type), string(d.State)).Inc()
	m.duration.WithLabelValues(string(d.Type), string(d.State)).Observe(took.Seconds())
}

func (m *metrics) action(action string, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.actions.WithLabelValues(action, result).Inc()
}
