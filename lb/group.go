package lb

import (
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// member is a server as one config version sees it: the server runtime
// (shared across versions) plus this version's weight and role.
type member struct {
	srv     *server
	weight  int
	standby bool
	current int // smooth weighted round robin state, guarded by group.mu
}

// group is the runtime of one server group in one config version. Its
// members' servers outlive it; its balancing state does not.
type group struct {
	name            string
	algo            Algorithm
	hashKey         HashKey
	members         []*member
	ring            []ringPoint // hash only, sorted by hash
	slowStart       time.Duration
	passiveFall     int
	passiveDownTime time.Duration
	connectTimeout  time.Duration
	responseTimeout time.Duration
	maxAttempts     int
	maxIdle         int

	mu   sync.Mutex // round robin state
	next atomic.Uint32
}

type ringPoint struct {
	hash uint64
	m    *member
}

// weightScale lets slow start give fractions of a weight in integer
// arithmetic; smooth weighted round robin gives the same sequence for
// weights scaled by a common factor.
const weightScale = 100

// pointsPerWeight is how many ring points a weight of 1 gets in a hash group.
const pointsPerWeight = 40

func buildRing(members []*member) []ringPoint {
	var ring []ringPoint
	for _, m := range members {
		for i := 0; i < m.weight*pointsPerWeight; i++ {
			ring = append(ring, ringPoint{hash: hashString(m.srv.id + "#" + strconv.Itoa(i)), m: m})
		}
	}
	sort.Slice(ring, func(i, j int) bool { return ring[i].hash < ring[j].hash })
	return ring
}

// tried is the set of servers a request has already failed on.
type tried struct {
	n    int
	srvs [10]*server
}

func (t *tried) add(s *server) {
	if t.n < len(t.srvs) {
		t.srvs[t.n] = s
		t.n++
	}
}

func (t *tried) has(s *server) bool {
	for i := 0; i < t.n; i++ {
		if t.srvs[i] == s {
			return true
		}
	}
	return false
}

// eligible says whether m may take a request: usable, not tried, and of the
// tier in service (standby servers serve only while no working server can).
func (g *group) eligible(m *member, standbyTier bool, t *tried) bool {
	return m.standby == standbyTier && m.srv.usable.Load() && !t.has(m.srv)
}

func (g *group) standbyTier(t *tried) bool {
	for _, m := range g.members {
		if !m.standby && m.srv.usable.Load() && !t.has(m.srv) {
			return false
		}
	}
	return true
}

// pick chooses a server for a request; key is the hash key (hash groups).
// It returns nil when no server may take it.
func (g *group) pick(key []byte, t *tried) *member {
	sb := g.standbyTier(t)
	switch g.algo {
	case LeastConn:
		return g.pickLeastConn(sb, t)
	case Hash:
		return g.pickHash(key, sb, t)
	}
	return g.pickRoundRobin(sb, t)
}

// pickRoundRobin is nginx's smooth weighted round robin
// (ngx_http_upstream_get_peer): every eligible member gains its weight, the
// one with the most current weight wins and loses the total.
func (g *group) pickRoundRobin(sb bool, t *tried) *member {
	var now int64
	if g.slowStart > 0 {
		now = time.Now().UnixNano()
	}
	g.mu.Lock()
	var best *member
	total := 0
	for _, m := range g.members {
		if !g.eligible(m, sb, t) {
			continue
		}
		w := g.effectiveWeight(m, now)
		m.current += w
		total += w
		if best == nil || m.current > best.current {
			best = m
		}
	}
	if best != nil {
		best.current -= total
	}
	g.mu.Unlock()
	return best
}

// effectiveWeight is the member's scaled weight, ramped during slow start.
func (g *group) effectiveWeight(m *member, now int64) int {
	w := m.weight * weightScale
	if g.slowStart <= 0 {
		return w
	}
	since := time.Duration(now - m.srv.upSince.Load())
	if since >= g.slowStart || since < 0 {
		return w
	}
	return max(1, int(int64(w)*int64(since)/int64(g.slowStart)))
}

// pickLeastConn takes the member with the fewest active requests per weight;
// ties go round robin, starting after the previous pick.
func (g *group) pickLeastConn(sb bool, t *tried) *member {
	var now int64
	if g.slowStart > 0 {
		now = time.Now().UnixNano()
	}
	n := len(g.members)
	start := int(g.next.Add(1))
	var best *member
	var bestActive int64
	var bestWeight int
	for i := 0; i < n; i++ {
		m := g.members[(start+i)%n]
		if !g.eligible(m, sb, t) {
			continue
		}
		a, w := m.srv.active.Load(), g.effectiveWeight(m, now)
		// a/w < bestActive/bestWeight without division.
		if best == nil || a*int64(bestWeight) < bestActive*int64(w) {
			best, bestActive, bestWeight = m, a, w
		}
	}
	return best
}

// pickHash walks the ring from the key's point to the first eligible member,
// so a key moves only when its server goes away.
func (g *group) pickHash(key []byte, sb bool, t *tried) *member {
	if len(g.ring) == 0 {
		return nil
	}
	h := hashBytes(key)
	i := sort.Search(len(g.ring), func(i int) bool { return g.ring[i].hash >= h })
	for j := 0; j < len(g.ring); j++ {
		m := g.ring[(i+j)%len(g.ring)].m
		if g.eligible(m, sb, t) {
			return m
		}
	}
	return nil
}

// FNV-1a, 64 bit, written out so hashing a request key does not allocate and
// gives the same ring in every process (affinity across several balancers).
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func hashBytes(b []byte) uint64 {
	h := uint64(fnvOffset)
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime
	}
	return mix(h)
}

func hashString(s string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return mix(h)
}

// mix spreads FNV's weak low bits (the splitmix64 finalizer).
func mix(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}
