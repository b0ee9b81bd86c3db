package dnsctl

import (
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shuanghuo/shuanghuo/internal/jsontime"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Server. The zero value of every field means "use the
// default", which each field's comment states. Config is JSON-tagged so an API can
// accept and return it; Logger and Registerer are wiring, not configuration.
type Config struct {
	// UDPAddr is the host:port the UDP listener binds. Port 0 picks a free port.
	// Default ":53".
	UDPAddr string `json:"udp_addr,omitempty"`
	// TCPAddr is the host:port the TCP listener binds. Default: the host and the
	// port actually bound by the UDP listener, so clients falling back to TCP after
	// a truncated answer find it.
	TCPAddr string `json:"tcp_addr,omitempty"`
	// UDPSize is the largest UDP answer sent to an EDNS0 client; clients without
	// EDNS0 get 512 bytes. Default 1232 (the DNS flag day 2020 value).
	UDPSize int `json:"udp_size,omitempty" validate:"omitempty,min=512,max=65535"`

	// Center names the center this server runs in. Clients outside every view get
	// this center's targets from record sets whose Active is AllCenters. Default:
	// the record set's first center in name order.
	Center string `json:"center,omitempty"`
	// Views map client source networks to centers (split horizon). A client in a
	// view of center C gets C's targets from record sets whose Active is
	// AllCenters. The first matching view wins.
	Views []View `json:"views,omitempty" validate:"dive"`

	// Zones are served from Start on. More can be added with ApplyZone.
	Zones []Zone `json:"zones,omitempty" validate:"dive"`

	// Forwarders are upstream resolvers (IP or IP:port; port 53 if omitted) for names
	// outside our zones, tried in order with failover. None: such names are REFUSED.
	Forwarders []string `json:"forwarders,omitempty"`
	// ForwardTimeout bounds one attempt at one upstream. Default 2s. From 1ms to 1m.
	ForwardTimeout Duration `json:"forward_timeout,omitempty" validate:"omitempty,duration=1ms:1m"`
	// CacheSize is the number of forwarded answers kept. Default 10000; negative
	// disables the cache.
	CacheSize int `json:"cache_size,omitempty"`
	// CacheMaxTTL caps how long a forwarded answer is kept. Default 1h. From 1s to 168h.
	CacheMaxTTL Duration `json:"cache_max_ttl,omitempty" validate:"omitempty,duration=1s:168h"`

	// TSIGKeys are the shared secrets for zone transfer and NOTIFY.
	TSIGKeys []TSIGKey `json:"tsig_keys,omitempty" validate:"dive"`
	// Secondaries may transfer our zones (AXFR, IXFR) and get a NOTIFY after every
	// change.
	Secondaries []Secondary `json:"secondaries,omitempty" validate:"dive"`
	// Primary, when set, makes this server a secondary for Primary.Zones: it
	// transfers them from the primary, follows its NOTIFYs and keeps answering from
	// the last copy when the primary is gone.
	Primary *Primary `json:"primary,omitempty"`

	// QueryLog logs every query (client, name, type, rcode, duration) at Info
	// level to Logger. Default off.
	QueryLog bool `json:"query_log,omitempty"`
	// Logger receives the query log and operational messages. Nil: discard.
	Logger *slog.Logger `json:"-"`
	// Registerer, when set, receives the server's Prometheus metrics. Nil: no
	// metrics. Two servers registering in one registry need
	// prometheus.WrapRegistererWith to tell them apart.
	Registerer prometheus.Registerer `json:"-"`
}

// AllCenters as a record set's Active center means active-active: every client
// gets the targets of its own center, chosen by Config.Views.
const AllCenters = "*"

// View maps client networks to a center.
type View struct {
	// Name identifies the view in status and errors.
	Name string `json:"name" validate:"required"`
	// Center whose targets clients in Networks get.
	Center string `json:"center" validate:"required"`
	// Networks in CIDR notation, e.g. "10.1.0.0/16".
	Networks []string `json:"networks" validate:"required,min=1,dive,cidr"`
}

// TSIGKey is a shared secret for transaction signatures (RFC 8945).
type TSIGKey struct {
	// Name of the key, a domain name both sides agree on, e.g. "xfr.example.".
	Name string `json:"name" validate:"required"`
	// Algorithm is one of hmac-sha256, hmac-sha512, hmac-sha1. Default hmac-sha256.
	Algorithm string `json:"algorithm,omitempty" validate:"omitempty,oneof=hmac-sha256 hmac-sha512 hmac-sha1"`
	// Secret is the base64-encoded key.
	Secret string `json:"secret" validate:"required,base64"`
}

// Secondary is a server allowed to transfer our zones.
type Secondary struct {
	// Addr (host:port) receives NOTIFY; transfers are allowed from its host.
	Addr string `json:"addr" validate:"required"`
	// Key names a TSIGKey that signs NOTIFYs to it. When set, a transfer signed
	// with this key is allowed from any address; when empty, transfers are allowed
	// unsigned from Addr's host only.
	Key string `json:"key,omitempty"`
}

// Primary is the server this one transfers zones from.
type Primary struct {
	// Addr is the primary's host:port.
	Addr string `json:"addr" validate:"required"`
	// Key names a TSIGKey that signs our transfer requests. Empty: unsigned.
	Key string `json:"key,omitempty"`
	// Zones to transfer.
	Zones []string `json:"zones" validate:"required,min=1"`
	// Refresh is how often to check the primary without a NOTIFY. Default 1m. From 1s to 24h.
	Refresh Duration `json:"refresh,omitempty" validate:"omitempty,duration=1s:24h"`
	// Timeout bounds one transfer. Default 10s. From 1ms to 1h.
	Timeout Duration `json:"timeout,omitempty" validate:"omitempty,duration=1ms:1h"`
}

// Duration is a time.Duration written in JSON as a Go duration string ("1.5s"); a bare
// number is refused. It is the one Duration of every shuanghuo package (internal/jsontime);
// Or(def) gives the default for zero.
type Duration = jsontime.Duration

// Defaults.
const (
	defaultUDPAddr        = ":53"
	defaultUDPSize        = 1232
	defaultForwardTimeout = 2 * time.Second
	defaultCacheSize      = 10000
	defaultCacheMaxTTL    = time.Hour
	defaultRefresh        = time.Minute
	defaultXfrTimeout     = 10 * time.Second
	defaultTSIGAlgorithm  = "hmac-sha256"
)

// withDefaults returns a copy of c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.UDPAddr == "" {
		c.UDPAddr = defaultUDPAddr
	}
	if c.UDPSize == 0 {
		c.UDPSize = defaultUDPSize
	}
	if c.ForwardTimeout == 0 {
		c.ForwardTimeout = Duration(defaultForwardTimeout)
	}
	if c.CacheSize == 0 {
		c.CacheSize = defaultCacheSize
	}
	if c.CacheMaxTTL == 0 {
		c.CacheMaxTTL = Duration(defaultCacheMaxTTL)
	}
	c.TSIGKeys = slices.Clone(c.TSIGKeys)
	for i := range c.TSIGKeys {
		if c.TSIGKeys[i].Algorithm == "" {
			c.TSIGKeys[i].Algorithm = defaultTSIGAlgorithm
		}
	}
	if c.Primary != nil {
		p := *c.Primary
		if p.Refresh == 0 {
			p.Refresh = Duration(defaultRefresh)
		}
		if p.Timeout == 0 {
			p.Timeout = Duration(defaultXfrTimeout)
		}
		c.Primary = &p
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports every problem in c as a *ValidationError, or nil.
func (c Config) Validate() error {
	var fe fieldErrors
	checkStruct(&fe, "", c)
	for _, a := range []struct{ path, addr string }{{"udp_addr", c.UDPAddr}, {"tcp_addr", c.TCPAddr}} {
		if a.addr != "" {
			checkHostPort(&fe, a.path, a.addr)
		}
	}
	keys := map[string]bool{}
	for i, k := range c.TSIGKeys {
		if k.Name != "" {
			if _, ok := dns.IsDomainName(k.Name); !ok {
				fe.add(fmt.Sprintf("tsig_keys[%d].name", i), "must be a domain name")
			}
			keys[dns.CanonicalName(k.Name)] = true
		}
		if _, err := base64.StdEncoding.DecodeString(k.Secret); err != nil && k.Secret != "" {
			fe.add(fmt.Sprintf("tsig_keys[%d].secret", i), "must be base64")
		}
	}
	for i, f := range c.Forwarders {
		if _, err := upstreamAddr(f); err != nil {
			fe.add(fmt.Sprintf("forwarders[%d]", i), "%v", err)
		}
	}
	for i, s := range c.Secondaries {
		if s.Addr != "" {
			checkHostPort(&fe, fmt.Sprintf("secondaries[%d].addr", i), s.Addr)
		}
		if s.Key != "" && !keys[dns.CanonicalName(s.Key)] {
			fe.add(fmt.Sprintf("secondaries[%d].key", i), "names no key in tsig_keys")
		}
	}
	origins := map[string]int{}
	for i, z := range c.Zones {
		z.check(&fe, fmt.Sprintf("zones[%d]", i), false)
		o := dns.CanonicalName(z.Origin)
		if j, dup := origins[o]; dup {
			fe.add(fmt.Sprintf("zones[%d].origin", i), "repeats zones[%d].origin", j)
		}
		origins[o] = i
	}
	if p := c.Primary; p != nil {
		if p.Addr != "" {
			checkHostPort(&fe, "primary.addr", p.Addr)
		}
		if p.Key != "" && !keys[dns.CanonicalName(p.Key)] {
			fe.add("primary.key", "names no key in tsig_keys")
		}
		for i, z := range p.Zones {
			if _, ok := dns.IsDomainName(z); !ok {
				fe.add(fmt.Sprintf("primary.zones[%d]", i), "must be a domain name")
			}
			if j, dup := origins[dns.CanonicalName(z)]; dup {
				fe.add(fmt.Sprintf("primary.zones[%d]", i), "is also zones[%d]; a zone is either primary or secondary here", j)
			}
		}
	}
	return fe.err()
}

func checkHostPort(fe *fieldErrors, path, addr string) {
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil {
		fe.add(path, "must be host:port, got %q", addr)
	}
}

// upstreamAddr returns addr with port 53 added when it has none.
func upstreamAddr(addr string) (string, error) {
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		return ap.String(), nil
	}
	if a, err := netip.ParseAddr(strings.Trim(addr, "[]")); err == nil {
		return net.JoinHostPort(a.String(), "53"), nil
	}
	return "", fmt.Errorf("must be an IP address with an optional port, got %q", addr)
}

// parsedViews are the views as prefixes, ready for matching on the answer path.
type parsedView struct {
	center string
	nets   []netip.Prefix
}

func parseViews(views []View) []parsedView {
	out := make([]parsedView, 0, len(views))
	for _, v := range views {
		pv := parsedView{center: v.Center}
		for _, n := range v.Networks {
			if p, err := netip.ParsePrefix(n); err == nil {
				pv.nets = append(pv.nets, p.Masked())
			}
		}
		out = append(out, pv)
	}
	return out
}
