package dr

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"

	"github.com/shuanghuo/shuanghuo/internal/jsontime"
)

// Kind names the middleware of a DR group. Each kind has its driver.
type Kind string

// The kinds of DR group.
const (
	KindRedis   Kind = "redis"
	KindKafka   Kind = "kafka"
	KindFastDFS Kind = "fastdfs"
)

// Side is one end of a DR group: its instance in center A or in center B.
type Side string

// The two sides of a DR group.
const (
	SideA Side = "a"
	SideB Side = "b"
)

// Other returns the opposite side.
func (s Side) Other() Side {
	if s == SideA {
		return SideB
	}
	return SideA
}

// Direction is the direction of sync of a DR group: forward sync (A→B) keeps
// B a replica of A; after a switchover, reverse sync (B→A) keeps A a replica
// of B.
type Direction string

// The directions of sync.
const (
	Forward Direction = "forward"
	Reverse Direction = "reverse"
)

// Primary returns the side that takes writes in direction d.
func (d Direction) Primary() Side {
	if d == Reverse {
		return SideB
	}
	return SideA
}

// Replica returns the side that replicates in direction d.
func (d Direction) Replica() Side { return d.Primary().Other() }

// Opposite returns the other direction.
func (d Direction) Opposite() Direction {
	if d == Reverse {
		return Forward
	}
	return Reverse
}

// GroupConfig is the configuration of one DR group (灾备组): an instance in
// center A paired with one in center B. It is what a control plane stores;
// Manager.AddGroup validates it and opens the kind's driver with it.
type GroupConfig struct {
	// Name identifies the group in runs, metrics and errors.
	Name string `json:"name" validate:"required,max=64,printascii"`
	// Kind selects the driver: redis (kafka and fastdfs are reserved for
	// their drivers).
	Kind Kind `json:"kind" validate:"required,oneof=redis kafka fastdfs"`
	// A is the instance in center A, the primary of forward sync.
	A Instance `json:"a"`
	// B is the instance in center B, the replica of forward sync.
	B Instance `json:"b"`
	// SyncTimeout bounds how long pairing (forward or reverse sync) waits for
	// the initial sync to complete. Default: 10m. From 1s to 24h.
	SyncTimeout Duration `json:"sync_timeout,omitempty" validate:"omitempty,duration=1s:24h"`
}

// Instance returns the instance on side s.
func (c *GroupConfig) Instance(s Side) Instance {
	if s == SideB {
		return c.B
	}
	return c.A
}

// Instance is one middleware instance of a DR group.
//
// It has two addresses because the manager and the peer instance often reach
// it by different routes: the manager through an admin network or a NAT, the
// peer over the link between the centers.
type Instance struct {
	// Addr is where the manager reaches the instance, as host:port.
	Addr string `json:"addr" validate:"required,hostname_port"`
	// ReplicationAddr is where the peer instance reaches this one to
	// replicate from it, as host:port. Default: Addr.
	ReplicationAddr string `json:"replication_addr,omitempty" validate:"omitempty,hostname_port"`
	// Username and Password authenticate the manager, and the peer when it
	// replicates from this instance (for Redis: masteruser and masterauth).
	// Default: no authentication.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// TLS, when set, makes the manager use TLS, and the peer too when it
	// replicates (for Redis: tls-replication, with the instances' own tls-*
	// settings). Default: plain TCP.
	TLS *TLSConfig `json:"tls,omitempty"`
}

// PeerAddr returns the address the peer replicates from: ReplicationAddr,
// or Addr when that is empty.
func (i Instance) PeerAddr() string {
	if i.ReplicationAddr != "" {
		return i.ReplicationAddr
	}
	return i.Addr
}

// TLSConfig holds the files and names for a TLS connection to an instance.
type TLSConfig struct {
	// CAFile holds PEM certificates that verify the instance. Default: the
	// host's roots.
	CAFile string `json:"ca_file,omitempty"`
	// CertFile and KeyFile hold a PEM client certificate and its key, for
	// instances that require one. Set both or neither.
	CertFile string `json:"cert_file,omitempty"`
	KeyFile  string `json:"key_file,omitempty"`
	// ServerName is the name verified in the instance's certificate.
	// Default: the host of Addr.
	ServerName string `json:"server_name,omitempty"`
	// InsecureSkipVerify accepts any certificate. Only for tests.
	InsecureSkipVerify bool `json:"insecure_skip_verify,omitempty"`
}

// ClientTLS returns the TLS configuration for connections to the instance,
// with its files loaded, or nil when the instance does not use TLS.
func (i Instance) ClientTLS() (*tls.Config, error) {
	t := i.TLS
	if t == nil {
		return nil, nil
	}
	c := &tls.Config{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
	if c.ServerName == "" {
		c.ServerName, _, _ = net.SplitHostPort(i.Addr)
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("dr: TLS CA file: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("dr: TLS CA file %s holds no PEM certificate", t.CAFile)
		}
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("dr: TLS client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// Duration is a time.Duration written in JSON as a Go duration string ("1.5s"); a bare
// number is refused. It is the one Duration of every shuanghuo package (internal/jsontime);
// Or(def) gives the default for zero.
type Duration = jsontime.Duration
