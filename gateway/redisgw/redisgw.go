// Package redisgw keeps a gateway's nonces and rate-limit counters in
// Redis, so that several gateway instances behind one VIP refuse a replay
// seen by any of them and share one budget per rate limit:
//
//	rdb := redis.NewClient(&redis.Options{Addr: "10.0.1.9:6379"})
//	gw, err := gateway.New(gateway.Options{
//		Nonces:      redisgw.NewNonceStore(rdb, "gw:"),
//		RateCounter: redisgw.NewRateCounter(rdb, "gw:"),
//	})
//
// A nonce is a key SET with NX and an expiry. A rate limit is a GCRA
// (generic cell rate algorithm, the token bucket as one timestamp per key)
// run by a Lua script on Redis's clock, so instances with skewed clocks
// agree. Keys are "<prefix>nonce:<appkey>:<nonce>" and "<prefix>rate:<scope>";
// both expire on their own. Both types are safe for concurrent use.
package redisgw

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/shuanghuo/shuanghuo/gateway"
)

// NonceStore is a gateway.NonceStore in Redis.
type NonceStore struct {
	rdb    redis.UniversalClient
	prefix string
}

// NewNonceStore returns a nonce store on rdb whose keys start with prefix.
func NewNonceStore(rdb redis.UniversalClient, prefix string) *NonceStore {
	return &NonceStore{rdb: rdb, prefix: prefix}
}

// Remember implements gateway.NonceStore with SET NX PX.
func (s *NonceStore) Remember(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	ok, err := s.rdb.SetNX(ctx, s.prefix+"nonce:"+key, 1, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("redisgw: remember nonce: %w", err)
	}
	return ok, nil
}

// gcra takes one request from a bucket. KEYS[1] holds the theoretical
// arrival time (TAT) in microseconds on Redis's clock; ARGV[1] is the
// emission interval (1/rate) and ARGV[2] the burst tolerance
// (interval × (burst-1)), both in microseconds. It returns {1, 0} when
// allowed, {0, microseconds until allowed} otherwise.
var gcra = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat - tolerance
if allow_at > now then
  return {0, math.ceil(allow_at - now)}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, 0}
`)

// RateCounter is a gateway.RateCounter in Redis.
type RateCounter struct {
	rdb    redis.UniversalClient
	prefix string
}

// NewRateCounter returns a rate counter on rdb whose keys start with prefix.
func NewRateCounter(rdb redis.UniversalClient, prefix string) *RateCounter {
	return &RateCounter{rdb: rdb, prefix: prefix}
}

// Allow implements gateway.RateCounter: l.Rate per second, bursts of l.Burst
// (default: the rate rounded up, at least 1).
func (c *RateCounter) Allow(ctx context.Context, key string, l gateway.RateLimit) (bool, time.Duration, error) {
	burst := l.Burst
	if burst <= 0 {
		burst = max(int(l.Rate+0.999999), 1)
	}
	interval := 1e6 / l.Rate
	res, err := gcra.Run(ctx, c.rdb, []string{c.prefix + "rate:" + key}, interval, interval*float64(burst-1)).Int64Slice()
	if err != nil {
		return false, 0, fmt.Errorf("redisgw: rate limit %s: %w", key, err)
	}
	if len(res) != 2 {
		return false, 0, fmt.Errorf("redisgw: rate limit %s: unexpected reply %v", key, res)
	}
	return res[0] == 1, time.Duration(res[1]) * time.Microsecond, nil
}

var (
	_ gateway.NonceStore  = (*NonceStore)(nil)
	_ gateway.RateCounter = (*RateCounter)(nil)
)
