// Command dnsctlbench serves a zone file with dnsctl for bench/dns/run, and
// measures how long a Switch takes to reach clients.
//
//	dnsctlbench serve -addr 127.0.0.1:5300 -origin bench.internal. -zone db.bench
//	dnsctlbench switch -n 200
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/shuanghuo/shuanghuo/dnsctl"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: dnsctlbench serve|switch [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "switch":
		err = switchLatency(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dnsctlbench:", err)
		os.Exit(1)
	}
}

// serve runs dnsctl with metrics on (as the reference server would) until
// SIGTERM or SIGINT.
func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:5300", "UDP and TCP listen address")
	origin := fs.String("origin", "bench.internal.", "zone origin")
	zone := fs.String("zone", "", "zone file")
	_ = fs.Parse(args)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	srv, err := dnsctl.New(dnsctl.Config{
		UDPAddr:    *addr,
		Registerer: prometheus.NewRegistry(),
		Logger:     slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	f, err := os.Open(*zone)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := srv.ImportZoneFile(ctx, *origin, f); err != nil {
		return err
	}
	if err := srv.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Close(closeCtx)
}

// switchLatency starts dnsctl on loopback, keeps a client querying, and times
// each Switch from the call to the first answer carrying the new address.
func switchLatency(args []string) error {
	fs := flag.NewFlagSet("switch", flag.ExitOnError)
	n := fs.Int("n", 200, "switches to time")
	_ = fs.Parse(args)
	ctx := context.Background()
	srv, err := dnsctl.New(dnsctl.Config{
		UDPAddr:    "127.0.0.1:0",
		Registerer: prometheus.NewRegistry(),
		Logger:     slog.New(slog.DiscardHandler),
		Zones: []dnsctl.Zone{{Origin: "bench.internal.", RecordSets: []dnsctl.RecordSet{{
			Name: "api", Type: "A", Active: "a",
			Centers: map[string][]string{"a": {"10.1.0.10"}, "b": {"10.2.0.10"}},
		}}}},
	})
	if err != nil {
		return err
	}
	if err := srv.Start(ctx); err != nil {
		return err
	}
	defer srv.Close(ctx)
	conn, err := dns.Dial("udp", srv.Addr())
	if err != nil {
		return err
	}
	defer conn.Close()
	q := new(dns.Msg)
	q.SetQuestion("api.bench.internal.", dns.TypeA)
	ask := func() (net.IP, error) {
		q.Id = dns.Id()
		_ = conn.SetDeadline(time.Now().Add(time.Second))
		if err := conn.WriteMsg(q); err != nil {
			return nil, err
		}
		r, err := conn.ReadMsg()
		if err != nil {
			return nil, err
		}
		if len(r.Answer) != 1 {
			return nil, fmt.Errorf("answer %v", r.Answer)
		}
		return r.Answer[0].(*dns.A).A, nil
	}
	want := map[string]string{"a": "10.1.0.10", "b": "10.2.0.10"}
	var took []time.Duration
	for i := range *n {
		to := []string{"b", "a"}[i%2]
		start := time.Now()
		if _, err := srv.Switch(ctx, dnsctl.Scope{}, to); err != nil {
			return err
		}
		for {
			ip, err := ask()
			if err != nil {
				return err
			}
			if ip.String() == want[to] {
				break
			}
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	pct := func(p float64) time.Duration { return took[int(p*float64(len(took)-1))] }
	fmt.Printf("switch-to-answer n=%d p50=%v p99=%v max=%v\n", len(took), pct(.5), pct(.99), took[len(took)-1])
	return nil
}
