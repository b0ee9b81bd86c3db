package lb

import (
	"slices"
	"time"

	"github.com/shuanghuo/shuanghuo/internal/jsontime"
)

// BalancerConfig is the whole configuration of one balancer. It is what a
// control plane stores and pushes: Apply validates it as a whole and swaps it
// in atomically, or rejects it and keeps the running one.
type BalancerConfig struct {
	// Name identifies the balancer in metrics, events and logs.
	Name string `json:"name" validate:"required,max=64"`
	// Address is the service address (VIP) the listeners bind to. Empty binds
	// every interface.
	Address string `json:"address,omitempty" validate:"omitempty,ip"`
	// Listeners are the ports the balancer serves. Ports must be unique. None is
	// valid: the balancer then listens nowhere, as a draft built step by step does.
	Listeners []Listener `json:"listeners" validate:"dive"`
	// Groups are the server groups that listeners and forwarding rules send
	// traffic to. Names must be unique. None is valid, as for Listeners.
	Groups []ServerGroup `json:"groups" validate:"dive"`
}

// Protocol is a listener's protocol.
type Protocol string

// Listener protocols.
const (
	ProtocolHTTP  Protocol = "http"
	ProtocolHTTPS Protocol = "https"
	// ProtocolTCP forwards bytes (L4) to the default group without looking at them.
	ProtocolTCP Protocol = "tcp"
)

// Listener is one port of the balancer.
type Listener struct {
	// Name identifies the listener in status and metrics.
	Name string `json:"name" validate:"required,max=64"`
	// Port to listen on, unique within the balancer. 0 is any free port, chosen when
	// the listener opens (Balancer.Addr and Status say which): a push that keeps a
	// port-0 listener of the same name on the same address keeps its socket and port,
	// any other open gets a new port.
	Port int `json:"port" validate:"min=0,max=65535"`
	// Protocol is http, https or tcp. A push may change it; connections
	// accepted afterwards use the new one.
	Protocol Protocol `json:"protocol" validate:"required,oneof=http https tcp"`
	// TLS holds the certificates of an https listener; required for https,
	// not allowed otherwise.
	TLS *TLSConfig `json:"tls,omitempty"`
	// DefaultGroup takes requests that no forwarding rule matches. Required for
	// tcp. Without it, unmatched HTTP requests get 404.
	DefaultGroup string `json:"default_group,omitempty"`
	// Rules are the forwarding rules of an http or https listener. An exact
	// Path beats any PathPrefix, the longest PathPrefix wins, and a rule with a
	// Host beats one without.
	Rules []Rule `json:"rules,omitempty" validate:"dive"`
	// IdleTimeout closes a client connection that waits this long for its
	// next request (http) or sends and receives nothing (tcp). Default 60s. From 10ms to 24h.
	IdleTimeout Duration `json:"idle_timeout,omitempty" validate:"omitempty,duration=10ms:24h"`
	// ReadTimeout bounds reading one request, head and body, from its first
	// byte; it is what stops slow clients (slowloris). Default 30s. From 10ms to 1h.
	ReadTimeout Duration `json:"read_timeout,omitempty" validate:"omitempty,duration=10ms:1h"`
	// WriteTimeout bounds each write of a response to the client. Default 30s. From 10ms to 1h.
	WriteTimeout Duration `json:"write_timeout,omitempty" validate:"omitempty,duration=10ms:1h"`
	// MaxHeaderBytes limits the request line and headers; larger requests get
	// 431. Between 1024 and 1048576; default 16384.
	MaxHeaderBytes int `json:"max_header_bytes,omitempty" validate:"omitempty,min=1024,max=1048576"`
	// MaxBodyBytes limits a request body; larger requests get 413. Zero means
	// no limit.
	MaxBodyBytes int64 `json:"max_body_bytes,omitempty" validate:"min=0"`
}

// TLSConfig holds the certificates of an https listener.
type TLSConfig struct {
	// Certificates are chosen by the client's SNI name; the first one is the
	// default.
	Certificates []Certificate `json:"certificates" validate:"required,min=1,dive"`
}

// Certificate is one PEM certificate chain and its key, given inline or as
// files on the host that runs the balancer.
type Certificate struct {
	// CertPEM is the PEM certificate chain, leaf first.
	CertPEM string `json:"cert_pem,omitempty" validate:"required_without=CertFile"`
	// KeyPEM is the PEM private key.
	KeyPEM string `json:"key_pem,omitempty" validate:"required_with=CertPEM"`
	// CertFile is the path of a PEM certificate chain, instead of CertPEM.
	CertFile string `json:"cert_file,omitempty" validate:"excluded_with=CertPEM"`
	// KeyFile is the path of the PEM key, instead of KeyPEM.
	KeyFile string `json:"key_file,omitempty" validate:"required_with=CertFile"`
}

// Rule is a forwarding rule: requests whose host and path match go to Group.
type Rule struct {
	// Host matches the request's host, without port and case-insensitively.
	// "*.example.com" matches any subdomain. Empty matches every host.
	Host string `json:"host,omitempty" validate:"omitempty,max=253"`
	// Path matches the request path exactly. Set Path or PathPrefix, not both.
	Path string `json:"path,omitempty" validate:"omitempty,startswith=/"`
	// PathPrefix matches paths that start with it; the longest match wins.
	PathPrefix string `json:"path_prefix,omitempty" validate:"omitempty,startswith=/"`
	// Group is the name of the server group that takes the matching requests.
	Group string `json:"group" validate:"required"`
}

// Algorithm selects how a server group spreads requests over its servers.
type Algorithm string

// Balancing algorithms.
const (
	// RoundRobin is smooth weighted round robin exactly as nginx does it.
	RoundRobin Algorithm = "round_robin"
	// LeastConn sends to the server with the fewest active requests per weight.
	LeastConn Algorithm = "least_conn"
	// Hash sends equal keys to the same server (consistent hashing), for affinity.
	Hash Algorithm = "hash"
)

// Role says whether a server takes traffic normally or only as a standby.
type Role string

// Server roles.
const (
	// Working servers take the traffic of their group.
	Working Role = "working"
	// Standby servers take traffic only while no working server of the group
	// is healthy.
	Standby Role = "standby"
)

// ServerGroup is a set of servers that share an algorithm and health check.
type ServerGroup struct {
	// Name is unique within the balancer; rules and listeners refer to it.
	Name string `json:"name" validate:"required,max=64"`
	// Algorithm is round_robin, least_conn or hash. Default round_robin.
	Algorithm Algorithm `json:"algorithm,omitempty" validate:"omitempty,oneof=round_robin least_conn hash"`
	// HashKey is what the hash algorithm hashes; required for hash.
	HashKey *HashKey `json:"hash_key,omitempty"`
	// Servers of the group; at least one, and (address, port) unique.
	Servers []Server `json:"servers" validate:"required,min=1,dive"`
	// HealthCheck actively checks every server. Without it, servers are
	// judged by passive failures alone.
	HealthCheck *HealthCheck `json:"health_check,omitempty"`
	// PassiveFall is how many consecutive failed requests (connect errors,
	// resets, timeouts, 5xx) mark a server down. Default 3.
	PassiveFall int `json:"passive_fall,omitempty" validate:"min=0,max=1000"`
	// PassiveDownTime is how long a server marked down by passive failures
	// stays down when the group has no HealthCheck to bring it back. Default 10s. From 10ms to 1h.
	PassiveDownTime Duration `json:"passive_down_time,omitempty" validate:"omitempty,duration=10ms:1h"`
	// SlowStart ramps a server that comes back up from a small share to its
	// full weight over this time. Zero disables it. Ignored by hash. From 1ms to 1h.
	SlowStart Duration `json:"slow_start,omitempty" validate:"omitempty,duration=1ms:1h"`
	// ConnectTimeout bounds connecting to a server. Default 2s. From 1ms to 1m.
	ConnectTimeout Duration `json:"connect_timeout,omitempty" validate:"omitempty,duration=1ms:1m"`
	// ResponseTimeout bounds waiting for a server: for the response head after
	// the request was sent, and between two reads of the body. Default 60s. From 10ms to 1h.
	ResponseTimeout Duration `json:"response_timeout,omitempty" validate:"omitempty,duration=10ms:1h"`
	// MaxAttempts is how many servers a request may be tried on. A request is
	// tried again only if it is idempotent (GET, HEAD, OPTIONS, or carries an
	// Idempotency-Key header) and no byte of the answer reached the client;
	// failed connects are always tried again. 1 disables retries. Default 3.
	MaxAttempts int `json:"max_attempts,omitempty" validate:"min=0,max=10"`
	// MaxIdleConns is how many idle keep-alive connections are kept per
	// server. Default 128.
	MaxIdleConns int `json:"max_idle_conns,omitempty" validate:"min=0,max=100000"`
}

// HashKeySource says what a hash group hashes.
type HashKeySource string

// Hash key sources.
const (
	HashClientIP HashKeySource = "client_ip"
	HashHeader   HashKeySource = "header"
	HashCookie   HashKeySource = "cookie"
)

// HashKey is the key of a hash group. Requests without the header or cookie
// are hashed on the client IP.
type HashKey struct {
	// Source is client_ip, header or cookie.
	Source HashKeySource `json:"source" validate:"required,oneof=client_ip header cookie"`
	// Name of the header or cookie; required for header and cookie.
	Name string `json:"name,omitempty" validate:"required_unless=Source client_ip,max=256"`
}

// Server is one backend of a server group.
type Server struct {
	// Name identifies the server in status, events and Drain. Default
	// "address:port".
	Name string `json:"name,omitempty" validate:"max=128"`
	// Address is the server's IP address or host name.
	Address string `json:"address" validate:"required,hostname_rfc1123|ip"`
	// Port of the server.
	Port int `json:"port" validate:"min=1,max=65535"`
	// Weight is the server's share of its group, 1 to 1000; 0 (or none) is the
	// default 1. To take a server out, drain it: weight 0 does not.
	Weight int `json:"weight,omitempty" validate:"omitempty,min=1,max=1000"`
	// Role is working or standby. Default working.
	Role Role `json:"role,omitempty" validate:"omitempty,oneof=working standby"`
	// Zone is the availability zone the server sits in; it is shown in status,
	// events and metrics.
	Zone string `json:"zone,omitempty" validate:"max=64"`
}

// CheckType is the kind of active health check.
type CheckType string

// Health check types.
const (
	CheckHTTP CheckType = "http"
	CheckTCP  CheckType = "tcp"
)

// HealthCheck actively checks each server of a group.
type HealthCheck struct {
	// Type is http (a GET that must answer with an expected status) or tcp (a
	// connect that must succeed).
	Type CheckType `json:"type" validate:"required,oneof=http tcp"`
	// Path of the http check. Default "/".
	Path string `json:"path,omitempty" validate:"omitempty,startswith=/"`
	// Host header of the http check. Default the server's address.
	Host string `json:"host,omitempty" validate:"omitempty,max=253"`
	// ExpectStatus lists the statuses that pass an http check. Default any of
	// 200-399.
	ExpectStatus []int `json:"expect_status,omitempty" validate:"dive,min=100,max=599"`
	// Port to check. Default the server's port.
	Port int `json:"port,omitempty" validate:"min=0,max=65535"`
	// Interval between two checks of a server. Default 2s. From 10ms to 1h.
	Interval Duration `json:"interval,omitempty" validate:"omitempty,duration=10ms:1h"`
	// Timeout of one check; must be shorter than Interval. Default 1s, or
	// half the interval if that is shorter. From 1ms to 1m.
	Timeout Duration `json:"timeout,omitempty" validate:"omitempty,duration=1ms:1m"`
	// Rise is how many consecutive passed checks bring a server up. Default 2.
	Rise int `json:"rise,omitempty" validate:"min=0,max=100"`
	// Fall is how many consecutive failed checks take a server down. Default 3.
	Fall int `json:"fall,omitempty" validate:"min=0,max=100"`
}

// Duration is a time.Duration written in JSON as a Go duration string ("1.5s"); a bare
// number is refused. It is the one Duration of every shuanghuo package (internal/jsontime);
// Or(def) gives the default for zero.
type Duration = jsontime.Duration

// Defaults, each documented on its field.
const (
	defaultIdleTimeout     = 60 * time.Second
	defaultReadTimeout     = 30 * time.Second
	defaultWriteTimeout    = 30 * time.Second
	defaultMaxHeaderBytes  = 16 << 10
	defaultPassiveFall     = 3
	defaultPassiveDownTime = 10 * time.Second
	defaultConnectTimeout  = 2 * time.Second
	defaultResponseTimeout = 60 * time.Second
	defaultMaxAttempts     = 3
	defaultMaxIdleConns    = 128
	defaultCheckInterval   = 2 * time.Second
	defaultCheckTimeout    = time.Second
	defaultRise            = 2
	defaultFall            = 3
	defaultKeepVersions    = 10
)

// Clone returns a deep copy of c: nothing of it shares memory with c.
func (c BalancerConfig) Clone() BalancerConfig {
	c.Listeners = slices.Clone(c.Listeners)
	for i := range c.Listeners {
		l := &c.Listeners[i]
		l.Rules = slices.Clone(l.Rules)
		if l.TLS != nil {
			l.TLS = &TLSConfig{Certificates: slices.Clone(l.TLS.Certificates)}
		}
	}
	c.Groups = slices.Clone(c.Groups)
	for i := range c.Groups {
		g := &c.Groups[i]
		g.Servers = slices.Clone(g.Servers)
		if g.HashKey != nil {
			g.HashKey = new(*g.HashKey)
		}
		if g.HealthCheck != nil {
			hc := *g.HealthCheck
			hc.ExpectStatus = slices.Clone(hc.ExpectStatus)
			g.HealthCheck = &hc
		}
	}
	return c
}

// SwitchRoles moves traffic to a center, the DR rule of a switch-traffic step: centerOf maps
// each zone (可用区) to its center; in every server group with servers in center to's zones,
// those servers become working and the other centers' standby, so traffic goes to to while
// the other center's servers still stand by. Servers in zones of no center, and groups
// without a server in to, keep their roles. It reports whether any role changed.
func (c *BalancerConfig) SwitchRoles(centerOf map[string]string, to string) bool {
	changed := false
	for gi := range c.Groups {
		servers := c.Groups[gi].Servers
		if !slices.ContainsFunc(servers, func(s Server) bool { return centerOf[s.Zone] == to }) {
			continue
		}
		for si := range servers {
			s := &servers[si]
			center, known := centerOf[s.Zone]
			if !known {
				continue
			}
			role := Standby
			if center == to {
				role = Working
			}
			if s.role() != role {
				s.Role, changed = role, true
			}
		}
	}
	return changed
}

// id is the name a server is known by: its Name, or "address:port".
func (s *Server) id() string {
	if s.Name != "" {
		return s.Name
	}
	return s.hostPort()
}

func (s *Server) hostPort() string {
	return joinHostPort(s.Address, s.Port)
}

func (s *Server) role() Role {
	if s.Role == "" {
		return Working
	}
	return s.Role
}

func (g *ServerGroup) algorithm() Algorithm {
	if g.Algorithm == "" {
		return RoundRobin
	}
	return g.Algorithm
}
