package cache

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/shuanghuo/shuanghuo/internal/jsontime"
)

// Duration is a time.Duration written in JSON as a Go duration string
// ("1.5s"). It is the one Duration of every shuanghuo package.
type Duration = jsontime.Duration

// Config is one Redis instance and how to reach it. Password and TLS.Key are
// secrets: String, GoString and LogValue leave them out, and no method of
// Instance returns them.
type Config struct {
	// Addr is the instance's host:port.
	Addr string `json:"addr" validate:"required,hostname_port"`
	// Username and Password authenticate (ACL user, or requirepass with no
	// Username). Default: no authentication.
	Username string `json:"username,omitempty" validate:"max=256"`
	Password string `json:"password,omitempty" validate:"max=4096"`
	// DB is the database the key browser and the scans read. Default: 0.
	DB int `json:"db,omitempty" validate:"min=0,max=1023"`
	// TLS, when set, connects with TLS. Default: plain TCP.
	TLS *TLSConfig `json:"tls,omitempty"`
	// DialTimeout bounds a connection's set-up. Default: 2s. From 10ms to 1m.
	DialTimeout Duration `json:"dial_timeout,omitempty" validate:"omitempty,duration=10ms:1m"`
	// Timeout bounds each command's reply. Default: 3s. From 10ms to 1m.
	Timeout Duration `json:"timeout,omitempty" validate:"omitempty,duration=10ms:1m"`
	// ScanRate is how many keys per second all scans of this Instance
	// together may examine (Keys, BigKeys, HotKeys): the work SCAN's COUNT
	// asks for, and each key's own command. Default: 2000. At most 1000000.
	ScanRate int `json:"scan_rate,omitempty" validate:"min=0,max=1000000"`
}

// TLSConfig holds PEM texts rather than file names, so that a registration
// carries all it needs and can be sealed as a whole.
type TLSConfig struct {
	// CA holds PEM certificates that verify the instance. Default: the
	// host's roots.
	CA string `json:"ca,omitempty" validate:"max=1048576"`
	// Cert and Key are a PEM client certificate and its key, for instances
	// that require one. Set both or neither. Key is a secret.
	Cert string `json:"cert,omitempty" validate:"max=1048576"`
	Key  string `json:"key,omitempty" validate:"max=1048576"`
	// ServerName is the name verified in the instance's certificate.
	// Default: the host of Addr.
	ServerName string `json:"server_name,omitempty" validate:"max=253"`
	// InsecureSkipVerify accepts any certificate. Only for tests.
	InsecureSkipVerify bool `json:"insecure_skip_verify,omitempty"`
}

// Defaults.
const (
	defaultDialTimeout = 2 * time.Second
	defaultTimeout     = 3 * time.Second
	defaultScanRate    = 2000
)

// Validate checks the configuration. The error is a *ValidationError listing
// every problem found.
func (c *Config) Validate() error {
	v := &ValidationError{Cause: ErrInvalid}
	v.AddStruct(c)
	if t := c.TLS; t != nil {
		if (t.Cert == "") != (t.Key == "") {
			v.Add("tls.cert", "and tls.key go together: set both or neither")
		}
		if _, err := t.config(c.Addr); err != nil {
			v.Add("tls", err.Error())
		}
	}
	return v.Err()
}

// config builds the client's TLS configuration. Its errors never quote the
// key.
func (t *TLSConfig) config(addr string) (*tls.Config, error) {
	c := &tls.Config{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
	if c.ServerName == "" {
		c.ServerName, _, _ = net.SplitHostPort(addr)
	}
	if t.CA != "" {
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM([]byte(t.CA)) {
			return nil, fmt.Errorf("ca holds no PEM certificate")
		}
	}
	if t.Cert != "" && t.Key != "" {
		cert, err := tls.X509KeyPair([]byte(t.Cert), []byte(t.Key))
		if err != nil {
			// The parser's message says what is wrong without the PEM.
			return nil, fmt.Errorf("cert and key are not a PEM certificate and its key: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// String describes the instance without its secrets.
func (c Config) String() string {
	s := "redis " + c.Addr
	if c.Username != "" {
		s += " user " + c.Username
	}
	if c.Password != "" {
		s += " with password"
	}
	if c.TLS != nil {
		s += " over TLS"
	}
	return s
}

// GoString is String, so that %#v leaves the secrets out too.
func (c Config) GoString() string { return c.String() }

// LogValue logs the instance without its secrets.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(slog.String("addr", c.Addr), slog.Bool("tls", c.TLS != nil))
}
