package dr

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestStateMachine(t *testing.T) {
	for _, c := range []struct {
		from, to State
		ok       bool
	}{
		{StateUnpaired, StateSyncing, true},
		{StateUnpaired, StateReverseSyncing, true},
		{StateUnpaired, StateInSync, false},
		{StateUnpaired, StatePromoted, false},
		{StateSyncing, StateInSync, true},
		{StateSyncing, StatePromoted, true}, // losing A before the link came back
		{StateInSync, StatePromoted, true},
		{StateInSync, StateSyncing, true}, // the link went down
		{StateInSync, StateUnpaired, true},
		{StatePromoted, StateReverseSyncing, true},
		{StatePromoted, StateSyncing, true}, // rollback, or switching back to A
		{StatePromoted, StateInSync, false},
		{StateReverseSyncing, StateInSync, true},
		{StateReverseSyncing, StatePromoted, true},
		{StateReverseSyncing, StateSyncing, false},
	} {
		require.Equal(t, c.ok, canMove(c.from, c.to), "%s → %s", c.from, c.to)
	}
}

func TestRestoreState(t *testing.T) {
	s, d := restoreState(nil)
	require.Equal(t, StateUnpaired, s)
	require.Equal(t, Forward, d)
	s, d = restoreState([]Transition{
		{From: StateUnpaired, To: StateSyncing, Direction: Forward},
		{From: StateInSync, To: StatePromoted, Direction: Reverse},
	})
	require.Equal(t, StatePromoted, s)
	require.Equal(t, Reverse, d)
}

func TestDirections(t *testing.T) {
	require.Equal(t, SideA, Forward.Primary())
	require.Equal(t, SideB, Forward.Replica())
	require.Equal(t, SideB, Reverse.Primary())
	require.Equal(t, Reverse, Forward.Opposite())
	require.Equal(t, StateSyncing, syncingState(Forward))
	require.Equal(t, StateReverseSyncing, syncingState(Reverse))
}

func TestReportSwitchover(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	run := &Run{
		Mode:    ModeSwitchover,
		State:   RunSucceeded,
		Started: t0,
		Ended:   at(2500),
		Steps: []StepRun{
			{Name: "fence", Kind: StepFence, State: StepSucceeded, Started: at(0), Ended: at(100)},
			{Name: "verify", Kind: StepVerify, State: StepSucceeded, Started: at(1500), Ended: at(2000)},
			{Name: "notify", Kind: StepSwitchDNS, State: StepSucceeded, Started: at(2000), Ended: at(2500)},
		},
		Report: Report{Groups: []GroupRPO{
			{Group: "g1", RPO: Lag{Known: true, Bytes: 10, Keys: 0, Time: Duration(time.Second)}},
			{Group: "g2", Lost: true, RPO: Lag{Bytes: 5, Keys: 3, Time: 0}},
		}},
	}
	rep := report(run, nil)
	require.Equal(t, Duration(2*time.Second), rep.RTO, "RTO ends with the verify step, not the run")
	require.True(t, rep.Verified)
	require.Equal(t, Lag{Known: false, Bytes: 10, Keys: 3, Time: Duration(time.Second)}, rep.RPO)
	require.False(t, rep.Estimated)

	run.Steps = run.Steps[:1]
	rep = report(run, nil)
	require.Equal(t, Duration(2500*time.Millisecond), rep.RTO, "without verify, RTO runs to the end")
	require.False(t, rep.Verified)

	run.State = RunFailed
	require.Zero(t, report(run, nil).RTO, "a failed run restored no service")
}

func TestReportDrillEstimate(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	last := &Run{Mode: ModeSwitchover, State: RunSucceeded, Steps: []StepRun{
		{Name: "dns", State: StepSucceeded, Started: at(0), Ended: at(300)},
	}}
	drill := &Run{Mode: ModeDrill, State: RunSucceeded, Started: t0, Steps: []StepRun{
		{Name: "precheck", State: StepSucceeded, Started: at(0), Ended: at(20)},
		{Name: "dns", State: StepSkipped},
		{Name: "verify", State: StepSkipped},
	}}
	rep := report(drill, last)
	require.True(t, rep.Estimated)
	require.Equal(t, Duration(320*time.Millisecond), rep.RTO)
	require.Equal(t, []string{"verify"}, rep.Unmeasured)
	require.True(t, rep.RPO.Known, "no group compared: nothing to lose")

	rep = report(drill, nil)
	require.Equal(t, Duration(20*time.Millisecond), rep.RTO)
	require.Equal(t, []string{"dns", "verify"}, rep.Unmeasured)
}

func TestGroupConfigValidate(t *testing.T) {
	c := GroupConfig{Kind: "mysql", A: Instance{Addr: "10.0.0.1:6379"}, B: Instance{Addr: "10.0.0.1:6379", ReplicationAddr: "nohost"},
		SyncTimeout: Duration(-1)}
	c.A.TLS = &TLSConfig{CertFile: "c.pem"}
	var ve *ValidationError
	require.ErrorAs(t, c.Validate(), &ve)
	require.ErrorIs(t, c.Validate(), ErrInvalid)
	require.Equal(t, map[string]string{
		"name":               "is required",
		"kind":               `must be one of redis, kafka, fastdfs, got "mysql"`,
		"b.addr":             "must differ from a.addr: a DR group pairs two instances",
		"b.replication_addr": `must be host:port, got "nohost"`,
		"sync_timeout":       "must be from 1s to 24h, got -1ns",
		"a.tls":              "cert_file and key_file go together: set both or neither",
	}, ve.Fields())

	ok := GroupConfig{Name: "orders", Kind: KindRedis, A: Instance{Addr: "127.0.0.1:6379", ReplicationAddr: "center-a-redis1:6379"},
		B: Instance{Addr: "127.0.0.1:6380", ReplicationAddr: "center-b-redis1:6379"}}
	require.NoError(t, ok.Validate())
}

func TestPlanValidate(t *testing.T) {
	p := PlanConfig{
		Name: "p",
		Steps: []StepConfig{
			{Kind: StepPromote, Force: true},
			{Kind: StepFence, Sample: 5},
			{Kind: StepVerify},
			{Kind: StepSwitchDNS, Force: true, URLs: []string{"http://x"}},
			{Kind: "reboot", Name: "verify"},
			{Kind: StepPrecheck, Retries: 11, Timeout: Duration(-time.Second)},
		},
	}
	var ve *ValidationError
	require.ErrorAs(t, p.Validate(), &ve)
	require.Equal(t, map[string]string{
		"groups":           "is required: steps act on DR groups",
		"steps[0].kind":    "promote must come after a fence step, so that the primary takes no writes meanwhile",
		"steps[1].sample":  "applies to promote steps only",
		"steps[2].urls":    "is required for verify",
		"steps[3].force":   "applies to fence and promote steps only",
		"steps[3].urls":    "applies to verify steps only",
		"steps[4].kind":    `must be one of precheck, fence, catch-up, promote, switch-dns, switch-traffic, start-apps, verify, got "reboot"`,
		"steps[4].name":    `step name "verify" is used twice; name the steps`,
		"steps[5].retries": "must be at most 10, got 11",
		"steps[5].timeout": "must be from 1ms to 24h, got -1s",
	}, ve.Fields())
	require.Contains(t, ve.Error(), "dr: invalid configuration: groups: is required")

	ok := PlanConfig{Name: "p", Groups: []string{"g"}, Steps: []StepConfig{
		{Kind: StepPrecheck, MaxLag: Duration(time.Second)}, {Kind: StepFence}, {Kind: StepCatchUp}, {Kind: StepPromote, Sample: 10},
		{Kind: StepVerify, URLs: []string{"https://svc.example/healthz"}},
	}}
	require.NoError(t, ok.Validate())
	require.False(t, errors.Is(ok.Validate(), ErrInvalid))
}

// Every kind of step is one entry of stepKinds, complete: a kind that does nothing, or whose
// drill would touch the world around the groups, would pass Validate and misbehave at run time.
func TestStepKindsTable(t *testing.T) {
	seen := map[StepKind]bool{}
	for _, k := range stepKinds {
		require.False(t, seen[k.kind], "%s twice", k.kind)
		seen[k.kind] = true
		require.NotNil(t, k.do, k.kind)
		if k.groups {
			require.Nil(t, k.wouldDo, "%s: a drill runs groups steps", k.kind)
			require.Nil(t, k.needs, k.kind)
		} else {
			require.Nil(t, k.drill, "%s: a drill skips it", k.kind)
			require.NotNil(t, k.wouldDo, k.kind)
			require.NotEmpty(t, k.wouldDo(SideB), k.kind)
		}
	}
	for _, k := range []StepKind{StepPrecheck, StepFence, StepCatchUp, StepPromote, StepSwitchDNS, StepSwitchTraffic, StepStartApps, StepVerify} {
		require.True(t, seen[k], k)
	}
	require.Equal(t, "fence and promote", takers("force"))
	require.Equal(t, "precheck, fence, catch-up, promote, switch-dns, switch-traffic, start-apps, verify", takers(""))
}

// Times not known yet (a run still running, a step not started or not ended, a replica that
// never heard from its primary) are left out of the JSON rather than shown as year 1.
func TestUnknownTimesAreLeftOut(t *testing.T) {
	started := time.Date(2026, 12, 7, 22, 0, 0, 0, time.UTC)
	for _, v := range []any{
		Run{Started: started, Steps: []StepRun{{Name: "fence", Kind: StepFence}}},
		Group{Status: &Status{At: started}},
	} {
		out, err := json.Marshal(v)
		require.NoError(t, err)
		require.NotContains(t, string(out), "0001-01-01", "%T: %s", v, out)
		require.Contains(t, string(out), "2026-12-07T22:00:00Z", "%T: %s", v, out)
	}
}
