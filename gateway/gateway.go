package gateway

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
	"golang.org/x/time/rate"

	"github.com/shuanghuo/shuanghuo/lb"
)

// Options are the gateway's dependencies; what it enforces comes with Apply.
type Options struct {
	// Name labels the gateway's metrics (label "gateway"). Default "gateway".
	Name string
	// Logger receives config changes, breaker state changes and store
	// failures. Default: discard.
	Logger *slog.Logger
	// Registerer receives the gateway's Prometheus metrics. Default nil: no
	// metrics. Nothing is registered globally.
	Registerer prometheus.Registerer
	// Nonces remembers nonces. Default a MemoryNonceStore (one instance);
	// several instances behind one VIP need a shared store such as
	// redisgw.NonceStore. A store that fails refuses the request with
	// "unavailable" (fail closed).
	Nonces NonceStore
	// RateCounter, when set, counts rate limits in a shared store (Redis)
	// instead of in memory. A counter that fails lets the request through
	// (fail open) and logs.
	RateCounter RateCounter
	// Now is the clock for timestamps and statistics. Default time.Now.
	Now func() time.Time
	// Location is where statistics days begin. Default time.Local.
	Location *time.Location
	// MinuteRetention is how long per-minute statistics are kept. Default 48h.
	MinuteRetention time.Duration
	// DayRetention is how long per-day statistics are kept. Default 400 days.
	DayRetention time.Duration
}

// Gateway authenticates, authorizes, limits and counts the requests of an
// lb.Balancer that has it as its Hook. Its methods are safe for
// concurrent use. Construct it with New, give it a Config with Apply, and
// pass it to lb.New as Options.Hook; stop it with Close.
type Gateway struct {
	name     string
	log      *slog.Logger
	nonces   NonceStore
	counter  RateCounter
	now      func() time.Time
	realNow  bool // now is time.Now
	idPrefix string
	ids      atomic.Uint64

	snap   atomic.Pointer[snapshot]
	closed atomic.Bool

	mu       sync.Mutex // serialises Apply and Close
	version  uint64
	limiters map[string]*limiterEntry
	breakers map[string]*breakerEntry

	stats   *statsStore
	metrics *metrics
}

// New returns a gateway that refuses every request (no_such_api) until the
// first Apply.
func New(opts Options) (*Gateway, error) {
	if opts.MinuteRetention < 0 || opts.DayRetention < 0 {
		return nil, fmt.Errorf("%w: negative statistics retention", ErrInvalidConfig)
	}
	g := &Gateway{
		name:     opts.Name,
		log:      opts.Logger,
		nonces:   opts.Nonces,
		counter:  opts.RateCounter,
		now:      opts.Now,
		idPrefix: randomHex(6),
		limiters: make(map[string]*limiterEntry),
		breakers: make(map[string]*breakerEntry),
	}
	if g.name == "" {
		g.name = "gateway"
	}
	if g.log == nil {
		g.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if g.nonces == nil {
		g.nonces = NewMemoryNonceStore()
	}
	if g.now == nil {
		g.now = time.Now
		g.realNow = true
	}
	loc := opts.Location
	if loc == nil {
		loc = time.Local
	}
	g.stats = newStatsStore(loc, cmp.Or(opts.MinuteRetention, 48*time.Hour), cmp.Or(opts.DayRetention, 400*24*time.Hour))
	if opts.Registerer != nil {
		m, err := newMetrics(g, opts.Registerer)
		if err != nil {
			return nil, err
		}
		g.metrics = m
	}
	return g, nil
}

// Apply validates cfg as a whole and swaps it in atomically: requests in
// flight finish under the config they started with, new ones use cfg. A
// rejected config (a *ValidationError wrapping ErrInvalidConfig) leaves the
// running one untouched. Rate-limit buckets and circuit breakers whose
// scope and settings stay keep their state. Apply returns the new config's
// version (1 for the first).
func (g *Gateway) Apply(ctx context.Context, cfg Config) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("gateway: apply: %w", err)
	}
	c, err := cloneConfig(&cfg)
	if err != nil {
		return 0, err
	}
	if err := c.Validate(); err != nil {
		g.metrics.applied(false)
		return 0, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed.Load() {
		return 0, ErrClosed
	}
	s := g.compile(c)
	g.version++
	s.version = g.version
	old := g.snap.Swap(s)
	g.metrics.applied(true)
	g.metrics.retire(old, s)
	g.log.Info("gateway: config applied", "gateway", g.name, "version", s.version,
		"consumers", len(c.Consumers), "apis", len(c.APIs), "grants", len(c.Grants), "policies", len(c.Policies))
	return s.version, nil
}

// Config returns the running config and its version; version 0 before the
// first Apply. The config is a copy.
func (g *Gateway) Config() (Config, uint64) {
	s := g.snap.Load()
	if s == nil {
		return Config{}, 0
	}
	c, _ := cloneConfig(s.cfg)
	return *c, s.version
}

func cloneConfig(cfg *Config) (*Config, error) {
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("gateway: copy config: %w", err)
	}
	var c Config
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("gateway: copy config: %w", err)
	}
	return &c, nil
}

// Close stops the gateway: requests from then on are refused with
// "unavailable", and its metrics are unregistered. Requests in flight
// finish (the balancer's Close waits for them). Close is safe to call more
// than once.
func (g *Gateway) Close(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed.Swap(true) {
		return nil
	}
	g.metrics.unregister()
	return nil
}

// snapshot is one compiled config version.
type snapshot struct {
	version   uint64
	cfg       *Config
	skew      time.Duration
	byKey     map[string]*consumerRT
	consumers map[string]*consumerRT
	apis      map[string]*apiRT
	exact     map[string][]*apiRT
	prefixes  []*apiRT // longest prefix first
	global    *policyRT
}

type consumerRT struct {
	Consumer
	policy  *policyRT
	secrets []*secretMAC
	grants  map[string]*policyRT // API name -> consumer × API policy (may be nil)
}

// secretMAC computes HMAC-SHA256 with one secret, reusing its hash states.
type secretMAC struct {
	key  []byte
	pool sync.Pool // of hash.Hash, reset
}

// sum appends the HMAC-SHA256 of msg to dst.
func (m *secretMAC) sum(dst, msg []byte) []byte {
	h, _ := m.pool.Get().(hash.Hash)
	if h == nil {
		h = hmac.New(sha256.New, m.key)
	}
	h.Write(msg)
	dst = h.Sum(dst)
	h.Reset()
	m.pool.Put(h)
	return dst
}

type apiRT struct {
	API
	prefix  string // without "*", for prefix patterns
	addr    string // URL upstream as host:port
	timeout time.Duration
	maxBody int64
	policy  *policyRT
	breaker *breakerEntry
	metrics *apiMetrics // nil without metrics
}

type policyRT struct {
	name    string
	allow   []netip.Prefix
	deny    []netip.Prefix
	limit   *limiterEntry
	limitOf RateLimit
	key     string // rate-limit bucket
}

type limiterEntry struct {
	lim *rate.Limiter
}

type breakerEntry struct {
	cb       *gobreaker.TwoStepCircuitBreaker[struct{}]
	settings string // what the breaker was built from
}

func (g *Gateway) compile(c *Config) *snapshot {
	s := &snapshot{
		cfg:       c,
		skew:      c.Auth.ClockSkew.Or(defaultClockSkew),
		byKey:     make(map[string]*consumerRT, len(c.Consumers)),
		consumers: make(map[string]*consumerRT, len(c.Consumers)),
		apis:      make(map[string]*apiRT, len(c.APIs)),
		exact:     make(map[string][]*apiRT),
	}
	usedLimiters := make(map[string]*limiterEntry)
	policies := make(map[string]*policyRT) // by scope key
	for _, p := range c.Policies {
		pr := &policyRT{name: p.Name}
		for _, a := range p.Allow {
			pf, _ := parsePrefix(a)
			pr.allow = append(pr.allow, pf)
		}
		for _, d := range p.Deny {
			pf, _ := parsePrefix(d)
			pr.deny = append(pr.deny, pf)
		}
		switch {
		case p.API == "" && p.Consumer == "":
			pr.key = "g"
		case p.Consumer == "":
			pr.key = "a:" + p.API
		case p.API == "":
			pr.key = "c:" + p.Consumer
		default:
			pr.key = "ca:" + p.Consumer + "\x00" + p.API
		}
		if p.RateLimit != nil {
			pr.limitOf = *p.RateLimit
			e := g.limiters[pr.key]
			lim, burst := rate.Limit(p.RateLimit.Rate), p.RateLimit.burst()
			if e == nil {
				e = &limiterEntry{lim: rate.NewLimiter(lim, burst)}
			} else if e.lim.Limit() != lim || e.lim.Burst() != burst {
				e.lim.SetLimit(lim)
				e.lim.SetBurst(burst)
			}
			pr.limit = e
			usedLimiters[pr.key] = e
		}
		policies[p.Consumer+"\x00"+p.API] = pr
	}
	g.limiters = usedLimiters
	s.global = policies["\x00"]

	usedBreakers := make(map[string]*breakerEntry)
	for _, a := range c.APIs {
		ar := &apiRT{API: a, timeout: a.Timeout.Or(defaultTimeout), maxBody: a.MaxBodyBytes, policy: policies["\x00"+a.Name]}
		if ar.maxBody == 0 {
			ar.maxBody = defaultMaxBodyBytes
		}
		if a.Upstream.URL != "" {
			ar.addr, _ = upstreamAddr(a.Upstream.URL)
		}
		ar.breaker = g.breaker(a, ar.addr)
		ar.metrics = g.metrics.forAPI()
		usedBreakers[a.Name] = ar.breaker
		s.apis[a.Name] = ar
		if p, ok := strings.CutSuffix(a.Path, "*"); ok {
			ar.prefix = p
			s.prefixes = append(s.prefixes, ar)
		} else {
			s.exact[a.Path] = append(s.exact[a.Path], ar)
		}
	}
	g.breakers = usedBreakers
	sort.SliceStable(s.prefixes, func(i, j int) bool { return len(s.prefixes[i].prefix) > len(s.prefixes[j].prefix) })

	for _, cs := range c.Consumers {
		cr := &consumerRT{Consumer: cs, policy: policies[cs.ID+"\x00"], grants: make(map[string]*policyRT)}
		for _, sec := range cs.Secrets {
			cr.secrets = append(cr.secrets, &secretMAC{key: []byte(sec)})
		}
		s.consumers[cs.ID] = cr
		s.byKey[cs.AppKey] = cr
	}
	for _, gr := range c.Grants {
		s.consumers[gr.Consumer].grants[gr.API] = policies[gr.Consumer+"\x00"+gr.API]
	}
	return s
}

// breaker returns the API's breaker: the running one when its upstream and
// settings stay, else a new one.
func (g *Gateway) breaker(a API, addr string) *breakerEntry {
	b := Breaker{}
	if a.Breaker != nil {
		b = *a.Breaker
	}
	consecutive := cmp.Or(b.ConsecutiveFailures, defaultConsecutive)
	minReq := cmp.Or(b.MinRequests, defaultMinRequests)
	window := b.Window.Or(defaultBreakerWindow)
	open := b.OpenTimeout.Or(defaultOpenTimeout)
	probes := cmp.Or(b.HalfOpenRequests, 1)
	key := fmt.Sprintf("%s|%s|%d|%g|%d|%v|%v|%d", a.Upstream.Group, addr, consecutive, b.FailureRatio, minReq, window, open, probes)
	if e := g.breakers[a.Name]; e != nil && e.settings == key {
		return e
	}
	ratio := b.FailureRatio
	name := a.Name
	st := gobreaker.Settings{
		Name:         name,
		MaxRequests:  uint32(probes),
		Interval:     window,
		BucketPeriod: window / 10,
		Timeout:      open,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			if int(c.ConsecutiveFailures) >= consecutive {
				return true
			}
			return ratio > 0 && int(c.Requests) >= minReq && float64(c.TotalFailures) >= ratio*float64(c.Requests)
		},
		OnStateChange: func(api string, from, to gobreaker.State) {
			g.log.Warn("gateway: circuit "+to.String(), "gateway", g.name, "api", api, "from", from.String())
		},
	}
	return &breakerEntry{cb: gobreaker.NewTwoStepCircuitBreaker[struct{}](st), settings: key}
}

// match finds the API of a request.
func (s *snapshot) match(method, path string) *apiRT {
	for _, a := range s.exact[path] {
		if a.Method == "" || a.Method == method {
			return a
		}
	}
	for _, a := range s.prefixes {
		if strings.HasPrefix(path, a.prefix) && (a.Method == "" || a.Method == method) {
			return a
		}
	}
	return nil
}

// admits says whether the lists of p let ip through; nil admits all.
func (p *policyRT) admits(ip netip.Addr) bool {
	if p == nil {
		return true
	}
	for _, d := range p.deny {
		if d.Contains(ip) {
			return false
		}
	}
	if len(p.allow) == 0 {
		return true
	}
	for _, a := range p.allow {
		if a.Contains(ip) {
			return true
		}
	}
	return false
}

// refusal is a decided refusal of a request.
type refusal struct {
	code       Code
	msg        string
	retryAfter time.Duration
}

// reqState follows one request from HandleRequest to its outcome. It is
// reused (reqStates) once the request is counted.
type reqState struct {
	g        *Gateway
	r        *lb.Request
	start    time.Time
	id       string // in idBuf: valid until release
	idBuf    [64]byte
	api      *apiRT
	consumer *consumerRT
	cbDone   func(error)
	done     func(lb.Outcome) // rs.onDone, bound once
}

var reqStates sync.Pool // of *reqState

func newReqState(g *Gateway, r *lb.Request) *reqState {
	rs, _ := reqStates.Get().(*reqState)
	if rs == nil {
		rs = &reqState{}
		rs.done = rs.onDone
	}
	rs.g, rs.r = g, r
	return rs
}

// onDone is the done function HandleRequest gives lb, which calls it once.
func (rs *reqState) onDone(o lb.Outcome) {
	rs.g.finish(rs.r, rs, o)
	rs.release()
}

// release recycles rs; nothing may use it afterwards.
func (rs *reqState) release() {
	done := rs.done
	*rs = reqState{done: done}
	reqStates.Put(rs)
}

var errUpstreamFailed = errors.New("gateway: upstream failed")

// HandleRequest implements lb.Hook: it decides about one request of the
// balancer the gateway is the Hook of.
func (g *Gateway) HandleRequest(r *lb.Request) func(lb.Outcome) {
	rs := newReqState(g, r)
	rs.start = time.Now()
	rs.id = g.requestID(r, &rs.idBuf)
	s := g.snap.Load()
	switch {
	case g.closed.Load():
		g.refuse(r, rs, refusal{code: CodeUnavailable, msg: "gateway closed"})
		rs.release()
		return nil
	case s == nil:
		g.refuse(r, rs, refusal{code: CodeNoSuchAPI, msg: "no config applied"})
		rs.release()
		return nil
	}
	if ref := g.check(r, rs, s); ref != nil {
		g.refuse(r, rs, *ref)
		rs.release()
		return nil
	}
	a := rs.api
	var err error
	if a.addr != "" {
		err = r.ForwardTo(a.addr)
	} else {
		err = r.ForwardGroup(a.Upstream.Group)
	}
	if err != nil {
		rs.cbDone(errUpstreamFailed)
		g.refuse(r, rs, refusal{code: CodeUpstreamError, msg: fmt.Sprintf("upstream of API %q: %v", a.Name, err)})
		rs.release()
		return nil
	}
	r.SetTimeout(a.timeout)
	r.SetHeader("X-Request-Id", rs.id)
	if c := rs.consumer; c != nil {
		r.SetHeader("X-Consumer-Id", c.ID)
		r.SetHeader("X-Consumer-Kind", string(c.Kind))
		r.SetHeader("X-Consumer-Org", c.OrgCode)
	} else {
		r.SetHeader("X-Consumer-Id", "")
		r.SetHeader("X-Consumer-Kind", "")
		r.SetHeader("X-Consumer-Org", "")
	}
	return rs.done
}

// check runs the policy chain; nil lets the request through with rs.api
// (and rs.consumer, rs.cbDone) set.
func (g *Gateway) check(r *lb.Request, rs *reqState, s *snapshot) *refusal {
	ip := r.ClientIP()
	if !s.global.admits(ip) {
		return &refusal{code: CodeIPDenied, msg: fmt.Sprintf("client IP %s denied by policy %q", ip, s.global.name)}
	}
	method, path := r.Method(), bytesView(r.PathBytes())
	a := s.match(method, path)
	if a == nil {
		return &refusal{code: CodeNoSuchAPI, msg: fmt.Sprintf("no API for %s %s", method, truncate(path))}
	}
	rs.api = a
	if !a.policy.admits(ip) {
		return &refusal{code: CodeIPDenied, msg: fmt.Sprintf("client IP %s denied by policy %q", ip, a.policy.name)}
	}
	body, err := r.Body(a.maxBody)
	if err != nil {
		if errors.Is(err, lb.ErrBodyTooLarge) {
			return &refusal{code: CodeBodyTooLarge, msg: fmt.Sprintf("body larger than %d bytes, the limit of API %q", a.maxBody, a.Name)}
		}
		return &refusal{code: CodeBadRequest, msg: "cannot read body"}
	}
	var pair *policyRT
	if !a.Public {
		c, ref := g.authenticate(r, s, method, path, body)
		if ref != nil {
			return ref
		}
		rs.consumer = c
		if !c.Enabled {
			return &refusal{code: CodeNotAuthorized, msg: fmt.Sprintf("consumer %q is disabled", c.ID)}
		}
		if !c.policy.admits(ip) {
			return &refusal{code: CodeIPDenied, msg: fmt.Sprintf("client IP %s denied by policy %q", ip, c.policy.name)}
		}
		var granted bool
		pair, granted = c.grants[a.Name]
		if !granted {
			return &refusal{code: CodeNotAuthorized, msg: fmt.Sprintf("consumer %q is not granted API %q", c.ID, a.Name)}
		}
		if !pair.admits(ip) {
			return &refusal{code: CodeIPDenied, msg: fmt.Sprintf("client IP %s denied by policy %q", ip, pair.name)}
		}
	}
	var cp *policyRT
	if rs.consumer != nil {
		cp = rs.consumer.policy
	}
	if ref := g.limit(s.global, a.policy, cp, pair); ref != nil {
		return ref
	}
	done, err := a.breaker.cb.Allow()
	if err != nil {
		return &refusal{code: CodeCircuitOpen, msg: fmt.Sprintf("circuit of API %q is open: its upstream is failing", a.Name)}
	}
	rs.cbDone = done
	return nil
}

// authenticate checks the signature, timestamp and nonce of a request. It
// builds the string to sign as Canonical.String does, in a reused buffer,
// reading the request's header fields in place.
func (g *Gateway) authenticate(r *lb.Request, s *snapshot, method, path string, body []byte) (*consumerRT, *refusal) {
	var auth authParts
	// The header is read in place: auth's strings are valid only during
	// this call, and nothing keeps them (messages copy them).
	if err := auth.parse(bytesView(r.HeaderBytes("Authorization"))); err != nil {
		return nil, &refusal{code: CodeSignatureInvalid, msg: err.Error()}
	}
	c := s.byKey[auth.appKey]
	if c == nil {
		return nil, &refusal{code: CodeSignatureInvalid, msg: fmt.Sprintf("unknown AppKey %q", auth.appKey)}
	}
	now := g.now()
	if d := now.Sub(time.Unix(auth.timestamp, 0)); d > s.skew || d < -s.skew {
		return nil, &refusal{code: CodeTimestampExpired, msg: fmt.Sprintf("timestamp %d is %s from the gateway's clock, more than %s", auth.timestamp, d.Round(time.Second), s.skew)}
	}
	for rest, more := auth.signedHeaders, auth.signedHeaders != ""; more; {
		var h string
		h, rest, more = strings.Cut(rest, ";")
		if r.HeaderBytes(h) == nil {
			return nil, &refusal{code: CodeSignatureInvalid, msg: fmt.Sprintf("signed header %q is missing", h)}
		}
	}
	sc := getScratch()
	defer putScratch(sc)
	b, err := appendCanonicalHead(sc.buf[:0], method, path, bytesView(r.RawQueryBytes()), auth.timestamp, auth.nonce)
	if err != nil {
		return nil, &refusal{code: CodeSignatureInvalid, msg: err.Error()}
	}
	digest := sha256.Sum256(body)
	b = hex.AppendEncode(b, digest[:])
	b = append(b, '\n')
	b = append(b, auth.signedHeaders...)
	for rest, more := auth.signedHeaders, auth.signedHeaders != ""; more; {
		var h string
		h, rest, more = strings.Cut(rest, ";")
		b = append(b, '\n')
		b = append(b, h...)
		b = append(b, ':')
		// lb trims each value of spaces and tabs, so the joined values need
		// no trimming of their own.
		b, _ = r.AppendValues(b, h, ',')
	}
	sc.buf = b
	if !c.verify(sc, b, &auth.sig) {
		return nil, &refusal{code: CodeSignatureInvalid, msg: "signature does not match"}
	}
	var fresh bool
	if ms, ok := g.nonces.(*MemoryNonceStore); ok {
		fresh = ms.rememberPair(auth.appKey, auth.nonce, 2*s.skew)
	} else if fresh, err = g.nonces.Remember(context.Background(), auth.appKey+":"+auth.nonce, 2*s.skew); err != nil {
		g.log.Error("gateway: nonce store failed", "gateway", g.name, "err", err)
		return nil, &refusal{code: CodeUnavailable, msg: "nonce store unavailable"}
	}
	if !fresh {
		return nil, &refusal{code: CodeNonceReplayed, msg: fmt.Sprintf("nonce %q was used before", auth.nonce)}
	}
	return c, nil
}

// bytesView is b as a string without a copy, for reading request bytes
// that lb keeps unchanged while the hook runs; it must not outlive them.
func bytesView(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// scratch is a reused buffer for the string to sign and a MAC.
type scratch struct {
	buf []byte
	mac []byte
}

var scratches = sync.Pool{New: func() any { return &scratch{buf: make([]byte, 0, 512), mac: make([]byte, 0, sha256.Size)} }}

func getScratch() *scratch { return scratches.Get().(*scratch) }

func putScratch(sc *scratch) {
	if cap(sc.buf) > 64<<10 {
		sc.buf = make([]byte, 0, 512)
	}
	scratches.Put(sc)
}

// verify says whether one of c's secrets signs sts as sig.
func (c *consumerRT) verify(sc *scratch, sts []byte, sig *[sha256.Size]byte) bool {
	for _, m := range c.secrets {
		sc.mac = m.sum(sc.mac[:0], sts)
		if hmac.Equal(sc.mac, sig[:]) {
			return true
		}
	}
	return false
}

// limit takes one request from every rate limit that applies.
func (g *Gateway) limit(ps ...*policyRT) *refusal {
	if g.counter != nil {
		for _, p := range ps {
			if p == nil || p.limit == nil {
				continue
			}
			ok, after, err := g.counter.Allow(context.Background(), p.key, p.limitOf)
			if err != nil {
				g.log.Warn("gateway: rate counter failed; letting the request through", "gateway", g.name, "err", err)
				continue
			}
			if !ok {
				return &refusal{code: CodeRateLimited, msg: fmt.Sprintf("rate limit of policy %q exceeded", p.name), retryAfter: after}
			}
		}
		return nil
	}
	// First look, then take: a request refused by one limit takes
	// nothing from the others. (Reserving and cancelling would leak tokens
	// when several refused reservations overlap.) Two requests racing for
	// the last token may both pass the look; one of them then finds its
	// bucket empty and is refused.
	now := time.Now()
	for _, p := range ps {
		if p == nil || p.limit == nil {
			continue
		}
		if tok := p.limit.lim.TokensAt(now); tok < 1 {
			after := time.Duration((1 - tok) / float64(p.limit.lim.Limit()) * float64(time.Second))
			return &refusal{code: CodeRateLimited, msg: fmt.Sprintf("rate limit of policy %q exceeded", p.name), retryAfter: after}
		}
	}
	for _, p := range ps {
		if p == nil || p.limit == nil {
			continue
		}
		if !p.limit.lim.AllowN(now, 1) {
			return &refusal{code: CodeRateLimited, msg: fmt.Sprintf("rate limit of policy %q exceeded", p.name), retryAfter: time.Duration(float64(time.Second) / float64(p.limit.lim.Limit()))}
		}
	}
	return nil
}

// refuse answers a request with the JSON error of ref and counts it.
func (g *Gateway) refuse(r *lb.Request, rs *reqState, ref refusal) {
	id := strings.Clone(rs.id) // the answer is written after rs is released
	h := http.Header{
		"Content-Type": {"application/json; charset=utf-8"},
		"X-Request-Id": {id},
	}
	if ref.code == CodeRateLimited {
		h["Retry-After"] = []string{strconv.Itoa(int(math.Ceil(max(ref.retryAfter.Seconds(), 1))))}
	}
	body, _ := json.Marshal(ErrorBody{Error: ErrorDetail{Code: ref.code, Message: ref.msg, RequestID: id}})
	r.Respond(ref.code.Status(), h, body)
	g.record(rs, string(ref.code), false)
}

// finish counts a forwarded request, feeds its breaker, and answers for an
// upstream that did not.
func (g *Gateway) finish(r *lb.Request, rs *reqState, o lb.Outcome) {
	switch {
	case o.Answered:
		if o.Status >= 500 {
			rs.cbDone(errUpstreamFailed)
		} else {
			rs.cbDone(nil)
		}
		switch {
		case o.Status >= 500:
			g.record(rs, "http_5xx", false)
		case o.Status >= 400:
			g.record(rs, "http_4xx", false)
		default:
			g.record(rs, "", true)
		}
	case o.Status == 0:
		// The client went away before any answer: not the upstream's fault.
		rs.cbDone(nil)
		g.record(rs, "client_closed", false)
	default:
		rs.cbDone(errUpstreamFailed)
		ref := refusal{code: CodeUpstreamError, msg: fmt.Sprintf("upstream of API %q failed", rs.api.Name)}
		if o.Status == 504 {
			ref = refusal{code: CodeUpstreamTimeout, msg: fmt.Sprintf("upstream of API %q did not answer within %s", rs.api.Name, rs.api.timeout)}
		}
		g.refuse(r, rs, ref)
	}
}

// record counts a finished request in statistics and metrics; code is
// empty for a success.
func (g *Gateway) record(rs *reqState, code string, ok bool) {
	end := time.Now()
	lat := end.Sub(rs.start)
	if !g.realNow {
		end = g.now()
	}
	api, consumer := "", ""
	var am *apiMetrics
	if rs.api != nil {
		api = rs.api.Name
		am = rs.api.metrics
	}
	if rs.consumer != nil {
		consumer = rs.consumer.ID
	}
	g.stats.record(end, api, consumer, code, ok, lat)
	g.metrics.observe(am, api, code, lat)
}

// requestID is the client's X-Request-Id when it is sane, else a new one;
// it is built in buf.
func (g *Gateway) requestID(r *lb.Request, buf *[64]byte) string {
	var b []byte
	if id := r.HeaderBytes("X-Request-Id"); len(id) > 0 && len(id) <= len(buf) && isIdent(bytesView(id), ".:") {
		b = append(buf[:0], id...)
	} else {
		b = append(buf[:0], g.idPrefix...)
		b = append(b, '-')
		b = strconv.AppendUint(b, g.ids.Add(1), 36)
	}
	return bytesView(b)
}

var _ lb.Hook = (*Gateway)(nil)
