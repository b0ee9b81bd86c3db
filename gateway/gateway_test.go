package gateway_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shuanghuo/shuanghuo/gateway"
)

// TestEndToEnd drives the gateway through a real balancer to real
// upstreams: a hospital signs with the shipped signer and settles an
// outpatient visit; every refusal comes back with its code.
func TestEndToEnd(t *testing.T) {
	r := newRig(t, gateway.Options{})
	h1 := r.client("h1")

	t.Run("hospital settles", func(t *testing.T) {
		a := r.do(h1, "POST", "/api/outpatient/settle?psn_no=1001&insuplc=320100", `{"amount":"35.50"}`)
		if a.status != 200 || a.echo["upstream"] != "outpatient" || a.echo["body"] != `{"amount":"35.50"}` ||
			a.echo["consumer"] != "h1" || a.echo["kind"] != "hospital" || a.echo["org"] != "Hh1" || a.echo["request_id"] == "" {
			t.Fatalf("got %d %s", a.status, a.body)
		}
	})
	t.Run("pharmacy through a URL upstream with a prefix path", func(t *testing.T) {
		a := r.do(r.client("p1"), "POST", "/api/pharmacy/buy/42", `{}`)
		if a.status != 200 || a.echo["upstream"] != "pharmacy" || a.echo["path"] != "/api/pharmacy/buy/42" || a.echo["consumer"] != "p1" {
			t.Fatalf("got %d %s", a.status, a.body)
		}
	})
	t.Run("public API needs no signature, and a spoofed consumer is removed", func(t *testing.T) {
		req, _ := http.NewRequest("GET", r.base+"/api/ping", nil)
		req.Header.Set("X-Consumer-Id", "h1")
		req.Header.Set("X-Request-Id", "client-req-1")
		a := r.send(http.DefaultClient, req)
		if a.status != 200 || a.echo["consumer"] != "" || a.echo["request_id"] != "client-req-1" {
			t.Fatalf("got %d %s", a.status, a.body)
		}
	})
	t.Run("no signature", func(t *testing.T) {
		a := r.do(http.DefaultClient, "POST", "/api/outpatient/settle", `{}`)
		expectCode(t, a, gateway.CodeSignatureInvalid)
	})
	t.Run("unknown app key", func(t *testing.T) {
		c := &http.Client{Transport: (&gateway.Signer{AppKey: "key-nobody-0", Secret: secrets["h1"]}).Transport(nil)}
		expectCode(t, r.do(c, "POST", "/api/outpatient/settle", `{}`), gateway.CodeSignatureInvalid)
	})
	t.Run("wrong secret", func(t *testing.T) {
		c := &http.Client{Transport: (&gateway.Signer{AppKey: appKey("h1"), Secret: secrets["h2"]}).Transport(nil)}
		expectCode(t, r.do(c, "POST", "/api/outpatient/settle", `{}`), gateway.CodeSignatureInvalid)
	})
	t.Run("tampered body, path and query", func(t *testing.T) {
		s := &gateway.Signer{AppKey: appKey("h1"), Secret: secrets["h1"]}
		for _, tamper := range []func(*http.Request){
			func(req *http.Request) { req.Body = readCloser(`{"amount":"9"}`) },
			func(req *http.Request) { req.URL.RawQuery = "psn_no=1002" },
			func(req *http.Request) { req.Header.Set("Content-Type", "text/plain") },
		} {
			req, _ := http.NewRequest("POST", r.base+"/api/outpatient/settle?psn_no=1001", strings.NewReader(`{"amount":"1"}`))
			req.Header.Set("Content-Type", "application/json")
			if err := s.Sign(req); err != nil {
				t.Fatal(err)
			}
			tamper(req)
			expectCode(t, r.send(http.DefaultClient, req), gateway.CodeSignatureInvalid)
		}
	})
	t.Run("replayed nonce", func(t *testing.T) {
		s := &gateway.Signer{AppKey: appKey("h1"), Secret: secrets["h1"]}
		req, _ := http.NewRequest("POST", r.base+"/api/outpatient/settle", strings.NewReader(`{}`))
		if err := s.Sign(req); err != nil {
			t.Fatal(err)
		}
		replay := req.Clone(context.Background())
		replay.Body, _ = req.GetBody()
		if a := r.send(http.DefaultClient, req); a.status != 200 {
			t.Fatalf("first: %d %s", a.status, a.body)
		}
		expectCode(t, r.send(http.DefaultClient, replay), gateway.CodeNonceReplayed)
	})
	t.Run("skewed clock", func(t *testing.T) {
		for _, off := range []time.Duration{-6 * time.Minute, 6 * time.Minute} {
			c := &http.Client{Transport: (&gateway.Signer{AppKey: appKey("h1"), Secret: secrets["h1"],
				Now: func() time.Time { return time.Now().Add(off) }}).Transport(nil)}
			expectCode(t, r.do(c, "POST", "/api/outpatient/settle", `{}`), gateway.CodeTimestampExpired)
		}
	})
	t.Run("denied IP", func(t *testing.T) {
		expectCode(t, r.do(r.client("h3"), "POST", "/api/outpatient/settle", `{}`), gateway.CodeIPDenied)
	})
	t.Run("ungranted API and disabled consumer", func(t *testing.T) {
		expectCode(t, r.do(r.client("p1"), "POST", "/api/outpatient/settle", `{}`), gateway.CodeNotAuthorized)
		expectCode(t, r.do(r.client("d1"), "POST", "/api/outpatient/settle", `{}`), gateway.CodeNotAuthorized)
	})
	t.Run("no such API", func(t *testing.T) {
		expectCode(t, r.do(h1, "POST", "/api/nothing", `{}`), gateway.CodeNoSuchAPI)
		expectCode(t, r.do(h1, "GET", "/api/outpatient/settle", ``), gateway.CodeNoSuchAPI) // wrong method
	})
	t.Run("body too large", func(t *testing.T) {
		expectCode(t, r.do(h1, "POST", "/api/outpatient/settle", strings.Repeat("x", 2<<20)), gateway.CodeBodyTooLarge)
	})
	t.Run("flood beyond the rate limit", func(t *testing.T) {
		h2 := r.client("h2")
		var ok, limited int
		for i := 0; i < 20; i++ {
			a := r.do(h2, "POST", "/api/outpatient/settle", `{}`)
			switch {
			case a.status == 200:
				ok++
			case a.err.Code == gateway.CodeRateLimited:
				limited++
				if a.header.Get("Retry-After") == "" {
					t.Fatal("no Retry-After")
				}
			default:
				t.Fatalf("got %d %s", a.status, a.body)
			}
		}
		// Burst 5 and 5/s: a quick flood gets 5, or 6 if a token refilled.
		if ok < 5 || ok > 6 || ok+limited != 20 {
			t.Fatalf("ok %d limited %d", ok, limited)
		}
		// h1 is not limited on the same API.
		if a := r.do(h1, "POST", "/api/outpatient/settle", `{}`); a.status != 200 {
			t.Fatalf("h1 got %d", a.status)
		}
	})
	t.Run("upstream timeout", func(t *testing.T) {
		start := time.Now()
		expectCode(t, r.do(h1, "POST", "/api/slow", `{}`), gateway.CodeUpstreamTimeout)
		if d := time.Since(start); d > 350*time.Millisecond {
			t.Fatalf("took %s", d)
		}
	})
	t.Run("failing upstream trips the circuit, which recovers", func(t *testing.T) {
		r.flaky.Store(true)
		for i := 0; i < 3; i++ {
			if a := r.do(h1, "POST", "/api/flaky", `{}`); a.status != 500 {
				t.Fatalf("failure %d: got %d", i, a.status)
			}
		}
		start := time.Now()
		expectCode(t, r.do(h1, "POST", "/api/flaky", `{}`), gateway.CodeCircuitOpen)
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Fatalf("open circuit took %s to answer", d)
		}
		if v := r.metric("shuanghuo_gateway_circuit_open", "api", "flaky"); v != 1 {
			t.Fatalf("circuit gauge %v", v)
		}
		// Half-open: one probe that fails opens it again.
		time.Sleep(350 * time.Millisecond)
		if a := r.do(h1, "POST", "/api/flaky", `{}`); a.status != 500 {
			t.Fatalf("probe got %d", a.status)
		}
		expectCode(t, r.do(h1, "POST", "/api/flaky", `{}`), gateway.CodeCircuitOpen)
		// Recovery: the next probe succeeds and closes the circuit.
		r.flaky.Store(false)
		time.Sleep(350 * time.Millisecond)
		for i := 0; i < 5; i++ {
			if a := r.do(h1, "POST", "/api/flaky", `{}`); a.status != 200 {
				t.Fatalf("after recovery %d: got %d %s", i, a.status, a.body)
			}
		}
	})
	t.Run("statistics count every call with its code", func(t *testing.T) {
		var row gateway.StatsRow
		waitFor(t, 2*time.Second, "11 calls counted", func() bool {
			rows, err := r.gw.Stats(gateway.StatsQuery{Granularity: gateway.Total, API: "flaky", Consumer: "h1"})
			if err != nil || len(rows) != 1 {
				t.Fatalf("%v %+v", err, rows)
			}
			row = rows[0]
			return row.Calls >= 11
		})
		if row.Calls != 11 || row.Successes != 5 || row.Errors["http_5xx"] != 4 || row.Errors["circuit_open"] != 2 {
			t.Fatalf("flaky stats %+v", row)
		}
	})
}

func readCloser(s string) *nopCloser { return &nopCloser{strings.NewReader(s)} }

type nopCloser struct{ *strings.Reader }

func (nopCloser) Close() error { return nil }

// TestRotation: a consumer with two secrets is accepted with either; once
// the old one is removed, only the new one works.
func TestRotation(t *testing.T) {
	r := newRig(t, gateway.Options{})
	cfg := r.cfg
	cfg.Consumers = append([]gateway.Consumer(nil), cfg.Consumers...)
	newSecret := gateway.GenerateSecret()
	cfg.Consumers[0].Secrets = []string{secrets["h1"], newSecret}
	r.apply(cfg)
	old := r.client("h1")
	fresh := &http.Client{Transport: (&gateway.Signer{AppKey: appKey("h1"), Secret: newSecret}).Transport(nil)}
	for _, c := range []*http.Client{old, fresh} {
		if a := r.do(c, "POST", "/api/outpatient/settle", `{}`); a.status != 200 {
			t.Fatalf("got %d %s", a.status, a.body)
		}
	}
	cfg.Consumers[0].Secrets = []string{newSecret}
	r.apply(cfg)
	expectCode(t, r.do(old, "POST", "/api/outpatient/settle", `{}`), gateway.CodeSignatureInvalid)
	if a := r.do(fresh, "POST", "/api/outpatient/settle", `{}`); a.status != 200 {
		t.Fatalf("got %d %s", a.status, a.body)
	}
}

// TestTimestampWindow checks the edges of the ±5 min window against the
// gateway's clock.
func TestTimestampWindow(t *testing.T) {
	r := newRig(t, gateway.Options{})
	base := time.Now()
	r.skew.Store(0)
	for _, tc := range []struct {
		off  time.Duration
		code gateway.Code
	}{
		{-5*time.Minute + 2*time.Second, ""}, {5*time.Minute - 2*time.Second, ""},
		{-5*time.Minute - 2*time.Second, gateway.CodeTimestampExpired}, {5*time.Minute + 2*time.Second, gateway.CodeTimestampExpired},
	} {
		s := &gateway.Signer{AppKey: appKey("h1"), Secret: secrets["h1"], Now: func() time.Time { return base.Add(tc.off) }}
		a := r.do(&http.Client{Transport: s.Transport(nil)}, "POST", "/api/outpatient/settle", `{}`)
		if tc.code == "" {
			if a.status != 200 {
				t.Fatalf("offset %s: got %d %s", tc.off, a.status, a.body)
			}
			continue
		}
		expectCode(t, a, tc.code)
	}
}

// TestStatsExact: N concurrent calls from several consumers are counted
// exactly, per API × consumer, per minute and per day, and in metrics.
func TestStatsExact(t *testing.T) {
	r := newRig(t, gateway.Options{})
	const perConsumer = 150
	consumers := []string{"h1", "h2", "p1"}
	cfg := r.cfg
	cfg.Policies = cfg.Policies[:1] // no rate limit
	r.apply(cfg)
	var wg sync.WaitGroup
	var failures atomic.Int64
	for _, id := range consumers {
		c := r.client(id)
		path := "/api/outpatient/settle"
		if id == "p1" {
			path = "/api/pharmacy/buy"
		}
		for w := 0; w < 3; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < perConsumer/3; i++ {
					req, _ := http.NewRequest("POST", r.base+path, strings.NewReader(`{}`))
					resp, err := c.Do(req)
					if err != nil || resp.StatusCode != 200 {
						failures.Add(1)
					}
					if resp != nil {
						resp.Body.Close()
					}
				}
			}()
		}
	}
	wg.Wait()
	if failures.Load() != 0 {
		t.Fatalf("%d failures", failures.Load())
	}
	// A request is counted right after its answer is written: wait for the last ones.
	waitFor(t, 2*time.Second, "every call counted", func() bool {
		rows, _ := r.gw.Stats(gateway.StatsQuery{Granularity: gateway.Total})
		var n uint64
		for _, row := range rows {
			n += row.Calls
		}
		return n >= 3*perConsumer
	})
	for _, gran := range []gateway.Granularity{gateway.Total, gateway.Day, gateway.Minute} {
		rows, err := r.gw.Stats(gateway.StatsQuery{Granularity: gran, From: time.Now().Add(-25 * time.Hour), To: time.Now().Add(time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]uint64{}
		for _, row := range rows {
			if row.Successes != row.Calls {
				t.Fatalf("%s: row %+v", gran, row)
			}
			var hist uint64
			for _, c := range row.Latency.Counts {
				hist += c
			}
			if hist != row.Calls {
				t.Fatalf("%s: histogram holds %d of %d", gran, hist, row.Calls)
			}
			got[row.API+"/"+row.Consumer] += row.Calls
		}
		want := map[string]uint64{"门诊结算/h1": perConsumer, "门诊结算/h2": perConsumer, "药店购药/p1": perConsumer}
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("%s: %s = %d, want %d (all %v)", gran, k, got[k], v, got)
			}
		}
	}
	top, _ := r.gw.Stats(gateway.StatsQuery{Granularity: gateway.Total, GroupBy: "api"})
	if len(top) != 2 || top[0].API != "门诊结算" || top[0].Calls != 2*perConsumer {
		t.Fatalf("per API %+v", top)
	}
	if v := r.metric("shuanghuo_gateway_requests_total", "api", "门诊结算", "code", "ok"); v != 2*perConsumer {
		t.Fatalf("metric %v", v)
	}
}

// TestStatsCountTheCurrentMinute: a call made in the first second of a
// minute is counted by a query made in that same second.
func TestStatsCountTheCurrentMinute(t *testing.T) {
	now := time.Now().Truncate(time.Minute).Add(300 * time.Millisecond)
	r := newRig(t, gateway.Options{Now: func() time.Time { return now }})
	cfg := r.cfg
	cfg.Policies = cfg.Policies[:1] // no rate limit
	r.apply(cfg)
	resp, err := r.client("h1").Post(r.base+"/api/outpatient/settle", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("call: %d", resp.StatusCode)
	}
	waitFor(t, 2*time.Second, "the call counted in its minute", func() bool {
		rows, _ := r.gw.Stats(gateway.StatsQuery{Granularity: gateway.Minute})
		return len(rows) == 1 && rows[0].Calls == 1 && rows[0].Time.Equal(now.Truncate(time.Minute))
	})
}

// TestReloadUnderLoad pushes configs while clients call: no request is
// lost or refused.
func TestReloadUnderLoad(t *testing.T) {
	r := newRig(t, gateway.Options{})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var calls, bad atomic.Int64
	for _, id := range []string{"h1", "h2", "p1"} {
		c := r.client(id)
		path := "/api/outpatient/settle"
		if id == "p1" {
			path = "/api/pharmacy/buy"
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("POST", r.base+path, strings.NewReader(`{}`))
				resp, err := c.Do(req)
				calls.Add(1)
				if err != nil || resp.StatusCode != 200 {
					bad.Add(1)
				}
				if resp != nil {
					resp.Body.Close()
				}
			}
		}()
	}
	cfg := r.cfg
	cfg.Policies = cfg.Policies[:1]
	for i := 0; i < 30; i++ {
		c := cfg
		c.APIs = append([]gateway.API(nil), cfg.APIs...)
		c.APIs[0].Timeout = gateway.Duration(time.Duration(10+i) * time.Second)
		if i%2 == 0 {
			c.Grants = append(append([]gateway.Grant(nil), cfg.Grants...), gateway.Grant{Consumer: "h3", API: "ping"})
		}
		r.apply(c)
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if bad.Load() != 0 || calls.Load() < 30 {
		t.Fatalf("%d of %d calls failed", bad.Load(), calls.Load())
	}
	if _, v := r.gw.Config(); v != 31 {
		t.Fatalf("version %d", v)
	}
}

func TestValidation(t *testing.T) {
	gw, err := gateway.New(gateway.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := gateway.Config{
		Consumers: []gateway.Consumer{
			{ID: "h1", Name: "A", Kind: "clinic", AppKey: "key-h1-000", Secrets: []string{"short"}},
			{ID: "h1", Name: "B", Kind: gateway.KindBank, AppKey: "key-h1-000", Secrets: []string{"0123456789abcdef", "0123456789abcdef"}},
		},
		APIs: []gateway.API{
			{Name: "x", Path: "nopath", Upstream: gateway.Upstream{}},
			{Name: "y", Path: "/y", Upstream: gateway.Upstream{URL: "https://h:1/p"}},
			{Name: "z", Path: "/z", Upstream: gateway.Upstream{Group: "g", URL: "http://h:1"}},
		},
		Grants:   []gateway.Grant{{Consumer: "nobody", API: "none"}},
		Policies: []gateway.Policy{{Name: "p", Allow: []string{"10.0.0.0/33", "fe80::1", "bad"}, RateLimit: &gateway.RateLimit{Rate: 0}}},
	}
	_, err = gw.Apply(context.Background(), cfg)
	var ve *gateway.ValidationError
	if !errors.As(err, &ve) || !errors.Is(err, gateway.ErrInvalidConfig) {
		t.Fatalf("got %v", err)
	}
	fields := ve.Fields()
	for _, f := range []string{
		"consumers[0].kind", "consumers[0].secrets[0]", "consumers[1].id", "consumers[1].app_key", "consumers[1].secrets",
		"apis[0].path", "apis[0].upstream", "apis[1].upstream.url", "apis[2].upstream",
		"grants[0].consumer", "grants[0].api", "policies[0].allow[0]", "policies[0].allow[2]", "policies[0].rate_limit.rate",
	} {
		if fields[f] == "" {
			t.Errorf("no error for %s; got %v", f, fields)
		}
	}
	if fields["policies[0].allow[1]"] != "" {
		t.Errorf("an IPv6 address was refused: %v", fields)
	}
	if _, v := gw.Config(); v != 0 {
		t.Fatal("a rejected config was applied")
	}
}
