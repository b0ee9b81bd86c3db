package logsvc

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"
)

// Collector tails the files of its sources and ships their records to a Sink.
type Collector struct {
	cfg     Config
	sink    Sink
	sources []*source
	m       *metrics
	log     *slog.Logger

	life    sync.Mutex
	started bool
	closed  bool
	cancel  context.CancelFunc
	done    chan struct{}

	// Owned by the run goroutine.
	entries  map[string]*entry
	trackers []*tracker
	retired  []*tracker // closed since the last commit; their records are in the batch
	batch    []Record
	bytes    int
	buf      []byte
	dirty    bool // entries changed since the checkpoint was written
	// fresh are files truncated in place, to be read again from 0 under a new identity
	// when the next step of the poll opens them.
	fresh map[fileKey]bool
}

// source is a Source with its rules compiled.
type source struct {
	Source
	labels           map[string]string
	include, exclude []*regexp.Regexp
	start, cont      *regexp.Regexp
	timeout          time.Duration
	max              int
}

// keep applies the include and exclude rules to a record's text.
func (s *source) keep(text string) bool {
	if len(s.include) > 0 && !matchAny(s.include, text) {
		return false
	}
	return !matchAny(s.exclude, text)
}

func matchAny(res []*regexp.Regexp, s string) bool {
	for _, re := range res {
		if re.MatchString(s) {
			return true
		}
	}
	return false
}

// New validates cfg and builds a collector that ships to sink. It opens no file.
func New(cfg Config, sink Sink) (*Collector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if sink == nil {
		return nil, fmt.Errorf("%w: a Sink is required", ErrInvalid)
	}
	cfg.PollInterval = Duration(cfg.PollInterval.Or(defaultPollInterval))
	cfg.CloseInactive = Duration(cfg.CloseInactive.Or(defaultCloseInactive))
	cfg.RetryMin = Duration(cfg.RetryMin.Or(defaultRetryMin))
	cfg.RetryMax = Duration(max(cfg.RetryMax.Or(defaultRetryMax), time.Duration(cfg.RetryMin)))
	cfg.FingerprintBytes = cmp0(cfg.FingerprintBytes, defaultFingerprintBytes)
	cfg.MaxLineBytes = cmp0(cfg.MaxLineBytes, defaultMaxLineBytes)
	cfg.BatchRecords = cmp0(cfg.BatchRecords, defaultBatchRecords)
	cfg.BatchBytes = cmp0(cfg.BatchBytes, defaultBatchBytes)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	labels := maps.Clone(cfg.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	if _, ok := labels["host"]; !ok {
		if h, err := os.Hostname(); err == nil {
			labels["host"] = h
		}
	}
	c := &Collector{cfg: cfg, sink: sink, log: cfg.Logger, buf: make([]byte, 64<<10)}
	for _, s := range cfg.Sources {
		cs := &source{Source: s, labels: maps.Clone(labels), max: cmp0(s.MaxLineBytes, cfg.MaxLineBytes)}
		maps.Copy(cs.labels, s.Labels)
		for _, re := range s.Include {
			cs.include = append(cs.include, regexp.MustCompile(re))
		}
		for _, re := range s.Exclude {
			cs.exclude = append(cs.exclude, regexp.MustCompile(re))
		}
		if m := s.Multiline; m != nil {
			cs.start = regexp.MustCompile(m.Start)
			if m.Continue != "" {
				cs.cont = regexp.MustCompile(m.Continue)
			}
			cs.timeout = m.Timeout.Or(defaultMultilineTimeout)
		}
		c.sources = append(c.sources, cs)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	c.m = m
	return c, nil
}

func cmp0(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// Start reads the checkpoint and starts collecting. ctx bounds only the start itself; the
// collector runs until Close.
func (c *Collector) Start(ctx context.Context) error {
	c.life.Lock()
	defer c.life.Unlock()
	switch {
	case c.closed:
		return ErrClosed
	case c.started:
		return ErrStarted
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("logsvc: start: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(c.cfg.CheckpointPath), 0o700); err != nil {
		return fmt.Errorf("%w: %w", ErrCheckpoint, err)
	}
	entries, err := loadCheckpoint(c.cfg.CheckpointPath)
	if err != nil {
		return err
	}
	c.entries, c.fresh = entries, map[fileKey]bool{}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.cancel, c.done, c.started = cancel, make(chan struct{}), true
	go func() {
		defer close(c.done)
		c.run(runCtx)
	}()
	return nil
}

// Close stops collecting and waits until ctx ends for the files to be closed. A batch
// being shipped is abandoned: it was not acknowledged, so it is shipped again by the next
// collector started on the same checkpoint. A closed collector cannot be started again.
func (c *Collector) Close(ctx context.Context) error {
	c.life.Lock()
	defer c.life.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if !c.started {
		return nil
	}
	c.cancel()
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("logsvc: close: %w", ctx.Err())
	}
}

// run is the collector's one goroutine: poll the files, read them batch by batch, ship each
// batch and checkpoint it, then wait for the next poll. It reads nothing while a batch is
// being shipped, so a slow sink holds at most one batch in memory.
func (c *Collector) run(ctx context.Context) {
	defer func() {
		for _, t := range c.trackers {
			t.f.Close()
		}
	}()
	tick := time.NewTimer(0)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := c.round(ctx); err != nil {
			return
		}
		tick.Reset(time.Duration(c.cfg.PollInterval))
	}
}

// round polls once and reads every file up to the size seen; it returns an error only when
// ctx ended.
func (c *Collector) round(ctx context.Context) error {
	c.poll(time.Now())
	for progress := true; progress; {
		progress = false
		for _, t := range c.trackers {
			if t.pos >= t.size {
				continue
			}
			c.read(t, time.Now())
			progress = true
			if c.full() {
				if err := c.commit(ctx); err != nil {
					return err
				}
			}
		}
	}
	now := time.Now()
	for _, t := range c.trackers {
		if t.joiner.due(now) {
			if p, ok := t.joiner.flush(); ok {
				c.emit(t, p, now)
			}
		}
	}
	c.closeInactive(now)
	return c.commit(ctx)
}

func (c *Collector) full() bool {
	return len(c.batch) >= c.cfg.BatchRecords || c.bytes >= c.cfg.BatchBytes
}

// emit adds a finished record to the batch unless the source's filters drop it.
func (c *Collector) emit(t *tracker, p piece, now time.Time) {
	if !t.src.keep(p.text) {
		return
	}
	c.batch = append(c.batch, Record{Time: now, Labels: t.labels, Line: p.text, Source: t.id, Offset: p.start, Truncated: p.truncated})
	c.bytes += len(p.text)
}

// commit ships the batch, retrying until the sink takes it, then records how far each file
// got and writes the checkpoint. The offsets are taken before shipping: nothing read later
// is in the batch.
func (c *Collector) commit(ctx context.Context) error {
	type mark struct {
		t   *tracker
		off int64
	}
	marks := make([]mark, 0, len(c.trackers)+len(c.retired))
	for _, t := range c.trackers {
		marks = append(marks, mark{t, t.safe()})
	}
	for _, t := range c.retired {
		marks = append(marks, mark{t, t.safe()})
	}
	if len(c.batch) > 0 {
		if err := c.ship(ctx, c.batch); err != nil {
			return err
		}
		c.m.shipped.Add(float64(len(c.batch)))
		c.batch, c.bytes = nil, 0
	}
	now := time.Now()
	for _, mk := range marks {
		e := mk.t.entry
		if e.Offset != mk.off {
			e.Offset, c.dirty = mk.off, true
			if !mk.t.fp {
				e.Head = headSum(mk.t.head[:min(mk.off, int64(len(mk.t.head)))])
			}
		}
	}
	for _, t := range c.retired {
		c.m.lag.DeleteLabelValues(t.path)
		if t.deleted && c.entries[t.id] == t.entry {
			delete(c.entries, t.id)
			c.dirty = true
		}
	}
	c.retired = c.retired[:0]
	for _, t := range c.trackers {
		t.entry.Seen = now
	}
	c.reportLag()
	for id, e := range c.entries {
		if now.Sub(e.Seen) > forgetAfter {
			delete(c.entries, id)
			c.dirty = true
		}
	}
	if c.dirty {
		if err := writeCheckpoint(c.cfg.CheckpointPath, c.entries); err != nil {
			// Shipping goes on: after a restart the records since the last checkpoint
			// are shipped again, with the same IDs.
			c.log.Error("logsvc: checkpoint not written", "err", err)
			return nil
		}
		c.dirty = false
	}
	return nil
}

// reportLag sets each open file's lag: its size now, less what the sink acknowledged. It
// runs while a refused batch waits too, so the lag grows where it can be seen.
func (c *Collector) reportLag() {
	for _, t := range c.trackers {
		size := t.size
		if fi, err := t.f.Stat(); err == nil {
			size = fi.Size()
		}
		c.m.lag.WithLabelValues(t.path).Set(float64(max(size-t.entry.Offset, 0)))
	}
}

// ship calls the sink until it accepts the batch or ctx ends, backing off between attempts.
func (c *Collector) ship(ctx context.Context, batch []Record) error {
	wait := time.Duration(c.cfg.RetryMin)
	for {
		err := c.sink.Ship(ctx, batch)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.m.shipErrors.Inc()
		c.log.Warn("logsvc: ship failed; retrying", "records", len(batch), "retry_in", wait, "err", err)
		c.reportLag()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, time.Duration(c.cfg.RetryMax))
	}
}
