// Command lbrun runs package lb with a config file for bench/lb/run. It
// prints one line per event ("event <unix-nanos> <kind> <group>/<server>")
// so the script can time failovers, and stops on SIGINT or SIGTERM.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/shuanghuo/shuanghuo/lb"
)

func main() {
	path := flag.String("config", "lb.json", "balancer config (JSON)")
	procs := flag.Int("procs", 0, "GOMAXPROCS (0: all cores)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile here until exit")
	flag.Parse()
	if *procs > 0 {
		runtime.GOMAXPROCS(*procs)
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	raw, err := os.ReadFile(*path)
	if err != nil {
		log.Fatal(err)
	}
	var cfg lb.BalancerConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		log.Fatalf("%s: %v", *path, err)
	}
	b, err := lb.New(lb.Options{})
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	events := b.Subscribe(ctx)
	if _, err := b.Apply(ctx, cfg); err != nil {
		log.Fatal(err)
	}
	fmt.Println("ready")
	for {
		select {
		case e := <-events:
			fmt.Printf("event %d %s %s/%s %s\n", e.Time.UnixNano(), e.Kind, e.Group, e.Server, e.Reason)
		case <-ctx.Done():
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			b.Close(cctx)
			return
		}
	}
}
