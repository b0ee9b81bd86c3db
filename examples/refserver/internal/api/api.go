// Package api is the reference server's REST API under /api/v1: JSON in and out, one error
// envelope {"error":{"code","message","fields","request_id"}}, bearer tokens, teams as
// tenants, and an audit record for every change (written by the store in the change's own
// transaction). It also serves /healthz, /readyz and /metrics.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-playground/validator/v10"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/store"
	"github.com/shuanghuo/shuanghuo/internal/validate"
)

// Center is what the API says about the process it runs in.
type Center struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

// Options configures a Server.
type Options struct {
	Center Center
	Store  store.Store
	Logger *slog.Logger
	// MaxBodyBytes caps request bodies. Zero means 1 MiB.
	MaxBodyBytes int64
	// Registry receives the API's metrics and is served at /metrics. Nil means a new one.
	Registry *prometheus.Registry
	// Capabilities are the capability packages' resources this server manages.
	Capabilities []Capability
	// Settings are platform-wide data-plane settings this server manages.
	Settings []Setting
	// Routes are data planes' own endpoints.
	Routes []Route
	// Off are the paths under /api/v1 of what this server was configured without, such
	// as "zones" without a DNS server, each with what turns it on: requests there answer
	// 404 with it rather than "no endpoint".
	Off map[string]string
}

// Server is the HTTP handler of one center.
type Server struct {
	center    Center
	store     store.Store
	log       *slog.Logger
	maxBody   int64
	validator *validator.Validate
	registry  *prometheus.Registry
	metrics   metrics
	ready     atomic.Bool
	// stopping is closed when shutdown begins, ending event streams so that they do not hold
	// the shutdown up.
	stopping chan struct{}
	stopOnce sync.Once
	handler  http.Handler
	touched  touchCache
	// capabilities are mounted in routes, from Options.Capabilities.
	capabilities []*capabilityRoutes
	settings     []*settingRoutes
}

// New builds the API. It serves /readyz as not ready until SetReady(true).
func New(o Options) *Server {
	s := &Server{
		center:    o.Center,
		store:     o.Store,
		log:       o.Logger,
		maxBody:   o.MaxBodyBytes,
		validator: validate.New("json"),
		registry:  o.Registry,
		stopping:  make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.maxBody <= 0 {
		s.maxBody = 1 << 20
	}
	if s.registry == nil {
		s.registry = prometheus.NewRegistry()
		s.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	s.metrics = newMetrics(s.registry)
	s.handler = s.routes(o)
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// SetReady switches /readyz on once the center serves.
func (s *Server) SetReady(ready bool) { s.ready.Store(ready) }

// BeginShutdown answers /readyz as not ready, so load balancers stop sending new work before
// the listener closes, and ends the event streams.
func (s *Server) BeginShutdown() {
	s.ready.Store(false)
	s.stopOnce.Do(func() { close(s.stopping) })
}

func (s *Server) routes(o Options) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}))

	api := func(pattern string, h func(http.ResponseWriter, *http.Request) error) {
		mux.Handle(pattern, s.authenticated(h))
	}
	api("GET /api/v1/center", s.getCenter)

	api("GET /api/v1/teams", s.listTeams)
	api("POST /api/v1/teams", s.createTeam)
	api("GET /api/v1/teams/{id}", s.getTeam)
	api("PATCH /api/v1/teams/{id}", s.updateTeam)
	api("DELETE /api/v1/teams/{id}", s.deleteTeam)

	api("GET /api/v1/projects", s.listProjects)
	api("POST /api/v1/projects", s.createProject)
	api("GET /api/v1/projects/{id}", s.getProject)
	api("PATCH /api/v1/projects/{id}", s.updateProject)
	api("DELETE /api/v1/projects/{id}", s.deleteProject)

	api("GET /api/v1/tokens", s.listTokens)
	api("POST /api/v1/tokens", s.createToken)
	api("GET /api/v1/tokens/{id}", s.getToken)
	api("DELETE /api/v1/tokens/{id}", s.deleteToken)

	api("GET /api/v1/audit", s.listAudit)

	for _, c := range o.Capabilities {
		s.mount(api, c)
	}
	for _, st := range o.Settings {
		s.mountSetting(api, st)
	}
	for _, rt := range o.Routes {
		s.mountRoute(api, rt)
	}

	for path, why := range o.Off {
		off := func(http.ResponseWriter, *http.Request) error {
			return newError(http.StatusNotFound, codeNotFound, "%s", why)
		}
		api("/api/v1/"+path, off)
		api("/api/v1/"+path+"/", off)
	}

	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, noRoute(mux, r))
	})
	return s.withRequestID(s.observe(s.recoverPanics(mux)))
}

// noRoute answers what the catch-all sees: 405 with Allow where the path exists for other
// methods, else 404, both in the envelope (ServeMux's own answers are plain text).
func noRoute(mux *http.ServeMux, r *http.Request) *apiError {
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := mux.Handler(probe); pattern != "" && pattern != "/api/" {
			allowed = append(allowed, m)
		}
	}
	if len(allowed) == 0 {
		return newError(http.StatusNotFound, codeNotFound, "no endpoint %s %s", r.Method, r.URL.Path)
	}
	e := newError(http.StatusMethodNotAllowed, codeMethod, "%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, strings.Join(allowed, ", "))
	e.allow = strings.Join(allowed, ", ")
	return e
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if !s.ready.Load() {
		s.writeError(w, r, newError(http.StatusServiceUnavailable, codeUnavailable, "not ready"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.writeError(w, r, newError(http.StatusServiceUnavailable, codeUnavailable, "store: %v", err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) getCenter(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, s.center)
	return nil
}
