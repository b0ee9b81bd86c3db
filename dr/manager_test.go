package dr_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/shuanghuo/shuanghuo/dr"
	"github.com/shuanghuo/shuanghuo/dr/drtest"
)

// rig is a manager over fake DR groups, with recording switchers and a
// service to verify.
type rig struct {
	m     *dr.Manager
	fakes *drtest.Fakes
	rec   *drtest.Recorder
	store *dr.MemoryStore
	// healthy says whether the verify URL answers 200.
	healthy atomic.Bool
	url     string
}

func newRig(t *testing.T, groups ...string) *rig {
	t.Helper()
	r := &rig{fakes: &drtest.Fakes{}, rec: &drtest.Recorder{}, store: &dr.MemoryStore{}}
	r.healthy.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !r.healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	r.url = srv.URL
	m, err := dr.New(dr.Options{
		Drivers:        map[dr.Kind]dr.DriverFunc{dr.KindRedis: r.fakes.Open},
		Store:          r.store,
		DNS:            r.rec,
		Traffic:        r.rec,
		Apps:           r.rec,
		StatusInterval: 10 * time.Millisecond,
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, m.Close()) })
	r.m = m
	for i, name := range groups {
		require.NoError(t, m.AddGroup(t.Context(), groupConfig(name, i)))
		require.NoError(t, m.Pair(t.Context(), name))
	}
	return r
}

func groupConfig(name string, i int) dr.GroupConfig {
	return dr.GroupConfig{
		Name: name,
		Kind: dr.KindRedis,
		A:    dr.Instance{Addr: "10.1.0.1:" + string(rune('0'+i)) + "379"},
		B:    dr.Instance{Addr: "10.2.0.1:" + string(rune('0'+i)) + "379"},
	}
}

// fullPlan is a planned switchover of groups with every kind of step.
func (r *rig) fullPlan(groups ...string) dr.PlanConfig {
	fast := dr.Duration(5 * time.Millisecond)
	return dr.PlanConfig{
		Name:   "full",
		Groups: groups,
		Steps: []dr.StepConfig{
			{Kind: dr.StepPrecheck, MaxLagBytes: 1024},
			{Kind: dr.StepFence, RetryDelay: fast},
			{Kind: dr.StepCatchUp, Timeout: dr.Duration(time.Second)},
			{Kind: dr.StepPromote},
			{Kind: dr.StepSwitchDNS, RetryDelay: fast},
			{Kind: dr.StepSwitchTraffic, RetryDelay: fast},
			{Kind: dr.StepStartApps, RetryDelay: fast},
			{Kind: dr.StepVerify, URLs: []string{r.url}, Timeout: dr.Duration(300 * time.Millisecond)},
		},
	}
}

func (r *rig) run(t *testing.T, plan dr.PlanConfig, mode dr.Mode) dr.Run {
	t.Helper()
	run, err := r.m.Start(plan, mode)
	require.NoError(t, err)
	return r.wait(t, run.ID)
}

func (r *rig) wait(t *testing.T, id string) dr.Run {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	run, err := r.m.Wait(ctx, id)
	require.NoError(t, err)
	return run
}

func stepStates(run dr.Run) []dr.StepState {
	out := make([]dr.StepState, len(run.Steps))
	for i, s := range run.Steps {
		out[i] = s.State
	}
	return out
}

func TestPairRecordsTransitions(t *testing.T) {
	r := newRig(t, "orders")
	g, err := r.m.Group("orders")
	require.NoError(t, err)
	require.Equal(t, dr.StateInSync, g.State)
	require.Len(t, g.Transitions, 2)
	require.Equal(t, dr.StateUnpaired, g.Transitions[0].From)
	require.Equal(t, "pair", g.Transitions[0].Reason)
	stored, err := r.store.Transitions(t.Context(), "orders")
	require.NoError(t, err)
	require.Equal(t, g.Transitions, stored)
	require.Equal(t, []dr.Side{dr.SideA}, r.fakes.Get("orders").Writable())

	require.ErrorIs(t, r.m.Reverse(t.Context(), "orders"), dr.ErrState, "reverse sync of a group never promoted")
	require.NoError(t, r.m.Unpair(t.Context(), "orders"))
	g, _ = r.m.Group("orders")
	require.Equal(t, dr.StateUnpaired, g.State)
	require.Equal(t, []dr.Side{dr.SideA}, r.fakes.Get("orders").Writable(), "an unpaired replica stays fenced")

	// A second manager on the same store finds the group where it was.
	m2, err := dr.New(dr.Options{Drivers: map[dr.Kind]dr.DriverFunc{dr.KindRedis: r.fakes.Open}, Store: r.store})
	require.NoError(t, err)
	defer m2.Close()
	require.NoError(t, m2.AddGroup(t.Context(), groupConfig("orders", 0)))
	g2, err := m2.Group("orders")
	require.NoError(t, err)
	require.Equal(t, dr.StateUnpaired, g2.State)
	require.Len(t, g2.Transitions, 3)
}

func TestAddGroupErrors(t *testing.T) {
	r := newRig(t, "orders")
	require.ErrorIs(t, r.m.AddGroup(t.Context(), groupConfig("orders", 1)), dr.ErrGroupExists)
	cfg := groupConfig("files", 1)
	cfg.Kind = dr.KindFastDFS
	var ve *dr.ValidationError
	require.ErrorAs(t, r.m.AddGroup(t.Context(), cfg), &ve)
	require.Equal(t, map[string]string{"kind": "no driver for kind fastdfs in this manager"}, ve.Fields())
	_, err := r.m.Group("nope")
	require.ErrorIs(t, err, dr.ErrGroupNotFound)
}

func TestSwitchoverRunsStepsInOrder(t *testing.T) {
	r := newRig(t, "orders", "sessions")
	for _, g := range []string{"orders", "sessions"} {
		require.NoError(t, r.fakes.Get(g).Write(dr.SideA, "k", g))
	}
	run := r.run(t, r.fullPlan("orders", "sessions"), dr.ModeSwitchover)
	require.Equal(t, dr.RunSucceeded, run.State, run.Error)
	for _, s := range run.Steps {
		require.Equal(t, dr.StepSucceeded, s.State, s.Name)
		require.Equal(t, 1, s.Attempts)
		require.False(t, s.Started.Before(run.Started))
	}
	for i := 1; i < len(run.Steps); i++ {
		require.False(t, run.Steps[i].Started.Before(run.Steps[i-1].Ended), "step %d started before step %d ended", i, i-1)
	}
	require.Equal(t, []string{"switch-dns b", "switch-traffic b", "start-apps b"}, r.rec.Calls())
	require.ElementsMatch(t, []string{"orders", "sessions"}, run.Steps[3].Changed)
	for _, name := range []string{"orders", "sessions"} {
		g, err := r.m.Group(name)
		require.NoError(t, err)
		require.Equal(t, dr.StatePromoted, g.State)
		require.Equal(t, dr.Reverse, g.Direction)
		require.Empty(t, g.HeldBy)
		require.Equal(t, []dr.Side{dr.SideB}, r.fakes.Get(name).Writable())
	}
	require.True(t, run.Report.Verified)
	require.Positive(t, run.Report.RTO)
	require.Equal(t, dr.Lag{Known: true}, run.Report.RPO)
	require.Len(t, run.Report.Groups, 2)

	// Events are numbered in order, and the last says what it cost.
	for i, e := range run.Events {
		require.Equal(t, i+1, e.Seq)
	}
	last := run.Events[len(run.Events)-1]
	require.Equal(t, string(dr.RunSucceeded), last.State)
	require.Contains(t, last.Message, "RTO")

	stored, err := r.store.Run(t.Context(), run.ID)
	require.NoError(t, err)
	require.Equal(t, run, stored)

	// Reverse sync, then switch back to A with the same plan.
	for _, name := range []string{"orders", "sessions"} {
		require.NoError(t, r.m.Reverse(t.Context(), name))
	}
	back := r.run(t, r.fullPlan("orders", "sessions"), dr.ModeSwitchover)
	require.Equal(t, dr.RunSucceeded, back.State, back.Error)
	require.Equal(t, dr.SideA, back.Target)
	require.Equal(t, dr.SideA, r.rec.DNSSide())
	g, _ := r.m.Group("orders")
	require.Equal(t, dr.Forward, g.Direction)
}

func TestRetries(t *testing.T) {
	r := newRig(t, "orders")
	dns := &flakyDNS{failures: 2}
	m, err := dr.New(dr.Options{Drivers: map[dr.Kind]dr.DriverFunc{dr.KindRedis: r.fakes.Open}, DNS: dns})
	require.NoError(t, err)
	defer m.Close()
	plan := dr.PlanConfig{Name: "dns", Steps: []dr.StepConfig{
		{Kind: dr.StepSwitchDNS, Retries: 2, RetryDelay: dr.Duration(time.Millisecond)},
	}}
	run, err := m.Start(plan, dr.ModeSwitchover)
	require.NoError(t, err)
	got, err := m.Wait(t.Context(), run.ID)
	require.NoError(t, err)
	require.Equal(t, dr.RunSucceeded, got.State, got.Error)
	require.Equal(t, 3, got.Steps[0].Attempts)
	require.Contains(t, got.Steps[0].Output[0], "attempt 1 failed")

	dns.failures = 5
	dns.calls.Store(0)
	run, err = m.Start(plan, dr.ModeSwitchover)
	require.NoError(t, err)
	got, err = m.Wait(t.Context(), run.ID)
	require.NoError(t, err)
	require.Equal(t, dr.RunFailed, got.State)
	require.Equal(t, 3, got.Steps[0].Attempts)
	require.Contains(t, got.Error, `step "switch-dns": switch DNS to b: flaky`)
}

type flakyDNS struct {
	failures int
	calls    atomic.Int32
}

func (f *flakyDNS) SwitchDNS(context.Context, dr.Side) error {
	if int(f.calls.Add(1)) <= f.failures {
		return errors.New("flaky")
	}
	return nil
}

// hangingApps never finish starting, until their context ends.
type hangingApps struct{}

func (hangingApps) StartApps(ctx context.Context, _ dr.Side) error {
	<-ctx.Done()
	return ctx.Err()
}
func (hangingApps) StopApps(context.Context, dr.Side) error { return nil }

func TestStepTimeout(t *testing.T) {
	r := newRig(t)
	m, err := dr.New(dr.Options{Drivers: map[dr.Kind]dr.DriverFunc{dr.KindRedis: r.fakes.Open}, Apps: hangingApps{}})
	require.NoError(t, err)
	defer m.Close()
	run, err := m.Start(dr.PlanConfig{Name: "apps", Steps: []dr.StepConfig{
		{Kind: dr.StepStartApps, Timeout: dr.Duration(30 * time.Millisecond)},
	}}, dr.ModeSwitchover)
	require.NoError(t, err)
	got, err := m.Wait(t.Context(), run.ID)
	require.NoError(t, err)
	require.Equal(t, dr.RunFailed, got.State)
	require.Contains(t, got.Error, "timed out after 30ms")
}

func TestManualGate(t *testing.T) {
	r := newRig(t, "orders")
	plan := r.fullPlan("orders")
	plan.Steps[3].Confirm = true // promote
	run, err := r.m.Start(plan, dr.ModeSwitchover)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		got, _ := r.m.Run(t.Context(), run.ID)
		return got.State == dr.RunWaiting
	}, 5*time.Second, time.Millisecond)
	got, _ := r.m.Run(t.Context(), run.ID)
	require.Equal(t, dr.StepWaiting, got.Steps[3].State)
	require.Equal(t, []dr.Side(nil), r.fakes.Get("orders").Writable(), "A fenced, B not yet promoted")

	require.ErrorIs(t, r.m.Confirm(run.ID, "fence"), dr.ErrRunState)
	require.ErrorIs(t, r.m.Confirm("no-such-run", "promote"), dr.ErrRunState)
	time.Sleep(50 * time.Millisecond)
	require.NoError(t, r.m.Confirm(run.ID, "promote"))
	got = r.wait(t, run.ID)
	require.Equal(t, dr.RunSucceeded, got.State, got.Error)
	require.GreaterOrEqual(t, time.Duration(got.Report.RTO), 50*time.Millisecond, "time at the gate counts in the RTO")
	require.ErrorIs(t, r.m.Confirm(run.ID, "promote"), dr.ErrRunState)
}

func TestCancelAtGate(t *testing.T) {
	r := newRig(t, "orders")
	plan := r.fullPlan("orders")
	plan.Steps[1].Confirm = true // fence
	run, err := r.m.Start(plan, dr.ModeSwitchover)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		got, _ := r.m.Run(t.Context(), run.ID)
		return got.State == dr.RunWaiting
	}, 5*time.Second, time.Millisecond)
	require.NoError(t, r.m.Cancel(run.ID))
	got := r.wait(t, run.ID)
	require.Equal(t, dr.RunCanceled, got.State)
	require.Equal(t, []dr.StepState{dr.StepSucceeded, dr.StepFailed, dr.StepPending, dr.StepPending,
		dr.StepPending, dr.StepPending, dr.StepPending, dr.StepPending}, stepStates(got))
	require.Equal(t, []dr.Side{dr.SideA}, r.fakes.Get("orders").Writable())
}

func TestRollbackAfterFailedVerify(t *testing.T) {
	r := newRig(t, "orders")
	require.NoError(t, r.fakes.Get("orders").Write(dr.SideA, "k", "before"))
	r.healthy.Store(false)
	run := r.run(t, r.fullPlan("orders"), dr.ModeSwitchover)
	require.Equal(t, dr.RunFailed, run.State)
	require.Contains(t, run.Error, dr.ErrVerify.Error())
	require.Zero(t, run.Report.RTO)
	require.False(t, run.Report.Verified)
	require.Equal(t, []dr.Side{dr.SideB}, r.fakes.Get("orders").Writable())

	_, err := r.m.Rollback(t.Context(), "no-such-run")
	require.ErrorIs(t, err, dr.ErrRunNotFound)
	rolled, err := r.m.Rollback(t.Context(), run.ID)
	require.NoError(t, err)
	require.Equal(t, dr.RunRollingBack, rolled.State)
	got := r.wait(t, run.ID)
	require.Equal(t, dr.RunRolledBack, got.State, got.Error)
	require.Equal(t, []dr.StepState{dr.StepSucceeded, dr.StepRolledBack, dr.StepSucceeded, dr.StepRolledBack,
		dr.StepRolledBack, dr.StepRolledBack, dr.StepRolledBack, dr.StepFailed}, stepStates(got))
	require.Equal(t, []string{"switch-dns b", "switch-traffic b", "start-apps b",
		"stop-apps b", "switch-traffic a", "switch-dns a"}, r.rec.Calls())
	require.Equal(t, []dr.Side{dr.SideA}, r.fakes.Get("orders").Writable(), "A unfenced, B a replica again")
	v, ok, err := r.fakes.Get("orders").Read(dr.SideB, "k")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "before", v)
	g, _ := r.m.Group("orders")
	require.Equal(t, dr.StateInSync, g.State)
	require.Equal(t, dr.Forward, g.Direction)

	_, err = r.m.Rollback(t.Context(), run.ID)
	require.ErrorIs(t, err, dr.ErrRunState, "a rolled-back run has nothing left to undo")
}

func TestRollbackStopsAtFirstFailure(t *testing.T) {
	r := newRig(t, "orders")
	r.healthy.Store(false)
	run := r.run(t, r.fullPlan("orders"), dr.ModeSwitchover)
	require.Equal(t, dr.RunFailed, run.State)
	r.rec.Fail("switch-traffic", errors.New("lb unreachable"))
	_, err := r.m.Rollback(t.Context(), run.ID)
	require.NoError(t, err)
	got := r.wait(t, run.ID)
	require.Equal(t, dr.RunRollbackFailed, got.State)
	require.Contains(t, got.Error, "lb unreachable")
	require.Equal(t, dr.StepRollbackFailed, got.Steps[5].State)
	require.Equal(t, dr.StepSucceeded, got.Steps[4].State, "DNS stays on B while traffic cannot follow")
	require.Equal(t, []dr.Side{dr.SideB}, r.fakes.Get("orders").Writable())

	// Fixed, the rollback goes on from where it stopped.
	r.rec.Fail("switch-traffic", nil)
	_, err = r.m.Rollback(t.Context(), run.ID)
	require.NoError(t, err)
	got = r.wait(t, run.ID)
	require.Equal(t, dr.RunRolledBack, got.State, got.Error)
	require.Equal(t, []dr.Side{dr.SideA}, r.fakes.Get("orders").Writable())
}

func TestFencingFailureStopsTheRun(t *testing.T) {
	r := newRig(t, "orders")
	r.fakes.Get("orders").FailFence(errors.New("NOPERM"))
	run := r.run(t, r.fullPlan("orders"), dr.ModeSwitchover)
	require.Equal(t, dr.RunFailed, run.State)
	require.Equal(t, dr.StepFailed, run.Steps[1].State)
	require.Contains(t, run.Error, dr.ErrFence.Error())
	require.Equal(t, []dr.Side{dr.SideA}, r.fakes.Get("orders").Writable())
	require.Empty(t, r.rec.Calls())
}

func TestLosingAForcesPromotion(t *testing.T) {
	r := newRig(t, "orders")
	f := r.fakes.Get("orders")
	for _, k := range []string{"a", "b", "c"} {
		require.NoError(t, f.Write(dr.SideA, k, "v"))
	}
	f.SetLink(false)
	require.NoError(t, f.Write(dr.SideA, "lost1", "v"))
	require.NoError(t, f.Write(dr.SideA, "lost2", "v"))
	_, err := r.m.Status(t.Context(), "orders") // the last contact with A
	require.NoError(t, err)
	f.SetDown(dr.SideA, true)

	plan := r.fullPlan("orders")
	plan.Steps = plan.Steps[1:] // no precheck: A is gone
	plan.Steps[0].Force = true
	run := r.run(t, plan, dr.ModeSwitchover)
	require.Equal(t, dr.RunFailed, run.State)
	require.Contains(t, run.Error, dr.ErrLagUnknown.Error())
	require.Contains(t, run.Steps[2].Output[0], "2 keys")
	require.Empty(t, f.Writable())

	plan.Steps[2].Force = true
	run = r.run(t, plan, dr.ModeSwitchover)
	require.Equal(t, dr.RunSucceeded, run.State, run.Error)
	require.Equal(t, []dr.Side{dr.SideB}, f.Writable())
	rpo := run.Report.RPO
	require.False(t, rpo.Known)
	require.Equal(t, int64(2), rpo.Keys)
	require.Equal(t, int64(len("lost1v")+len("lost2v")), rpo.Bytes)
	require.True(t, run.Report.Groups[0].Lost)
}

func TestDrillChangesNothing(t *testing.T) {
	r := newRig(t, "orders")
	f := r.fakes.Get("orders")
	require.NoError(t, f.Write(dr.SideA, "k", "v"))
	run := r.run(t, r.fullPlan("orders"), dr.ModeDrill)
	require.Equal(t, dr.RunSucceeded, run.State, run.Error)
	require.Equal(t, []dr.StepState{dr.StepSucceeded, dr.StepSucceeded, dr.StepSucceeded, dr.StepSucceeded,
		dr.StepSkipped, dr.StepSkipped, dr.StepSkipped, dr.StepSkipped}, stepStates(run))
	require.Empty(t, r.rec.Calls())
	require.Equal(t, []dr.Side{dr.SideA}, f.Writable())
	g, _ := r.m.Group("orders")
	require.Equal(t, dr.StateInSync, g.State)
	require.True(t, run.Report.Estimated)
	require.Equal(t, []string{"switch-dns", "switch-traffic", "start-apps", "verify"}, run.Report.Unmeasured)
	_, err := r.m.Rollback(t.Context(), run.ID)
	require.ErrorIs(t, err, dr.ErrRunState)

	// After a real switchover, a drill of the plan estimates the skipped
	// steps from it.
	require.Equal(t, dr.RunSucceeded, r.run(t, r.fullPlan("orders"), dr.ModeSwitchover).State)
	require.NoError(t, r.m.Reverse(t.Context(), "orders"))
	run = r.run(t, r.fullPlan("orders"), dr.ModeDrill)
	require.Equal(t, dr.RunSucceeded, run.State, run.Error)
	require.Empty(t, run.Report.Unmeasured)
}

func TestDrillFindsInconsistency(t *testing.T) {
	r := newRig(t, "orders")
	f := r.fakes.Get("orders")
	f.SetLink(false)
	require.NoError(t, f.Write(dr.SideA, "new", "v"))
	plan := r.fullPlan("orders")
	plan.Steps = plan.Steps[1:] // the precheck would stop it first
	run := r.run(t, plan, dr.ModeDrill)
	require.Equal(t, dr.RunFailed, run.State)
	require.Contains(t, run.Error, dr.ErrInconsistent.Error())
	require.Contains(t, run.Error, "new")
}

func TestStartRejects(t *testing.T) {
	r := newRig(t, "orders")
	bare, err := dr.New(dr.Options{Drivers: map[dr.Kind]dr.DriverFunc{dr.KindRedis: r.fakes.Open}})
	require.NoError(t, err)
	defer bare.Close()
	_, err = bare.Start(r.fullPlan("orders", "ghost"), dr.ModeSwitchover)
	var ve *dr.ValidationError
	require.ErrorAs(t, err, &ve)
	require.Equal(t, map[string]string{
		"groups[0]":     `no DR group named "orders"`,
		"groups[1]":     `no DR group named "ghost"`,
		"steps[4].kind": "switch-dns needs a DNS switcher, and the manager has none",
		"steps[5].kind": "switch-traffic needs a traffic switcher, and the manager has none",
		"steps[6].kind": "start-apps needs an app starter, and the manager has none",
	}, ve.Fields())

	_, err = r.m.Start(r.fullPlan("orders"), "rehearsal")
	require.ErrorIs(t, err, dr.ErrInvalid)

	// One run at a time per group.
	plan := r.fullPlan("orders")
	plan.Steps[0].Confirm = true
	run, err := r.m.Start(plan, dr.ModeDrill)
	require.NoError(t, err)
	_, err = r.m.Start(plan, dr.ModeSwitchover)
	require.ErrorIs(t, err, dr.ErrBusy)
	require.ErrorIs(t, r.m.Pair(t.Context(), "orders"), dr.ErrBusy)
	require.ErrorIs(t, r.m.RemoveGroup("orders"), dr.ErrBusy)
	require.NoError(t, r.m.Cancel(run.ID))
	r.wait(t, run.ID)

	// Groups syncing in different directions cannot switch over together.
	require.NoError(t, r.m.AddGroup(t.Context(), groupConfig("sessions", 1)))
	require.NoError(t, r.m.Pair(t.Context(), "sessions"))
	require.Equal(t, dr.RunSucceeded, r.run(t, r.fullPlan("sessions"), dr.ModeSwitchover).State)
	require.NoError(t, r.m.Reverse(t.Context(), "sessions"))
	_, err = r.m.Start(r.fullPlan("orders", "sessions"), dr.ModeSwitchover)
	require.ErrorIs(t, err, dr.ErrState)
	g, _ := r.m.Group("orders")
	require.Empty(t, g.HeldBy, "a refused start holds no group")
}

func TestFollow(t *testing.T) {
	r := newRig(t, "orders")
	plan := r.fullPlan("orders")
	plan.Steps[2].Confirm = true
	run, err := r.m.Start(plan, dr.ModeSwitchover)
	require.NoError(t, err)
	events, err := r.m.Follow(t.Context(), run.ID)
	require.NoError(t, err)
	var got []dr.Event
	for e := range events {
		got = append(got, e)
		if e.State == string(dr.StepWaiting) {
			require.NoError(t, r.m.Confirm(run.ID, e.Step))
		}
	}
	require.NotEmpty(t, got)
	for i, e := range got {
		require.Equal(t, i+1, e.Seq)
	}
	require.Equal(t, string(dr.RunSucceeded), got[len(got)-1].State)

	// A finished run replays from the store.
	events, err = r.m.Follow(t.Context(), run.ID)
	require.NoError(t, err)
	n := 0
	for range events {
		n++
	}
	require.Equal(t, len(got), n)
	_, err = r.m.Follow(t.Context(), "no-such-run")
	require.ErrorIs(t, err, dr.ErrRunNotFound)
}

func TestMonitorMovesState(t *testing.T) {
	r := newRig(t, "orders")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { r.m.Monitor(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	state := func() dr.State { g, _ := r.m.Group("orders"); return g.State }
	f := r.fakes.Get("orders")
	f.SetLink(false)
	require.Eventually(t, func() bool { return state() == dr.StateSyncing }, 5*time.Second, 5*time.Millisecond)
	f.SetLink(true)
	require.Eventually(t, func() bool { return state() == dr.StateInSync }, 5*time.Second, 5*time.Millisecond)
	g, _ := r.m.Group("orders")
	require.Contains(t, g.Transitions[len(g.Transitions)-2].Reason, "link down")
	require.NotNil(t, g.Status)
	require.NotNil(t, g.LastContact)
}

func TestMetricsAndTwoManagers(t *testing.T) {
	reg := prometheus.NewRegistry()
	fakes := &drtest.Fakes{}
	opts := dr.Options{Drivers: map[dr.Kind]dr.DriverFunc{dr.KindRedis: fakes.Open}, Registerer: reg}
	m1, err := dr.New(opts)
	require.NoError(t, err)
	defer m1.Close()
	_, err = dr.New(opts)
	require.ErrorContains(t, err, "another manager uses this registerer")
	opts.Registerer = prometheus.NewRegistry()
	m2, err := dr.New(opts)
	require.NoError(t, err)
	defer m2.Close()

	require.NoError(t, m1.AddGroup(t.Context(), groupConfig("orders", 0)))
	require.NoError(t, m1.Pair(t.Context(), "orders"))
	_, err = m1.Status(t.Context(), "orders")
	require.NoError(t, err)
	families, err := reg.Gather()
	require.NoError(t, err)
	values := map[string]float64{}
	for _, f := range families {
		for _, m := range f.Metric {
			if m.Gauge != nil {
				labels := ""
				for _, l := range m.Label {
					labels += "," + l.GetValue()
				}
				values[f.GetName()+labels] = m.Gauge.GetValue()
			}
		}
	}
	require.Equal(t, 1.0, values["dr_group_state,orders,in-sync"])
	require.Equal(t, 0.0, values["dr_group_state,orders,unpaired"])
	require.Equal(t, 1.0, values["dr_group_link_up,orders"])
	require.Equal(t, 0.0, values["dr_group_lag_bytes,orders"])
	require.NoError(t, m1.RemoveGroup("orders"))
	require.ErrorIs(t, m1.RemoveGroup("orders"), dr.ErrGroupNotFound)
}

func TestClosedManager(t *testing.T) {
	r := newRig(t, "orders")
	plan := r.fullPlan("orders")
	plan.Steps[1].Confirm = true
	run, err := r.m.Start(plan, dr.ModeSwitchover)
	require.NoError(t, err)
	require.NoError(t, r.m.Close())
	got, err := r.store.Run(t.Context(), run.ID)
	require.NoError(t, err)
	require.Equal(t, dr.RunCanceled, got.State, "Close cancels runs in progress")
	_, err = r.m.Start(plan, dr.ModeSwitchover)
	require.ErrorIs(t, err, dr.ErrClosed)
	require.ErrorIs(t, r.m.Pair(t.Context(), "orders"), dr.ErrClosed)
}
