package lb

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"github.com/go-playground/validator/v10"

	"github.com/shuanghuo/shuanghuo/internal/validate"
)

// structValidator is built once: validator caches struct metadata and is
// safe for concurrent use, and building it is not free.
var structValidator = sync.OnceValue(func() *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	validate.Register(v)
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			return ""
		}
		if name == "" {
			return f.Name
		}
		return name
	})
	return v
})

// Validate checks the config as Apply does, without applying it: struct
// tags first, then the rules that span fields (unique ports and names, rules
// and listeners that name existing groups, certificates that load). The
// error is a *ValidationError listing every problem found.
func (c *BalancerConfig) Validate() error {
	_, err := compileTLS(c)
	return err
}

// compileTLS validates cfg and loads the certificates of its https
// listeners, keyed by listener name.
func compileTLS(c *BalancerConfig) (map[string]*tls.Config, error) {
	v := &ValidationError{Cause: ErrInvalidConfig}
	if err := structValidator().Struct(c); err != nil {
		var ves validator.ValidationErrors
		if !errors.As(err, &ves) {
			return nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
		}
		for _, fe := range ves {
			v.Add(fieldPath(fe.Namespace()), tagMessage(fe))
		}
	}
	groups := make(map[string]bool, len(c.Groups))
	for i := range c.Groups {
		checkGroup(v, fmt.Sprintf("groups[%d]", i), &c.Groups[i], groups)
	}
	ports := make(map[int]string)
	names := make(map[string]bool)
	tlsConfigs := make(map[string]*tls.Config)
	for i := range c.Listeners {
		l := &c.Listeners[i]
		p := fmt.Sprintf("listeners[%d]", i)
		if l.Name != "" {
			if names[l.Name] {
				v.Add(p+".name", fmt.Sprintf("duplicate listener name %q", l.Name))
			}
			names[l.Name] = true
		}
		if l.Port != 0 {
			if other, ok := ports[l.Port]; ok {
				v.Add(p+".port", fmt.Sprintf("port %d is already used by listener %q", l.Port, other))
			} else {
				ports[l.Port] = l.Name
			}
		}
		if l.DefaultGroup != "" && !groups[l.DefaultGroup] {
			v.Add(p+".default_group", fmt.Sprintf("no server group named %q", l.DefaultGroup))
		}
		switch l.Protocol {
		case ProtocolHTTPS:
			if l.TLS == nil {
				v.Add(p+".tls", "is required for https")
			} else if len(l.TLS.Certificates) > 0 {
				if tc := loadTLS(v, p+".tls", l.TLS); tc != nil {
					tlsConfigs[l.Name] = tc
				}
			}
		case ProtocolHTTP, ProtocolTCP:
			if l.TLS != nil {
				v.Add(p+".tls", "is only allowed for https")
			}
		}
		if l.Protocol == ProtocolTCP {
			if l.DefaultGroup == "" {
				v.Add(p+".default_group", "is required for tcp")
			}
			if len(l.Rules) > 0 {
				v.Add(p+".rules", "are not allowed for tcp; use default_group")
			}
		}
		seen := make(map[string]int)
		for j := range l.Rules {
			r := &l.Rules[j]
			rp := fmt.Sprintf("%s.rules[%d]", p, j)
			if r.Path != "" && r.PathPrefix != "" {
				v.Add(rp+".path", "set path or path_prefix, not both")
			}
			if r.Group != "" && !groups[r.Group] {
				v.Add(rp+".group", fmt.Sprintf("no server group named %q", r.Group))
			}
			if r.Host != "" && strings.Contains(r.Host[1:], "*") || strings.HasPrefix(r.Host, "*") && !strings.HasPrefix(r.Host, "*.") {
				v.Add(rp+".host", `a wildcard must be a leading "*."`)
			}
			key := strings.ToLower(r.Host) + "\x00" + r.Path + "\x00" + r.PathPrefix
			if k, ok := seen[key]; ok {
				v.Add(rp, fmt.Sprintf("matches the same requests as rules[%d]", k))
			}
			seen[key] = j
		}
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	return tlsConfigs, nil
}

func checkGroup(v *ValidationError, p string, g *ServerGroup, groups map[string]bool) {
	if g.Name != "" {
		if groups[g.Name] {
			v.Add(p+".name", fmt.Sprintf("duplicate server group name %q", g.Name))
		}
		groups[g.Name] = true
	}
	switch {
	case g.Algorithm == Hash && g.HashKey == nil:
		v.Add(p+".hash_key", "is required for the hash algorithm")
	case g.Algorithm != Hash && g.HashKey != nil:
		v.Add(p+".hash_key", "is only allowed for the hash algorithm")
	}
	addrs := make(map[string]int)
	ids := make(map[string]int)
	for i := range g.Servers {
		s := &g.Servers[i]
		sp := fmt.Sprintf("%s.servers[%d]", p, i)
		if s.Address == "" || s.Port == 0 {
			continue
		}
		if j, ok := addrs[s.hostPort()]; ok {
			v.Add(sp, fmt.Sprintf("same address and port as servers[%d]", j))
		} else {
			addrs[s.hostPort()] = i
			if j, ok := ids[s.id()]; ok {
				v.Add(sp+".name", fmt.Sprintf("same name as servers[%d]", j))
			}
		}
		ids[s.id()] = i
	}
	if hc := g.HealthCheck; hc != nil {
		hp := p + ".health_check"
		if hc.Type == CheckTCP && (hc.Path != "" || hc.Host != "" || len(hc.ExpectStatus) > 0) {
			v.Add(hp+".type", "path, host and expect_status need type http")
		}
		interval := hc.Interval.Or(defaultCheckInterval)
		if timeout := hc.checkTimeout(); hc.Timeout >= 0 && hc.Interval >= 0 && timeout >= interval {
			v.Add(hp+".timeout", fmt.Sprintf("must be shorter than interval (%s >= %s)", timeout, interval))
		}
	}
}

func loadTLS(v *ValidationError, p string, c *TLSConfig) *tls.Config {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	for i, cert := range c.Certificates {
		var (
			kp  tls.Certificate
			err error
		)
		switch {
		case cert.CertPEM == "" && cert.CertFile == "":
			continue // reported by the struct tags
		case cert.CertPEM != "":
			kp, err = tls.X509KeyPair([]byte(cert.CertPEM), []byte(cert.KeyPEM))
		default:
			kp, err = tls.LoadX509KeyPair(cert.CertFile, cert.KeyFile)
		}
		if err != nil {
			v.Add(fmt.Sprintf("%s.certificates[%d]", p, i), "cannot load: "+err.Error())
			continue
		}
		tc.Certificates = append(tc.Certificates, kp)
	}
	if len(tc.Certificates) != len(c.Certificates) {
		return nil
	}
	return tc
}

// fieldPath turns validator's "BalancerConfig.listeners[0].port" into
// "listeners[0].port".
func fieldPath(ns string) string {
	_, rest, ok := strings.Cut(ns, ".")
	if !ok {
		return ns
	}
	return rest
}

func tagMessage(fe validator.FieldError) string {
	unit := ""
	switch fe.Kind() {
	case reflect.String:
		unit = " characters"
	case reflect.Slice, reflect.Map:
		unit = " items"
	}
	switch fe.Tag() {
	case "required":
		return "is required"
	case "required_without":
		return "is required unless " + jsonName(fe.Param()) + " is set"
	case "required_with":
		return "is required with " + jsonName(fe.Param())
	case "required_unless":
		field, value, _ := strings.Cut(fe.Param(), " ")
		return "is required unless " + jsonName(field) + " is " + value
	case "excluded_with":
		return "is not allowed with " + jsonName(fe.Param())
	case "min", "gte":
		return "must be at least " + fe.Param() + unit
	case "max", "lte":
		return "must be at most " + fe.Param() + unit
	case "oneof":
		return "must be one of: " + strings.ReplaceAll(fe.Param(), " ", ", ")
	case "ip":
		return "must be an IP address"
	case "hostname_rfc1123|ip":
		return "must be a host name or IP address"
	case "duration":
		return validate.Message(fe)
	case "startswith":
		return "must start with " + strconv.Quote(fe.Param())
	}
	return "fails " + fe.Tag() + " " + fe.Param()
}

// jsonName maps the Go field names used in cross-field tags to their JSON names.
func jsonName(goName string) string {
	switch goName {
	case "CertPEM":
		return "cert_pem"
	case "CertFile":
		return "cert_file"
	case "Source":
		return "source"
	}
	return goName
}

func joinHostPort(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}
