package gateway

import (
	"context"
	"hash/maphash"
	"math"
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

// MemoryNonceStore is a NonceStore in process memory: 64 shards, each a map
// and a queue of keys in the order they were remembered, whose expired head
// is dropped as new keys arrive, so each request does work in proportion
// to the keys that expired, not to those kept. Its memory is bounded by the
// request rate times the TTL. A key is kept as its 128-bit keyed hash (two
// maphash seeds, random per store): no pointers for the garbage collector
// to scan, and two keys sharing a hash (a false "replayed") become likely
// only past 10^19 keys in one TTL.
type MemoryNonceStore struct {
	seeds  [2]maphash.Seed
	shards [64]nonceShard
	now    func() time.Time
}

// nonceKey is the keyed hash of a key.
type nonceKey [2]uint64

type nonceEntry struct {
	key nonceKey
	exp int64 // unix nanos
}

type nonceShard struct {
	mu   sync.Mutex
	keys map[nonceKey]int64 // -> expiry, unix nanos
	// queue holds the keys in the order they were remembered, from
	// queue[head] on. With one TTL that is the order of expiry; a key
	// remembered with a shorter TTL than those before it stays in keys
	// until they expire, though lookups see it expire on time.
	queue []nonceEntry
	head  int
	// next is queue[head].exp (math.MaxInt64 when the queue is empty),
	// kept here so that a request that expires nothing does not touch
	// the queue's cold head.
	next int64
}

// NewMemoryNonceStore returns an empty in-memory nonce store.
func NewMemoryNonceStore() *MemoryNonceStore {
	s := &MemoryNonceStore{seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}, now: time.Now}
	for i := range s.shards {
		s.shards[i].keys = make(map[nonceKey]int64)
		s.shards[i].next = math.MaxInt64
	}
	return s
}

// Remember implements NonceStore.
func (s *MemoryNonceStore) Remember(_ context.Context, key string, ttl time.Duration) (bool, error) {
	k := nonceKey{maphash.String(s.seeds[0], key), maphash.String(s.seeds[1], key)}
	return s.remember(k, ttl), nil
}

// rememberPair is Remember(ctx, a+":"+b, ttl) without building the key.
func (s *MemoryNonceStore) rememberPair(a, b string, ttl time.Duration) bool {
	var k nonceKey
	var h maphash.Hash
	for i, seed := range s.seeds {
		h.SetSeed(seed)
		h.WriteString(a)
		h.WriteByte(':')
		h.WriteString(b)
		k[i] = h.Sum64()
	}
	return s.remember(k, ttl)
}

func (s *MemoryNonceStore) remember(k nonceKey, ttl time.Duration) bool {
	now := s.now().UnixNano()
	sh := &s.shards[k[0]%uint64(len(s.shards))]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.expire(now)
	if exp, ok := sh.keys[k]; ok && exp > now {
		return false
	}
	exp := now + int64(ttl)
	sh.keys[k] = exp
	sh.queue = append(sh.queue, nonceEntry{k, exp})
	if sh.head == len(sh.queue)-1 {
		sh.next = exp
	}
	return true
}

// expire forgets the keys at the head of the queue that expired by now.
func (sh *nonceShard) expire(now int64) {
	if sh.next > now {
		return
	}
	for sh.head < len(sh.queue) && sh.queue[sh.head].exp <= now {
		e := sh.queue[sh.head]
		// The key may have been remembered again after it expired: then
		// its later entry owns it.
		if exp, ok := sh.keys[e.key]; ok && exp == e.exp {
			delete(sh.keys, e.key)
		}
		sh.head++
	}
	switch {
	case sh.head == len(sh.queue):
		sh.queue, sh.head, sh.next = sh.queue[:0], 0, math.MaxInt64
		return
	case sh.head >= 1024 && sh.head > len(sh.queue)/2:
		// Move the live half down so the queue does not grow forever;
		// each entry is moved at most once per halving.
		n := copy(sh.queue, sh.queue[sh.head:])
		sh.queue, sh.head = sh.queue[:n], 0
	}
	sh.next = sh.queue[sh.head].exp
}

// Len returns how many keys are remembered (expired ones not yet dropped
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
