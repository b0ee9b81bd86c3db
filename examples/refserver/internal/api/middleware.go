package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shuanghuo/shuanghuo/examples/refserver/internal/store"
)

type ctxKey int

const (
	requestIDKey ctxKey = iota
	tokenKey
)

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// caller is the authenticated token; handlers run only with one.
func caller(ctx context.Context) store.Token {
	t, _ := ctx.Value(tokenKey).(store.Token)
	return t
}

// validRequestID accepts a client's X-Request-Id only if it is short and plain, so that it
// can go into logs and headers as it is.
func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *Server) withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			id = newRequestID()
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey, id)))
	})
}

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) metrics {
	m := metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "shuanghuo", Subsystem: "refserver", Name: "http_requests_total",
			Help: "REST requests by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "shuanghuo", Subsystem: "refserver", Name: "http_request_duration_seconds",
			Help:    "REST request latency by route pattern.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// ReadFrom lets a file reach the connection by sendfile (net/http's ResponseWriter does),
// as artifacts do.
func (w *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := io.Copy(w.ResponseWriter, r)
	w.bytes += n
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// observe logs every request and counts it under its route pattern, not its path, so the
// metric's cardinality stays bounded.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		elapsed := time.Since(start)
		route := r.Pattern
		if route == "" || route == "/api/" {
			route = "unmatched"
		}
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		s.metrics.requests.WithLabelValues(route, r.Method, strconv.Itoa(sw.status)).Inc()
		s.metrics.duration.WithLabelValues(route).Observe(elapsed.Seconds())
		s.log.InfoContext(r.Context(), "request",
			"method", r.Method, "path", r.URL.Path, "status", sw.status, "bytes", sw.bytes,
			"duration", elapsed, "request_id", requestID(r.Context()), "remote", r.RemoteAddr)
	})
}

// recoverPanics turns a handler's panic into a logged 500 so one bad request never takes the
// process down.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.writeError(w, r, fmt.Errorf("api: panic in %s %s: %v", r.Method, r.URL.Path, v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// TokenPrefix starts every API token so that leaked tokens are easy to scan for.
const TokenPrefix = "shk_"

// HashToken is how token secrets are stored: only their SHA-256.
func HashToken(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// authenticated requires a valid bearer token and passes it to h in the context.
func (s *Server) authenticated(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || !strings.HasPrefix(secret, TokenPrefix) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="shuanghuo"`)
			s.writeError(w, r, newError(http.StatusUnauthorized, codeUnauthorized, "an API token is required: Authorization: Bearer %s...", TokenPrefix))
			return
		}
		tok, err := s.store.TokenByHash(r.Context(), HashToken(secret))
		if errors.Is(err, store.ErrNotFound) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="shuanghuo", error="invalid_token"`)
			s.writeError(w, r, newError(http.StatusUnauthorized, codeUnauthorized, "the API token is not valid"))
			return
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.touched.touch(r.Context(), s, tok.ID)
		if err := h(w, r.WithContext(context.WithValue(r.Context(), tokenKey, tok))); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// touchCache records token use at most once a minute per token, so reads stay reads.
type touchCache struct {
	mu   sync.Mutex
	last map[string]time.Time
}

func (c *touchCache) touch(ctx context.Context, s *Server, id string) {
	now := time.Now()
	c.mu.Lock()
	if c.last == nil {
		c.last = map[string]time.Time{}
	}
	due := now.Sub(c.last[id]) >= time.Minute
	if due {
		c.last[id] = now
	}
	c.mu.Unlock()
	if due {
		if err := s.store.TouchToken(ctx, id, now); err != nil {
			s.log.WarnContext(ctx, "record token use", "token", id, "err", err)
		}
	}
}
