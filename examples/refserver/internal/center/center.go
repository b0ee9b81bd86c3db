// Package center runs one center's reference server: it opens the store, makes sure an admin
// token exists, serves the API, and shuts down gracefully, letting in-flight requests finish.
package center

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/shuanghuo/shuanghuo/dnsctl"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/api"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/config"
	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/planes"
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
	// planes are the data planes, closed after the API has stopped.
	planes []closer
}

type closer interface{ Close(context.Context) error }

func closeAll(ctx context.Context, cs []closer) error {
	var errs []error
	for _, c := range cs {
		errs = append(errs, c.Close(ctx))
	}
	return errors.Join(errs...)
}

// Options are the parts of a center that do not come from its configuration.
type Options struct {
	Logger *slog.Logger
	// AdminToken, when set, is made an admin token if it is not one already.
	AdminToken string
	// Out receives the generated admin token on the first start. Nil discards it.
	Out io.Writer
}

// Open validates cfg, opens the store, bootstraps the admin token and binds the listener.
// Nothing is served until Serve.
func Open(ctx context.Context, cfg config.Config, o Options) (*Center, error) {
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
	// The data directory holds the teams' secrets and the keys: the server's alone, which
	// is what keeps local nodes' apps (run as other users) out of it.
	if err := os.Chmod(cfg.DataDir, 0o700); err != nil {
		st.Close()
		return nil, fmt.Errorf("center %s: data dir: %w", cfg.Center.Name, err)
	}
	if err := bootstrapAdmin(ctx, st, o.AdminToken, o.Out, cfg.Center.Name); err != nil {
		st.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("center %s: listen on %s: %w", cfg.Center.Name, cfg.Listen, err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	balancers := planes.NewBalancers(log, reg, st, cfg.Zones)
	gateways, err := planes.NewGateways(planes.GatewayOptions{Store: st, Logger: log, Registerer: reg, Sealer: st.Sealer()})
	if err != nil {
		ln.Close()
		st.Close()
		return nil, fmt.Errorf("center %s: %w", cfg.Center.Name, err)
	}
	capabilities := []api.Capability{balancers.Capability(), gateways.Capability()}
	settings := []api.Setting{planes.GrantsSetting()}
	var zones *planes.Zones
	var dnsAddr string
	closers := []closer{balancers, gateways}
	off := map[string]string{}
	if cfg.DNS.Listen == "" {
		why := "DNS is off in this center: set dns.listen in the configuration (flag -dns-listen) to the address it serves DNS on"
		off["zones"], off["dns/views"] = why, why
	} else {
		dns, err := startDNS(ctx, cfg, log, reg)
		if err != nil {
			closeAll(ctx, closers)
			ln.Close()
			st.Close()
			return nil, err
		}
		zones = planes.NewZones(dns, st)
		dnsAddr = dns.Addr()
		capabilities = append(capabilities, zones.Capability())
		settings = append(settings, zones.ViewsSetting())
		closers = append(closers, dns)
	}
	drOpts := planes.DROptions{Store: st, Logger: log, Registerer: reg}
	if zones != nil {
		drOpts.DNS = zones
		drOpts.Resolver = dnsAddr
	}
	if len(cfg.Zones) > 0 {
		drOpts.Traffic = balancers
	}
	drPlane, err := planes.NewDR(ctx, drOpts)
	if err != nil {
		closeAll(ctx, closers)
		ln.Close()
		st.Close()
		return nil, err
	}
	capabilities = append(capabilities, drPlane.Groups(), drPlane.Plans())
	// DR closes first: its runs may still switch DNS.
	closers = append([]closer{drPlane}, closers...)
	deployPlane, err := planes.NewDeploy(planes.DeployOptions{Store: st, Sealer: st.Sealer(), Dir: filepath.Join(cfg.DataDir, "deploy"),
		NodesDir: cfg.NodesDir(), FirstUID: cfg.LocalNodes.FirstUID,
		UploadMinBytes: cfg.UploadMinRate.Bytes, UploadRateWindow: cfg.UploadMinRate.Window,
		MaxArtifactSize: cfg.MaxArtifactBytes, Balancers: balancers, Logger: log, Registerer: reg})
	if err != nil {
		closeAll(ctx, closers)
		ln.Close()
		st.Close()
		return nil, fmt.Errorf("center %s: %w", cfg.Center.Name, err)
	}
	capabilities = append(capabilities, deployPlane.Apps(), deployPlane.Nodes())
	settings = append(settings, deployPlane.Variables())
	// Deploy closes before the balancers: its deployments may still drain servers.
	closers = append([]closer{deployPlane}, closers...)
	syncKey := cfg.SyncKey
	if env := os.Getenv(planes.SyncKeyEnv); env != "" {
		syncKey = env
	}
	key, err := planes.ParseSyncKey(syncKey)
	var appSync *planes.AppSync
	if err == nil {
		peers := map[string]string{}
		for _, p := range cfg.Peers {
			peers[p.Name] = p.URL
		}
		appSync, err = planes.NewAppSync(planes.AppSyncOptions{Store: st, Deploy: deployPlane, Key: key, Peers: peers, Logger: log, Registerer: reg})
	}
	if err != nil {
		closeAll(ctx, closers)
		ln.Close()
		st.Close()
		return nil, fmt.Errorf("center %s: appsync: %w", cfg.Center.Name, err)
	}
	capabilities = append(capabilities, appSync.Bindings(), appSync.Tasks())
	// Sync tasks stop first: they upload and deploy.
	closers = append([]closer{appSync}, closers...)
	a := api.New(api.Options{
		Center:       api.Center{Name: cfg.Center.Name, Role: cfg.Center.Role},
		Store:        st,
		Logger:       log,
		MaxBodyBytes: cfg.MaxBodyBytes,
		Registry:     reg,
		Capabilities: capabilities,
		Settings:     settings,
		Routes:       slices.Concat(balancers.Routes(), gateways.Routes(), drPlane.Routes(), deployPlane.Routes(), appSync.Routes()),
		Off:          off,
	})
	appSync.Attach(a)
	// Before anything reads a resource's secrets: what an older server stored plain is sealed.
	if err := a.DeclareSecrets(ctx); err != nil {
		closeAll(ctx, closers)
		ln.Close()
		st.Close()
		return nil, fmt.Errorf("center %s: %w", cfg.Center.Name, err)
	}
	// The data plane runs again what was pushed before the restart. A resource that no
	// longer applies (its port taken, say) is logged and left for the operator to push.
	if err := a.RestorePlanes(ctx); err != nil {
		log.Error("restore data plane", "err", err)
	}
	// Instances that ran before the restart run again once their apps, nodes and balancers
	// are back (a local node's processes ended with the server).
	go deployPlane.Resume(context.WithoutCancel(ctx))
	c := &Center{cfg: cfg, log: log, store: st, api: a, ln: ln, planes: closers}
	c.srv = &http.Server{
		Handler:           a,
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
	if err := closeAll(shutdownCtx, c.planes); err != nil && serveErr == nil {
		serveErr = fmt.Errorf("center %s: stop data plane: %w", c.cfg.Center.Name, err)
	}
	if err := c.store.Close(); err != nil && serveErr == nil {
		serveErr = fmt.Errorf("center %s: close store: %w", c.cfg.Center.Name, err)
	}
	c.log.Info("stopped")
	return serveErr
}

// startDNS starts this center's dnsctl server: a primary for the zones pushed to it, or a
// secondary of the other center's.
func startDNS(ctx context.Context, cfg config.Config, log *slog.Logger, reg prometheus.Registerer) (*dnsctl.Server, error) {
	dc := dnsctl.Config{
		UDPAddr:    cfg.DNS.Listen,
		Center:     cfg.Center.Name,
		Forwarders: cfg.DNS.Forwarders,
		Logger:     log.With("component", "dns"),
		Registerer: reg,
	}
	for _, addr := range cfg.DNS.Secondaries {
		dc.Secondaries = append(dc.Secondaries, dnsctl.Secondary{Addr: addr})
	}
	if cfg.DNS.Primary != "" {
		dc.Primary = &dnsctl.Primary{Addr: cfg.DNS.Primary, Zones: cfg.DNS.PrimaryZones}
	}
	srv, err := dnsctl.New(dc)
	if err != nil {
		return nil, fmt.Errorf("center %s: dns: %w", cfg.Center.Name, err)
	}
	if err := srv.Start(ctx); err != nil {
		return nil, fmt.Errorf("center %s: dns: start on %s: %w", cfg.Center.Name, cfg.DNS.Listen, err)
	}
	return srv, nil
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
