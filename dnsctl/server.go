package dnsctl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Server is an authoritative DNS server with per-center answers, forwarding and
// zone transfer. Its methods are safe for concurrent use.
type Server struct {
	cfg     Config // with defaults
	metrics *metrics
	fwd     *forwarder
	health  *healthChecker
	tsig    map[string]string // canonical key name → base64 secret
	tsigAlg map[string]string // canonical key name → algorithm FQDN

	// mu serializes writers (zone changes, Switch, transfers in). Readers never
	// take it: they load snap.
	mu    sync.Mutex
	zones map[string]*zoneState
	snap  atomic.Pointer[snapshot]

	stats stats

	life    sync.Mutex
	started bool
	closed  bool
	servers []*dns.Server
	udpAddr string
	tcpAddr string
	// running gates NOTIFYs: none before Start or after Close.
	running atomic.Bool
	// bgCtx lives from New to Close; background work (health checks, transfers,
	// NOTIFYs) runs under it and is waited for by Close through bg.
	bgCtx  context.Context
	cancel context.CancelFunc
	bg     sync.WaitGroup
	// notifyCh kicks the transfer loop of each zone we are a secondary for.
	notifyCh map[string]chan struct{}
}

// zoneState is the writer-side state of one zone.
type zoneState struct {
	spec      Zone        // normalized; spec.SOA.Serial is the current serial
	parsed    []parsedSet // parallel to spec.RecordSets
	secondary bool
	snap      *zoneSnap
	journal   []delta // oldest first, for IXFR
}

// stats are the counters behind Status; atomic so the answer path never locks.
type stats struct {
	queries, forwarded, cacheHits, cacheMisses, transfersOut, transfersIn, notifiesSent atomic.Uint64
}

// New validates cfg and builds a server. It binds nothing and starts nothing
// until Start.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:      cfg,
		zones:    map[string]*zoneState{},
		tsig:     map[string]string{},
		tsigAlg:  map[string]string{},
		notifyCh: map[string]chan struct{}{},
	}
	for _, k := range cfg.TSIGKeys {
		name := dns.CanonicalName(k.Name)
		s.tsig[name] = k.Secret
		s.tsigAlg[name] = dns.Fqdn(k.Algorithm)
	}
	if cfg.Registerer != nil {
		m, err := newMetrics(cfg.Registerer)
		if err != nil {
			return nil, err
		}
		s.metrics = m
	}
	if len(cfg.Forwarders) > 0 {
		s.fwd = newForwarder(cfg, s.metrics, &s.stats)
	}
	s.health = newHealthChecker()
	s.bgCtx, s.cancel = context.WithCancel(context.Background())
	snap := &snapshot{zones: map[string]*zoneSnap{}, views: parseViews(cfg.Views)}
	for _, z := range cfg.Zones {
		z = z.normalize()
		z.SOA.Serial = max(z.SOA.Serial, 1)
		zs, err := s.newZoneState(z, false)
		if err != nil {
			return nil, err
		}
		s.zones[z.Origin] = zs
		snap.zones[z.Origin] = zs.snap
	}
	if p := cfg.Primary; p != nil {
		for _, origin := range p.Zones {
			origin = dns.CanonicalName(origin)
			s.notifyCh[origin] = make(chan struct{}, 1)
		}
	}
	s.snap.Store(snap)
	s.health.setProbes(snap)
	return s, nil
}

// newZoneState parses every record set of z (normalized).
func (s *Server) newZoneState(z Zone, secondary bool) (*zoneState, error) {
	zs := &zoneState{spec: z, secondary: secondary, parsed: make([]parsedSet, len(z.RecordSets))}
	for i, rs := range z.RecordSets {
		p, err := parseSet(rs, z.Origin)
		if err != nil {
			return nil, fmt.Errorf("dnsctl: zone %s: record set %s %s: %w", z.Origin, rs.Name, rs.Type, err)
		}
		zs.parsed[i] = p
	}
	zs.snap = buildZone(z, zs.parsed, secondary, s.cfg.Center)
	return zs, nil
}

// Start binds the UDP and TCP listeners and starts serving, health checking and,
// for a secondary, transferring. ctx bounds only the start itself; the server
// runs until Close.
func (s *Server) Start(ctx context.Context) error {
	s.life.Lock()
	defer s.life.Unlock()
	switch {
	case s.closed:
		return ErrClosed
	case s.started:
		return ErrStarted
	}
	udp, tcp, err := s.listen(ctx)
	if err != nil {
		return err
	}
	s.udpAddr, s.tcpAddr = udp.LocalAddr().String(), tcp.Addr().String()
	h := handler{s}
	secrets := s.tsig
	if len(secrets) == 0 {
		secrets = nil // no provider: miekg skips TSIG work on every message
	}
	mk := func(srv *dns.Server) *dns.Server {
		srv.Handler = h
		srv.TsigSecret = secrets
		srv.UDPSize = dns.MaxMsgSize
		return srv
	}
	s.servers = []*dns.Server{mk(&dns.Server{PacketConn: udp}), mk(&dns.Server{Listener: tcp})}
	for _, srv := range s.servers {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		s.bg.Go(func() {
			if err := srv.ActivateAndServe(); err != nil {
				s.cfg.Logger.Error("dnsctl: serve", "err", err)
			}
		})
		select {
		case <-started:
		case <-ctx.Done():
			// Serving goroutines end when Close shuts the listeners.
			s.started = true
			return fmt.Errorf("dnsctl: start: %w", ctx.Err())
		}
	}
	s.bg.Go(func() { s.health.run(s.bgCtx) })
	for origin, ch := range s.notifyCh {
		s.bg.Go(func() { s.followPrimary(s.bgCtx, origin, ch) })
	}
	s.started = true
	s.running.Store(true)
	s.cfg.Logger.Info("dnsctl: serving", "udp", s.udpAddr, "tcp", s.tcpAddr, "zones", len(s.snap.Load().zones))
	return nil
}

// listen binds UDP, then TCP on the UDP's port unless TCPAddr says otherwise.
// With port 0 the kernel's UDP choice may be taken for TCP; try a few ports.
func (s *Server) listen(ctx context.Context) (net.PacketConn, net.Listener, error) {
	var lc net.ListenConfig
	for attempt := 0; ; attempt++ {
		udp, err := lc.ListenPacket(ctx, "udp", s.cfg.UDPAddr)
		if err != nil {
			return nil, nil, fmt.Errorf("dnsctl: listen udp %s: %w", s.cfg.UDPAddr, err)
		}
		tcpAddr := s.cfg.TCPAddr
		if tcpAddr == "" {
			host, _, _ := net.SplitHostPort(s.cfg.UDPAddr)
			tcpAddr = net.JoinHostPort(host, strconv.Itoa(udp.LocalAddr().(*net.UDPAddr).Port))
		}
		tcp, err := lc.Listen(ctx, "tcp", tcpAddr)
		if err == nil {
			return udp, tcp, nil
		}
		udp.Close()
		if _, port, _ := net.SplitHostPort(s.cfg.UDPAddr); port != "0" || s.cfg.TCPAddr != "" || attempt == 10 {
			return nil, nil, fmt.Errorf("dnsctl: listen tcp %s: %w", tcpAddr, err)
		}
	}
}

// Close stops serving and waits for in-flight work until ctx ends. A closed
// server cannot be started again.
func (s *Server) Close(ctx context.Context) error {
	s.life.Lock()
	defer s.life.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	// Writers check running under mu before starting a NOTIFY under bg, so once
	// this store is done no bg.Go can race with bg.Wait below.
	s.mu.Lock()
	s.running.Store(false)
	s.mu.Unlock()
	s.cancel()
	var errs []error
	for _, srv := range s.servers {
		if err := srv.ShutdownContext(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	done := make(chan struct{})
	go func() { s.bg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, ctx.Err())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("dnsctl: close: %w", err)
	}
	return nil
}

// Addr returns the UDP address the server listens on (TCP uses the same port
// unless Config.TCPAddr says otherwise), or "" before Start.
func (s *Server) Addr() string {
	s.life.Lock()
	defer s.life.Unlock()
	return s.udpAddr
}

// Status is a point-in-time view of a server.
type Status struct {
	UDPAddr string     `json:"udp_addr"`
	TCPAddr string     `json:"tcp_addr"`
	Zones   []ZoneInfo `json:"zones"`
	// Unhealthy lists the failing health-check targets, e.g. "tcp://10.0.0.1:80".
	Unhealthy []string `json:"unhealthy,omitempty"`
	Stats     Stats    `json:"stats"`
}

// ZoneInfo summarizes one zone.
type ZoneInfo struct {
	Origin     string `json:"origin"`
	Serial     uint32 `json:"serial"`
	RecordSets int    `json:"record_sets"`
	// Secondary is true for zones transferred from Config.Primary.
	Secondary bool `json:"secondary,omitempty"`
}

// Stats are counters since New.
type Stats struct {
	Queries      uint64 `json:"queries"`
	Forwarded    uint64 `json:"forwarded"`
	CacheHits    uint64 `json:"cache_hits"`
	CacheMisses  uint64 `json:"cache_misses"`
	TransfersOut uint64 `json:"transfers_out"`
	TransfersIn  uint64 `json:"transfers_in"`
	NotifiesSent uint64 `json:"notifies_sent"`
}

// Status reports addresses, zones, failing targets and counters.
func (s *Server) Status() Status {
	s.life.Lock()
	st := Status{UDPAddr: s.udpAddr, TCPAddr: s.tcpAddr}
	s.life.Unlock()
	st.Zones = s.Zones()
	st.Unhealthy = s.health.unhealthy()
	st.Stats = Stats{
		Queries:      s.stats.queries.Load(),
		Forwarded:    s.stats.forwarded.Load(),
		CacheHits:    s.stats.cacheHits.Load(),
		CacheMisses:  s.stats.cacheMisses.Load(),
		TransfersOut: s.stats.transfersOut.Load(),
		TransfersIn:  s.stats.transfersIn.Load(),
		NotifiesSent: s.stats.notifiesSent.Load(),
	}
	return st
}

// waitStep is how long background loops back off after an error.
const waitStep = time.Second
