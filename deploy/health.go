package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Traffic takes instances out of their load balancers' server groups and puts
// them back: a rolling deployment drains an instance before stopping it and
// undrains it only after its health check passed. The reference server
// implements it with lb's Drain and Undrain. Methods are called from several
// goroutines at once, for different instances.
type Traffic interface {
	// Drain stops sending new requests to the instance and returns when
	// the requests in flight are done or ctx ends. An instance the load
	// balancer does not know is not an error.
	Drain(ctx context.Context, inst Instance) error
	// Undrain sends requests to the instance again, adding it where it
	// belongs if the load balancer does not know it yet, and returns once
	// the load balancer sends it requests (its own checks passed), so that a
	// rollout takes no further instance out before this one is back in.
	Undrain(ctx context.Context, inst Instance) error
}

// healthPort returns the name of the port the app's health check (and the
// load balancer) uses: the check's port or the first one.
func healthPort(app *AppConfig) string {
	if app.Health.Port != "" {
		return app.Health.Port
	}
	if len(app.Ports) > 0 {
		return app.Ports[0].Name
	}
	return ""
}

// probe runs one health check of the app against addr.
func probe(ctx context.Context, client *http.Client, h HealthCheck, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, h.Timeout.Or(2*time.Second))
	defer cancel()
	switch h.Type {
	case "tcp":
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	case "http":
		p := h.Path
		if p == "" {
			p = "/"
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+p, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 399 {
			return fmt.Errorf("GET %s: %s", p, resp.Status)
		}
		return nil
	}
	return nil
}

// waitHealthy waits until the instance passes its app's health check the
// configured number of times in a row, failing early when its driver reports
// it in a crash loop or stopped.
func (m *Manager) waitHealthy(ctx context.Context, app *AppConfig, drv NodeDriver, inst *Instance) error {
	h := app.Health
	ctx, cancel := context.WithTimeout(ctx, h.StartTimeout.Or(60*time.Second))
	defer cancel()
	interval := h.Interval.Or(time.Second)
	need := max(h.Successes, 1)
	ok := 0
	var last error
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		st, err := drv.Status(ctx, inst.ID)
		switch {
		case err != nil && ctx.Err() == nil:
			last = err
			ok = 0
		case err == nil && st.State == StateCrashLoop:
			return fmt.Errorf("%w: instance %s: %s", ErrCrashLoop, inst.ID, st.LastExit)
		case err == nil && st.State == StateStopped:
			return fmt.Errorf("%w: instance %s stopped while starting (%s)", ErrHealth, inst.ID, st.LastExit)
		case err == nil && (st.State == StateBackoff || st.State == StateUnknown):
			last = fmt.Errorf("process %s (%s)", st.State, st.LastExit)
			ok = 0
		case err == nil:
			if h.Type == "" {
				last = nil
			} else {
				last = probe(ctx, m.opts.HTTPClient, h, inst.Addr)
			}
			if last == nil {
				ok++
				if ok >= need {
					return nil
				}
			} else {
				ok = 0
				m.metrics.healthFailures.WithLabelValues(inst.Project, inst.App).Inc()
			}
		}
		select {
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), context.DeadlineExceeded) && ctx.Err() != nil {
				if last == nil {
					last = ctx.Err()
				}
				return fmt.Errorf("%w: instance %s not healthy within %v: %v", ErrHealth, inst.ID, h.StartTimeout.Or(60*time.Second), last)
			}
			return ctx.Err()
		case <-t.C:
		}
	}
}
