package gateway

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
)

// NonceStore remembers the nonces of signed requests so that a request
// cannot be replayed. The default, MemoryNonceStore, serves one gateway
// instance; gateway/redisgw.NonceStore lets several share one Redis.
// Implementations must be safe for concurrent use.
type NonceStore interface {
	// Remember records key for ttl and reports whether it was new: false
	// means the key was remembered already and has not expired.
	Remember(ctx context.Context, key string, ttl time.Duration) (fresh bool, err error)
}

// RateCounter counts requests against rate limits shared by several
// gateway instances (gateway/redisgw.RateCounter). Without one, each
// gateway limits with in-memory token buckets (golang.org/x/time/rate).
// Implementations must be safe for concurrent use.
type RateCounter interface {
	// Allow takes one request from the bucket called key, which refills at
	// l.Rate per second up to l.burst(), and reports whether the request is
	// allowed; if not, retryAfter says when one would be.
	Allow(ctx context.Context, key string, l RateLimit) (ok bool, retryAfter time.Duration, err error)
}

// MemoryNonceStore is a NonceStore in process memory: 64 shards of maps
// whose expired keys are swept as new ones arrive. Its memory is bounded
// by the request rate times the TTL.
type MemoryNonceStore struct {
	seed   maphash.Seed
	shards [64]nonceShard
	now    func() time.Time
}

type nonceShard struct {
	mu        sync.Mutex
	keys      map[string]int64 // key -> expiry, unix nanos
	lastSweep int64
}

// NewMemoryNonceStore returns an empty in-memory nonce store.
func NewMemoryNonceStore() *MemoryNonceStore {
	s := &MemoryNonceStore{seed: maphash.MakeSeed(), now: time.Now}
	for i := range s.shards {
		s.shards[i].keys = make(map[string]int64)
	}
	return s
}

// Remember implements NonceStore.
func (s *MemoryNonceStore) Remember(_ context.Context, key string, ttl time.Duration) (bool, error) {
	now := s.now().UnixNano()
	sh := &s.shards[maphash.String(s.seed, key)%uint64(len(s.shards))]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if now-sh.lastSweep > int64(time.Second) {
		sh.lastSweep = now
		for k, exp := range sh.keys {
			if exp <= now {
				delete(sh.keys, k)
			}
		}
	}
	if exp, ok := sh.keys[key]; ok && exp > now {
		return false, nil
	}
	sh.keys[key] = now + int64(ttl)
	return true, nil
}

// Len returns how many keys are remembered (expired ones not yet swept
// included).
func (s *MemoryNonceStore) Len() int {
	n := 0
	for i := range s.shards {
		s.shards[i].mu.Lock()
		n += len(s.shards[i].keys)
		s.shards[i].mu.Unlock()
	}
	return n
}

var _ NonceStore = (*MemoryNonceStore)(nil)
