package gateway

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/go-playground/validator/v10"

	"github.com/shuanghuo/shuanghuo/internal/validate"
)

var (
	validatorOnce sync.Once
	validatorInst *validator.Validate
)

func structValidator() *validator.Validate {
	validatorOnce.Do(func() { validatorInst = validate.New("json") })
	return validatorInst
}

// Validate checks the whole config and returns a *ValidationError listing
// every wrong field by its JSON path, or nil. Apply runs the same checks.
func (c *Config) Validate() error {
	v := &ValidationError{Cause: ErrInvalidConfig}
	fields, err := validate.Fields(structValidator(), c)
	if err != nil {
		return fmt.Errorf("gateway: validate: %w", err)
	}
	for f, msg := range fields {
		v.Add(f, msg)
	}

	consumers := make(map[string]bool, len(c.Consumers))
	keys := make(map[string]int, len(c.Consumers))
	for i, cs := range c.Consumers {
		p := fmt.Sprintf("consumers[%d]", i)
		if cs.ID != "" {
			if !isIdent(cs.ID, ".") {
				v.Add(p+".id", "must hold only letters, digits, '-', '_' and '.'")
			}
			if consumers[cs.ID] {
				v.Add(p+".id", fmt.Sprintf("duplicate consumer id %q", cs.ID))
			}
			consumers[cs.ID] = true
		}
		if cs.AppKey != "" {
			if !isIdent(cs.AppKey, "") {
				v.Add(p+".app_key", "must hold only letters, digits, '-' and '_'")
			}
			if j, ok := keys[cs.AppKey]; ok {
				v.Add(p+".app_key", fmt.Sprintf("duplicate app key (also consumers[%d])", j))
			}
			keys[cs.AppKey] = i
		}
		if len(cs.Secrets) == 2 && cs.Secrets[0] == cs.Secrets[1] {
			v.Add(p+".secrets", "the two secrets must differ")
		}
	}

	apis := make(map[string]bool, len(c.APIs))
	routes := make(map[string]int)
	for i, a := range c.APIs {
		p := fmt.Sprintf("apis[%d]", i)
		if a.Name != "" {
			if apis[a.Name] {
				v.Add(p+".name", fmt.Sprintf("duplicate API name %q", a.Name))
			}
			apis[a.Name] = true
		}
		if a.Path != "" {
			if strings.ContainsAny(a.Path, "?# \t") || strings.Contains(strings.TrimSuffix(a.Path, "/*"), "*") {
				v.Add(p+".path", "must be a path, optionally ending in /* (no query, no other *)")
			}
			key := a.Method + " " + a.Path
			if j, ok := routes[key]; ok {
				v.Add(p+".path", fmt.Sprintf("method and path already served by apis[%d]", j))
			}
			routes[key] = i
		}
		switch {
		case a.Upstream.Group == "" && a.Upstream.URL == "":
			v.Add(p+".upstream", "set group or url")
		case a.Upstream.Group != "" && a.Upstream.URL != "":
			v.Add(p+".upstream", "set group or url, not both")
		case a.Upstream.URL != "":
			if _, err := upstreamAddr(a.Upstream.URL); err != nil {
				v.Add(p+".upstream.url", err.Error())
			}
		}
		if a.Timeout < 0 {
			v.Add(p+".timeout", "must not be negative")
		}
		if b := a.Breaker; b != nil {
			if b.Window < 0 {
				v.Add(p+".breaker.window", "must not be negative")
			}
			if b.OpenTimeout < 0 {
				v.Add(p+".breaker.open_timeout", "must not be negative")
			}
		}
	}

	grants := make(map[string]int)
	for i, g := range c.Grants {
		p := fmt.Sprintf("grants[%d]", i)
		if g.Consumer != "" && !consumers[g.Consumer] {
			v.Add(p+".consumer", fmt.Sprintf("no consumer %q", g.Consumer))
		}
		if g.API != "" && !apis[g.API] {
			v.Add(p+".api", fmt.Sprintf("no API %q", g.API))
		}
		key := g.Consumer + "\x00" + g.API
		if j, ok := grants[key]; ok {
			v.Add(p, fmt.Sprintf("duplicate of grants[%d]", j))
		}
		grants[key] = i
	}

	names := make(map[string]bool)
	scopes := make(map[string]int)
	for i, pol := range c.Policies {
		p := fmt.Sprintf("policies[%d]", i)
		if pol.Name != "" {
			if names[pol.Name] {
				v.Add(p+".name", fmt.Sprintf("duplicate policy name %q", pol.Name))
			}
			names[pol.Name] = true
		}
		if pol.API != "" && !apis[pol.API] {
			v.Add(p+".api", fmt.Sprintf("no API %q", pol.API))
		}
		if pol.Consumer != "" && !consumers[pol.Consumer] {
			v.Add(p+".consumer", fmt.Sprintf("no consumer %q", pol.Consumer))
		}
		key := pol.Consumer + "\x00" + pol.API
		if j, ok := scopes[key]; ok {
			v.Add(p, fmt.Sprintf("same scope as policies[%d]; one policy per scope", j))
		}
		scopes[key] = i
		for j, s := range pol.Allow {
			if _, err := parsePrefix(s); err != nil {
				v.Add(fmt.Sprintf("%s.allow[%d]", p, j), err.Error())
			}
		}
		for j, s := range pol.Deny {
			if _, err := parsePrefix(s); err != nil {
				v.Add(fmt.Sprintf("%s.deny[%d]", p, j), err.Error())
			}
		}
	}
	return v.Err()
}

// isIdent says whether s is made of ASCII letters, digits, '-', '_' and
// the bytes of extra (ASCII).
func isIdent(s, extra string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		case strings.IndexByte(extra, c) >= 0:
		default:
			return false
		}
	}
	return true
}

// parsePrefix reads a CIDR prefix or a single address, IPv4 or IPv6.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("must be a CIDR prefix such as 10.0.0.0/8 or 2001:db8::/32, got %q", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("must be an IP address or CIDR prefix, got %q", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// upstreamAddr turns "http://host:port" into "host:port".
func upstreamAddr(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("must be http://host:port without a path, got %q", raw)
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "80"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("bad port in %q", raw)
	}
	return net.JoinHostPort(host, port), nil
}
