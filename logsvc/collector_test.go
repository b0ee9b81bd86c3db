package logsvc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
)

// memSink keeps what it was shipped; fail, when set, decides per call whether to refuse.
type memSink struct {
	mu    sync.Mutex
	recs  []Record
	calls int
	fail  func(call int, recs []Record) error
}

func (s *memSink) Ship(ctx context.Context, recs []Record) error {
	s.mu.Lock()
	s.calls++
	call, fail := s.calls, s.fail
	s.mu.Unlock()
	if fail != nil {
		if err := fail(call, recs); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs = append(s.recs, recs...)
	return nil
}

func (s *memSink) records() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Record(nil), s.recs...)
}

// lineCounts counts how often each line text was shipped.
func (s *memSink) lineCounts() map[string]int {
	m := map[string]int{}
	for _, r := range s.records() {
		m[r.Line]++
	}
	return m
}

// waitLines waits until every one of want was shipped, then a little longer for stray
// duplicates, and checks each was shipped once with an ID of its own.
func (s *memSink) waitLines(t *testing.T, want []string) {
	t.Helper()
	s.waitSome(t, want)
	time.Sleep(100 * time.Millisecond)
	counts := s.lineCounts()
	for _, l := range want {
		require.Equal(t, 1, counts[l], "line %q shipped %d times", l, counts[l])
	}
	require.Len(t, counts, len(want), "shipped lines that were not written")
	ids := map[string]string{}
	for _, r := range s.records() {
		prev, dup := ids[r.ID()]
		require.False(t, dup, "ID %s shipped for %q and %q", r.ID(), prev, r.Line)
		ids[r.ID()] = r.Line
	}
}

// waitSome waits until every one of want was shipped at least once.
func (s *memSink) waitSome(t *testing.T, want []string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		counts := s.lineCounts()
		missing := 0
		for _, l := range want {
			if counts[l] == 0 {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d lines not shipped", missing, len(want))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testConfig(dir string, paths ...string) Config {
	return Config{
		Sources:        []Source{{Paths: paths, Labels: map[string]string{"app": "bizc"}}},
		Labels:         map[string]string{"center": "a", "host": "n1"},
		CheckpointPath: filepath.Join(dir, "checkpoint.json"),
		PollInterval:   Duration(10 * time.Millisecond),
		CloseInactive:  Duration(300 * time.Millisecond),
		RetryMin:       Duration(5 * time.Millisecond),
		RetryMax:       Duration(20 * time.Millisecond),
	}
}

func startCollector(t *testing.T, cfg Config, sink Sink) *Collector {
	t.Helper()
	c, err := New(cfg, sink)
	require.NoError(t, err)
	require.NoError(t, c.Start(t.Context()))
	t.Cleanup(func() { require.NoError(t, c.Close(context.Background())) })
	return c
}

// lines returns n distinct lines, long enough that a few fill a fingerprint.
func lines(prefix string, from, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s line %06d %s", prefix, from+i, strings.Repeat("x", 30))
	}
	return out
}

func writeLines(t *testing.T, f *os.File, ls []string) {
	t.Helper()
	_, err := f.WriteString(strings.Join(ls, "\n") + "\n")
	require.NoError(t, err)
}

func appendLines(t *testing.T, path string, ls []string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	require.NoError(t, err)
	writeLines(t, f, ls)
	require.NoError(t, f.Close())
}

func TestRotateByRename(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "app.log")
	sink := &memSink{}
	startCollector(t, testConfig(dir, log), sink)
	w, err := os.Create(log)
	require.NoError(t, err)
	a := lines("a", 0, 100)
	writeLines(t, w, a)
	sink.waitSome(t, a[:1])
	require.NoError(t, os.Rename(log, log+".1"))
	b := lines("b", 0, 50) // written by the app before it reopens its log
	writeLines(t, w, b)
	require.NoError(t, w.Close())
	c := lines("c", 0, 100)
	appendLines(t, log, c)
	sink.waitLines(t, append(append(a, b...), c...))
	for _, r := range sink.records() {
		require.Equal(t, map[string]string{"center": "a", "host": "n1", "app": "bizc", "file": log}, r.Labels)
	}
}

// copytruncate where a glob matches the copy: the lines not read before the truncation are
// read from the copy, and the copy is not read again. A file shorter than the fingerprint is
// matched with its copy by the bytes read.
func TestRotateByCopytruncate(t *testing.T) {
	for _, n := range []int{100, 4} {
		for _, readFirst := range []bool{true, false} {
			t.Run(fmt.Sprintf("lines=%d/read_first=%v", n, readFirst), func(t *testing.T) {
				dir := t.TempDir()
				log := filepath.Join(dir, "app.log")
				sink := &memSink{}
				a := lines("a", 0, n)
				appendLines(t, log, a[:n/2])
				startCollector(t, testConfig(dir, log+"*"), sink)
				sink.waitSome(t, a[:n/2])
				appendLines(t, log, a[n/2:])
				if readFirst {
					sink.waitSome(t, a)
				}
				require.NoError(t, exec.Command("cp", log, log+".1").Run())
				require.NoError(t, os.Truncate(log, 0))
				b := lines("b", 0, n+n/2) // more than was there: only the content tells
				appendLines(t, log, b)
				sink.waitLines(t, append(a, b...))
			})
		}
	}
}

// copytruncate where no glob matches the copy: what was read before the truncation is all
// there is; the file is read again from its start, long or shorter than the fingerprint.
func TestCopytruncateWithoutCopy(t *testing.T) {
	for _, n := range []int{3, 100} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			dir := t.TempDir()
			log := filepath.Join(dir, "app.log")
			sink := &memSink{}
			startCollector(t, testConfig(dir, log), sink)
			a := lines("a", 0, n)
			appendLines(t, log, a)
			sink.waitSome(t, a)
			require.NoError(t, os.Truncate(log, 0))
			b := lines("b", 0, n+1)
			appendLines(t, log, b)
			sink.waitLines(t, append(a, b...))
		})
	}
}

func TestRotatedFileGzipped(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "app.log")
	sink := &memSink{}
	startCollector(t, testConfig(dir, log+"*"), sink)
	a := lines("a", 0, 100)
	appendLines(t, log, a)
	sink.waitSome(t, a)
	require.NoError(t, os.Rename(log, log+".1"))
	b := lines("b", 0, 100)
	appendLines(t, log, b)
	require.NoError(t, exec.Command("gzip", log+".1").Run())
	_, err := os.Stat(log + ".1.gz")
	require.NoError(t, err)
	sink.waitLines(t, append(a, b...))
}

func TestDeletedWhileOpen(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "app.log")
	sink := &memSink{}
	startCollector(t, testConfig(dir, log), sink)
	w, err := os.Create(log)
	require.NoError(t, err)
	a := lines("a", 0, 100)
	writeLines(t, w, a)
	sink.waitSome(t, a[:1])
	require.NoError(t, os.Remove(log))
	b := lines("b", 0, 100)
	writeLines(t, w, b)
	_, err = w.WriteString("no newline at the end")
	require.NoError(t, err)
	require.NoError(t, w.Close())
	// The last line, never ended, is shipped when the file is closed.
	sink.waitLines(t, append(append(a, b...), "no newline at the end"))
	// Closed and forgotten: the checkpoint no longer names the file.
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "checkpoint.json"))
		return err == nil && strings.Contains(string(b), `"files":[]`)
	}, 5*time.Second, 10*time.Millisecond)
}

func TestReplacedUnderSameName(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "app.log")
	sink := &memSink{}
	startCollector(t, testConfig(dir, log), sink)
	a := lines("a", 0, 100)
	appendLines(t, log, a[:10])
	sink.waitSome(t, a[:1])
	appendLines(t, log, a[10:]) // unread when the file is replaced
	b := lines("b", 0, 100)
	appendLines(t, log+".new", b)
	require.NoError(t, os.Rename(log+".new", log))
	sink.waitLines(t, append(a, b...))
}

// A file shorter than the fingerprint is read by path and inode, gets its fingerprint once
// long enough, and a restart in between neither loses nor repeats a line.
func TestShortFile(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "app.log")
	sink := &memSink{}
	cfg := testConfig(dir, log)
	c, err := New(cfg, sink)
	require.NoError(t, err)
	require.NoError(t, c.Start(t.Context()))
	a := lines("a", 0, 3)
	appendLines(t, log, a)
	sink.waitSome(t, a)
	require.True(t, strings.HasPrefix(sink.records()[0].Source, "i-"), sink.records()[0].Source)
	require.NoError(t, c.Close(t.Context()))

	startCollector(t, cfg, sink)
	b := lines("b", 0, 100)
	appendLines(t, log, b)
	all := append(a, b...)
	sink.waitLines(t, all)
	recs := sink.records()
	require.False(t, strings.HasPrefix(recs[len(recs)-1].Source, "i-"), "a long file is known by its fingerprint")
}

// Rotation faster than the polls: by rename to a new name each time, and logrotate's way,
// shifting app.log.1 to app.log.2 and so on, with files longer and shorter than the
// fingerprint.
func TestFastChurn(t *testing.T) {
	for _, c := range []struct {
		name  string
		lines int
		shift bool
	}{{"rename", 50, false}, {"shift", 50, true}, {"shift-short", 10, true}} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			log := filepath.Join(dir, "app.log")
			sink := &memSink{}
			startCollector(t, testConfig(dir, log+"*"), sink)
			var all []string
			for k := range 40 {
				ls := lines("churn", k*c.lines, c.lines)
				appendLines(t, log, ls)
				all = append(all, ls...)
				if !c.shift {
					require.NoError(t, os.Rename(log, fmt.Sprintf("%s.%d", log, k)))
					continue
				}
				for i := k; i >= 1; i-- {
					require.NoError(t, os.Rename(fmt.Sprintf("%s.%d", log, i), fmt.Sprintf("%s.%d", log, i+1)))
				}
				require.NoError(t, os.Rename(log, log+".1"))
			}
			sink.waitLines(t, all)
		})
	}
}

func TestMultiline(t *testing.T) {
	trace := []string{
		"2026-12-07 22:00:01 ERROR settle failed",
		"java.lang.IllegalStateException: bad claim",
		"\tat cn.yb.Settle.run(Settle.java:42)",
		"\tat cn.yb.Main.main(Main.java:7)",
		"Caused by: java.io.IOException: reset",
		"\t... 2 more",
	}
	in := append([]string{"2026-12-07 22:00:00 INFO start"}, trace...)
	in = append(in, "2026-12-07 22:00:02 INFO last")
	for name, ml := range map[string]*Multiline{
		"date":         {Start: `^\d{4}-\d{2}-\d{2}`},
		"non-space":    {Start: `^\S`, Continue: `^(Caused by:|java\.)`},
		"flush-by-tmo": {Start: `^\d{4}-`, Timeout: Duration(20 * time.Millisecond)},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			log := filepath.Join(dir, "app.log")
			cfg := testConfig(dir, log)
			cfg.Sources[0].Multiline = ml
			sink := &memSink{}
			startCollector(t, cfg, sink)
			appendLines(t, log, in)
			// The last record has no line after it: the timeout ships it.
			sink.waitLines(t, []string{in[0], strings.Join(trace, "\n"), in[len(in)-1]})
		})
	}
}

func TestIncludeExclude(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "app.log")
	cfg := testConfig(dir, log)
	cfg.Sources[0].Include = []string{"ERROR", "WARN"}
	cfg.Sources[0].Exclude = []string{"healthz"}
	sink := &memSink{}
	startCollector(t, cfg, sink)
	appendLines(t, log, []string{"INFO a", "ERROR b", "WARN healthz c", "WARN d"})
	sink.waitLines(t, []string{"ERROR b", "WARN d"})
}

func TestLongLinesTruncatedNotSplit(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "app.log")
	cfg := testConfig(dir, log)
	cfg.MaxLineBytes = 64
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	sink := &memSink{}
	c := startCollector(t, cfg, sink)
	long := strings.Repeat("é", 100_000) // 200 KB: longer than a read chunk, cut inside a character
	appendLines(t, log, []string{"short", long, "after"})
	sink.waitLines(t, []string{"short", strings.Repeat("é", 32), "after"})
	for _, r := range sink.records() {
		require.Equal(t, strings.HasPrefix(r.Line, "é"), r.Truncated, r.Line)
	}
	require.Equal(t, 1.0, value(c.m.truncated))
	require.Equal(t, 3.0, value(c.m.linesRead))
}

// A sink that fails, then recovers: the same batches are shipped again, nothing lost,
// nothing twice; while it fails the collector reads no further than one batch.
func TestSinkFailsThenRecovers(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "app.log")
	cfg := testConfig(dir, log)
	cfg.BatchRecords = 100
	cfg.Registerer = prometheus.NewRegistry()
	var down sync.Mutex
	down.Lock()
	failed := make(chan struct{}, 1000)
	sink := &memSink{fail: func(call int, _ []Record) error {
		if down.TryLock() {
			down.Unlock()
			return nil
		}
		failed <- struct{}{}
		return errors.New("store unreachable")
	}}
	c := startCollector(t, cfg, sink)
	all := lines("a", 0, 1000)
	appendLines(t, log, all)
	for range 5 {
		<-failed
	}
	require.LessOrEqual(t, value(c.m.linesRead), 100.0, "reads stop while a batch is unshipped")
	require.Empty(t, sink.records())
	down.Unlock()
	sink.waitLines(t, all)
	require.GreaterOrEqual(t, value(c.m.shipErrors), 5.0)
	require.Equal(t, 1000.0, value(c.m.shipped))
}

// A collector stopped while a batch it handed over is not acknowledged (the store took it,
// the answer was lost): the next collector on the same checkpoint ships it again with the
// same IDs, and nothing else twice.
func TestRestartFromCheckpoint(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "app.log")
	cfg := testConfig(dir, log)
	cfg.BatchRecords = 50
	stored := &memSink{}
	hung, unacked := make(chan struct{}), 0
	first := SinkFunc(func(ctx context.Context, recs []Record) error {
		_ = stored.Ship(ctx, recs)
		if len(stored.records()) >= 300 {
			unacked = len(recs)
			close(hung)
			<-ctx.Done() // the acknowledgement never comes
			return ctx.Err()
		}
		return nil
	})
	c1, err := New(cfg, first)
	require.NoError(t, err)
	require.NoError(t, c1.Start(t.Context()))
	all := lines("a", 0, 1000)
	appendLines(t, log, all[:600])
	<-hung
	require.NoError(t, c1.Close(t.Context()))

	startCollector(t, cfg, stored)
	appendLines(t, log, all[600:])
	stored.waitSome(t, all)
	time.Sleep(100 * time.Millisecond)
	byID := map[string]string{}
	resent := 0
	for _, r := range stored.records() {
		if prev, ok := byID[r.ID()]; ok {
			require.Equal(t, prev, r.Line, "one ID, two lines")
			resent++
		}
		byID[r.ID()] = r.Line
	}
	require.Len(t, byID, len(all), "distinct IDs")
	require.Positive(t, resent)
	require.Equal(t, unacked, resent, "only the unacknowledged batch is shipped again")
}

func TestConfigValidate(t *testing.T) {
	err := Config{
		Sources: []Source{{
			Paths:     []string{"relative/*.log", "/var/log/[.log"},
			Labels:    map[string]string{"file": "x", "9bad": "y"},
			Include:   []string{"("},
			Multiline: &Multiline{Timeout: Duration(time.Hour)},
		}},
		PollInterval: Duration(time.Nanosecond),
	}.Validate()
	require.ErrorIs(t, err, ErrInvalid)
	var v *ValidationError
	require.ErrorAs(t, err, &v)
	f := v.Fields()
	for _, k := range []string{"checkpoint_path", "poll_interval", "sources[0].paths[0]", "sources[0].paths[1]",
		"sources[0].labels", "sources[0].include[0]", "sources[0].multiline.start", "sources[0].multiline.timeout"} {
		require.Contains(t, f, k)
	}
	_, err = New(Config{}, &memSink{})
	require.ErrorIs(t, err, ErrInvalid)
}

func value(c prometheus.Counter) float64 {
	var m dto.Metric
	_ = c.Write(&m)
	return m.GetCounter().GetValue()
}

// A glob match that is a symbolic link is not followed: a link in a log directory must not
// make the collector ship a file from elsewhere.
func TestSymlinksNotFollowed(t *testing.T) {
	dir, elsewhere := t.TempDir(), t.TempDir()
	secret := filepath.Join(elsewhere, "secret")
	appendLines(t, secret, []string{"password=hunter2"})
	require.NoError(t, os.Symlink(secret, filepath.Join(dir, "evil.log")))
	sink := &memSink{}
	startCollector(t, testConfig(dir, filepath.Join(dir, "*.log")), sink)
	appendLines(t, filepath.Join(dir, "app.log"), []string{"ok"})
	sink.waitLines(t, []string{"ok"})
}

// The checkpoint's directory is made at Start; Start twice, or after Close, is refused.
func TestLifecycle(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir, filepath.Join(dir, "*.log"))
	cfg.CheckpointPath = filepath.Join(dir, "state", "logsvc", "checkpoint.json")
	before := runtime.NumGoroutine()
	c, err := New(cfg, &memSink{})
	require.NoError(t, err)
	require.NoError(t, c.Start(t.Context()))
	require.ErrorIs(t, c.Start(t.Context()), ErrStarted)
	appendLines(t, filepath.Join(dir, "app.log"), []string{"x"})
	require.Eventually(t, func() bool {
		_, err := os.Stat(cfg.CheckpointPath)
		return err == nil
	}, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, c.Close(t.Context()))
	// Others' goroutines (an earlier test's) may end meanwhile: the count may only fall.
	require.LessOrEqual(t, runtime.NumGoroutine(), before, "Close leaves no goroutine")
	require.NoError(t, c.Close(t.Context()))
	require.ErrorIs(t, c.Start(t.Context()), ErrClosed)

	require.NoError(t, os.WriteFile(cfg.CheckpointPath, []byte("{"), 0o600))
	c, err = New(cfg, &memSink{})
	require.NoError(t, err)
	require.ErrorIs(t, c.Start(t.Context()), ErrCheckpoint)
}

// A file shorter than the fingerprint, truncated and rewritten while no collector ran
// (longer than before, or shorter), is read again from its start under a new identity: not
// from the old offset, and not with IDs the old records had.
func TestShortFileRewrittenWhileStopped(t *testing.T) {
	for _, n := range []int{2, 6} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			dir := t.TempDir()
			log := filepath.Join(dir, "app.log")
			sink := &memSink{}
			cfg := testConfig(dir, log)
			c, err := New(cfg, sink)
			require.NoError(t, err)
			require.NoError(t, c.Start(t.Context()))
			a := lines("a", 0, 4)
			appendLines(t, log, a)
			sink.waitSome(t, a)
			require.NoError(t, c.Close(t.Context()))

			b := lines("b", 0, n)
			require.NoError(t, os.WriteFile(log, []byte(strings.Join(b, "\n")+"\n"), 0o644))
			startCollector(t, cfg, sink)
			sink.waitLines(t, append(a, b...))
		})
	}
}

// The metrics are registered, and the lag of a file shows while the sink refuses batches,
// not only once it takes them again.
func TestMetrics(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "app.log")
	cfg := testConfig(dir, log)
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	var up sync.Mutex
	up.Lock()
	sink := &memSink{fail: func(int, []Record) error {
		if up.TryLock() {
			up.Unlock()
			return nil
		}
		return errors.New("store unreachable")
	}}
	startCollector(t, cfg, sink)
	all := lines("a", 0, 100)
	appendLines(t, log, all)
	fi, err := os.Stat(log)
	require.NoError(t, err)
	lag := func() float64 {
		mfs, err := reg.Gather()
		require.NoError(t, err)
		for _, mf := range mfs {
			if mf.GetName() == "logsvc_collector_lag_bytes" {
				for _, m := range mf.GetMetric() {
					if m.GetLabel()[0].GetValue() == log {
						return m.GetGauge().GetValue()
					}
				}
			}
		}
		return -1
	}
	require.Eventually(t, func() bool { return lag() == float64(fi.Size()) }, 5*time.Second, 10*time.Millisecond)
	up.Unlock()
	sink.waitLines(t, all)
	require.Eventually(t, func() bool { return lag() == 0 }, 5*time.Second, 10*time.Millisecond)
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	require.Subset(t, names, []string{"logsvc_collector_lines_read_total", "logsvc_collector_records_shipped_total",
		"logsvc_collector_truncated_lines_total", "logsvc_collector_ship_errors_total", "logsvc_collector_lag_bytes"})
}
