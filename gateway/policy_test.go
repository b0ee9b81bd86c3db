package gateway

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
)

func mustPolicy(t *testing.T, allow, deny []string) *policyRT {
	t.Helper()
	p := &policyRT{name: "p"}
	for _, s := range allow {
		pf, err := parsePrefix(s)
		if err != nil {
			t.Fatal(err)
		}
		p.allow = append(p.allow, pf)
	}
	for _, s := range deny {
		pf, err := parsePrefix(s)
		if err != nil {
			t.Fatal(err)
		}
		p.deny = append(p.deny, pf)
	}
	return p
}

func TestIPLists(t *testing.T) {
	p := mustPolicy(t,
		[]string{"10.0.0.0/8", "192.168.1.7", "2001:db8::/32", "fe80::1"},
		[]string{"10.9.0.0/16", "2001:db8:bad::/48"})
	for _, tc := range []struct {
		ip   string
		want bool
	}{
		{"10.1.2.3", true}, {"10.9.1.1", false}, {"11.0.0.1", false},
		{"192.168.1.7", true}, {"192.168.1.8", false},
		{"2001:db8::1", true}, {"2001:db8:bad::1", false}, {"2001:db9::1", false},
		{"fe80::1", true}, {"fe80::2", false},
		{"::ffff:10.1.2.3", true}, // IPv4-mapped, as a dual-stack socket reports it
	} {
		ip := netip.MustParseAddr(tc.ip).Unmap()
		if got := p.admits(ip); got != tc.want {
			t.Errorf("admits(%s) = %v, want %v", tc.ip, got, tc.want)
		}
	}
	denyOnly := mustPolicy(t, nil, []string{"::1/128", "127.0.0.0/8"})
	if denyOnly.admits(netip.MustParseAddr("127.0.0.1")) || denyOnly.admits(netip.MustParseAddr("::1")) || !denyOnly.admits(netip.MustParseAddr("10.0.0.1")) {
		t.Error("deny-only list")
	}
	var none *policyRT
	if !none.admits(netip.MustParseAddr("1.2.3.4")) {
		t.Error("nil policy must admit")
	}
	for _, bad := range []string{"10.0.0.0/33", "300.1.1.1", "fe80::/129", "host"} {
		if _, err := parsePrefix(bad); err == nil {
			t.Errorf("parsePrefix(%q) accepted", bad)
		}
	}
}

// TestRateLimitAccuracy: concurrent callers against 200/s get within 5%
// of burst + rate × elapsed.
func TestRateLimitAccuracy(t *testing.T) {
	g, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Policies: []Policy{{Name: "global", RateLimit: &RateLimit{Rate: 200, Burst: 10}}}}
	if _, err := g.Apply(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	p := g.snap.Load().global
	var ok atomic.Int64
	start := time.Now()
	const run = 1500 * time.Millisecond
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < run {
				if g.limit(p) == nil {
					ok.Add(1)
				}
				time.Sleep(100 * time.Microsecond)
			}
		}()
	}
	wg.Wait()
	want := 10 + 200*time.Since(start).Seconds()
	if got := float64(ok.Load()); got < want*0.95 || got > want*1.05 {
		t.Fatalf("allowed %v, want %v ± 5%%", got, want)
	}
}

// TestRateLimitGivesBack: a request refused by one limit does not use up
// the others; buckets survive a reload with the same settings.
func TestRateLimitGivesBack(t *testing.T) {
	g, _ := New(Options{})
	cfg := Config{
		Consumers: []Consumer{{ID: "c", Name: "c", Kind: KindBank, Enabled: true, AppKey: "key-c-0000", Secrets: []string{"0123456789abcdef"}}},
		APIs:      []API{{Name: "a", Path: "/a", Upstream: Upstream{Group: "g"}}},
		Policies: []Policy{
			{Name: "api", API: "a", RateLimit: &RateLimit{Rate: 0.001, Burst: 3}},
			{Name: "consumer", Consumer: "c", RateLimit: &RateLimit{Rate: 0.001, Burst: 1}},
		},
	}
	if _, err := g.Apply(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	s := g.snap.Load()
	api, consumer := s.apis["a"].policy, s.consumers["c"].policy
	if ref := g.limit(api, consumer); ref != nil {
		t.Fatal(ref.msg)
	}
	for i := 0; i < 5; i++ {
		if ref := g.limit(api, consumer); ref == nil || ref.code != CodeRateLimited || ref.retryAfter <= 0 {
			t.Fatalf("not limited: %+v", ref)
		}
	}
	// The API bucket still has its other 2 tokens, across a reload.
	if _, err := g.Apply(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	api = g.snap.Load().apis["a"].policy
	for i := 0; i < 2; i++ {
		if ref := g.limit(api); ref != nil {
			t.Fatalf("API bucket used up by refused requests (%d)", i)
		}
	}
	if ref := g.limit(api); ref == nil {
		t.Fatal("API bucket refilled by the reload")
	}
}

func TestBreakerRatio(t *testing.T) {
	g, _ := New(Options{})
	b := g.breaker(API{Name: "x", Breaker: &Breaker{ConsecutiveFailures: 1000, FailureRatio: 0.5, MinRequests: 10,
		OpenTimeout: Duration(50 * time.Millisecond), HalfOpenRequests: 2}}, "h:1")
	fail := errors.New("x")
	for i := 0; i < 9; i++ { // alternate: ratio 0.5 but fewer than 10 requests
		done, err := b.cb.Allow()
		if err != nil {
			t.Fatalf("open after %d", i)
		}
		if i%2 == 0 {
			done(fail)
		} else {
			done(nil)
		}
	}
	done, _ := b.cb.Allow()
	done(fail) // the 10th request: 6 of 10 failed
	if b.cb.State() != gobreaker.StateOpen {
		t.Fatalf("state %v", b.cb.State())
	}
	if _, err := b.cb.Allow(); err == nil {
		t.Fatal("open breaker allowed a request")
	}
	time.Sleep(60 * time.Millisecond)
	d1, err1 := b.cb.Allow()
	d2, err2 := b.cb.Allow()
	if _, err3 := b.cb.Allow(); err1 != nil || err2 != nil || err3 == nil {
		t.Fatalf("half-open probes: %v %v %v", err1, err2, err3)
	}
	d1(nil)
	d2(nil)
	if b.cb.State() != gobreaker.StateClosed {
		t.Fatalf("state after probes %v", b.cb.State())
	}
	// Same settings on reload: the same breaker; changed: a new one.
	g.breakers["x"] = b
	if g.breaker(API{Name: "x", Breaker: &Breaker{ConsecutiveFailures: 1000, FailureRatio: 0.5, MinRequests: 10,
		OpenTimeout: Duration(50 * time.Millisecond), HalfOpenRequests: 2}}, "h:1") != b {
		t.Fatal("breaker not kept")
	}
	if g.breaker(API{Name: "x"}, "h:2") == b {
		t.Fatal("breaker kept across an upstream change")
	}
}

func TestMemoryNonceStore(t *testing.T) {
	s := NewMemoryNonceStore()
	now := time.Unix(1000, 0)
	s.now = func() time.Time { return now }
	ctx := context.Background()
	if ok, _ := s.Remember(ctx, "k", time.Minute); !ok {
		t.Fatal("first")
	}
	if ok, _ := s.Remember(ctx, "k", time.Minute); ok {
		t.Fatal("replay accepted")
	}
	now = now.Add(61 * time.Second)
	if ok, _ := s.Remember(ctx, "k", time.Minute); !ok {
		t.Fatal("expired key still remembered")
	}
	for i := 0; i < 1000; i++ {
		s.Remember(ctx, string(rune('a'+i%26))+time.Duration(i).String(), time.Second)
	}
	now = now.Add(time.Hour)
	for i := 0; i < 1000; i++ { // every shard sweeps its expired keys on an insert
		s.Remember(ctx, "new-"+time.Duration(i).String(), time.Second)
	}
	if n := s.Len(); n != 1000 {
		t.Fatalf("%d keys left", n)
	}
}

func TestCodesHaveStatuses(t *testing.T) {
	seen := map[Code]bool{}
	for _, c := range Codes {
		if seen[c] || c.Status() < 400 {
			t.Errorf("code %s: status %d", c, c.Status())
		}
		seen[c] = true
	}
	want := map[Code]int{CodeSignatureInvalid: 401, CodeTimestampExpired: 401, CodeNonceReplayed: 401, CodeIPDenied: 403,
		CodeNotAuthorized: 403, CodeRateLimited: 429, CodeCircuitOpen: 503, CodeNoSuchAPI: 404, CodeUpstreamTimeout: 504}
	for c, st := range want {
		if c.Status() != st {
			t.Errorf("%s: %d, want %d", c, c.Status(), st)
		}
	}
}

func TestMemoryNonceStoreExpiryQueue(t *testing.T) {
	s := NewMemoryNonceStore()
	now := time.Unix(1000, 0)
	s.now = func() time.Time { return now }
	ctx := context.Background()
	remember := func(key string, ttl time.Duration) bool {
		t.Helper()
		ok, err := s.Remember(ctx, key, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	// A key remembered again after it expired stays remembered when its
	// first entry leaves the queue.
	remember("again", time.Second)
	now = now.Add(2 * time.Second)
	if !remember("again", time.Minute) {
		t.Fatal("expired key not taken again")
	}
	for i := 0; i < 2000; i++ { // every shard drops its expired entries
		remember(fmt.Sprint("filler-", i), time.Millisecond)
	}
	if remember("again", time.Minute) {
		t.Fatal("key forgotten when its expired entry left the queue")
	}
	// A shorter TTL behind a longer one expires on time all the same.
	remember("long", time.Hour)
	remember("short", time.Second)
	now = now.Add(2 * time.Second)
	if !remember("short", time.Second) || remember("long", time.Hour) {
		t.Fatal("TTLs out of order")
	}
	// Many keys that expire leave neither the map nor the queues growing.
	for i := 0; i < 100000; i++ {
		remember(fmt.Sprint("k-", i), time.Second)
		if i%1000 == 999 {
			now = now.Add(2 * time.Second)
		}
	}
	queued := 0
	for i := range s.shards {
		queued += len(s.shards[i].queue) - s.shards[i].head
	}
	if n := s.Len(); n > 5000 || queued > 5000+64 {
		t.Fatalf("%d keys and %d queue entries kept", n, queued)
	}
}

// TestAuthorizationFastPaths: the in-place parser agrees with the strict
// rules on the cases its shortcuts take (digits-only timestamps, hex
// decoding) and on those they leave to the general path.
func TestAuthorizationFastPaths(t *testing.T) {
	sig := strings.Repeat("0123456789abcdef", 4)
	base := "SH-HMAC-SHA256 AppKey=abcdefgh, Nonce=abcdefgh, SignedHeaders=host, Signature="
	for _, tc := range []struct {
		ts, sig string
		ok      bool
		want    int64
	}{
		{"1767225600", sig, true, 1767225600},
		{"000000000001", sig, true, 1},
		{"0", sig, true, 0},
		{"-0", sig, true, 0}, // what strconv.ParseInt has always let through
		{"+1", sig, false, 0},
		{"-1", sig, false, 0},
		{"1234567890123", sig, false, 0},
		{"12a", sig, false, 0},
		{"", sig, false, 0},
		{"1", strings.ToUpper(sig), false, 0},
		{"1", sig[:63] + "g", false, 0},
		{"1", sig[:62], false, 0},
	} {
		var p authParts
		err := p.parse(base + tc.sig + ", Timestamp=" + tc.ts)
		if (err == nil) != tc.ok || err != nil && !errors.Is(err, ErrBadAuthorization) {
			t.Errorf("Timestamp=%q Signature=%q: %v", tc.ts, tc.sig, err)
			continue
		}
		if tc.ok && (p.timestamp != tc.want || hex.EncodeToString(p.sig[:]) != tc.sig || p.signedHeaders != "host") {
			t.Errorf("Timestamp=%q: got %d %x %q", tc.ts, p.timestamp, p.sig, p.signedHeaders)
		}
	}
}
