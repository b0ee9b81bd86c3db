package appsync_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/shuanghuo/shuanghuo/appsync"
	"github.com/shuanghuo/shuanghuo/appsync/appsynctest"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

// rig is a source feed, a target sink and a state store; engines come and
// go on them as processes would.
type rig struct {
	t     *testing.T
	feed  *appsynctest.Feed
	sink  *appsynctest.Sink
	store appsync.StateStore
}

func newRig(t *testing.T) *rig {
	return &rig{t: t, feed: appsynctest.NewFeed(), sink: appsynctest.NewSink(), store: &appsync.MemoryStateStore{}}
}

// engine returns a new Engine on the rig, closed when the test ends.
func (r *rig) engine(now func() time.Time) *appsync.Engine {
	r.t.Helper()
	e, err := appsync.New(appsync.Options{Sink: r.sink, StateStore: r.store, Key: testKey, Now: now})
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { _ = e.Close() })
	return e
}

// start starts a task of the binding hx → hx-b with fast retries.
func (r *rig) start(e *appsync.Engine, cfg appsync.TaskConfig) {
	r.t.Helper()
	if cfg.RetryMin == 0 {
		cfg.RetryMin, cfg.RetryMax = appsync.Duration(time.Millisecond), appsync.Duration(5*time.Millisecond)
	}
	err := e.Start(context.Background(), cfg, appsync.TaskOptions{
		Source:     r.feed.Source(testKey),
		ProjectMap: appsync.BindProject("hx", "hx-b"),
	})
	if err != nil {
		r.t.Fatal(err)
	}
}

func versionTask(id string) appsync.TaskConfig {
	return appsync.TaskConfig{ID: id, Kind: appsync.TaskKindVersion}
}

func configTask(id string) appsync.TaskConfig {
	return appsync.TaskConfig{ID: id, Kind: appsync.TaskKindConfig}
}

// waitFor polls cond until it holds; the deadline is far beyond any normal
// run, only there to end a hung test.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func status(t *testing.T, e *appsync.Engine, id string) appsync.Status {
	t.Helper()
	s, err := e.Status(id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// waitCursor waits until the task is done with seq.
func waitCursor(t *testing.T, e *appsync.Engine, id string, seq int64) appsync.Status {
	t.Helper()
	var s appsync.Status
	waitFor(t, fmt.Sprintf("task %s at seq %d", id, seq), func() bool {
		s = status(t, e, id)
		return s.Cursor >= seq
	})
	return s
}

// waitState waits until the task is in state.
func waitState(t *testing.T, e *appsync.Engine, id string, state appsync.TaskState) appsync.Status {
	t.Helper()
	var s appsync.Status
	waitFor(t, fmt.Sprintf("task %s %s", id, state), func() bool {
		s = status(t, e, id)
		return s.State == state
	})
	return s
}

// configOf decodes the sink's configuration of an app of hx-b.
func configOf(t *testing.T, s *appsynctest.Sink, app string) map[string]any {
	t.Helper()
	raw, ok := s.Config("hx-b", app)
	if !ok {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// ops lists the writes as "op app version" strings.
func ops(ws []appsynctest.Write) []string {
	out := make([]string, 0, len(ws))
	for _, w := range ws {
		s := w.Op + " " + w.App
		if w.Version != "" {
			s += " " + w.Version
		}
		if w.Nodes != nil {
			s += fmt.Sprint(" ", w.Nodes)
		}
		out = append(out, s)
	}
	return out
}

// flaky fails calls at random, with probability p, from a fixed seed.
type flaky struct {
	mu    sync.Mutex
	rng   *rand.Rand
	p     float64
	fails int
}

func newFlaky(seed uint64, p float64) *flaky {
	return &flaky{rng: rand.New(rand.NewPCG(seed, seed)), p: p}
}

func (f *flaky) fault(string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rng.Float64() < f.p {
		f.fails++
		return fmt.Errorf("injected failure %d", f.fails)
	}
	return nil
}

func (f *flaky) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fails
}

// flakyStore fails the Save after which fail returns true, once per state
// it matches.
type flakyStore struct {
	appsync.MemoryStateStore
	mu     sync.Mutex
	fail   func(appsync.State) bool
	failed int
}

func (s *flakyStore) Save(ctx context.Context, id string, st appsync.State) error {
	s.mu.Lock()
	f := s.fail != nil && s.fail(st)
	if f {
		s.failed++
		s.fail = nil
	}
	s.mu.Unlock()
	if f {
		return fmt.Errorf("injected crash before saving cursor %d", st.Cursor)
	}
	return s.MemoryStateStore.Save(ctx, id, st)
}
