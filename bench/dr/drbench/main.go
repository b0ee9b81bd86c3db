// Command drbench measures package dr with its Redis driver on a two-center
// rig of local containers (internal/mwtest), for bench/dr/run:
//
//  1. time from pair to in-sync for N keys, onto an empty B and onto B
//     holding a stale copy, against a plain `redis-cli --rdb` transfer of
//     the same data (medians of -repeat runs);
//  2. replication lag under a steady write rate: probes written to A are
//     timed until B announces them (keyspace notifications), p50/p99/max;
//  3. RTO of a full planned switchover with no manual gates, under the same
//     write load, and of a forced switchover after losing the primary.
//
// Everything runs on loopback and in the rig's containers, which are removed
// at the end, also on SIGINT.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/shuanghuo/shuanghuo/dr"
	"github.com/shuanghuo/shuanghuo/dr/drtest"
	drredis "github.com/shuanghuo/shuanghuo/dr/redis"
	"github.com/shuanghuo/shuanghuo/internal/mwtest"
)

func main() {
	keys := flag.Int("keys", 1_000_000, "keys in A for the sync benchmark")
	valueSize := flag.Int("value-size", 64, "bytes per value")
	repeat := flag.Int("repeat", 3, "runs of each sync measurement; the median is reported")
	rate := flag.Int("rate", 20_000, "writes per second to A during the lag and RTO measurements")
	lagFor := flag.Duration("lag-duration", 10*time.Second, "how long to measure replication lag")
	timeout := flag.Duration("timeout", 8*time.Minute, "bound on the whole benchmark")
	flag.Parse()

	// The driver reports lost instances in its errors; go-redis would also
	// log every failed dial.
	goredis.SetLogger(quiet{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := run(ctx, *keys, *valueSize, *repeat, *rate, *lagFor); err != nil {
		fmt.Fprintln(os.Stderr, "drbench:", err)
		stop()
		os.Exit(1)
	}
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

func run(ctx context.Context, keys, valueSize, repeat, rate int, lagFor time.Duration) (err error) {
	rig, err := mwtest.NewRig(ctx, mwtest.Config{})
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		err = errors.Join(err, rig.Close(cctx))
	}()
	// DEBUG POPULATE fills A in a second instead of a minute of SETs.
	conf := []string{"enable-debug-command yes"}
	a, err := rig.StartRedis(ctx, mwtest.CenterA, mwtest.RedisOptions{Name: "bench", Config: conf})
	if err != nil {
		return err
	}
	b, err := rig.StartRedis(ctx, mwtest.CenterB, mwtest.RedisOptions{Name: "bench", Config: conf})
	if err != nil {
		return err
	}
	ca, cb := newClient(a.HostAddr), newClient(b.HostAddr)
	defer ca.Close()
	defer cb.Close()

	fmt.Printf("rig: Redis in %s (%s)\n", a.Image, strings.TrimSpace(version(ctx, ca)))
	start := time.Now()
	if err := ca.Do(ctx, "DEBUG", "POPULATE", keys, "key", valueSize).Err(); err != nil {
		return fmt.Errorf("populate A: %w", err)
	}
	mem, _ := ca.Info(ctx, "memory").Result()
	fmt.Printf("A holds %d keys of %d-byte values (used_memory_human %s), loaded in %v\n\n",
		keys, valueSize, field(mem, "used_memory_human"), time.Since(start).Round(time.Millisecond))

	// 1. Pair to in-sync versus redis-cli --rdb.
	rdbTimes, err := repeatTimed(repeat, func() (time.Duration, error) {
		start := time.Now()
		return since(start, rdbDump(ctx, a.HostAddr))
	})
	if err != nil {
		return err
	}
	cfg := dr.GroupConfig{
		Name: "bench", Kind: dr.KindRedis,
		A: dr.Instance{Addr: a.HostAddr, ReplicationAddr: a.LinkAddr},
		B: dr.Instance{Addr: b.HostAddr, ReplicationAddr: b.LinkAddr},
	}
	driver, err := drredis.Open(cfg)
	if err != nil {
		return err
	}
	// Unpairing leaves B with a history of its own, so that the next pair is
	// a full sync, as the first. B is emptied for a first pairing, and kept
	// with its stale copy for a pairing again.
	pairTimes, err := repeatTimed(repeat, func() (time.Duration, error) {
		if err := driver.Unpair(ctx, dr.Forward); err != nil {
			return 0, err
		}
		// Lift the fence Unpair leaves (min-replicas-to-write) to empty B.
		if err := cb.ConfigSet(ctx, "min-replicas-to-write", "0").Err(); err != nil {
			return 0, err
		}
		if err := cb.FlushAll(ctx).Err(); err != nil {
			return 0, err
		}
		start := time.Now()
		return since(start, driver.Pair(ctx, dr.Forward))
	})
	if err != nil {
		driver.Close()
		return err
	}
	repairTimes, err := repeatTimed(repeat, func() (time.Duration, error) {
		if err := driver.Unpair(ctx, dr.Forward); err != nil {
			return 0, err
		}
		start := time.Now()
		return since(start, driver.Pair(ctx, dr.Forward))
	})
	driver.Close()
	if err != nil {
		return err
	}
	rdb, pair := median(rdbTimes), median(pairTimes)
	fmt.Printf("sync %d keys: redis-cli --rdb %v (runs %v)\n", keys, rdb, rdbTimes)
	fmt.Printf("sync %d keys: dr pair to in-sync, B empty: %v (runs %v)\n", keys, pair, pairTimes)
	fmt.Printf("  ratio %.2f× (goal ≤ 2×) %s\n", pair.Seconds()/rdb.Seconds(), verdict(pair <= 2*rdb))
	repair := median(repairTimes)
	fmt.Printf("sync %d keys: dr pair to in-sync, B holding a stale copy: %v (runs %v), ratio %.2f×\n\n",
		keys, repair, repairTimes, repair.Seconds()/rdb.Seconds())

	// 2. Replication lag under steady writes, through a manager as the
	// reference server would run it.
	rec := &drtest.Recorder{}
	clients := map[dr.Side]*goredis.Client{dr.SideA: ca, dr.SideB: cb}
	service := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := clients[rec.DNSSide()].Set(r.Context(), "bench:verify", "ok", 0).Err(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		}
	}))
	defer service.Close()
	m, err := dr.New(dr.Options{
		Drivers: map[dr.Kind]dr.DriverFunc{dr.KindRedis: drredis.Open},
		DNS:     rec, Traffic: rec, Apps: rec,
		StatusInterval: 200 * time.Millisecond,
	})
	if err != nil {
		return err
	}
	defer m.Close()
	if err := m.AddGroup(ctx, cfg); err != nil {
		return err
	}
	if err := m.Pair(ctx, "bench"); err != nil {
		return err
	}
	monitorCtx, stopMonitor := context.WithCancel(ctx)
	defer stopMonitor()
	go m.Monitor(monitorCtx)

	load := startLoad(ctx, ca, rate, valueSize)
	lags, err := measureLag(ctx, ca, cb, lagFor)
	if err != nil {
		load.stop()
		return err
	}
	p50, p99, worst := percentile(lags, 50), percentile(lags, 99), slices.Max(lags)
	fmt.Printf("lag at %d writes/s (achieved %.0f/s) over %v: %d probes, p50 %v, p99 %v, max %v\n",
		rate, load.rate(), lagFor, len(lags), p50, p99, worst)
	fmt.Printf("  p99 goal < 100ms %s\n\n", verdict(p99 < 100*time.Millisecond))

	// 3. RTO of a planned switchover under that load, no manual gates.
	planned := plan("planned", service.URL, false)
	r, err := runPlan(ctx, m, planned)
	load.stop()
	if err != nil {
		return err
	}
	rto := time.Duration(r.Report.RTO)
	fmt.Printf("planned switchover A→B under load: RTO %v, RPO %d bytes / %d keys %s\n",
		rto, r.Report.RPO.Bytes, r.Report.RPO.Keys, steps(r))
	fmt.Printf("  RTO goal < 5s %s\n", verdict(r.Report.Verified && rto < 5*time.Second))

	// And of switching back after losing B, the primary now: reverse sync
	// first, then B's container is killed.
	start = time.Now()
	if err := m.Reverse(ctx, "bench"); err != nil {
		return err
	}
	fmt.Printf("reverse sync B→A of %d keys: %v\n", keys, time.Since(start).Round(time.Millisecond))
	if err := b.Stop(ctx); err != nil {
		return err
	}
	r, err = runPlan(ctx, m, plan("lose-primary", service.URL, true))
	if err != nil {
		return err
	}
	rto = time.Duration(r.Report.RTO)
	fmt.Printf("forced switchover B→A after losing B: RTO %v %s\n", rto, steps(r))
	fmt.Printf("  RTO goal < 5s %s\n", verdict(r.Report.Verified && rto < 5*time.Second))
	return nil
}

func newClient(addr string) *goredis.Client {
	return goredis.NewClient(&goredis.Options{Addr: addr, DisableIdentity: true, PoolSize: 8,
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second})
}

func version(ctx context.Context, c *goredis.Client) string {
	s, _ := c.Info(ctx, "server").Result()
	return "redis " + field(s, "redis_version")
}

// field returns the value of name in an INFO reply.
func field(info, name string) string {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return "?"
}

// rdbDump transfers A's data set to a file, as a plain full sync would.
func rdbDump(ctx context.Context, addr string) error {
	host, port, _ := strings.Cut(addr, ":")
	dir, err := os.MkdirTemp("", "drbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	out, err := exec.CommandContext(ctx, "redis-cli", "-h", host, "-p", port, "--rdb", filepath.Join(dir, "dump.rdb")).CombinedOutput()
	if err != nil {
		return fmt.Errorf("redis-cli --rdb: %w: %s", err, out)
	}
	return nil
}

// repeatTimed runs f n times and returns the durations it measured.
func repeatTimed(n int, f func() (time.Duration, error)) ([]time.Duration, error) {
	var out []time.Duration
	for range n {
		d, err := f()
		if err != nil {
			return nil, err
		}
		out = append(out, d.Round(time.Millisecond))
	}
	return out, nil
}

// since returns the time since start, or err.
func since(start time.Time, err error) (time.Duration, error) {
	return time.Since(start), err
}

func median(ds []time.Duration) time.Duration {
	s := slices.Sorted(slices.Values(ds))
	return s[len(s)/2]
}

func percentile(ds []time.Duration, p int) time.Duration {
	s := slices.Sorted(slices.Values(ds))
	i := (len(s)*p + 99) / 100
	return s[max(0, min(i, len(s))-1)]
}

func verdict(ok bool) string {
	if ok {
		return "MET"
	}
	return "NOT MET"
}

// load writes to A at a steady rate: a pipeline of rate/100 SETs every 10 ms,
// over 100,000 keys.
type load struct {
	cancel  context.CancelFunc
	done    sync.WaitGroup
	written atomic.Int64
	start   time.Time
	elapsed atomic.Int64
}

func startLoad(ctx context.Context, c *goredis.Client, rate, valueSize int) *load {
	ctx, cancel := context.WithCancel(ctx)
	l := &load{cancel: cancel, start: time.Now()}
	value := strings.Repeat("v", valueSize)
	const tick = 10 * time.Millisecond
	batch := max(1, rate/int(time.Second/tick))
	l.done.Go(func() {
		t := time.NewTicker(tick)
		defer t.Stop()
		for i := 0; ; {
			select {
			case <-ctx.Done():
				l.elapsed.Store(int64(time.Since(l.start)))
				return
			case <-t.C:
			}
			// Errors are expected once A is fenced; the load goes on.
			_, _ = c.Pipelined(ctx, func(p goredis.Pipeliner) error {
				for range batch {
					p.Set(ctx, "load:"+strconv.Itoa(i%100_000), value, 0)
					i++
				}
				return nil
			})
			l.written.Add(int64(batch))
		}
	})
	return l
}

func (l *load) stop() {
	l.cancel()
	l.done.Wait()
}

func (l *load) rate() float64 {
	el := time.Duration(l.elapsed.Load())
	if el == 0 {
		el = time.Since(l.start)
	}
	return float64(l.written.Load()) / el.Seconds()
}

// measureLag writes a probe key to A every 10 ms and times it until B
// announces it through a keyspace notification.
func measureLag(ctx context.Context, ca, cb *goredis.Client, d time.Duration) ([]time.Duration, error) {
	if err := cb.ConfigSet(ctx, "notify-keyspace-events", "K$").Err(); err != nil {
		return nil, err
	}
	defer cb.ConfigSet(context.WithoutCancel(ctx), "notify-keyspace-events", "")
	sub := cb.PSubscribe(ctx, "__keyspace@0__:lagprobe:*")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		return nil, err
	}
	var mu sync.Mutex
	sent := make(map[string]time.Time)
	var lags []time.Duration
	received := make(chan struct{})
	go func() {
		defer close(received)
		for msg := range sub.Channel() {
			now := time.Now()
			key := strings.TrimPrefix(msg.Channel, "__keyspace@0__:")
			mu.Lock()
			if t0, ok := sent[key]; ok {
				lags = append(lags, now.Sub(t0))
				delete(sent, key)
			}
			mu.Unlock()
		}
	}()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	end := time.Now().Add(d)
	for n := 0; time.Now().Before(end); n++ {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
		key := "lagprobe:" + strconv.Itoa(n)
		mu.Lock()
		sent[key] = time.Now()
		mu.Unlock()
		if err := ca.Set(ctx, key, n, time.Minute).Err(); err != nil {
			return nil, err
		}
	}
	time.Sleep(time.Second) // the last probes' notifications
	sub.Close()
	<-received
	mu.Lock()
	defer mu.Unlock()
	if len(sent) > 0 {
		return nil, fmt.Errorf("%d probes never reached B", len(sent))
	}
	return lags, nil
}

// plan is a full switchover with no manual gates; force makes it the plan
// for a lost primary.
func plan(name, verifyURL string, force bool) dr.PlanConfig {
	p := dr.PlanConfig{Name: name, Groups: []string{"bench"}, Steps: []dr.StepConfig{
		{Kind: dr.StepPrecheck, MaxLagBytes: 16 << 20},
		{Kind: dr.StepFence, Force: force},
		{Kind: dr.StepCatchUp, Timeout: dr.Duration(30 * time.Second)},
		{Kind: dr.StepPromote, Force: force},
		{Kind: dr.StepSwitchDNS},
		{Kind: dr.StepSwitchTraffic},
		{Kind: dr.StepStartApps},
		{Kind: dr.StepVerify, URLs: []string{verifyURL}, Timeout: dr.Duration(30 * time.Second)},
	}}
	if force {
		p.Steps = p.Steps[1:] // a lost primary fails every precheck
	}
	return p
}

func runPlan(ctx context.Context, m *dr.Manager, p dr.PlanConfig) (dr.Run, error) {
	r, err := m.Start(p, dr.ModeSwitchover)
	if err != nil {
		return r, err
	}
	r, err = m.Wait(ctx, r.ID)
	if err != nil {
		return r, err
	}
	if r.State != dr.RunSucceeded {
		return r, fmt.Errorf("switchover %s: %s: %s", p.Name, r.State, r.Error)
	}
	return r, nil
}

// steps lists each step's duration.
func steps(r dr.Run) string {
	var parts []string
	for _, s := range r.Steps {
		parts = append(parts, fmt.Sprintf("%s %v", s.Name, s.Duration().Round(100*time.Microsecond)))
	}
	return "(" + strings.Join(parts, ", ") + ")"
}
