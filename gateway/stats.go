package gateway

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"sync"
	"time"
)

// Granularity is the time step of statistics rows.
type Granularity string

// Granularities of StatsQuery.
const (
	// Minute rows come from per-minute buckets (kept MinuteRetention).
	Minute Granularity = "minute"
	// Day rows come from per-day buckets (kept DayRetention); days begin at
	// midnight in Options.Location.
	Day Granularity = "day"
	// Total sums the range into one row per group: from minute buckets when
	// From is within MinuteRetention, else from the days that begin in the
	// range.
	Total Granularity = "total"
)

// LatencyBounds are the upper bounds, in milliseconds, of the latency
// histogram's buckets; a last bucket takes the rest.
var LatencyBounds = []float64{1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000}

// StatsQuery selects statistics. The zero query gives per-minute rows of
// the last hour.
type StatsQuery struct {
	// From and To bound the range [From, To) by bucket start. Default: the
	// hour before To; To defaults to now.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Granularity is minute (default), day or total.
	Granularity Granularity `json:"granularity,omitempty"`
	// API and Consumer keep only one API (by name) and one consumer (by
	// ID); empty keeps all. Requests refused before a consumer was known
	// have Consumer ""; those that matched no API have API "".
	API      string `json:"api,omitempty"`
	Consumer string `json:"consumer,omitempty"`
	// GroupBy merges rows: "api" sums over consumers, "consumer" over APIs,
	// "" keeps one row per API × consumer.
	GroupBy string `json:"group_by,omitempty"`
}

// StatsRow is the calls of one API by one consumer in one bucket.
type StatsRow struct {
	// Time is the bucket's start (for Total, the query's From).
	Time     time.Time `json:"time"`
	API      string    `json:"api"`
	Consumer string    `json:"consumer"`
	// Calls counts every request; Successes those the upstream answered
	// with a status below 400.
	Calls     uint64 `json:"calls"`
	Successes uint64 `json:"successes"`
	// Errors counts the other requests by code: a refusal Code,
	// "http_4xx" or "http_5xx" for upstream answers, "client_closed".
	Errors map[string]uint64 `json:"errors,omitempty"`
	// Latency is the histogram of the gateway's time per request.
	Latency Latency `json:"latency"`
}

// Latency is a histogram over LatencyBounds.
type Latency struct {
	// Counts has len(LatencyBounds)+1 buckets: Counts[i] counts requests of
	// at most LatencyBounds[i] ms (and above the previous bound); the last
	// counts the rest.
	Counts []uint64 `json:"counts"`
	// LeMs are the buckets' upper bounds in milliseconds, LatencyBounds, so
	// that a row reads without this package: LeMs[i] bounds Counts[i], and
	// the last count, one past the end of LeMs, has no bound. RestoreStats
	// accepts a row without them (as saved before they were added).
	LeMs []float64 `json:"le_ms"`
	// SumMs is the total time in milliseconds.
	SumMs float64 `json:"sum_ms"`
}

// Quantile returns the upper bound (ms) of the bucket holding the q-th
// quantile, +Inf for the last bucket, 0 without requests.
func (l Latency) Quantile(q float64) float64 {
	var total uint64
	for _, c := range l.Counts {
		total += c
	}
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total) + 0.5)
	var seen uint64
	for i, c := range l.Counts {
		seen += c
		if seen >= rank && seen > 0 {
			if i < len(LatencyBounds) {
				return LatencyBounds[i]
			}
			break
		}
	}
	return math.Inf(1)
}

type statKey struct{ api, consumer string }

type cell struct {
	calls, successes uint64
	errors           map[string]uint64
	latency          [14]uint64 // len(LatencyBounds)+1
	sumMs            float64
}

func (c *cell) add(code string, ok bool, ms float64) {
	c.calls++
	if ok {
		c.successes++
	} else {
		if c.errors == nil {
			c.errors = make(map[string]uint64, 2)
		}
		c.errors[code]++
	}
	i := sort.SearchFloat64s(LatencyBounds, ms)
	c.latency[i]++
	c.sumMs += ms
}

func (c *cell) merge(o *cell) {
	c.calls += o.calls
	c.successes += o.successes
	for k, v := range o.errors {
		if c.errors == nil {
			c.errors = make(map[string]uint64, len(o.errors))
		}
		c.errors[k] += v
	}
	for i := range c.latency {
		c.latency[i] += o.latency[i]
	}
	c.sumMs += o.sumMs
}

// statsStore keeps exact counts per minute and per day under one mutex.
type statsStore struct {
	loc                *time.Location
	minuteKeep         time.Duration
	dayKeep            time.Duration
	mu                 sync.Mutex
	minutes            map[int64]map[statKey]*cell // unix second of the minute
	days               map[int64]map[statKey]*cell // unix second of the day's start
	dayStart, dayEnd   int64
	lastMinute, pruned int64
}

func newStatsStore(loc *time.Location, minuteKeep, dayKeep time.Duration) *statsStore {
	return &statsStore{loc: loc, minuteKeep: minuteKeep, dayKeep: dayKeep,
		minutes: make(map[int64]map[statKey]*cell), days: make(map[int64]map[statKey]*cell)}
}

func (s *statsStore) dayOf(t time.Time) int64 {
	y, m, d := t.In(s.loc).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, s.loc).Unix()
}

func (s *statsStore) record(now time.Time, api, consumer, code string, ok bool, lat time.Duration) {
	ms := float64(lat) / float64(time.Millisecond)
	sec := now.Unix()
	minute := sec - mod(sec, 60)
	k := statKey{api, consumer}
	s.mu.Lock()
	defer s.mu.Unlock()
	if sec < s.dayStart || sec >= s.dayEnd {
		s.dayStart = s.dayOf(now)
		s.dayEnd = s.dayOf(time.Unix(s.dayStart, 0).In(s.loc).AddDate(0, 0, 1).Add(time.Hour)) // DST-safe next midnight
	}
	s.bucket(s.minutes, minute, k).add(code, ok, ms)
	s.bucket(s.days, s.dayStart, k).add(code, ok, ms)
	if minute != s.lastMinute {
		s.lastMinute = minute
		if minute-s.pruned >= 600 {
			s.pruned = minute
			s.prune(now)
		}
	}
}

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

func (s *statsStore) bucket(m map[int64]map[statKey]*cell, t int64, k statKey) *cell {
	cells := m[t]
	if cells == nil {
		cells = make(map[statKey]*cell)
		m[t] = cells
	}
	c := cells[k]
	if c == nil {
		c = &cell{}
		cells[k] = c
	}
	return c
}

func (s *statsStore) prune(now time.Time) {
	for t := range s.minutes {
		if now.Sub(time.Unix(t, 0)) > s.minuteKeep {
			delete(s.minutes, t)
		}
	}
	for t := range s.days {
		if now.Sub(time.Unix(t, 0)) > s.dayKeep {
			delete(s.days, t)
		}
	}
}

// Stats returns the statistics q selects, sorted by time, then by calls
// (most first), then API and consumer: so the first rows of a Total query
// grouped by consumer are the top consumers. A request is counted as soon
// as its answer has been written, so a client that has just read an answer
// may query a moment before its call is counted.
func (g *Gateway) Stats(q StatsQuery) ([]StatsRow, error) {
	now := g.now()
	if q.To.IsZero() {
		q.To = now
	}
	if q.From.IsZero() {
		q.From = q.To.Add(-time.Hour)
	}
	if !q.From.Before(q.To) {
		return nil, fmt.Errorf("%w: from %s is not before to %s", ErrBadStatsQuery, q.From.Format(time.RFC3339), q.To.Format(time.RFC3339))
	}
	switch q.GroupBy {
	case "", "api", "consumer":
	default:
		return nil, fmt.Errorf("%w: group_by %q: want api, consumer or empty", ErrBadStatsQuery, q.GroupBy)
	}
	s := g.stats
	var src map[int64]map[statKey]*cell
	switch q.Granularity {
	case "", Minute:
		src = s.minutes
	case Day:
		src = s.days
	case Total:
		src = s.minutes
		if now.Sub(q.From) > s.minuteKeep {
			src = s.days
		}
	default:
		return nil, fmt.Errorf("%w: granularity %q: want minute, day or total", ErrBadStatsQuery, q.Granularity)
	}
	// A bucket counts when it starts before To: in the first second of a minute, To's
	// whole seconds are the current minute's start, which must not leave it out.
	from, to := q.From.Unix(), q.To.Unix()
	if q.To.After(time.Unix(to, 0)) {
		to++
	}
	type rowKey struct {
		t int64
		k statKey
	}
	out := make(map[rowKey]*cell)
	s.mu.Lock()
	for t, cells := range src {
		if t < from || t >= to {
			continue
		}
		rt := t
		if q.Granularity == Total {
			rt = from
		}
		for k, c := range cells {
			if q.API != "" && k.api != q.API || q.Consumer != "" && k.consumer != q.Consumer {
				continue
			}
			switch q.GroupBy {
			case "api":
				k.consumer = ""
			case "consumer":
				k.api = ""
			}
			rk := rowKey{rt, k}
			acc := out[rk]
			if acc == nil {
				acc = &cell{}
				out[rk] = acc
			}
			acc.merge(c)
		}
	}
	s.mu.Unlock()
	rows := make([]StatsRow, 0, len(out))
	for rk, c := range out {
		rows = append(rows, c.row(time.Unix(rk.t, 0).In(s.loc), rk.k))
	}
	sort.Slice(rows, func(i, j int) bool {
		a, b := &rows[i], &rows[j]
		switch {
		case !a.Time.Equal(b.Time):
			return a.Time.Before(b.Time)
		case a.Calls != b.Calls:
			return a.Calls > b.Calls
		case a.API != b.API:
			return a.API < b.API
		}
		return a.Consumer < b.Consumer
	})
	return rows, nil
}

func (c *cell) row(t time.Time, k statKey) StatsRow {
	r := StatsRow{Time: t, API: k.api, Consumer: k.consumer, Calls: c.calls, Successes: c.successes,
		Latency: Latency{Counts: append([]uint64(nil), c.latency[:]...), LeMs: slices.Clone(LatencyBounds), SumMs: c.sumMs}}
	if len(c.errors) > 0 {
		r.Errors = make(map[string]uint64, len(c.errors))
		for k, v := range c.errors {
			r.Errors[k] = v
		}
	}
	return r
}

// RestoreStats adds rows saved from an earlier run (e.g. by a control plane
// that persists Stats) to the minute or day buckets, so that statistics
// survive a restart. Rows must have the histogram shape of LatencyBounds.
func (g *Gateway) RestoreStats(gran Granularity, rows []StatsRow) error {
	s := g.stats
	var dst map[int64]map[statKey]*cell
	switch gran {
	case Minute:
		dst = s.minutes
	case Day:
		dst = s.days
	default:
		return fmt.Errorf("%w: restore granularity %q: want minute or day", ErrBadStatsQuery, gran)
	}
	for i, r := range rows {
		if len(r.Latency.Counts) != len(LatencyBounds)+1 {
			return fmt.Errorf("%w: row %d: %d latency buckets, want %d", ErrBadStatsQuery, i, len(r.Latency.Counts), len(LatencyBounds)+1)
		}
		if r.Latency.LeMs != nil && !slices.Equal(r.Latency.LeMs, LatencyBounds) {
			return fmt.Errorf("%w: row %d: latency bounds %v, want %v", ErrBadStatsQuery, i, r.Latency.LeMs, LatencyBounds)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rows {
		c := &cell{calls: r.Calls, successes: r.Successes, errors: r.Errors, sumMs: r.Latency.SumMs}
		copy(c.latency[:], r.Latency.Counts)
		t := r.Time.Unix()
		if gran == Minute {
			t -= mod(t, 60)
		} else {
			t = s.dayOf(r.Time)
		}
		s.bucket(dst, t, statKey{r.API, r.Consumer}).merge(c)
	}
	return nil
}
