package cache

import (
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestShape(t *testing.T) {
	for _, c := range []struct {
		args []string
		want SlowGroupKey
	}{
		{[]string{"hgetall", "user:42:profile"}, SlowGroupKey{"HGETALL", "user:*:profile"}},
		{[]string{"config", "get", "maxmemory"}, SlowGroupKey{"CONFIG GET", ""}},
		{[]string{"EVALSHA", "abc", "2", "lock:9f86d081884c", "b"}, SlowGroupKey{"EVALSHA", "lock:*"}},
		{[]string{"EVAL", "return 1", "0"}, SlowGroupKey{"EVAL", ""}},
		{[]string{"XREAD", "COUNT", "10", "STREAMS", "events:7", "0"}, SlowGroupKey{"XREAD", "events:*"}},
		{[]string{"KEYS", "*"}, SlowGroupKey{"KEYS", ""}},
		{[]string{"OBJECT", "FREQ", "k:1"}, SlowGroupKey{"OBJECT FREQ", "k:*"}},
		{[]string{"DEL", "a:1", "b:2"}, SlowGroupKey{"DEL", "a:*"}},
		{[]string{"PING"}, SlowGroupKey{"PING", ""}},
		{nil, SlowGroupKey{}},
	} {
		assert.Equal(t, c.want, Shape(c.args), "%q", c.args)
	}
}

// entries returns slow log entries with IDs from hi down to lo, as SLOWLOG
// GET gives them, each a GET of user:<id> taking id ms.
func entries(hi, lo int64) []goredis.SlowLog {
	var es []goredis.SlowLog
	for id := hi; id >= lo; id-- {
		es = append(es, goredis.SlowLog{ID: id, Time: time.Unix(id, 0), Duration: time.Duration(id) * time.Millisecond,
			Args: []string{"GET", "user:" + string(rune('0'+id%10))}})
	}
	return es
}

func TestSlowLogCountsEachEntryOnce(t *testing.T) {
	s, err := (&Instance{}).SlowLog(SlowLogOptions{})
	require.NoError(t, err)
	now := time.Now()
	assert.Equal(t, SlowRead{New: 3}, s.add("run1", entries(2, 0), now))
	// The log still holds 0..2: only 3 and 4 are new.
	assert.Equal(t, SlowRead{New: 2}, s.add("run1", entries(4, 0), now))
	assert.Equal(t, SlowRead{}, s.add("run1", entries(4, 0), now))
	// The log rolled over: it holds 8..9 only, so 5..7 were lost.
	assert.Equal(t, SlowRead{New: 2, Lost: 3}, s.add("run1", entries(9, 8), now))
	// The instance restarted: IDs start again at 0; 0 was rolled out.
	assert.Equal(t, SlowRead{New: 2, Lost: 1, Restarted: true}, s.add("run2", entries(2, 1), now))

	r := s.Report()
	assert.Equal(t, int64(9), r.Entries)
	assert.Equal(t, int64(4), r.Lost)
	assert.Equal(t, int64(1), r.Restarts)
	assert.Equal(t, int64(5), r.Reads)
	require.Len(t, r.Groups, 1)
	g := r.Groups[0]
	assert.Equal(t, SlowGroupKey{"GET", "user:*"}, g.SlowGroupKey)
	assert.Equal(t, int64(9), g.Count)
	assert.Equal(t, Duration(9*time.Millisecond), g.Max)
	assert.Equal(t, Duration((0+1+2+3+4+8+9+1+2)*time.Millisecond), g.Total)
}

func TestSlowLogBoundsGroups(t *testing.T) {
	s, err := (&Instance{}).SlowLog(SlowLogOptions{MaxGroups: 2})
	require.NoError(t, err)
	var es []goredis.SlowLog
	for i, c := range []string{"GET", "SET", "HGETALL", "LRANGE"} {
		es = append([]goredis.SlowLog{{ID: int64(i), Args: []string{c, "k"}, Duration: time.Millisecond}}, es...)
	}
	s.add("r", es, time.Now())
	r := s.Report()
	require.Len(t, r.Groups, 3)
	assert.Equal(t, SlowGroupKey{Command: "(other)"}, r.Groups[0].SlowGroupKey)
	assert.Equal(t, int64(2), r.Groups[0].Count)
}

func TestSlowLogOptionsValidate(t *testing.T) {
	_, err := (&Instance{}).SlowLog(SlowLogOptions{Interval: Duration(time.Millisecond), MaxRead: -1})
	var v *ValidationError
	require.ErrorAs(t, err, &v)
	assert.ErrorIs(t, err, ErrInvalid)
	assert.Contains(t, v.Fields(), "interval")
	assert.Contains(t, v.Fields(), "max_read")
}
