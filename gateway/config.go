package gateway

import (
	"time"

	"github.com/shuanghuo/shuanghuo/internal/jsontime"
)

// Config is everything a gateway enforces: who may call (consumers), what
// may be called (APIs), who may call what (grants), and the policies (IP
// lists, rate limits) around them. It is plain data, stored and pushed by a
// control plane; Apply validates it as a whole and swaps it in atomically.
type Config struct {
	// Consumers are the accounts that sign requests: one per hospital,
	// pharmacy or bank. IDs and AppKeys are unique.
	Consumers []Consumer `json:"consumers" validate:"dive"`
	// APIs are the endpoints the gateway serves. Names are unique, and so
	// are (method, path) pairs.
	APIs []API `json:"apis" validate:"dive"`
	// Grants say which consumer may call which API. An API that requires
	// authentication takes requests only from consumers granted it.
	Grants []Grant `json:"grants" validate:"dive"`
	// Policies add IP lists and rate limits, globally, per API, per
	// consumer, or per consumer × API. At most one policy per scope.
	Policies []Policy `json:"policies" validate:"dive"`
	// Auth tunes signature checking.
	Auth Auth `json:"auth"`
}

// ConsumerKind is the kind of party a consumer is.
type ConsumerKind string

// Consumer kinds.
const (
	KindHospital ConsumerKind = "hospital"
	KindPharmacy ConsumerKind = "pharmacy"
	KindBank     ConsumerKind = "bank"
	KindOther    ConsumerKind = "other"
)

// Consumer is one calling party (账户) and its credentials.
type Consumer struct {
	// ID identifies the consumer in grants, policies and statistics, and is
	// sent upstream as X-Consumer-Id. Letters, digits, '-', '_' and '.'.
	ID string `json:"id" validate:"required,max=64"`
	// Name is the party's display name, e.g. 省人民医院.
	Name string `json:"name" validate:"required,max=128,label"`
	// Kind is hospital, pharmacy, bank or other.
	Kind ConsumerKind `json:"kind" validate:"required,oneof=hospital pharmacy bank other"`
	// OrgCode is the organisation code (e.g. the 定点医药机构编码), sent
	// upstream as X-Consumer-Org.
	OrgCode string `json:"org_code,omitempty" validate:"max=64"`
	// Enabled must be true for the consumer's requests to be accepted.
	Enabled bool `json:"enabled"`
	// AppKey names the consumer in signed requests; unique. 8 to 64
	// letters, digits, '-' or '_'.
	AppKey string `json:"app_key" validate:"required,min=8,max=64"`
	// Secrets are the consumer's active AppSecrets, one or two: a request
	// signed with either is accepted, so a secret is rotated by adding the
	// new one, moving the client to it, and removing the old one. Each at
	// least 16 characters (GenerateSecret makes 32 random bytes, hex).
	Secrets []string `json:"secrets" validate:"required,min=1,max=2,dive,min=16,max=256"`
}

// API is one endpoint served through the gateway.
type API struct {
	// Name identifies the API in grants, policies, statistics and metrics,
	// e.g. 门诊结算.
	Name string `json:"name" validate:"required,max=64,label"`
	// Method is the HTTP method the API takes, e.g. POST. Empty takes any.
	Method string `json:"method,omitempty" validate:"omitempty,oneof=GET HEAD POST PUT PATCH DELETE OPTIONS"`
	// Path is an exact path ("/api/outpatient/settle") or a prefix ending
	// in "/*" ("/api/outpatient/*" matches every path below). An exact path
	// beats a prefix, and the longest prefix wins.
	Path string `json:"path" validate:"required,startswith=/,max=1024"`
	// Upstream is where accepted requests go.
	Upstream Upstream `json:"upstream"`
	// Timeout bounds waiting for the upstream's answer (its head, and each
	// read of its body). Default 30s. From 10ms to 1h.
	Timeout Duration `json:"timeout,omitempty" validate:"omitempty,duration=10ms:1h"`
	// MaxBodyBytes limits a request body. Default 1 MiB; at most 64 MiB.
	MaxBodyBytes int64 `json:"max_body_bytes,omitempty" validate:"min=0,max=67108864"`
	// Public APIs take unsigned requests from anyone (their IP lists and
	// rate limits still apply). Default false: authentication required, and
	// only granted consumers may call.
	Public bool `json:"public,omitempty"`
	// Breaker configures the circuit breaker of the API's upstream.
	// Default: trip after 5 consecutive failures, probe after 30s.
	Breaker *Breaker `json:"breaker,omitempty"`
}

// Upstream is an lb server group or a URL; exactly one is set.
type Upstream struct {
	// Group names a server group of the balancer the gateway runs in.
	Group string `json:"group,omitempty" validate:"max=64"`
	// URL is "http://host:port" of a single upstream, without a path.
	URL string `json:"url,omitempty" validate:"omitempty,url,max=512"`
}

// Breaker configures a circuit breaker (sony/gobreaker). Failures are
// upstream answers with status 5xx and upstreams that did not answer.
// While closed, the breaker trips (opens) on ConsecutiveFailures failures
// in a row, or when FailureRatio is set and at least MinRequests requests
// in the last Window failed at that ratio. While open, requests are refused
// at once with circuit_open. After OpenTimeout it lets HalfOpenRequests
// probes through: if they all succeed it closes, if one fails it opens
// again.
type Breaker struct {
	// ConsecutiveFailures trips the breaker. Default 5.
	ConsecutiveFailures int `json:"consecutive_failures,omitempty" validate:"min=0,max=100000"`
	// FailureRatio, between 0 and 1, trips the breaker when reached over
	// Window. Zero disables the ratio rule.
	FailureRatio float64 `json:"failure_ratio,omitempty" validate:"min=0,max=1"`
	// MinRequests is how many requests Window must hold before the ratio
	// rule applies. Default 20.
	MinRequests int `json:"min_requests,omitempty" validate:"min=0,max=1000000"`
	// Window is the rolling period over which requests are counted while
	// closed. Default 60s. From 1s to 24h.
	Window Duration `json:"window,omitempty" validate:"omitempty,duration=1s:24h"`
	// OpenTimeout is how long the breaker stays open before probing. Default 30s. From 10ms to 1h.
	OpenTimeout Duration `json:"open_timeout,omitempty" validate:"omitempty,duration=10ms:1h"`
	// HalfOpenRequests is how many probes may run while half-open. Default 1.
	HalfOpenRequests int `json:"half_open_requests,omitempty" validate:"min=0,max=1000"`
}

// Grant lets a consumer call an API.
type Grant struct {
	// Consumer is the consumer's ID.
	Consumer string `json:"consumer" validate:"required"`
	// API is the API's name.
	API string `json:"api" validate:"required"`
}

// Policy holds IP lists and a rate limit for one scope: global (API and
// Consumer empty), one API, one consumer, or one consumer calling one API.
type Policy struct {
	// Name identifies the policy; unique.
	Name string `json:"name" validate:"required,max=64,label"`
	// API restricts the policy to one API (by name).
	API string `json:"api,omitempty"`
	// Consumer restricts the policy to one consumer (by ID).
	Consumer string `json:"consumer,omitempty"`
	// Allow, when not empty, admits only client IPs in these CIDR prefixes
	// or addresses (IPv4 or IPv6). Deny refuses the IPs in its prefixes,
	// and beats Allow. Every scope's lists that apply to a request must
	// admit it.
	Allow []string `json:"allow,omitempty" validate:"max=10000"`
	Deny  []string `json:"deny,omitempty" validate:"max=10000"`
	// RateLimit limits requests in the scope: of everyone (global), of the
	// API, of the consumer (over all its APIs), or of the consumer on the API.
	RateLimit *RateLimit `json:"rate_limit,omitempty"`
}

// RateLimit is a token bucket: Rate requests per second sustained, bursts
// of up to Burst.
type RateLimit struct {
	// Rate is the sustained rate in requests per second; may be below 1
	// (0.5 is one request every two seconds).
	Rate float64 `json:"rate" validate:"gt=0,max=10000000"`
	// Burst is how many requests may come at once. Default: Rate rounded
	// up, at least 1.
	Burst int `json:"burst,omitempty" validate:"min=0,max=10000000"`
}

func (l RateLimit) burst() int {
	if l.Burst > 0 {
		return l.Burst
	}
	b := int(l.Rate)
	if float64(b) < l.Rate {
		b++
	}
	return max(b, 1)
}

// Auth tunes signature checking.
type Auth struct {
	// ClockSkew is how far a request's timestamp may be from the gateway's
	// clock, either way. Nonces are remembered for twice as long. Default
	// 5m; at most 1h. From 1s to 1h.
	ClockSkew Duration `json:"clock_skew,omitempty" validate:"omitempty,duration=1s:1h"`
}

// Duration is a time.Duration written in JSON as a Go duration string ("1.5s"); a bare
// number is refused. It is the one Duration of every shuanghuo package (internal/jsontime);
// Or(def) gives the default for zero.
type Duration = jsontime.Duration

// Defaults, each documented on its field.
const (
	defaultTimeout       = 30 * time.Second
	defaultMaxBodyBytes  = 1 << 20
	defaultClockSkew     = 5 * time.Minute
	defaultConsecutive   = 5
	defaultMinRequests   = 20
	defaultBreakerWindow = 60 * time.Second
	defaultOpenTimeout   = 30 * time.Second
)
