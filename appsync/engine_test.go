package appsync_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shuanghuo/shuanghuo/appsync"
	"github.com/shuanghuo/shuanghuo/appsync/appsynctest"
	"github.com/shuanghuo/shuanghuo/internal/testlog"
)

func TestReleasesCopiedAndReleasedInOrder(t *testing.T) {
	r := newRig(t)
	e := r.engine(nil)
	cfg := versionTask("versions")
	cfg.Version.Nodes = map[string]string{"a1": "b1", "a2": "b2"}
	r.start(e, cfg)
	for i := 1; i <= 3; i++ {
		r.feed.Release("hx", "outpatient", fmt.Sprintf("1.%d", i), []byte(fmt.Sprint("artifact ", i)), "a1", "a2", "a3")
		// Each release is waited for, so that none supersedes another
		// (a resync would skip releasing superseded versions).
		waitCursor(t, e, "versions", int64(i))
	}
	want := []string{
		"add-version outpatient 1.1", "release outpatient 1.1 [b1 b2]",
		"add-version outpatient 1.2", "release outpatient 1.2 [b1 b2]",
		"add-version outpatient 1.3", "release outpatient 1.3 [b1 b2]",
	}
	if got := ops(r.sink.Writes()); !slices.Equal(got, want) {
		t.Fatalf("writes:\n got %q\nwant %q", got, want)
	}
	s := status(t, e, "versions")
	if s.Applied != 3 || s.Skipped != 0 || s.Rejected != 0 || s.LastApplied == nil || s.LastApplied.Version != "1.3" || s.LastApplied.Project != "hx-b" {
		t.Fatalf("status: %+v", s)
	}
	if s.State != appsync.StateRunning || s.LagEvents != 0 || s.LagSeconds != 0 {
		t.Fatalf("caught up, status: %+v", s)
	}
	if v := r.sink.Versions("hx-b", "outpatient")["1.2"]; string(v.Content) != "artifact 2" || v.Notes != "release 1.2" {
		t.Fatalf("version 1.2 stored as %+v", v)
	}
}

func TestVersionCopyModeAndConfigChangesIgnored(t *testing.T) {
	r := newRig(t)
	e := r.engine(nil)
	cfg := versionTask("copy")
	cfg.Version.Mode = appsync.ModeCopy
	r.start(e, cfg)
	r.feed.Config("hx", "outpatient", map[string]any{"port": 8085})
	r.feed.Release("hx", "outpatient", "1.0", []byte("x"))
	s := waitCursor(t, e, "copy", 2)
	if got := ops(r.sink.Writes()); !slices.Equal(got, []string{"add-version outpatient 1.0"}) {
		t.Fatalf("writes: %q", got)
	}
	if s.Applied != 1 || s.Skipped != 0 {
		t.Fatalf("a config change is not a version task's to count: %+v", s)
	}
}

func TestConfigCopied(t *testing.T) {
	r := newRig(t)
	e := r.engine(nil)
	cfg := configTask("config")
	cfg.Config = appsync.ConfigPolicy{Apps: []string{"outpatient", "inpatient"}, Exclude: []string{"balancer"}}
	r.start(e, cfg)

	r.feed.Config("hx", "outpatient", map[string]any{
		"port": 8085, "env": map[string]any{"TZ": "Asia/Shanghai"}, "balancer": "lb-a",
	})
	waitCursor(t, e, "config", 1)
	if got := configOf(t, r.sink, "outpatient"); got["balancer"] != nil || got["port"] != 8085.0 {
		t.Fatalf("new app: %v", got)
	}

	// The target's own balancer stays through later changes.
	r.sink.SetConfig("hx-b", "outpatient", map[string]any{
		"port": 8085, "env": map[string]any{"TZ": "Asia/Shanghai"}, "balancer": "lb-b",
	})
	r.feed.Config("hx", "outpatient", map[string]any{
		"port": 8086, "env": map[string]any{"TZ": "Asia/Shanghai"}, "balancer": "lb-a",
	})
	r.feed.Config("hx", "settlement", map[string]any{"port": 1}) // not in the policy
	r.feed.Config("hx", "inpatient", map[string]any{"port": 9000})
	r.feed.Delete("hx", "inpatient")
	s := waitCursor(t, e, "config", 5)
	if got := configOf(t, r.sink, "outpatient"); got["balancer"] != "lb-b" || got["port"] != 8086.0 {
		t.Fatalf("outpatient: %v", got)
	}
	want := []string{"put-app-config outpatient", "put-app-config outpatient", "put-app-config inpatient", "delete-app inpatient"}
	if got := ops(r.sink.Writes()); !slices.Equal(got, want) {
		t.Fatalf("writes:\n got %q\nwant %q", got, want)
	}
	if s.Applied != 4 || s.Skipped != 1 {
		t.Fatalf("status: %+v", s)
	}

	// The same configuration again changes nothing.
	r.feed.Config("hx", "outpatient", map[string]any{
		"env": map[string]any{"TZ": "Asia/Shanghai"}, "port": 8086, "balancer": "lb-x",
	})
	s = waitCursor(t, e, "config", 6)
	if n := len(r.sink.Writes()); n != 4 || s.Skipped != 2 {
		t.Fatalf("%d writes, status %+v", n, s)
	}
}

// The Sink fails every few calls, before or after doing its write: every
// change is applied, in order, and no write happens twice.
func TestSinkFailingIntermittently(t *testing.T) {
	r := newRig(t)
	before, after := newFlaky(1, 0.3), newFlaky(2, 0.3)
	r.sink.SetFault(before.fault)
	r.sink.SetLostAck(after.fault)
	e := r.engine(nil)
	r.start(e, versionTask("versions"))
	r.start(e, configTask("config"))

	var wantVersions, wantConfigs []string
	for i := 1; i <= 12; i++ {
		v := fmt.Sprintf("2.%d", i)
		r.feed.Release("hx", "outpatient", v, []byte(v))
		r.feed.Config("hx", "outpatient", map[string]any{"rev": i})
		wantVersions = append(wantVersions, "add-version outpatient "+v, "release outpatient "+v)
		wantConfigs = append(wantConfigs, fmt.Sprintf(`{"rev":%d}`, i))
	}
	head := r.feed.Head()
	sv := waitCursor(t, e, "versions", head)
	sc := waitCursor(t, e, "config", head)

	var gotVersions, gotConfigs []string
	for _, w := range r.sink.Writes() {
		if w.Op == appsynctest.OpPutAppConfig {
			gotConfigs = append(gotConfigs, string(w.Config))
		} else {
			gotVersions = append(gotVersions, ops([]appsynctest.Write{w})...)
		}
	}
	if !slices.Equal(gotVersions, wantVersions) {
		t.Errorf("version writes:\n got %q\nwant %q", gotVersions, wantVersions)
	}
	if !slices.Equal(gotConfigs, wantConfigs) {
		t.Errorf("config writes:\n got %q\nwant %q", gotConfigs, wantConfigs)
	}
	if before.count() == 0 || after.count() == 0 {
		t.Fatalf("no fault injected: %d before, %d after", before.count(), after.count())
	}
	if sv.Applied+sv.Skipped != 12 || sc.Applied+sc.Skipped != 12 {
		t.Errorf("counts: versions %+v config %+v", sv, sc)
	}
	if sv.LastError != "" || sv.State != appsync.StateRunning {
		t.Errorf("after success the error is cleared: %+v", sv)
	}
}

// A process restart in the middle of a stream: the new engine on the same
// state store loses nothing and applies nothing twice.
func TestRestartMidStream(t *testing.T) {
	r := newRig(t)
	for i := 1; i <= 40; i++ {
		r.feed.Config("hx", fmt.Sprintf("app%d", i%5), map[string]any{"rev": i})
	}
	e1 := r.engine(nil)
	r.start(e1, configTask("config"))
	waitCursor(t, e1, "config", 15)
	if err := e1.Close(); err != nil {
		t.Fatal(err)
	}
	e2 := r.engine(nil)
	r.start(e2, configTask("config"))
	waitCursor(t, e2, "config", 40)

	var got []string
	for _, w := range r.sink.Writes() {
		got = append(got, w.App+string(w.Config))
	}
	var want []string
	for i := 1; i <= 40; i++ {
		want = append(want, fmt.Sprintf(`app%d{"rev":%d}`, i%5, i))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("writes:\n got %q\nwant %q", got, want)
	}
}

// A crash between applying a change and saving the cursor: the change is
// applied again, which changes nothing.
func TestCrashBetweenApplyAndSave(t *testing.T) {
	for _, kind := range []appsync.TaskKind{appsync.TaskKindVersion, appsync.TaskKindConfig} {
		t.Run(string(kind), func(t *testing.T) {
			r := newRig(t)
			// The save after the second change applied fails: the change
			// is on the target, the cursor is not past it.
			store := &flakyStore{fail: func(s appsync.State) bool { return s.Applied == 2 }}
			r.store = store
			for i := 1; i <= 3; i++ {
				r.feed.Release("hx", "outpatient", fmt.Sprintf("%d.0", i), []byte{byte(i)})
				r.feed.Config("hx", "outpatient", map[string]any{"rev": i})
			}
			e := r.engine(nil)
			r.start(e, appsync.TaskConfig{ID: "t", Kind: kind})
			s := waitCursor(t, e, "t", 6)
			if store.failed != 1 {
				t.Fatalf("the crash was not injected")
			}
			n := len(r.sink.Writes())
			if kind == appsync.TaskKindVersion && n != 6 || kind == appsync.TaskKindConfig && n != 3 {
				t.Fatalf("writes: %q", ops(r.sink.Writes()))
			}
			if s.Applied != 2 || s.Skipped != 1 {
				t.Fatalf("the change applied again must be a skip: %+v", s)
			}
		})
	}
}

func TestRejectedChanges(t *testing.T) {
	r := newRig(t)
	r.feed.Config("hx", "good", map[string]any{"n": 1})                                                                        // 1
	r.feed.Append(appsync.Change{Kind: appsync.KindConfig, Project: "hx", App: "Bad App", Config: json.RawMessage(`{}`)})      // 2: malformed
	r.feed.Append(appsync.Change{Kind: appsync.KindConfig, Project: "hx", App: "notobject", Config: json.RawMessage(`[1]`)})   // 3: malformed
	r.feed.Config("other", "outside", map[string]any{"n": 5})                                                                  // 4: outside the binding
	r.feed.Append(appsync.Change{Seq: 3, Kind: appsync.KindConfig, Project: "hx", App: "late", Config: json.RawMessage(`{}`)}) // out of order
	r.feed.Config("hx", "good2", map[string]any{"n": 6})                                                                       // 5
	// Started once the feed is complete, so that the task reads the change
	// out of order.
	e := r.engine(nil)
	r.start(e, configTask("config"))
	s := waitCursor(t, e, "config", 5)
	if got := ops(r.sink.Writes()); !slices.Equal(got, []string{"put-app-config good", "put-app-config good2"}) {
		t.Fatalf("writes: %q", got)
	}
	if s.Applied != 2 || s.Rejected != 4 {
		t.Fatalf("status: %+v", s)
	}
	if s.LastRejection == nil || s.LastRejection.Seq != 3 || !strings.Contains(s.LastRejection.Error, "does not follow") {
		t.Fatalf("last rejection: %+v", s.LastRejection)
	}
}

// A forged change (signed with another key) is not applied, and the task
// holds at it instead of reading past it: nothing after it is lost.
func TestForgedChangeHoldsTheTask(t *testing.T) {
	r := newRig(t)
	r.feed.Config("hx", "good", map[string]any{"n": 1}) // 1
	forged := appsync.Change{Kind: appsync.KindConfig, Project: "hx", App: "forged", Config: json.RawMessage(`{"n":2}`), Time: time.Now(), Seq: 2}
	appsync.Sign([]byte("another key of thirty-two bytes!!"), &forged)
	r.feed.Append(forged)                                // 2: another key
	r.feed.Config("hx", "good2", map[string]any{"n": 3}) // 3
	e := r.engine(nil)
	r.start(e, configTask("config"))
	s := waitFor2(t, e, "config", func(s appsync.Status) bool {
		return s.State == appsync.StateRetrying && s.Retries >= 2
	})
	if got := ops(r.sink.Writes()); !slices.Equal(got, []string{"put-app-config good"}) {
		t.Fatalf("writes: %q", got)
	}
	if s.Cursor != 1 || !strings.Contains(s.LastError, appsync.ErrForged.Error()) || !strings.Contains(s.LastError, "holds") {
		t.Fatalf("status: %+v", s)
	}
}

func TestOutsideBindingRejected(t *testing.T) {
	r := newRig(t)
	e := r.engine(nil)
	r.start(e, versionTask("versions"))
	r.feed.Release("team2-project", "outpatient", "1.0", []byte("x"))
	s := waitCursor(t, e, "versions", 1)
	if len(r.sink.Writes()) != 0 || r.sink.Calls(appsynctest.OpVersion) != 0 {
		t.Fatalf("the sink was used: %q", ops(r.sink.Writes()))
	}
	if s.Rejected != 1 || !strings.Contains(s.LastRejection.Error, appsync.ErrOutsideBinding.Error()) {
		t.Fatalf("status: %+v", s)
	}
}

// drifted returns a rig whose config task stopped at a drift: the target's
// outpatient was changed by hand after the task wrote it.
func drifted(t *testing.T) (*rig, *appsync.Engine, appsync.Conflict) {
	r := newRig(t)
	e := r.engine(nil)
	r.start(e, configTask("config"))
	r.feed.Config("hx", "outpatient", map[string]any{"port": 8085, "pool": map[string]any{"max": 10, "min": 1}})
	waitCursor(t, e, "config", 1)
	r.sink.SetConfig("hx-b", "outpatient", map[string]any{"port": 8085, "pool": map[string]any{"max": 50, "min": 1}, "debug": true})
	r.feed.Config("hx", "outpatient", map[string]any{"port": 8086, "pool": map[string]any{"max": 10, "min": 1}})
	s := waitState(t, e, "config", appsync.StateConflict)
	if len(s.Conflicts) != 1 {
		t.Fatalf("conflicts: %+v", s.Conflicts)
	}
	return r, e, s.Conflicts[0]
}

func TestDriftConflict(t *testing.T) {
	r, e, c := drifted(t)
	if c.ID != "config-2" || c.Seq != 2 || c.Reason != appsync.ReasonDrift || c.App != "outpatient" || c.Project != "hx-b" {
		t.Fatalf("conflict: %+v", c)
	}
	var diff []string
	for _, d := range c.Diff {
		diff = append(diff, fmt.Sprintf("%s %s→%s", d.Path, d.Source, d.Target))
	}
	want := []string{"debug →true", "pool.max 10→50", "port 8086→8085"}
	if !slices.Equal(diff, want) {
		t.Fatalf("diff:\n got %q\nwant %q", diff, want)
	}
	if got := configOf(t, r.sink, "outpatient"); got["debug"] != true || len(r.sink.Writes()) != 1 {
		t.Fatalf("the target was overwritten: %v", got)
	}
	s := status(t, e, "config")
	if s.Cursor != 1 || s.LagEvents != 1 {
		t.Fatalf("the task must stop at the change: %+v", s)
	}
	if err := e.Resolve(context.Background(), "config", "config-9", appsync.SourceWins); !errors.Is(err, appsync.ErrNotFound) {
		t.Fatalf("resolve an unknown conflict: %v", err)
	}
	if err := e.Resolve(context.Background(), "config", c.ID, "maybe"); !errors.Is(err, appsync.ErrInvalid) {
		t.Fatalf("resolve with a bad resolution: %v", err)
	}
}

func TestResolveSourceWins(t *testing.T) {
	r, e, c := drifted(t)
	if err := e.Resolve(context.Background(), "config", c.ID, appsync.SourceWins); err != nil {
		t.Fatal(err)
	}
	waitCursor(t, e, "config", 2)
	if got := configOf(t, r.sink, "outpatient"); got["port"] != 8086.0 || got["debug"] != nil {
		t.Fatalf("source did not win: %v", got)
	}
	r.feed.Config("hx", "outpatient", map[string]any{"port": 8087})
	s := waitCursor(t, e, "config", 3)
	if s.State != appsync.StateRunning || len(s.Conflicts) != 0 || s.Applied != 3 {
		t.Fatalf("status: %+v", s)
	}
}

func TestResolveKeepTarget(t *testing.T) {
	r, e, c := drifted(t)
	if err := e.Resolve(context.Background(), "config", c.ID, appsync.KeepTarget); err != nil {
		t.Fatal(err)
	}
	s := waitCursor(t, e, "config", 2)
	if got := configOf(t, r.sink, "outpatient"); got["debug"] != true || s.Skipped != 1 {
		t.Fatalf("target not kept: %v, status %+v", got, s)
	}
	// The target's configuration is the new baseline: the next change
	// applies without a conflict.
	r.feed.Config("hx", "outpatient", map[string]any{"port": 8087})
	s = waitCursor(t, e, "config", 3)
	if got := configOf(t, r.sink, "outpatient"); got["port"] != 8087.0 || s.State != appsync.StateRunning {
		t.Fatalf("after keep-target: %v, status %+v", got, s)
	}
}

func TestResolveStop(t *testing.T) {
	r, e, c := drifted(t)
	ctx := context.Background()
	if err := e.Resolve(ctx, "config", c.ID, appsync.Stop); err != nil {
		t.Fatal(err)
	}
	if s := status(t, e, "config"); s.State != appsync.StatePaused || len(s.Conflicts) != 0 {
		t.Fatalf("status: %+v", s)
	}
	// Resume checks the change again: the drift is still there.
	if err := e.Resume(ctx, "config"); err != nil {
		t.Fatal(err)
	}
	s := waitState(t, e, "config", appsync.StateConflict)
	if s.Conflicts[0].ID != c.ID {
		t.Fatalf("conflicts: %+v", s.Conflicts)
	}
	// The operator puts the target back by hand: Stop, Resume applies.
	r.sink.SetConfig("hx-b", "outpatient", map[string]any{"port": 8085, "pool": map[string]any{"max": 10, "min": 1}})
	if err := e.Resolve(ctx, "config", c.ID, appsync.Stop); err != nil {
		t.Fatal(err)
	}
	if err := e.Resume(ctx, "config"); err != nil {
		t.Fatal(err)
	}
	waitCursor(t, e, "config", 2)
	if got := configOf(t, r.sink, "outpatient"); got["port"] != 8086.0 {
		t.Fatalf("after resume: %v", got)
	}
}

func TestDriftOnAppsNeverWrittenAndDeleted(t *testing.T) {
	r := newRig(t)
	e := r.engine(nil)
	r.start(e, configTask("config"))
	// The target has the app, with a configuration the task never wrote.
	r.sink.SetConfig("hx-b", "outpatient", map[string]any{"port": 1})
	r.feed.Config("hx", "outpatient", map[string]any{"port": 2})
	s := waitState(t, e, "config", appsync.StateConflict)
	if err := e.Resolve(context.Background(), "config", s.Conflicts[0].ID, appsync.KeepTarget); err != nil {
		t.Fatal(err)
	}
	waitCursor(t, e, "config", 1)

	// A deletion of a drifted app is a conflict too.
	r.sink.SetConfig("hx-b", "outpatient", map[string]any{"port": 3})
	r.feed.Delete("hx", "outpatient")
	s = waitState(t, e, "config", appsync.StateConflict)
	if d := s.Conflicts[0].Diff; len(d) != 1 || d[0].Path != "port" || d[0].Source != nil || string(d[0].Target) != "3" {
		t.Fatalf("diff: %+v", d)
	}
	if err := e.Resolve(context.Background(), "config", s.Conflicts[0].ID, appsync.SourceWins); err != nil {
		t.Fatal(err)
	}
	waitCursor(t, e, "config", 2)
	if _, ok := r.sink.Config("hx-b", "outpatient"); ok {
		t.Fatal("the app was not deleted")
	}
}

func TestCenterSpecificFlagged(t *testing.T) {
	r := newRig(t)
	e := r.engine(nil)
	cfg := configTask("config")
	cfg.Config.SourceRanges = []string{"10.1.0.0/16", "fd00:a::/32"}
	r.start(e, cfg)
	r.feed.Config("hx", "outpatient", map[string]any{
		"redis":   "10.1.0.5:6379",
		"db":      map[string]any{"url": "jdbc:mysql://10.1.2.3:3306/yb?ssl=true"},
		"peers":   []any{"10.2.0.5", "[fd00:a::5]:80"},
		"dns":     "redis.dc1.example:6379",
		"version": "10.1.0",
	})
	s := waitState(t, e, "config", appsync.StateConflict)
	c := s.Conflicts[0]
	var got []string
	for _, f := range c.Flagged {
		got = append(got, f.Path+"="+f.Value)
	}
	want := []string{"db.url=jdbc:mysql://10.1.2.3:3306/yb?ssl=true", "peers[1]=[fd00:a::5]:80", "redis=10.1.0.5:6379"}
	if c.Reason != appsync.ReasonCenterSpecific || !slices.Equal(got, want) {
		t.Fatalf("conflict %s, flagged:\n got %q\nwant %q", c.Reason, got, want)
	}
	if len(r.sink.Writes()) != 0 {
		t.Fatal("a center-specific value was copied")
	}
	if err := e.Resolve(context.Background(), "config", c.ID, appsync.SourceWins); err != nil {
		t.Fatal(err)
	}
	waitCursor(t, e, "config", 1)
	if got := configOf(t, r.sink, "outpatient"); got["redis"] != "10.1.0.5:6379" {
		t.Fatalf("after source-wins: %v", got)
	}
}

func TestArtifactDigestMismatch(t *testing.T) {
	r := newRig(t)
	e := r.engine(nil)
	r.feed.Release("hx", "outpatient", "1.0", []byte("the real artifact"))
	r.feed.SetArtifact("hx", "outpatient", "1.0", []byte("the real artifacT"))
	r.start(e, versionTask("versions"))
	s := waitFor2(t, e, "versions", func(s appsync.Status) bool { return s.Retries >= 2 })
	if s.State != appsync.StateRetrying || !strings.Contains(s.LastError, "copy the artifact") {
		t.Fatalf("status: %+v", s)
	}
	if v := r.sink.Versions("hx-b", "outpatient"); len(v) != 0 {
		t.Fatalf("a corrupt artifact was kept: %v", v)
	}
	r.feed.SetArtifact("hx", "outpatient", "1.0", []byte("the real artifact"))
	s = waitCursor(t, e, "versions", 1)
	if v := r.sink.Versions("hx-b", "outpatient")["1.0"]; string(v.Content) != "the real artifact" || s.Applied != 1 {
		t.Fatalf("version %+v, status %+v", v, s)
	}
	if n := r.sink.Calls(appsynctest.OpAddVersion); n < 3 {
		t.Fatalf("%d AddVersion calls, want the failed ones and the good one", n)
	}
}

// A release with piece sums is copied checked by them; an empty artifact
// has none and is checked by its digest.
func TestReleaseCheckedByPieces(t *testing.T) {
	r := newRig(t)
	r.feed.SetPieceSize(appsync.MinPieceSize)
	e := r.engine(nil)
	r.start(e, versionTask("versions"))
	content := bytes.Repeat([]byte("outpatient "), 1000) // 11000 bytes: 3 pieces, the last short
	r.feed.Release("hx", "outpatient", "1.0", content)
	r.feed.Release("hx", "outpatient", "1.1", nil)
	s := waitCursor(t, e, "versions", 2)
	vs := r.sink.Versions("hx-b", "outpatient")
	if v := vs["1.0"]; !bytes.Equal(v.Content, content) || v.PieceSize != appsync.MinPieceSize || len(v.Pieces) != 3*64 || v.Pieces != appsynctest.PieceSums(content, appsync.MinPieceSize) {
		t.Fatalf("version 1.0 stored as %d bytes checked by pieces of %d: %q", len(v.Content), v.PieceSize, v.Pieces)
	}
	if v, ok := vs["1.1"]; !ok || v.PieceSize != 0 || v.Pieces != "" || len(v.Content) != 0 {
		t.Fatalf("version 1.1 stored as %+v, %v", v, ok)
	}
	if s.Applied != 2 || s.Rejected != 0 {
		t.Fatalf("status: %+v", s)
	}
}

// An artifact with a piece unlike its sum is not kept, and the task retries
// as for a digest mismatch: whether the source serves other bytes of the
// same size, or the signed change has the sums of other content (its digest
// that of the bytes served, which the pieces path does not read).
func TestArtifactPieceMismatch(t *testing.T) {
	content := bytes.Repeat([]byte("the real artifact "), 500) // 9000 bytes: 3 pieces
	other := bytes.Clone(content)
	other[5000] ^= 1 // in piece 1
	for name, tc := range map[string]struct {
		release func(f *appsynctest.Feed)
		fix     func(f *appsynctest.Feed) // nil: the change stays wrong
	}{
		"bytes": {
			release: func(f *appsynctest.Feed) {
				f.Release("hx", "outpatient", "1.0", content)
				f.SetArtifact("hx", "outpatient", "1.0", other)
			},
			fix: func(f *appsynctest.Feed) { f.SetArtifact("hx", "outpatient", "1.0", content) },
		},
		"sums": {
			release: func(f *appsynctest.Feed) {
				c := appsynctest.NewFeed().Release("hx", "outpatient", "1.0", content)
				c.Seq, c.PieceSize, c.Pieces = 0, 4096, appsynctest.PieceSums(other, 4096)
				f.SetArtifact("hx", "outpatient", "1.0", content)
				f.Append(c)
			},
		},
	} {
		t.Run(name, func(t *testing.T) {
			r := newRig(t)
			r.feed.SetPieceSize(4096)
			tc.release(r.feed)
			e := r.engine(nil)
			cfg := versionTask("versions")
			cfg.Version.Mode = appsync.ModeCopy
			r.start(e, cfg)
			s := waitFor2(t, e, "versions", func(s appsync.Status) bool { return s.Retries >= 2 })
			if s.State != appsync.StateRetrying || s.Cursor != 0 || !strings.Contains(s.LastError, "copy the artifact") || !strings.Contains(s.LastError, "piece 1 ") {
				t.Fatalf("status: %+v", s)
			}
			if v := r.sink.Versions("hx-b", "outpatient"); len(v) != 0 {
				t.Fatalf("an artifact unlike its pieces was kept: %v", v)
			}
			if n := r.sink.Calls(appsynctest.OpAddVersion); n < 2 {
				t.Fatalf("%d AddVersion calls, want the retries", n)
			}
			if tc.fix == nil {
				return
			}
			tc.fix(r.feed)
			s = waitCursor(t, e, "versions", 1)
			if v := r.sink.Versions("hx-b", "outpatient")["1.0"]; !bytes.Equal(v.Content, content) || v.Pieces == "" || s.Applied != 1 {
				t.Fatalf("version %+v, status %+v", v, s)
			}
		})
	}
}

func TestVersionWithAnotherDigest(t *testing.T) {
	r := newRig(t)
	e := r.engine(nil)
	other := appsynctest.NewFeed()
	other.Release("hx-b", "outpatient", "1.0", []byte("built in B"))
	// The target got its own 1.0 first.
	if err := r.sink.AddVersion(context.Background(), "hx-b", "outpatient", "1.0", "", appsync.Artifact{Digest: mustChange(other, 1).Digest, Size: 10}, strings.NewReader("built in B")); err != nil {
		t.Fatal(err)
	}
	r.feed.Release("hx", "outpatient", "1.0", []byte("built in A"))
	r.start(e, versionTask("versions"))
	s := waitState(t, e, "versions", appsync.StateConflict)
	c := s.Conflicts[0]
	if c.Reason != appsync.ReasonDigest || c.Version != "1.0" || len(c.Diff) != 1 || c.Diff[0].Path != "digest" {
		t.Fatalf("conflict: %+v", c)
	}
	if err := e.Resolve(context.Background(), "versions", c.ID, appsync.SourceWins); !errors.Is(err, appsync.ErrState) {
		t.Fatalf("source-wins over an immutable version: %v", err)
	}
	if err := e.Resolve(context.Background(), "versions", c.ID, appsync.KeepTarget); err != nil {
		t.Fatal(err)
	}
	s = waitCursor(t, e, "versions", 1)
	if v := r.sink.Versions("hx-b", "outpatient")["1.0"]; string(v.Content) != "built in B" || s.Skipped != 1 {
		t.Fatalf("version %+v, status %+v", v, s)
	}
}

func mustChange(f *appsynctest.Feed, seq int64) appsync.Change {
	p, err := f.Changes(context.Background(), seq-1, 1, 0)
	if err != nil || len(p.Changes) != 1 {
		panic(fmt.Sprint("no change ", seq, err))
	}
	return p.Changes[0]
}

func waitFor2(t *testing.T, e *appsync.Engine, id string, cond func(appsync.Status) bool) appsync.Status {
	t.Helper()
	var s appsync.Status
	waitFor(t, "task "+id+" status", func() bool {
		s = status(t, e, id)
		return cond(s)
	})
	return s
}

func TestPauseResumeResync(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	e := r.engine(nil)
	r.start(e, versionTask("versions"))
	r.start(e, configTask("config"))
	for i := 1; i <= 3; i++ {
		r.feed.Release("hx", "outpatient", fmt.Sprintf("1.%d", i), []byte(fmt.Sprint(i)))
		r.feed.Config("hx", "outpatient", map[string]any{"rev": i})
		r.feed.Config("hx", "inpatient", map[string]any{"rev": i})
	}
	waitCursor(t, e, "versions", 9)
	waitCursor(t, e, "config", 9)

	if err := e.Pause(ctx, "config"); err != nil {
		t.Fatal(err)
	}
	if s := status(t, e, "config"); s.State != appsync.StatePaused {
		t.Fatalf("status: %+v", s)
	}
	// Paused survives a restart.
	if err := e.Stop("config"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Status("config"); !errors.Is(err, appsync.ErrNotFound) {
		t.Fatalf("status of a stopped task: %v", err)
	}
	r.start(e, configTask("config"))
	if s := status(t, e, "config"); s.State != appsync.StatePaused || s.Cursor != 9 {
		t.Fatalf("after restart: %+v", s)
	}
	r.feed.Config("hx", "outpatient", map[string]any{"rev": 4})
	if err := e.Resume(ctx, "config"); err != nil {
		t.Fatal(err)
	}
	waitCursor(t, e, "config", 10)
	if got := configOf(t, r.sink, "outpatient"); got["rev"] != 4.0 {
		t.Fatalf("after resume: %v", got)
	}

	// A full resync applies everything again: what the target has is
	// skipped, what it lost is written again, old configurations and
	// releases are not replayed.
	writes := len(r.sink.Writes())
	if err := r.sink.DeleteApp(ctx, "hx-b", "inpatient"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"versions", "config"} {
		if err := e.Resync(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	sv := waitCursor(t, e, "versions", 10)
	sc := waitCursor(t, e, "config", 10)
	got := ops(r.sink.Writes()[writes:])
	if !slices.Equal(got, []string{"delete-app inpatient", "put-app-config inpatient"}) {
		t.Fatalf("writes of the resync: %q", got)
	}
	if got := configOf(t, r.sink, "inpatient"); got["rev"] != 3.0 {
		t.Fatalf("inpatient after resync: %v", got)
	}
	if sv.Skipped != 3 || sc.Applied != 8 {
		t.Fatalf("versions %+v\nconfig %+v", sv, sc)
	}
	if cur, _ := r.sink.Released("hx-b", "outpatient"); cur != "1.3" {
		t.Fatalf("current version %s", cur)
	}
	for _, op := range []func(context.Context, string) error{e.Pause, e.Resume, e.Resync} {
		if err := op(ctx, "nope"); !errors.Is(err, appsync.ErrNotFound) {
			t.Fatalf("unknown task: %v", err)
		}
	}
}

func TestStatusLag(t *testing.T) {
	r := newRig(t)
	t0 := time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)
	clock := t0
	r.feed.SetNow(func() time.Time { clock = clock.Add(time.Second); return clock })
	r.feed.Config("hx", "a", map[string]any{"n": 1}) // t0+1s
	r.feed.Config("hx", "b", map[string]any{"n": 2}) // t0+2s
	r.feed.Config("hx", "c", map[string]any{"n": 3}) // t0+3s
	now := t0.Add(time.Minute)
	down := errors.New("target down")
	r.sink.SetFault(func(op string) error {
		if op == appsynctest.OpPutAppConfig {
			return down
		}
		return nil
	})
	e := r.engine(func() time.Time { return now })
	r.start(e, configTask("config"))
	s := waitFor2(t, e, "config", func(s appsync.Status) bool { return s.Retries > 0 && s.Head == 3 })
	if s.State != appsync.StateRetrying || s.LagEvents != 3 || s.LagSeconds != 59 || !strings.Contains(s.LastError, "target down") {
		t.Fatalf("status: %+v", s)
	}
	r.sink.SetFault(nil)
	s = waitCursor(t, e, "config", 3)
	if s.LagEvents != 0 || s.LagSeconds != 0 || s.LastError != "" {
		t.Fatalf("caught up: %+v", s)
	}
}

func TestStartErrors(t *testing.T) {
	r := newRig(t)
	e := r.engine(nil)
	ctx := context.Background()
	with := appsync.TaskOptions{Source: r.feed.Source(testKey), ProjectMap: appsync.BindProject("hx", "hx")}
	if err := e.Start(ctx, appsync.TaskConfig{ID: "x", Kind: "both"}, with); !errors.Is(err, appsync.ErrInvalid) {
		t.Fatalf("bad config: %v", err)
	}
	if err := e.Start(ctx, versionTask("x"), appsync.TaskOptions{}); !errors.Is(err, appsync.ErrInvalid) {
		t.Fatalf("no source: %v", err)
	}
	if err := e.Start(ctx, versionTask("x"), with); err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx, versionTask("x"), with); !errors.Is(err, appsync.ErrExists) {
		t.Fatalf("twice: %v", err)
	}
	if got := e.Statuses(); len(got) != 1 || got[0].Task != "x" {
		t.Fatalf("statuses: %+v", got)
	}
	_ = e.Close()
	if err := e.Start(ctx, versionTask("y"), with); !errors.Is(err, appsync.ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
	for _, o := range []appsync.Options{
		{StateStore: r.store, Key: testKey},
		{Sink: r.sink, Key: testKey},
		{Sink: r.sink, StateStore: r.store, Key: []byte("short")},
	} {
		if _, err := appsync.New(o); !errors.Is(err, appsync.ErrInvalid) {
			t.Fatalf("New(%+v): %v", o, err)
		}
	}
}

// stuckSource ignores the cursor and always returns its first change.
type stuckSource struct{ *appsynctest.Source }

func (s stuckSource) Changes(ctx context.Context, _ int64, limit int, wait time.Duration) (appsync.Page, error) {
	return s.Source.Changes(ctx, 0, limit, wait)
}

// A source that returns only changes at or before the cursor is an error,
// retried with backoff, not a loop that counts rejections as fast as it can.
func TestSourceIgnoringTheCursor(t *testing.T) {
	r := newRig(t)
	r.feed.Config("hx", "a", map[string]any{"n": 1})
	e := r.engine(nil)
	cfg := configTask("config")
	cfg.RetryMin, cfg.RetryMax = appsync.Duration(time.Millisecond), appsync.Duration(time.Millisecond)
	if err := e.Start(context.Background(), cfg, appsync.TaskOptions{Source: stuckSource{r.feed.Source(testKey)}, ProjectMap: appsync.BindProject("hx", "hx-b")}); err != nil {
		t.Fatal(err)
	}
	s := waitFor2(t, e, "config", func(s appsync.Status) bool { return s.Retries >= 3 })
	if s.Cursor != 1 || s.Applied != 1 || !strings.Contains(s.LastError, "no change after the cursor 1") {
		t.Fatalf("status: %+v", s)
	}
	if s.Rejected > int64(s.Retries)+1 {
		t.Fatalf("%d rejections for %d retries", s.Rejected, s.Retries)
	}
}

// sparseSource spreads the feed's seqs ten apart, as a source whose seqs are
// shared with changes outside the feed does, and counts what is pending.
type sparseSource struct {
	appsync.Source
	key []byte
}

func (s sparseSource) Changes(ctx context.Context, after int64, limit int, wait time.Duration) (appsync.Page, error) {
	page, err := s.Source.Changes(ctx, after/10, limit, wait)
	if err != nil {
		return page, err
	}
	pending := int64(len(page.Changes))
	page.Pending = &pending
	page.Head *= 10
	for i := range page.Changes {
		page.Changes[i].Seq *= 10
		appsync.Sign(s.key, &page.Changes[i])
	}
	return page, nil
}

// Lag in events counts the changes the source says are pending, not the
// distance between seqs.
func TestStatusLagCountsPending(t *testing.T) {
	r := newRig(t)
	r.feed.Config("hx", "a", map[string]any{"n": 1})
	r.feed.Config("hx", "b", map[string]any{"n": 2})
	r.feed.Config("hx", "c", map[string]any{"n": 3})
	down := errors.New("target down")
	r.sink.SetFault(func(op string) error {
		if op == appsynctest.OpPutAppConfig {
			return down
		}
		return nil
	})
	e := r.engine(nil)
	cfg := configTask("config")
	cfg.RetryMin, cfg.RetryMax = appsync.Duration(time.Millisecond), appsync.Duration(5*time.Millisecond)
	if err := e.Start(context.Background(), cfg, appsync.TaskOptions{
		Source:     sparseSource{r.feed.Source(testKey), testKey},
		ProjectMap: appsync.BindProject("hx", "hx-b"),
	}); err != nil {
		t.Fatal(err)
	}
	s := waitFor2(t, e, "config", func(s appsync.Status) bool { return s.Retries > 0 && s.Head == 30 })
	if s.LagEvents != 3 {
		t.Fatalf("lag with three changes pending at seqs 10, 20, 30: %d events, want 3 (%+v)", s.LagEvents, s)
	}
	r.sink.SetFault(nil)
	s = waitCursor(t, e, "config", 30)
	if s.LagEvents != 0 {
		t.Fatalf("caught up: %+v", s)
	}
}

// A task's first retries in a row are logged at Info — a change may wait for another task's —
// and only a longer run at Warn.
func TestRetriesLoggedAtWarnOnlyWhenTheyGoOn(t *testing.T) {
	r := newRig(t)
	r.feed.Release("hx", "outpatient", "1.0", []byte("artifact"))
	r.feed.SetArtifact("hx", "outpatient", "1.0", []byte("another artifact")) // never verifies
	var logs testlog.Buffer
	e, err := appsync.New(appsync.Options{Sink: r.sink, StateStore: r.store, Key: testKey,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	cfg := versionTask("versions")
	cfg.Version.Mode = appsync.ModeCopy
	r.start(e, cfg)
	waitFor2(t, e, "versions", func(s appsync.Status) bool { return s.Retries >= 6 })
	levels := map[string]int{}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `msg="attempt failed; retrying"`) {
			for _, l := range []string{"INFO", "WARN"} {
				if strings.Contains(line, "level="+l) && strings.Contains(line, "retries=") {
					levels[l]++
				}
			}
			if strings.HasSuffix(line, "retries=3") && !strings.Contains(line, "level=INFO") ||
				strings.HasSuffix(line, "retries=4") && !strings.Contains(line, "level=WARN") {
				t.Fatalf("retry 3 is Info and 4 Warn, got: %s", line)
			}
		}
	}
	if levels["INFO"] != 3 || levels["WARN"] < 2 {
		t.Fatalf("retries logged %v, want 3 at Info and the rest at Warn:\n%s", levels, logs.String())
	}
}
