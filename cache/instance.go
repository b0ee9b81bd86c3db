package cache

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"

	goredis "github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

// maxBurst caps how many keys a scan takes from the rate limiter at once; it
// is also the largest SCAN COUNT.
const maxBurst = 1000

// Instance reads one Redis instance: overview, key browser, slow log, big
// and hot keys. It is safe for concurrent use.
type Instance struct {
	addr    string
	rdb     *goredis.Client
	limiter *rate.Limiter
}

// New validates cfg and returns an Instance for it. It connects lazily, so
// it succeeds while the instance is down.
func New(cfg Config) (*Instance, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var tc *tls.Config
	if cfg.TLS != nil {
		var err error
		if tc, err = cfg.TLS.config(cfg.Addr); err != nil {
			return nil, fmt.Errorf("cache: %s: tls: %w: %w", cfg.Addr, ErrInvalid, err)
		}
	}
	scanRate := cfg.ScanRate
	if scanRate == 0 {
		scanRate = defaultScanRate
	}
	timeout := cfg.Timeout.Or(defaultTimeout)
	return &Instance{
		addr: cfg.Addr,
		rdb: goredis.NewClient(&goredis.Options{
			Addr:      cfg.Addr,
			Username:  cfg.Username,
			Password:  cfg.Password,
			DB:        cfg.DB,
			TLSConfig: tc,
			// RESP2: INFO, SLOWLOG and the scans read the same on every version.
			Protocol:              2,
			DialTimeout:           cfg.DialTimeout.Or(defaultDialTimeout),
			ReadTimeout:           timeout,
			WriteTimeout:          timeout,
			ContextTimeoutEnabled: true,
			// A retry doubles the load on an instance that is struggling.
			MaxRetries:      -1,
			DialerRetries:   1,
			PoolSize:        4,
			DisableIdentity: true,
		}),
		limiter: rate.NewLimiter(rate.Limit(scanRate), min(scanRate, maxBurst)),
	}, nil
}

// Addr returns the instance's address.
func (in *Instance) Addr() string { return in.addr }

// Close closes the connections.
func (in *Instance) Close() error { return in.rdb.Close() }

// fail wraps err of op with the instance's address.
func (in *Instance) fail(op string, err error) error {
	return fmt.Errorf("cache: %s %s: %w", op, in.addr, err)
}

// take waits until the scans may examine n more keys.
func take(ctx context.Context, l *rate.Limiter, n int) error {
	for n > 0 {
		k := min(n, l.Burst())
		if err := l.WaitN(ctx, k); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// Unlink deletes key without blocking the instance (UNLINK frees a big value
// in the background). It refuses on a replica, and says whether the key
// existed.
func (in *Instance) Unlink(ctx context.Context, key string) (bool, error) {
	role, err := in.role(ctx)
	if err != nil {
		return false, err
	}
	if role != RolePrimary {
		return false, in.fail("unlink", ErrReplica)
	}
	n, err := in.rdb.Unlink(ctx, key).Result()
	if err != nil {
		return false, in.fail("unlink", err)
	}
	return n > 0, nil
}

// role reads the instance's role from INFO replication.
func (in *Instance) role(ctx context.Context) (Role, error) {
	s, err := in.rdb.Info(ctx, "replication").Result()
	if err != nil {
		return "", in.fail("info", err)
	}
	r := roleOf(parseInfo(s)["role"])
	if r == "" {
		return "", in.fail("info", errors.New("INFO replication has no role"))
	}
	return r, nil
}
