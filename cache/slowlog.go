package cache

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// SlowLogOptions tune a SlowLog collector.
type SlowLogOptions struct {
	// Interval is the time between reads of Run. Default: 10s. From 100ms to 1h.
	Interval Duration `json:"interval,omitempty" validate:"omitempty,duration=100ms:1h"`
	// MaxRead is how many entries one read asks for (SLOWLOG GET n); entries
	// beyond it count as lost. Default: 1024. At most 100000.
	MaxRead int `json:"max_read,omitempty" validate:"min=0,max=100000"`
	// MaxGroups bounds the report; entries of further shapes go to one group
	// whose command is "(other)". Default: 1000. At most 100000.
	MaxGroups int `json:"max_groups,omitempty" validate:"min=0,max=100000"`
}

// SlowLog collects an instance's slow log, aggregated by command shape and
// key pattern. It tracks the last entry it read, so that each entry counts
// once, and says how many entries rolled out of the log between two reads.
type SlowLog struct {
	in   *Instance
	opts SlowLogOptions

	// reading makes reads one at a time: a read applied after a later one
	// would look like a restart (its newest ID below the last one seen).
	reading sync.Mutex

	mu     sync.Mutex
	runID  string
	next   int64 // the ID the next entry will have; -1 before one is known
	groups map[SlowGroupKey]*SlowGroup
	stats  SlowStats
}

// SlowGroupKey is what entries are aggregated by.
type SlowGroupKey struct {
	// Command is the command's name, with its subcommand for commands that
	// have them ("CONFIG GET").
	Command string `json:"command"`
	// KeyPattern is the command's first key, folded by FoldKey; empty for
	// commands without keys.
	KeyPattern string `json:"key_pattern"`
}

// SlowGroup is the entries of one shape.
type SlowGroup struct {
	SlowGroupKey
	Count int64    `json:"count"`
	Total Duration `json:"total"`
	Max   Duration `json:"max"`
	// Last is the time Redis logged the group's latest entry.
	Last time.Time `json:"last"`
}

// SlowStats says what the collector has read.
type SlowStats struct {
	Reads   int64 `json:"reads"`
	Entries int64 `json:"entries"`
	// Lost counts entries that left the log (or were beyond MaxRead) before
	// they were read: their IDs were skipped.
	Lost int64 `json:"lost"`
	// Restarts counts restarts of the instance seen (its run_id changed).
	Restarts  int64     `json:"restarts"`
	LastRead  time.Time `json:"last_read,omitzero"`
	LastError string    `json:"last_error,omitempty"`
}

// SlowReport is the aggregated slow log, groups by total time, longest first.
type SlowReport struct {
	SlowStats
	Groups []SlowGroup `json:"groups"`
}

// SlowRead is what one read found.
type SlowRead struct {
	New       int   `json:"new"`
	Lost      int64 `json:"lost"`
	Restarted bool  `json:"restarted"`
}

// SlowLog returns a collector of the instance's slow log. It reads nothing
// until Collect or Run.
func (in *Instance) SlowLog(opts SlowLogOptions) (*SlowLog, error) {
	v := &ValidationError{Cause: ErrInvalid}
	v.AddStruct(&opts)
	if err := v.Err(); err != nil {
		return nil, err
	}
	if opts.MaxRead == 0 {
		opts.MaxRead = 1024
	}
	if opts.MaxGroups == 0 {
		opts.MaxGroups = 1000
	}
	return &SlowLog{in: in, opts: opts, next: -1, groups: make(map[SlowGroupKey]*SlowGroup)}, nil
}

// Run collects every Interval until ctx ends, and returns ctx's error. A
// failed read is kept in the report's LastError and tried again at the next
// tick.
func (s *SlowLog) Run(ctx context.Context) error {
	t := time.NewTicker(s.opts.Interval.Or(10 * time.Second))
	defer t.Stop()
	for {
		_, _ = s.Collect(ctx)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Collect reads the slow log once and adds its new entries.
func (s *SlowLog) Collect(ctx context.Context) (SlowRead, error) {
	s.reading.Lock()
	defer s.reading.Unlock()
	var info *goredis.StringCmd
	var log *goredis.SlowLogCmd
	_, err := s.in.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		info = p.Info(ctx, "server")
		log = p.SlowLogGet(ctx, int64(s.opts.MaxRead))
		return nil
	})
	if err != nil {
		err = s.in.fail("slowlog", err)
		s.mu.Lock()
		s.stats.LastError = err.Error()
		s.mu.Unlock()
		return SlowRead{}, err
	}
	return s.add(parseInfo(info.Val())["run_id"], log.Val(), time.Now()), nil
}

// add adds the entries of one read (newest first, as SLOWLOG GET gives them)
// from the instance with runID.
func (s *SlowLog) add(runID string, entries []goredis.SlowLog, now time.Time) SlowRead {
	s.mu.Lock()
	defer s.mu.Unlock()
	var r SlowRead
	// IDs start at 0 when Redis starts, and only then (SLOWLOG RESET keeps
	// counting), so a new run_id, or an ID below the next expected, means a
	// restart: every entry is new, and the IDs before the oldest were lost.
	if (s.runID != "" && runID != s.runID) || (len(entries) > 0 && s.next > 0 && entries[0].ID < s.next-1) {
		r.Restarted = true
		s.stats.Restarts++
		s.next = 0
	}
	s.runID = runID
	fresh := entries
	if s.next >= 0 {
		n := 0
		for n < len(entries) && entries[n].ID >= s.next {
			n++
		}
		fresh = entries[:n]
	}
	if len(fresh) > 0 {
		if oldest := fresh[len(fresh)-1].ID; s.next >= 0 && oldest > s.next {
			r.Lost = oldest - s.next
		}
		s.next = fresh[0].ID + 1
	}
	for _, e := range fresh {
		s.count(e)
	}
	r.New = len(fresh)
	s.stats.Reads++
	s.stats.Entries += int64(r.New)
	s.stats.Lost += r.Lost
	s.stats.LastRead = now
	s.stats.LastError = ""
	return r
}

func (s *SlowLog) count(e goredis.SlowLog) {
	k := Shape(e.Args)
	g := s.groups[k]
	if g == nil {
		if len(s.groups) >= s.opts.MaxGroups {
			k = SlowGroupKey{Command: "(other)"}
			g = s.groups[k]
		}
		if g == nil {
			g = &SlowGroup{SlowGroupKey: k}
			s.groups[k] = g
		}
	}
	g.Count++
	g.Total += Duration(e.Duration)
	g.Max = max(g.Max, Duration(e.Duration))
	if e.Time.After(g.Last) {
		g.Last = e.Time
	}
}

// Report returns the aggregated slow log so far.
func (s *SlowLog) Report() SlowReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := SlowReport{SlowStats: s.stats, Groups: make([]SlowGroup, 0, len(s.groups))}
	for _, g := range s.groups {
		r.Groups = append(r.Groups, *g)
	}
	sort.Slice(r.Groups, func(i, j int) bool {
		a, b := r.Groups[i], r.Groups[j]
		if a.Total != b.Total {
			return a.Total > b.Total
		}
		return fmt.Sprint(a.SlowGroupKey) < fmt.Sprint(b.SlowGroupKey)
	})
	return r
}

// subcommands are the commands whose second argument names what they do.
var subcommands = map[string]bool{
	"ACL": true, "CLIENT": true, "CLUSTER": true, "COMMAND": true, "CONFIG": true, "DEBUG": true,
	"FUNCTION": true, "LATENCY": true, "MEMORY": true, "MODULE": true, "OBJECT": true, "PUBSUB": true,
	"SCRIPT": true, "SLOWLOG": true, "XGROUP": true, "XINFO": true,
}

// keyless are commands that name no key.
var keyless = map[string]bool{
	"ACL": true, "AUTH": true, "BGREWRITEAOF": true, "BGSAVE": true, "CLIENT": true, "CLUSTER": true,
	"COMMAND": true, "CONFIG": true, "DBSIZE": true, "DEBUG": true, "ECHO": true, "EXEC": true,
	"FLUSHALL": true, "FLUSHDB": true, "FUNCTION": true, "HELLO": true, "INFO": true, "KEYS": true,
	"LASTSAVE": true, "LATENCY": true, "MODULE": true, "MULTI": true, "PING": true, "PSUBSCRIBE": true,
	"PUBLISH": true, "PUBSUB": true, "RANDOMKEY": true, "ROLE": true, "SAVE": true, "SCAN": true,
	"SCRIPT": true, "SELECT": true, "SLOWLOG": true, "SUBSCRIBE": true, "SWAPDB": true, "TIME": true,
	"WAIT": true,
}

// Shape returns the aggregation key of a logged command's arguments.
func Shape(args []string) SlowGroupKey {
	if len(args) == 0 {
		return SlowGroupKey{}
	}
	name := strings.ToUpper(args[0])
	k := SlowGroupKey{Command: name}
	if subcommands[name] && len(args) > 1 {
		k.Command += " " + strings.ToUpper(args[1])
	}
	if key, ok := firstKey(name, args); ok {
		k.KeyPattern = FoldKey(key)
	}
	return k
}

// firstKey finds the first key among a command's arguments.
func firstKey(name string, args []string) (string, bool) {
	switch {
	case keyless[name]:
		return "", false
	case name == "EVAL" || name == "EVALSHA" || name == "EVAL_RO" || name == "EVALSHA_RO" ||
		name == "FCALL" || name == "FCALL_RO":
		// EVAL script numkeys key...
		if n, err := strconv.Atoi(arg(args, 2)); err == nil && n > 0 && len(args) > 3 {
			return args[3], true
		}
		return "", false
	case name == "XREAD" || name == "XREADGROUP":
		for i, a := range args {
			if strings.EqualFold(a, "STREAMS") && i+1 < len(args) {
				return args[i+1], true
			}
		}
		return "", false
	case name == "OBJECT" || name == "MEMORY" || name == "XINFO":
		return arg(args, 2), len(args) > 2
	}
	return arg(args, 1), len(args) > 1
}

func arg(args []string, i int) string {
	if i < len(args) {
		return args[i]
	}
	return ""
}
