//go:build integration

package redis

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/shuanghuo/shuanghuo/dr"
	"github.com/shuanghuo/shuanghuo/dr/drtest"
	"github.com/shuanghuo/shuanghuo/internal/mwtest"
)

// The shared rig and its Redis instances: a pair per test, so that the tests
// do not depend on each other's leftovers.
var (
	rig *mwtest.Rig
	// conformance: plain instances.
	confA, confB *mwtest.Service
	// switchover: A runs as a production primary should, refusing writes
	// while it has no replica (so that it comes back from a restart fenced);
	// both allow DEBUG DIGEST for comparing whole data sets.
	swA, swB *mwtest.Service
	// fencing failure: the manager's user on A may not run CONFIG.
	ffA, ffB *mwtest.Service
)

const (
	limitedUser = "dradmin"
	limitedPass = "s3cret"
)

func TestMain(m *testing.M) {
	os.Exit(mwtest.Main(m, mwtest.Config{}, func(ctx context.Context, r *mwtest.Rig) error {
		rig = r
		specs := []struct {
			svc    **mwtest.Service
			center string
			opts   mwtest.RedisOptions
		}{
			{&confA, mwtest.CenterA, mwtest.RedisOptions{Name: "conf"}},
			{&confB, mwtest.CenterB, mwtest.RedisOptions{Name: "conf"}},
			{&swA, mwtest.CenterA, mwtest.RedisOptions{Name: "sw", Config: []string{
				"min-replicas-to-write 1", "min-replicas-max-lag 10", "enable-debug-command yes"}}},
			{&swB, mwtest.CenterB, mwtest.RedisOptions{Name: "sw", Config: []string{"enable-debug-command yes"}}},
			{&ffA, mwtest.CenterA, mwtest.RedisOptions{Name: "ff", Config: []string{
				"user " + limitedUser + " on >" + limitedPass + " ~* &* +@all -config"}}},
			{&ffB, mwtest.CenterB, mwtest.RedisOptions{Name: "ff"}},
		}
		errs := make([]error, len(specs))
		var wg sync.WaitGroup
		for i, s := range specs {
			wg.Go(func() {
				*s.svc, errs[i] = r.StartRedis(ctx, s.center, s.opts)
			})
		}
		wg.Wait()
		return errors.Join(errs...)
	}))
}

// groupConfig pairs a and b: the manager reaches them on the host, each
// reaches the other over the link.
func groupConfig(name string, a, b *mwtest.Service) dr.GroupConfig {
	return dr.GroupConfig{
		Name: name,
		Kind: dr.KindRedis,
		A:    dr.Instance{Addr: a.HostAddr, ReplicationAddr: a.LinkAddr},
		B:    dr.Instance{Addr: b.HostAddr, ReplicationAddr: b.LinkAddr},
	}
}

func client(t testing.TB, s *mwtest.Service) *goredis.Client {
	c := goredis.NewClient(&goredis.Options{Addr: s.HostAddr, DisableIdentity: true, MaxRetries: -1,
		DialTimeout: time.Second, ReadTimeout: 5 * time.Second})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestDriverConformance(t *testing.T) {
	mwtest.Require(t)
	drtest.TestDriver(t, func(t *testing.T) drtest.Group {
		d, err := Open(groupConfig("conformance", confA, confB))
		require.NoError(t, err)
		clients := map[dr.Side]*goredis.Client{dr.SideA: client(t, confA), dr.SideB: client(t, confB)}
		services := map[dr.Side]*mwtest.Service{dr.SideA: confA, dr.SideB: confB}
		return drtest.Group{
			Driver: d,
			Write: func(ctx context.Context, s dr.Side, k, v string) error {
				return clients[s].Set(ctx, k, v, 0).Err()
			},
			Read: func(ctx context.Context, s dr.Side, k string) (string, bool, error) {
				v, err := clients[s].Get(ctx, k).Result()
				if errors.Is(err, goredis.Nil) {
					return "", false, nil
				}
				return v, err == nil, err
			},
			Stop: func(ctx context.Context, s dr.Side) error { return services[s].Stop(ctx) },
		}
	})
}

// writableProbe checks, every few milliseconds until stopped, which of the
// instances take a write (DEL of a key that does not exist: refused by a
// replica or a fenced primary, a no-op otherwise, and never replicated).
type writableProbe struct {
	rounds, bothWritable, bWritable atomic.Int64
	stop                            chan struct{}
	done                            sync.WaitGroup
}

func startProbe(t *testing.T, a, b *goredis.Client) *writableProbe {
	p := &writableProbe{stop: make(chan struct{})}
	writable := func(c *goredis.Client) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		return c.Del(ctx, "dr:probe:never-set").Err() == nil
	}
	p.done.Go(func() {
		for {
			select {
			case <-p.stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			var aw, bw bool
			var wg sync.WaitGroup
			wg.Go(func() { aw = writable(a) })
			wg.Go(func() { bw = writable(b) })
			wg.Wait()
			p.rounds.Add(1)
			if aw && bw {
				p.bothWritable.Add(1)
			}
			if bw {
				p.bWritable.Add(1)
			}
		}
	})
	t.Cleanup(p.halt)
	return p
}

func (p *writableProbe) halt() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	p.done.Wait()
}

// snapshot is what a drill must leave unchanged on an instance.
type snapshot struct {
	Role, MasterHost, MasterPort, Digest, MinReplicas string
	Keys                                              int64
}

func takeSnapshot(t *testing.T, c *goredis.Client) snapshot {
	ctx := t.Context()
	repl, err := info(ctx, c, "replication")
	require.NoError(t, err)
	digest, err := c.Do(ctx, "DEBUG", "DIGEST").Text()
	require.NoError(t, err)
	conf, err := c.ConfigGet(ctx, "min-replicas-to-write").Result()
	require.NoError(t, err)
	n, err := c.DBSize(ctx).Result()
	require.NoError(t, err)
	return snapshot{repl["role"], repl["master_host"], repl["master_port"], digest, conf["min-replicas-to-write"], n}
}

// writeKeys sets prefix:0 … prefix:n-1 to their numbers, pipelined.
func writeKeys(t *testing.T, c *goredis.Client, prefix string, n int) {
	const batch = 5000
	for start := 0; start < n; start += batch {
		_, err := c.Pipelined(t.Context(), func(p goredis.Pipeliner) error {
			for i := start; i < min(start+batch, n); i++ {
				p.Set(t.Context(), prefix+":"+strconv.Itoa(i), strconv.Itoa(i), 0)
			}
			return nil
		})
		require.NoError(t, err)
	}
}

// present counts the keys prefix:0 … prefix:n-1 that c holds with their
// number as value, and fails on a wrong value.
func present(t *testing.T, c *goredis.Client, prefix string, n int) int {
	const batch = 5000
	count := 0
	for start := 0; start < n; start += batch {
		keys := make([]string, 0, batch)
		for i := start; i < min(start+batch, n); i++ {
			keys = append(keys, prefix+":"+strconv.Itoa(i))
		}
		vals, err := c.MGet(t.Context(), keys...).Result()
		require.NoError(t, err)
		for j, v := range vals {
			if v == nil {
				continue
			}
			require.Equal(t, strconv.Itoa(start+j), v, keys[j])
			count++
		}
	}
	return count
}

// servedBy answers 200 when the center DNS points at takes a write: the
// service is back.
func servedBy(rec *drtest.Recorder, clients map[dr.Side]*goredis.Client) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := clients[rec.DNSSide()].Set(r.Context(), "dr:verify", "ok", 0).Err(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		}
	})
}

func disasterPlan(verifyURL string, forcePromote bool) dr.PlanConfig {
	return dr.PlanConfig{
		Name:   "lose-a",
		Groups: []string{"orders"},
		Steps: []dr.StepConfig{
			{Kind: dr.StepFence, Force: true, Timeout: dr.Duration(10 * time.Second)},
			{Kind: dr.StepCatchUp, Timeout: dr.Duration(10 * time.Second)},
			{Kind: dr.StepPromote, Force: forcePromote, Timeout: dr.Duration(10 * time.Second)},
			{Kind: dr.StepSwitchDNS},
			{Kind: dr.StepSwitchTraffic},
			{Kind: dr.StepStartApps},
			{Kind: dr.StepVerify, URLs: []string{verifyURL}, Timeout: dr.Duration(10 * time.Second)},
		},
	}
}

func waitRun(t *testing.T, m *dr.Manager, run dr.Run) dr.Run {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	got, err := m.Wait(ctx, run.ID)
	require.NoError(t, err)
	for _, s := range got.Steps {
		t.Logf("%s %s: %s (%v) %q %s", got.Mode, s.Name, s.State, s.Duration(), s.Output, s.Error)
	}
	return got
}

// TestSwitchoverAfterLosingA walks one DR group through its life: pair and
// bulk sync, a drill, the loss of A with writes B never got, a switchover
// refused without force and done with it, and reverse sync when A returns,
// while a probe checks that A and B never both take writes.
func TestSwitchoverAfterLosingA(t *testing.T) {
	mwtest.Require(t)
	ctx := t.Context()
	a, b := client(t, swA), client(t, swB)
	rec := &drtest.Recorder{}
	web := httptest.NewServer(servedBy(rec, map[dr.Side]*goredis.Client{dr.SideA: a, dr.SideB: b}))
	t.Cleanup(web.Close)
	m, err := dr.New(dr.Options{
		Drivers:        map[dr.Kind]dr.DriverFunc{dr.KindRedis: Open},
		DNS:            rec,
		Traffic:        rec,
		Apps:           rec,
		StatusInterval: 100 * time.Millisecond,
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, m.Close()) })
	monitorCtx, stopMonitor := context.WithCancel(ctx)
	var monitor sync.WaitGroup
	monitor.Go(func() { m.Monitor(monitorCtx) })
	t.Cleanup(func() { stopMonitor(); monitor.Wait() })
	require.NoError(t, m.AddGroup(ctx, groupConfig("orders", swA, swB)))

	const bulk, unreplicated = 100_000, 1_000
	t.Run("pair and sync 100k keys", func(t *testing.T) {
		require.NoError(t, m.Pair(ctx, "orders"))
		start := time.Now()
		writeKeys(t, a, "key", bulk)
		require.Eventually(t, func() bool {
			st, err := m.Status(ctx, "orders")
			return err == nil && st.Lag.Known && st.Lag.Bytes == 0
		}, 30*time.Second, 20*time.Millisecond)
		t.Logf("100k keys written and replicated in %v", time.Since(start))
		require.Equal(t, bulk, present(t, b, "key", bulk))
		st, err := m.Status(ctx, "orders")
		require.NoError(t, err)
		require.True(t, st.InSync(), "%+v", st)
		require.Equal(t, int64(bulk), st.Replica.Keys)
		g, err := m.Group("orders")
		require.NoError(t, err)
		require.Equal(t, dr.StateInSync, g.State)
		require.Equal(t, dr.Forward, g.Direction)
	})

	t.Run("drill leaves A and B as they were", func(t *testing.T) {
		beforeA, beforeB := takeSnapshot(t, a), takeSnapshot(t, b)
		plan := disasterPlan(web.URL, true)
		plan.Steps = append([]dr.StepConfig{{Kind: dr.StepPrecheck, MaxLagBytes: 1 << 20}}, plan.Steps...)
		plan.Steps[3].Sample = 500
		run, err := m.Start(plan, dr.ModeDrill)
		require.NoError(t, err)
		got := waitRun(t, m, run)
		require.Equal(t, dr.RunSucceeded, got.State, got.Error)
		require.True(t, got.Report.Estimated)
		require.Equal(t, []string{"switch-dns", "switch-traffic", "start-apps", "verify"}, got.Report.Unmeasured)
		require.Empty(t, rec.Calls())
		require.Equal(t, beforeA, takeSnapshot(t, a))
		require.Equal(t, beforeB, takeSnapshot(t, b))
		g, err := m.Group("orders")
		require.NoError(t, err)
		require.Equal(t, dr.StateInSync, g.State)
	})

	probe := startProbe(t, a, b)

	t.Run("lose A after writes B never got", func(t *testing.T) {
		require.NoError(t, rig.CutLink(ctx))
		writeKeys(t, a, "lost", unreplicated)
		// The monitor's last contact with A must hold those writes: that is
		// what the RPO counts from.
		require.Eventually(t, func() bool {
			g, err := m.Group("orders")
			return err == nil && g.LastContact != nil && g.LastContact.Primary.Keys == bulk+unreplicated
		}, 10*time.Second, 20*time.Millisecond)
		require.NoError(t, swA.Stop(ctx))
	})

	t.Run("promotion refused without force", func(t *testing.T) {
		run, err := m.Start(disasterPlan(web.URL, false), dr.ModeSwitchover)
		require.NoError(t, err)
		got := waitRun(t, m, run)
		require.Equal(t, dr.RunFailed, got.State)
		require.Equal(t, dr.StepFailed, got.Steps[2].State)
		require.Contains(t, got.Error, dr.ErrLagUnknown.Error())
		require.Contains(t, got.Steps[2].Output[0], "1000 keys")
		rolled, err := m.Rollback(ctx, run.ID)
		require.NoError(t, err)
		got = waitRun(t, m, rolled)
		require.Equal(t, dr.RunRolledBack, got.State, got.Error)
		require.Error(t, b.Del(ctx, "dr:probe:never-set").Err(), "b must still refuse writes")
		require.Empty(t, rec.Calls())
	})

	t.Run("switchover promotes B and counts the lost writes", func(t *testing.T) {
		run, err := m.Start(disasterPlan(web.URL, true), dr.ModeSwitchover)
		require.NoError(t, err)
		got := waitRun(t, m, run)
		require.Equal(t, dr.RunSucceeded, got.State, got.Error)
		rep := got.Report
		t.Logf("RTO %v, RPO %+v", rep.RTO, rep.RPO)
		require.True(t, rep.Verified)
		require.Less(t, time.Duration(rep.RTO), 10*time.Second)
		require.Len(t, rep.Groups, 1)
		require.True(t, rep.Groups[0].Lost)
		require.False(t, rep.RPO.Known)
		// What B really lacks: every one of the writes made after the cut.
		missing := unreplicated - present(t, b, "lost", unreplicated)
		require.Equal(t, unreplicated, missing)
		require.Equal(t, int64(missing), rep.RPO.Keys)
		require.Greater(t, rep.RPO.Bytes, int64(missing*len("lost:999")))
		require.Equal(t, bulk, present(t, b, "key", bulk))
		require.Equal(t, []string{"switch-dns b", "switch-traffic b", "start-apps b"}, rec.Calls())
		g, err := m.Group("orders")
		require.NoError(t, err)
		require.Equal(t, dr.StatePromoted, g.State)
		require.Equal(t, dr.Reverse, g.Direction)
	})

	t.Run("A returns and reverse sync catches it up", func(t *testing.T) {
		require.NoError(t, swA.Start(ctx))
		require.NoError(t, rig.RestoreLink(ctx))
		// Docker may refuse A's published port for a moment after its network
		// changes; an operator would try again, and nothing was changed.
		var err error
		require.Eventually(t, func() bool {
			err = m.Reverse(ctx, "orders")
			return !errors.Is(err, dr.ErrUnreachable)
		}, 10*time.Second, 100*time.Millisecond, "A unreachable: %v", err)
		require.NoError(t, err)
		st, err := m.Status(ctx, "orders")
		require.NoError(t, err)
		require.True(t, st.InSync(), "%+v", st)
		require.Equal(t, dr.Reverse, st.Direction)
		require.Equal(t, bulk, present(t, a, "key", bulk))
		require.Zero(t, present(t, a, "lost", unreplicated))
		require.Equal(t, takeSnapshot(t, b).Digest, takeSnapshot(t, a).Digest)
		g, err := m.Group("orders")
		require.NoError(t, err)
		require.Equal(t, dr.StateInSync, g.State)
		var path []dr.State
		for _, tr := range g.Transitions {
			path = append(path, tr.To)
		}
		t.Logf("transitions: %v", path)
		require.Subset(t, path, []dr.State{dr.StateSyncing, dr.StateInSync, dr.StatePromoted, dr.StateReverseSyncing})
	})

	probe.halt()
	t.Logf("writability probe: %d rounds, B writable in %d, both in %d", probe.rounds.Load(), probe.bWritable.Load(), probe.bothWritable.Load())
	require.Positive(t, probe.bWritable.Load(), "the probe never saw B writable: it did not watch the switchover")
	require.Zero(t, probe.bothWritable.Load(), "A and B both took writes")
}

// TestFencingFailure: A answers but refuses the fence (the manager's user
// may not run CONFIG). The switchover stops at the fence, B is not promoted,
// A keeps serving, and the run rolls back cleanly.
func TestFencingFailure(t *testing.T) {
	mwtest.Require(t)
	ctx := t.Context()
	cfg := groupConfig("payments", ffA, ffB)
	cfg.A.Username, cfg.A.Password = limitedUser, limitedPass
	m, err := dr.New(dr.Options{Drivers: map[dr.Kind]dr.DriverFunc{dr.KindRedis: Open}})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, m.Close()) })
	require.NoError(t, m.AddGroup(ctx, cfg))
	require.NoError(t, m.Pair(ctx, "payments"))

	run, err := m.Start(dr.PlanConfig{
		Name:   "planned",
		Groups: []string{"payments"},
		Steps: []dr.StepConfig{
			{Kind: dr.StepPrecheck},
			{Kind: dr.StepFence, Retries: 1, RetryDelay: dr.Duration(10 * time.Millisecond)},
			{Kind: dr.StepCatchUp},
			{Kind: dr.StepPromote},
		},
	}, dr.ModeSwitchover)
	require.NoError(t, err)
	got := waitRun(t, m, run)
	require.Equal(t, dr.RunFailed, got.State)
	require.Equal(t, dr.StepFailed, got.Steps[1].State)
	require.Equal(t, 2, got.Steps[1].Attempts)
	require.Contains(t, got.Error, dr.ErrFence.Error())
	require.Contains(t, got.Error, "NOPERM")
	require.Equal(t, dr.StepPending, got.Steps[3].State)

	a, b := client(t, ffA), client(t, ffB)
	require.NoError(t, a.Set(ctx, "still", "serving", 0).Err(), "A must keep taking writes")
	require.Error(t, b.Set(ctx, "b", "writable", 0).Err(), "B must not be promoted")

	rolled, err := m.Rollback(ctx, run.ID)
	require.NoError(t, err)
	got = waitRun(t, m, rolled)
	require.Equal(t, dr.RunRolledBack, got.State, got.Error)
	g, err := m.Group("payments")
	require.NoError(t, err)
	require.Equal(t, dr.StateInSync, g.State)
	require.Empty(t, g.HeldBy)
}
