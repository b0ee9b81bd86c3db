//go:build integration

package redisgw_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/shuanghuo/shuanghuo/gateway"
	"github.com/shuanghuo/shuanghuo/gateway/redisgw"
	"github.com/shuanghuo/shuanghuo/internal/mwtest"
	"github.com/shuanghuo/shuanghuo/lb"
)

var shared *mwtest.Service

func TestMain(m *testing.M) {
	os.Exit(mwtest.Main(m, mwtest.Config{}, func(ctx context.Context, r *mwtest.Rig) error {
		var err error
		shared, err = r.StartRedis(ctx, mwtest.CenterA, mwtest.RedisOptions{})
		return err
	}))
}

// client returns a Redis client of the shared instance and a key prefix
// of the test's own.
func client(t *testing.T) (*redis.Client, string) {
	mwtest.Require(t)
	rdb := redis.NewClient(&redis.Options{Addr: shared.HostAddr})
	t.Cleanup(func() { rdb.Close() })
	return rdb, t.Name() + ":"
}

func TestNonceStore(t *testing.T) {
	rdb, prefix := client(t)
	s := redisgw.NewNonceStore(rdb, prefix)
	ctx := context.Background()
	if ok, err := s.Remember(ctx, "k1", 300*time.Millisecond); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if ok, err := s.Remember(ctx, "k1", 300*time.Millisecond); ok || err != nil {
		t.Fatal("replay accepted", err)
	}
	time.Sleep(400 * time.Millisecond)
	if ok, err := s.Remember(ctx, "k1", time.Second); !ok || err != nil {
		t.Fatal("expired nonce still remembered", err)
	}
}

func TestRateCounter(t *testing.T) {
	rdb, prefix := client(t)
	c := redisgw.NewRateCounter(rdb, prefix)
	ctx := context.Background()
	l := gateway.RateLimit{Rate: 2, Burst: 3}
	for i := 0; i < 3; i++ {
		if ok, _, err := c.Allow(ctx, "k", l); !ok || err != nil {
			t.Fatalf("burst request %d refused: %v", i, err)
		}
	}
	ok, after, err := c.Allow(ctx, "k", l)
	if ok || err != nil || after <= 0 || after > 500*time.Millisecond {
		t.Fatalf("after the burst: ok %v after %v err %v", ok, after, err)
	}
	time.Sleep(after + 10*time.Millisecond)
	if ok, _, err := c.Allow(ctx, "k", l); !ok || err != nil {
		t.Fatal("not refilled", err)
	}
}

// instance is one gateway in its own balancer.
type instance struct {
	gw   *gateway.Gateway
	base string
}

const secret = "h1-secret-0123456789abcdef"

func newInstance(t *testing.T, rdb *redis.Client, prefix, upstream string) *instance {
	gw, err := gateway.New(gateway.Options{Nonces: redisgw.NewNonceStore(rdb, prefix), RateCounter: redisgw.NewRateCounter(rdb, prefix)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = gw.Apply(context.Background(), gateway.Config{
		Consumers: []gateway.Consumer{{ID: "h1", Name: "h1", Kind: gateway.KindHospital, Enabled: true, AppKey: "key-h1-000", Secrets: []string{secret}}},
		APIs:      []gateway.API{{Name: "门诊结算", Method: "POST", Path: "/settle", Upstream: gateway.Upstream{URL: upstream}}},
		Grants:    []gateway.Grant{{Consumer: "h1", API: "门诊结算"}},
		Policies:  []gateway.Policy{{Name: "h1", Consumer: "h1", RateLimit: &gateway.RateLimit{Rate: 50, Burst: 10}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	bal, err := lb.New(lb.Options{Hook: gw})
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	_, err = bal.Apply(context.Background(), lb.BalancerConfig{Name: "gw", Address: "127.0.0.1",
		Listeners: []lb.Listener{{Name: "api", Port: port, Protocol: lb.ProtocolHTTP}},
		Groups:    []lb.ServerGroup{{Name: "unused", Servers: []lb.Server{{Address: "127.0.0.1", Port: 9, Weight: 1}}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		bal.Close(context.Background())
		gw.Close(context.Background())
	})
	return &instance{gw: gw, base: "http://127.0.0.1:" + strconv.Itoa(port)}
}

func signed(t *testing.T, base string) *http.Request {
	req, _ := http.NewRequest("POST", base+"/settle", strings.NewReader(`{}`))
	if err := (&gateway.Signer{AppKey: "key-h1-000", Secret: secret}).Sign(req); err != nil {
		t.Fatal(err)
	}
	return req
}

func send(t *testing.T, req *http.Request) (int, string) {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestTwoInstances: two gateways sharing one Redis refuse a replay seen by
// the other and share the consumer's rate limit.
func TestTwoInstances(t *testing.T) {
	rdb, prefix := client(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer up.Close()
	a := newInstance(t, rdb, prefix, up.URL)
	b := newInstance(t, rdb, prefix, up.URL)

	req := signed(t, a.base)
	replay := req.Clone(context.Background())
	replay.Body, _ = req.GetBody()
	replay.URL.Host = strings.TrimPrefix(b.base, "http://")
	replay.Host = req.URL.Host // the signed Host, as a VIP would pass it
	if st, body := send(t, req); st != 200 {
		t.Fatalf("first: %d %s", st, body)
	}
	if st, body := send(t, replay); st != 401 || !strings.Contains(body, `"nonce_replayed"`) {
		t.Fatalf("replay on the other instance: %d %s", st, body)
	}

	// Shared budget: 50/s, burst 10, over both instances for 2 s.
	time.Sleep(300 * time.Millisecond) // let the bucket refill
	var ok, limited atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for _, inst := range []*instance{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < 2*time.Second {
				st, body := send(t, signed(t, inst.base))
				switch {
				case st == 200:
					ok.Add(1)
				case st == 429 && strings.Contains(body, `"rate_limited"`):
					limited.Add(1)
				default:
					t.Errorf("got %d %s", st, body)
					return
				}
			}
		}()
	}
	wg.Wait()
	// One bucket's worth at most: two unshared buckets would allow about twice this. A
	// stall of the loaded machine longer than the burst's 200 ms loses tokens, so the
	// floor only rules out a limiter that starves.
	want := 10 + 50*time.Since(start).Seconds()
	got := float64(ok.Load())
	t.Logf("allowed %v of %v (want %.0f, at most 5%% more)", got, got+float64(limited.Load()), want)
	if got < want*0.7 || got > want*1.05 || limited.Load() == 0 {
		t.Fatalf("allowed %v, want %.0f (at most 5%% more, at least 70%%)", got, want)
	}
	// Both instances counted their own calls; together they saw every one. A call is
	// counted just after its answer goes out, so the last ones may be on their way.
	made := uint64(ok.Load()+limited.Load()) + 2
	var total uint64
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		total = 0
		for _, inst := range []*instance{a, b} {
			rows, _ := inst.gw.Stats(gateway.StatsQuery{Granularity: gateway.Total})
			for _, r := range rows {
				total += r.Calls
			}
		}
		if total >= made || time.Now().After(deadline) {
			break
		}
	}
	if total != made {
		t.Fatalf("stats count %d calls, clients made %d", total, made)
	}
}
