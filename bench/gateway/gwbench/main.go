// Command gwbench is bench/gateway/run's helper. It has two subcommands:
//
//	gwbench serve -mode lb|gateway -port 28110 -backend 127.0.0.1:28101
//
// runs package lb on 127.0.0.1:port in front of the backend, alone (lb) or
// with the gateway as its hook and the whole policy chain switched on: a
// signed consumer, a grant, global and per-consumer IP lists, rate limits
// with a high ceiling at global, consumer and consumer × API scope, the
// API's circuit breaker, statistics and Prometheus metrics. It prints
// "ready" and runs until SIGINT or SIGTERM; -cpuprofile FILE writes a CPU
// profile of the whole run (go tool pprof FILE).
//
//	gwbench sign -n 400000 -host 127.0.0.1:28110 -out auths.txt
//
// writes n Authorization header values, one per line, each with its own
// nonce, for the request that bench/gateway/wrk.lua sends.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shuanghuo/shuanghuo/gateway"
	"github.com/shuanghuo/shuanghuo/lb"
)

const (
	appKey = "bench-hosp-0001"
	secret = "bench-secret-0123456789abcdef"
	path   = "/api/outpatient/settle?psn_no=1001"
	body   = `{"psn_no":"1001","amount":"35.50"}`
)

func main() {
	if len(os.Args) < 2 {
		log.Fatal("usage: gwbench serve|sign [flags]")
	}
	switch os.Args[1] {
	case "serve":
		serve(os.Args[2:])
	case "sign":
		sign(os.Args[2:])
	default:
		log.Fatalf("gwbench: unknown subcommand %q", os.Args[1])
	}
}

func serve(args []string) {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	mode := fs.String("mode", "gateway", "lb or gateway")
	port := fs.Int("port", 28110, "port to listen on (127.0.0.1)")
	backend := fs.String("backend", "127.0.0.1:28101", "backend host:port")
	procs := fs.Int("procs", 0, "GOMAXPROCS (0: all cores)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file")
	fs.Parse(args)
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	if *procs > 0 {
		runtime.GOMAXPROCS(*procs)
	}
	host, bport, err := net.SplitHostPort(*backend)
	if err != nil {
		log.Fatal(err)
	}
	bp, _ := strconv.Atoi(bport)
	var hook lb.Hook
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var gw *gateway.Gateway
	if *mode == "gateway" {
		gw, err = gateway.New(gateway.Options{Name: "bench", Registerer: prometheus.NewRegistry()})
		if err != nil {
			log.Fatal(err)
		}
		ceiling := &gateway.RateLimit{Rate: 1e7, Burst: 1e6}
		_, err = gw.Apply(ctx, gateway.Config{
			Consumers: []gateway.Consumer{{ID: "h1", Name: "省人民医院", Kind: gateway.KindHospital, OrgCode: "H32010001",
				Enabled: true, AppKey: appKey, Secrets: []string{secret}}},
			APIs: []gateway.API{{Name: "门诊结算", Method: "POST", Path: "/api/outpatient/settle",
				Upstream: gateway.Upstream{Group: "be"}, Breaker: &gateway.Breaker{ConsecutiveFailures: 5}}},
			Grants: []gateway.Grant{{Consumer: "h1", API: "门诊结算"}},
			Policies: []gateway.Policy{
				{Name: "global", Deny: []string{"192.0.2.0/24", "198.51.100.0/24", "2001:db8::/32"}, RateLimit: ceiling},
				{Name: "h1", Consumer: "h1", Allow: []string{"127.0.0.0/8", "10.0.0.0/8", "::1/128"}, RateLimit: ceiling},
				{Name: "h1-settle", Consumer: "h1", API: "门诊结算", RateLimit: ceiling},
			},
		})
		if err != nil {
			log.Fatal(err)
		}
		hook = gw
	} else if *mode != "lb" {
		log.Fatalf("gwbench: mode %q: want lb or gateway", *mode)
	}
	b, err := lb.New(lb.Options{Hook: hook})
	if err != nil {
		log.Fatal(err)
	}
	_, err = b.Apply(ctx, lb.BalancerConfig{Name: "bench", Address: "127.0.0.1",
		Listeners: []lb.Listener{{Name: "web", Port: *port, Protocol: lb.ProtocolHTTP, DefaultGroup: "be"}},
		Groups:    []lb.ServerGroup{{Name: "be", Servers: []lb.Server{{Address: host, Port: bp, Weight: 1}}}}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("ready")
	<-ctx.Done()
	cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b.Close(cctx)
	if gw != nil {
		rows, _ := gw.Stats(gateway.StatsQuery{Granularity: gateway.Total, From: time.Now().Add(-time.Hour)})
		for _, r := range rows {
			fmt.Printf("stats api=%s consumer=%s calls=%d successes=%d errors=%v\n", r.API, r.Consumer, r.Calls, r.Successes, r.Errors)
		}
		gw.Close(cctx)
	}
}

func sign(args []string) {
	fs := flag.NewFlagSet("sign", flag.ExitOnError)
	n := fs.Int("n", 400000, "how many signed requests")
	host := fs.String("host", "127.0.0.1:28110", "the Host the requests are sent with")
	out := fs.String("out", "auths.txt", "output file")
	fs.Parse(args)
	f, err := os.Create(*out)
	if err != nil {
		log.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	s := &gateway.Signer{AppKey: appKey, Secret: secret}
	for i := 0; i < *n; i++ {
		req, _ := http.NewRequest("POST", "http://"+*host+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if err := s.Sign(req); err != nil {
			log.Fatal(err)
		}
		w.WriteString(req.Header.Get("Authorization"))
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		log.Fatal(err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
}
