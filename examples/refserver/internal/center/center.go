// Package center runs one center's reference server: it opens the store, makes sure an admin
// token exists, serves the API, and shuts down gracefully, letting in-flight requests finish.
package center

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/api"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/config"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/store"
)

// AdminTokenEnv names the environment variable that may supply the admin token, so that
// operators and scripts can know it in advance instead of reading it from the first start.
const AdminTokenEnv = "SHUANGHUO_ADMIN_TOKEN"

// systemActor is the audit actor of changes the server makes itself (bootstrap, demo seed).
var systemActor = store.Actor{TokenID: "system"}

// Center is one running reference server.
type Center struct {
	cfg   config.Config
	log   *slog.Logger
	store store.Store
	api   *api.Server
	ln    net.Listener
	srv   *http.Server
	// closers stop the data planes, in build order; they are closed in reverse, after the
	// API has stopped.
	closers []closer
}

type closer interface{ Close(context.Context) error }

// Options are the parts of a center that do not come from its configuration.
type Options struct {
	Logger *slog.Logger
	// AdminToken, when set, is made an admin token if it is not one already.
	AdminToken string
	// Out receives the generated admin token on the first start. Nil discards it.
	Out io.Writer
}

// Open validates cfg, opens the store, bootstraps the admin token, binds the listener and
// builds the data planes. Nothing is served until Serve; if Open fails, what it started is
// stopped.
func Open(ctx context.Context, cfg config.Config, o Options) (_ *Center, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	log := o.Logger.With("center", cfg.Center.Name)
	// Secrets are sealed with a key from the environment, or from a key file in the data
	// directory made at first start (see store.KeyEnv).
	st, err := store.OpenSQLite(ctx, cfg.DataDir, store.Options{Key: os.Getenv(store.KeyEnv)})
	if err != nil {
		return nil, err
	}
	c := &Center{cfg: cfg, log: log, store: st}
	defer func() {
		if err != nil {
			if c.ln != nil {
				c.ln.Close()
			}
			c.close(ctx)
		}
	}()
	// The data directory holds the teams' secrets and the keys: the server's alone, which
	// is what keeps local nodes' apps (run as other users) out of it.
	if err := os.Chmod(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("center %s: data dir: %w", cfg.Center.Name, err)
	}
	if err := bootstrapAdmin(ctx, st, o.AdminToken, o.Out, cfg.Center.Name); err != nil {
		return nil, err
	}
	if c.ln, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("center %s: listen on %s: %w", cfg.Center.Name, cfg.Listen, err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	e := &env{ctx: ctx, cfg: cfg, log: log, reg: reg, st: st, api: &lateAPI{}}
	var (
		all     = plane{off: map[string]string{}}
		resumes []func(context.Context)
	)
	for _, build := range planeTable {
		p, err := build(e)
		if err != nil {
			return nil, fmt.Errorf("center %s: %w", cfg.Center.Name, err)
		}
		if p.closer != nil {
			c.closers = append(c.closers, p.closer)
		}
		all.capabilities = append(all.capabilities, p.capabilities...)
		all.settings = append(all.settings, p.settings...)
		all.routes = append(all.routes, p.routes...)
		maps.Copy(all.off, p.off)
		if p.resume != nil {
			resumes = append(resumes, p.resume)
		}
	}
	c.api = api.New(api.Options{
		Center:       api.Center{Name: cfg.Center.Name, Role: cfg.Center.Role},
		Store:        st,
		Logger:       log,
		MaxBodyBytes: cfg.MaxBodyBytes,
		Registry:     reg,
		Capabilities: all.capabilities,
		Settings:     all.settings,
		Routes:       all.routes,
		Off:          all.off,
	})
	e.api.Server = c.api
	// Before anything reads a resource's secrets: what an older server stored plain is sealed.
	if err := c.api.DeclareSecrets(ctx); err != nil {
		return nil, fmt.Errorf("center %s: %w", cfg.Center.Name, err)
	}
	// The data plane runs again what was pushed before the restart. A resource that no
	// longer applies (its port taken, say) is logged and left for the operator to push.
	if err := c.api.RestorePlanes(ctx); err != nil {
		log.Error("restore data plane", "err", err)
	}
	for _, resume := range resumes {
		go resume(context.WithoutCancel(ctx))
	}
	c.srv = &http.Server{
		Handler:           c.api,
		ReadHeaderTimeout: min(cfg.ReadTimeout, 10*time.Second),
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return c, nil
}

// Store is the center's store, for seeding and tests.
func (c *Center) Store() store.Store { return c.store }

// URL is the base URL the API answers on.
func (c *Center) URL() string { return "http://" + c.ln.Addr().String() }

// Serve answers requests until ctx ends, then stops taking new requests, lets in-flight ones
// finish within the configured shutdown timeout, and closes the store.
func (c *Center) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- c.srv.Serve(c.ln) }()
	c.api.SetReady(true)
	c.log.Info("serving", "url", c.URL(), "role", c.cfg.Center.Role, "data_dir", c.cfg.DataDir)
	var serveErr error
	select {
	case err := <-errc:
		serveErr = fmt.Errorf("center %s: serve: %w", c.cfg.Center.Name, err)
	case <-ctx.Done():
	}
	c.api.BeginShutdown()
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.ShutdownTimeout)
	defer cancel()
	if err := c.srv.Shutdown(shutdownCtx); err != nil && serveErr == nil {
		serveErr = fmt.Errorf("center %s: shutdown: %w", c.cfg.Center.Name, err)
	}
	if err := c.close(shutdownCtx); err != nil && serveErr == nil {
		serveErr = err
	}
	c.log.Info("stopped")
	return serveErr
}

// close stops the data planes, the last built first (see planeTable), then closes the store.
func (c *Center) close(ctx context.Context) error {
	var errs []error
	for _, p := range slices.Backward(c.closers) {
		if err := p.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("center %s: stop data plane: %w", c.cfg.Center.Name, err))
		}
	}
	if err := c.store.Close(); err != nil {
		errs = append(errs, fmt.Errorf("center %s: close store: %w", c.cfg.Center.Name, err))
	}
	return errors.Join(errs...)
}

// bootstrapAdmin makes sure the platform has an admin token: the given one, or on the very
// first start a generated one, printed once and never again (only its hash is kept).
func bootstrapAdmin(ctx context.Context, st store.Store, given string, out io.Writer, center string) error {
	if given != "" {
		if !strings.HasPrefix(given, api.TokenPrefix) || len(given) < len(api.TokenPrefix)+16 {
			return fmt.Errorf("center %s: %s must start with %q and hold at least 16 more characters", center, AdminTokenEnv, api.TokenPrefix)
		}
		_, err := st.TokenByHash(ctx, api.HashToken(given))
		if err == nil {
			return nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return st.Change(ctx, systemActor, func(tx store.Tx) error {
			_, err := tx.PutToken(ctx, store.Token{ID: api.NewID("tk"), Name: "admin (from " + AdminTokenEnv + ")", Hash: api.HashToken(given)})
			return err
		})
	}
	secret := api.NewTokenSecret()
	created := false
	err := st.Change(ctx, systemActor, func(tx store.Tx) error {
		n, err := tx.AdminTokenCount(ctx)
		if err != nil || n > 0 {
			return err
		}
		created = true
		_, err = tx.PutToken(ctx, store.Token{ID: api.NewID("tk"), Name: "admin (first start)", Hash: api.HashToken(secret)})
		return err
	})
	if err != nil {
		return fmt.Errorf("center %s: bootstrap admin token: %w", center, err)
	}
	if created {
		fmt.Fprintf(out, "center %s: admin token (shown once, store it now): %s\n", center, secret)
	} else {
		// A restart, where the token printed at the first start has scrolled away.
		fmt.Fprintf(out, "center %s: the admin token was shown at the first start; to make one, restart with %s=shk_... (16 or more characters after shk_)\n", center, AdminTokenEnv)
	}
	return nil
}
