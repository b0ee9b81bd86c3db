package cache

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The testdata INFO texts were captured from Redis 7.0.15 (Debian), a primary
// with one replica, after a hit, a miss and three writes.
func TestParseOverviewPrimary(t *testing.T) {
	b, err := os.ReadFile("testdata/info-primary.txt")
	require.NoError(t, err)
	o := parseOverview(string(b))
	assert.Equal(t, "7.0.15", o.Version)
	assert.Equal(t, "standalone", o.Mode)
	assert.Equal(t, int64(1108816), o.Memory.Used)
	assert.Equal(t, "allkeys-lfu", o.Memory.Policy)
	assert.Positive(t, o.Memory.Fragmentation)
	assert.Positive(t, o.Memory.RSS)
	assert.Equal(t, int64(1), o.Stats.Hits)
	assert.Equal(t, int64(1), o.Stats.Misses)
	assert.InDelta(t, 0.5, o.Stats.HitRatio, 1e-9)
	assert.Equal(t, []DBKeys{{DB: 0, Keys: 3, Expires: 1}}, o.Keyspace)
	assert.Equal(t, RolePrimary, o.Replication.Role)
	assert.Equal(t, []ReplicaLink{{Addr: "127.0.0.1:6380", State: "online", Offset: 134, Lag: 0}}, o.Replication.Replicas)
	assert.Equal(t, int64(134), o.Replication.Offset)
	assert.Equal(t, "ok", o.Persistence.RDBLastStatus)
	assert.Equal(t, time.Unix(1796681993, 0).UTC(), o.Persistence.RDBLastSave)
	assert.Equal(t, int64(3), o.Persistence.RDBChangesSinceSave)
	assert.False(t, o.Persistence.AOFEnabled)
	assert.Positive(t, o.Clients.Connected)
}

func TestParseOverviewReplica(t *testing.T) {
	b, err := os.ReadFile("testdata/info-replica.txt")
	require.NoError(t, err)
	p, err := os.ReadFile("testdata/info-primary.txt")
	require.NoError(t, err)
	o := parseOverview(string(b))
	assert.Equal(t, RoleReplica, o.Replication.Role)
	assert.Equal(t, "127.0.0.1:6379", o.Replication.Primary)
	assert.True(t, o.Replication.LinkUp)
	assert.Equal(t, Duration(time.Second), o.Replication.LastIO)

	down := parseOverview("role:slave\r\nmaster_link_status:down\r\nmaster_last_io_seconds_ago:-1\r\nmaster_link_down_since_seconds:42\r\n")
	assert.False(t, down.Replication.LinkUp)
	assert.Zero(t, down.Replication.LastIO)
	assert.Equal(t, Duration(42*time.Second), down.Replication.DownFor)
	assert.False(t, o.Replication.Syncing)
	assert.Empty(t, o.Replication.Replicas)
	assert.Equal(t, parseOverview(string(p)).Replication.ReplID, o.Replication.ReplID, "a synced replica has its primary's replication ID")
}

// Fields of other versions, malformed lines and values that do not parse are
// ignored; what parses is read.
func TestParseOverviewRobust(t *testing.T) {
	o := parseOverview("# Memory\r\nused_memory:12\r\nused_memory_peak:lots\r\nnot a field\r\n:empty\r\n" +
		"some_future_field:1:2\r\nrole:sentinel-ish\r\nslave:ip=x\r\nslave0:garbage\r\ndb:keys=1\r\ndbx:keys=2\r\n")
	assert.Equal(t, int64(12), o.Memory.Used)
	assert.Zero(t, o.Memory.Peak)
	assert.Empty(t, o.Replication.Role)
	assert.Len(t, o.Replication.Replicas, 1)
	assert.Empty(t, o.Keyspace)
	assert.Zero(t, o.Stats.HitRatio)
	assert.Empty(t, parseOverview("").Version)
}
