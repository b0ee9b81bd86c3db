package dnsctl

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// forwarder sends queries for names outside our zones to upstream resolvers,
// with a cache in front and failover between upstreams.
type forwarder struct {
	upstreams []string
	timeout   time.Duration
	cache     *cache // nil: disabled
	udp, tcp  *dns.Client
	metrics   *metrics
	stats     *stats
	// first is the upstream tried first: the last one that answered, so a dead
	// upstream costs one timeout, not one per query.
	first atomic.Int32
}

func newForwarder(cfg Config, m *metrics, st *stats) *forwarder {
	f := &forwarder{
		timeout: time.Duration(cfg.ForwardTimeout),
		udp:     &dns.Client{Net: "udp", UDPSize: dns.DefaultMsgSize},
		tcp:     &dns.Client{Net: "tcp"},
		metrics: m,
		stats:   st,
	}
	for _, u := range cfg.Forwarders {
		addr, _ := upstreamAddr(u) // validated
		f.upstreams = append(f.upstreams, addr)
	}
	if cfg.CacheSize > 0 {
		f.cache = &cache{max: cfg.CacheSize, maxTTL: time.Duration(cfg.CacheMaxTTL), entries: map[cacheKey]*cacheEntry{}}
	}
	return f
}

// forward answers a query outside our zones.
func (s *Server) forward(w dns.ResponseWriter, r, m *dns.Msg, start time.Time) {
	f := s.fwd
	if f == nil {
		m.Rcode = dns.RcodeRefused
		s.write(w, r, m, start, "")
		return
	}
	m.RecursionAvailable = true
	q := r.Question[0]
	key := cacheKey{name: lower(q.Name), qtype: q.Qtype, qclass: q.Qclass}
	if e := f.cache.get(key, start); e != nil {
		s.stats.cacheHits.Add(1)
		if f.metrics != nil {
			f.metrics.cacheHits.Inc()
		}
		e.fill(m, start)
		s.write(w, r, m, start, "cache")
		return
	}
	if f.cache != nil {
		s.stats.cacheMisses.Add(1)
		if f.metrics != nil {
			f.metrics.cacheMisses.Inc()
		}
	}
	s.stats.forwarded.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout*time.Duration(len(f.upstreams)))
	defer cancel()
	resp, err := f.exchange(ctx, q)
	if err != nil {
		s.cfg.Logger.Warn("dnsctl: forward", "name", q.Name, "err", err)
		m.Rcode = dns.RcodeServerFailure
		s.write(w, r, m, start, "forward")
		return
	}
	e := f.cache.put(key, resp, start)
	e.fill(m, start)
	s.write(w, r, m, start, "forward")
}

// exchange asks the upstreams in turn, starting with the last good one.
func (f *forwarder) exchange(ctx context.Context, q dns.Question) (*dns.Msg, error) {
	req := new(dns.Msg)
	req.SetQuestion(q.Name, q.Qtype)
	req.Question[0].Qclass = q.Qclass
	req.SetEdns0(dns.DefaultMsgSize, false)
	first := int(f.first.Load())
	var errs []error
	for i := range f.upstreams {
		idx := (first + i) % len(f.upstreams)
		addr := f.upstreams[idx]
		resp, err := f.ask(ctx, req, addr)
		if f.metrics != nil {
			f.metrics.upstream(addr, err)
		}
		if err == nil {
			f.first.Store(int32(idx))
			return resp, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("%w for %s: %w", ErrNoUpstream, q.Name, errors.Join(errs...))
}

// ask queries one upstream over UDP, again over TCP when the answer is
// truncated. SERVFAIL and REFUSED count as failures so the next upstream gets
// a chance.
func (f *forwarder) ask(ctx context.Context, req *dns.Msg, addr string) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	resp, _, err := f.udp.ExchangeContext(ctx, req, addr)
	if err == nil && resp.Truncated {
		resp, _, err = f.tcp.ExchangeContext(ctx, req, addr)
	}
	if err != nil {
		return nil, err
	}
	if resp.Rcode == dns.RcodeServerFailure || resp.Rcode == dns.RcodeRefused {
		return nil, &rcodeError{resp.Rcode}
	}
	return resp, nil
}

type cacheKey struct {
	name          string
	qtype, qclass uint16
}

// cacheEntry is an upstream answer without its OPT record. Immutable.
type cacheEntry struct {
	rcode             int
	answer, ns, extra []dns.RR
	stored, expires   time.Time
}

// fill copies the entry into m with TTLs reduced by the time spent in cache.
func (e *cacheEntry) fill(m *dns.Msg, now time.Time) {
	m.Rcode = e.rcode
	age := uint32(now.Sub(e.stored) / time.Second)
	cp := func(rrs []dns.RR) []dns.RR {
		if len(rrs) == 0 {
			return nil
		}
		out := make([]dns.RR, len(rrs))
		for i, rr := range rrs {
			c := dns.Copy(rr)
			h := c.Header()
			h.Ttl -= min(h.Ttl, age)
			out[i] = c
		}
		return out
	}
	m.Answer, m.Ns, m.Extra = cp(e.answer), cp(e.ns), cp(e.extra)
}

// cache is a bounded map of forwarded answers. When full, an arbitrary entry
// makes room: with map iteration order that is a cheap random eviction, good
// enough for a resolver cache whose entries expire anyway.
type cache struct {
	max     int
	maxTTL  time.Duration
	mu      sync.Mutex
	entries map[cacheKey]*cacheEntry
}

func (c *cache) get(k cacheKey, now time.Time) *cacheEntry {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[k]
	if e == nil {
		return nil
	}
	if !now.Before(e.expires) {
		delete(c.entries, k)
		return nil
	}
	return e
}

// put makes an entry of resp, stores it when it may be cached and returns it.
func (c *cache) put(k cacheKey, resp *dns.Msg, now time.Time) *cacheEntry {
	e := &cacheEntry{rcode: resp.Rcode, answer: resp.Answer, ns: resp.Ns, stored: now}
	for _, rr := range resp.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			e.extra = append(e.extra, rr)
		}
	}
	if c == nil || resp.Truncated || (resp.Rcode != dns.RcodeSuccess && resp.Rcode != dns.RcodeNameError) {
		return e
	}
	ttl := c.maxTTL
	for _, rrs := range [][]dns.RR{e.answer, e.ns} {
		for _, rr := range rrs {
			t := time.Duration(rr.Header().Ttl) * time.Second
			if soa, ok := rr.(*dns.SOA); ok {
				// RFC 2308: negative answers live for min(SOA TTL, MINIMUM).
				t = min(t, time.Duration(soa.Minttl)*time.Second)
			}
			ttl = min(ttl, t)
		}
	}
	if ttl <= 0 || len(e.answer)+len(e.ns) == 0 {
		return e
	}
	e.expires = now.Add(ttl)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[k]; !ok && len(c.entries) >= c.max {
		for old := range c.entries {
			delete(c.entries, old)
			break
		}
	}
	c.entries[k] = e
	return e
}
