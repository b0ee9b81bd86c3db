package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shuanghuo/shuanghuo/gateway"
	"github.com/shuanghuo/shuanghuo/lb"
)

// BenchmarkVerify is the server's share of a signature: parse the
// header, build the string to sign, digest a small body, one HMAC.
func BenchmarkVerify(b *testing.B) {
	body := []byte(exampleBody)
	auth := "SH-HMAC-SHA256 AppKey=hosp-0001, Timestamp=1767225600, Nonce=3f9a1c2b7d4e8f60, SignedHeaders=content-type;host, Signature=" + exampleSig
	b.ReportAllocs()
	for b.Loop() {
		a, err := gateway.ParseAuthorization(auth)
		if err != nil {
			b.Fatal(err)
		}
		c := gateway.Canonical{Method: "POST", Path: "/api/outpatient/settle", RawQuery: "psn_no=1001&insuplc=320100&fee=35.50",
			Timestamp: a.Timestamp, Nonce: a.Nonce, BodySHA256: gateway.BodySHA256(body), SignedHeaders: a.SignedHeaders,
			HeaderValues: []string{"application/json", "gw.ybj.example:8443"}}
		sts, _ := c.String()
		if gateway.Sign(exampleSecret, sts) != a.Signature {
			b.Fatal("mismatch")
		}
	}
}

// rawBackend answers every request head with a short 200.
func rawBackend(b *testing.B) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					req.Body.Close()
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// benchPath sends b.N signed keep-alive POSTs through a balancer, with the
// gateway as its hook when gw is set. The requests are signed before the
// timer starts.
func benchPath(b *testing.B, withGateway bool) {
	port := rawBackend(b)
	var hook lb.Hook
	if withGateway {
		gw, err := gateway.New(gateway.Options{})
		if err != nil {
			b.Fatal(err)
		}
		_, err = gw.Apply(context.Background(), gateway.Config{
			Consumers: []gateway.Consumer{{ID: "h1", Name: "h1", Kind: gateway.KindHospital, Enabled: true, AppKey: "hosp-0001", Secrets: []string{exampleSecret}}},
			APIs:      []gateway.API{{Name: "门诊结算", Method: "POST", Path: "/api/outpatient/settle", Upstream: gateway.Upstream{Group: "be"}}},
			Grants:    []gateway.Grant{{Consumer: "h1", API: "门诊结算"}},
			Policies: []gateway.Policy{
				{Name: "global", Deny: []string{"192.0.2.0/24", "2001:db8::/32"}, RateLimit: &gateway.RateLimit{Rate: 1e7}},
				{Name: "h1", Consumer: "h1", Allow: []string{"127.0.0.0/8", "::1/128"}, RateLimit: &gateway.RateLimit{Rate: 1e7}},
				{Name: "h1-settle", Consumer: "h1", API: "门诊结算", RateLimit: &gateway.RateLimit{Rate: 1e7}},
			},
		})
		if err != nil {
			b.Fatal(err)
		}
		hook = gw
	}
	bal, err := lb.New(lb.Options{Hook: hook})
	if err != nil {
		b.Fatal(err)
	}
	defer bal.Close(context.Background())
	lport := freePort(b)
	_, err = bal.Apply(context.Background(), lb.BalancerConfig{Name: "bench", Address: "127.0.0.1",
		Listeners: []lb.Listener{{Name: "web", Port: lport, Protocol: lb.ProtocolHTTP, DefaultGroup: "be"}},
		Groups:    []lb.ServerGroup{{Name: "be", Servers: []lb.Server{{Address: "127.0.0.1", Port: port, Weight: 1}}}}})
	if err != nil {
		b.Fatal(err)
	}
	host := "127.0.0.1:" + strconv.Itoa(lport)
	body := exampleBody
	s := &gateway.Signer{AppKey: "hosp-0001", Secret: exampleSecret}
	reqs := make([][]byte, b.N+100)
	for i := range reqs {
		req, _ := http.NewRequest("POST", "http://"+host+"/api/outpatient/settle?psn_no=1001", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		s.Sign(req)
		reqs[i] = []byte("POST /api/outpatient/settle?psn_no=1001 HTTP/1.1\r\nHost: " + host +
			"\r\nContent-Type: application/json\r\nAuthorization: " + req.Header.Get("Authorization") +
			"\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
	}
	c, err := net.Dial("tcp", host)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	buf := make([]byte, 4096)
	roundTrip := func(req []byte) {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		n := 0
		for !bytes.HasSuffix(buf[:n], []byte("hello")) {
			m, err := br.Read(buf[n:])
			if err != nil {
				b.Fatal(err)
			}
			n += m
			if n >= 12 && string(buf[9:12]) != "200" {
				b.Fatalf("got %s", buf[:n])
			}
		}
	}
	for _, req := range reqs[:100] {
		roundTrip(req)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	for i := 0; i < b.N; i++ {
		roundTrip(reqs[100+i])
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
	// The CPU time of the whole process (client, balancer, gateway,
	// backend) per request: less disturbed than req/s by other work on
	// the machine.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
}

// BenchmarkLB is the baseline: the same signed requests through lb alone.
func BenchmarkLB(b *testing.B) { benchPath(b, false) }

// BenchmarkGateway is the full policy chain: signature, nonce, IP lists,
// grant, three rate limits, breaker, statistics.
func BenchmarkGateway(b *testing.B) { benchPath(b, true) }
