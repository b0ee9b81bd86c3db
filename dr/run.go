package dr

import (
	"slices"
	"time"
)

// Mode says how a DR plan runs.
type Mode string

// The modes of a run.
const (
	// ModeSwitchover moves production to the other center (切换).
	ModeSwitchover Mode = "switchover"
	// ModeDrill (演练) checks that the other center could take over and
	// estimates what a switchover would cost, leaving both centers exactly as
	// they were: it reads, compares and probes, and changes nothing.
	ModeDrill Mode = "drill"
)

// RunState is where a run is.
type RunState string

// The states of a run. Succeeded, failed, canceled, rolled-back and
// rollback-failed are final, but that a failed, canceled or rollback-failed
// switchover may still be rolled back (again).
const (
	RunRunning        RunState = "running"
	RunWaiting        RunState = "waiting" // at a manual gate; see Manager.Confirm
	RunSucceeded      RunState = "succeeded"
	RunFailed         RunState = "failed"
	RunCanceled       RunState = "canceled"
	RunRollingBack    RunState = "rolling-back"
	RunRolledBack     RunState = "rolled-back"
	RunRollbackFailed RunState = "rollback-failed"
)

// Done reports whether the run has stopped: no step runs or will run unless
// it is rolled back.
func (s RunState) Done() bool {
	return s != RunRunning && s != RunWaiting && s != RunRollingBack
}

// StepState is where a step of a run is.
type StepState string

// The states of a step.
const (
	StepPending        StepState = "pending"
	StepWaiting        StepState = "waiting" // at its manual gate
	StepRunning        StepState = "running"
	StepSucceeded      StepState = "succeeded"
	StepFailed         StepState = "failed"
	StepSkipped        StepState = "skipped" // a drill does not run it
	StepRolledBack     StepState = "rolled-back"
	StepRollbackFailed StepState = "rollback-failed"
)

// Run is the record of one run of a DR plan: a switchover or a drill.
type Run struct {
	ID   string `json:"id"`
	Plan string `json:"plan"`
	Mode Mode   `json:"mode"`
	// Config is the plan as it ran; rollback works from it.
	Config PlanConfig `json:"config"`
	// Direction is the direction of sync of the plan's DR groups when the
	// run started; Target is the center production moves to: the side of
	// their replicas.
	Direction Direction `json:"direction"`
	Target    Side      `json:"target"`
	State     RunState  `json:"state"`
	Started   time.Time `json:"started"`
	// Ended is when the run stopped; zero while it runs.
	Ended time.Time `json:"ended,omitzero"`
	// Error says why the run failed, was canceled or could not be rolled
	// back.
	Error  string    `json:"error,omitempty"`
	Steps  []StepRun `json:"steps"`
	Report Report    `json:"report"`
	// Events are the run's events, in order: what Manager.Follow streams.
	Events []Event `json:"events"`
}

// StepRun is the record of one step of a run.
type StepRun struct {
	Name     string    `json:"name"`
	Kind     StepKind  `json:"kind"`
	State    StepState `json:"state"`
	Attempts int       `json:"attempts"`
	Started  time.Time `json:"started,omitzero"`
	Ended    time.Time `json:"ended,omitzero"`
	// Output holds what the step did and found, a line per fact.
	Output []string `json:"output,omitempty"`
	Error  string   `json:"error,omitempty"`
	// Changed names the DR groups the step changed (fenced or promoted):
	// what rollback undoes.
	Changed []string `json:"changed,omitempty"`
}

// Duration returns how long the step ran, or zero if it has not ended.
func (s StepRun) Duration() time.Duration {
	if s.Ended.IsZero() || s.Started.IsZero() {
		return 0
	}
	return s.Ended.Sub(s.Started)
}

// Event is one change of a run or of one of its steps.
type Event struct {
	// Seq numbers the run's events from 1.
	Seq  int       `json:"seq"`
	Time time.Time `json:"time"`
	// Step names the step; empty for an event of the run itself.
	Step string `json:"step,omitempty"`
	// State is the run's or the step's state after the event.
	State   string `json:"state"`
	Message string `json:"message,omitempty"`
}

// Report is what a run cost, or for a drill what a switchover would have
// cost.
type Report struct {
	// RTO runs from the start of the run to the end of its last verify
	// step: service verified in the target center. Manual gates count: the
	// service was down meanwhile. Without a verify step it runs to the end of
	// a succeeded run, and Verified is false. Zero for a run that did not
	// get there.
	RTO      Duration `json:"rto"`
	Verified bool     `json:"verified"`
	// RPO is the worst of the DR groups' RPOs, figure by figure.
	RPO Lag `json:"rpo"`
	// Groups holds the RPO of every DR group that was promoted (or in a
	// drill, compared): what its replica lacked when it was promoted, that
	// is the lag at the moment its primary was fenced, less what the replica
	// caught up with before promotion, or at the moment it was lost.
	Groups []GroupRPO `json:"groups,omitempty"`
	// Estimated is set for a drill: its RTO adds the durations of the steps
	// it ran and, for the steps it skipped, the durations they took in the
	// plan's last succeeded switchover; its RPO is the lag during the drill.
	Estimated bool `json:"estimated,omitempty"`
	// Unmeasured names the steps a drill's RTO lacks: skipped in the drill
	// and never run in a switchover of the plan.
	Unmeasured []string `json:"unmeasured,omitempty"`
}

// GroupRPO is the RPO of one DR group in a run.
type GroupRPO struct {
	Group string `json:"group"`
	// Lost: the primary did not answer, so RPO counts from its last
	// contact.
	Lost bool `json:"lost"`
	RPO  Lag  `json:"rpo"`
}

// worstLag combines lags figure by figure: the largest bytes, keys and time,
// known only when every one is.
func worstLag(lags []Lag) Lag {
	if len(lags) == 0 {
		return Lag{Known: true}
	}
	w := Lag{Known: true}
	for _, l := range lags {
		w.Known = w.Known && l.Known
		w.Bytes = max(w.Bytes, l.Bytes)
		w.Keys = max(w.Keys, l.Keys)
		w.Time = max(w.Time, l.Time)
	}
	return w
}

// report computes the report of a finished run. last is the plan's last
// succeeded switchover, which a drill's estimate draws on; nil if none.
func report(r *Run, last *Run) Report {
	rep := Report{Groups: slices.Clone(r.Report.Groups)}
	lags := make([]Lag, len(rep.Groups))
	for i, g := range rep.Groups {
		lags[i] = g.RPO
	}
	rep.RPO = worstLag(lags)
	if r.Mode == ModeDrill {
		rep.Estimated = true
		var rto time.Duration
		for _, s := range r.Steps {
			switch {
			case s.State == StepSucceeded:
				rto += s.Duration()
			case s.State == StepSkipped && last != nil && stepDuration(last, s.Name) > 0:
				rto += stepDuration(last, s.Name)
			default:
				rep.Unmeasured = append(rep.Unmeasured, s.Name)
			}
		}
		rep.RTO = Duration(rto)
		return rep
	}
	for _, s := range r.Steps {
		if s.Kind == StepVerify && s.State == StepSucceeded {
			rep.RTO = Duration(s.Ended.Sub(r.Started))
			rep.Verified = true
		}
	}
	if !rep.Verified && r.State == RunSucceeded {
		rep.RTO = Duration(r.Ended.Sub(r.Started))
	}
	return rep
}

// stepDuration returns how long the step named name took in r, or zero.
func stepDuration(r *Run, name string) time.Duration {
	for _, s := range r.Steps {
		if s.Name == name && s.State == StepSucceeded {
			return s.Duration()
		}
	}
	return 0
}

// clone returns a deep copy of r, for the store and for callers, which must
// not see later changes.
func (r *Run) clone() Run {
	c := *r
	c.Config = r.Config.clone()
	c.Steps = slices.Clone(r.Steps)
	for i := range c.Steps {
		c.Steps[i].Output = slices.Clone(c.Steps[i].Output)
		c.Steps[i].Changed = slices.Clone(c.Steps[i].Changed)
	}
	c.Report.Groups = slices.Clone(r.Report.Groups)
	c.Report.Unmeasured = slices.Clone(r.Report.Unmeasured)
	c.Events = slices.Clone(r.Events)
	return c
}

// clone returns a deep copy of p.
func (p PlanConfig) clone() PlanConfig {
	p.Groups = slices.Clone(p.Groups)
	p.Steps = slices.Clone(p.Steps)
	for i := range p.Steps {
		p.Steps[i].URLs = slices.Clone(p.Steps[i].URLs)
	}
	return p
}
