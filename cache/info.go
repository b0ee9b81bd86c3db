package cache

import (
	"context"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Role is an instance's part in replication.
type Role string

// The roles.
const (
	RolePrimary Role = "primary"
	RoleReplica Role = "replica"
)

func roleOf(s string) Role {
	switch s {
	case "master":
		return RolePrimary
	case "slave":
		return RoleReplica
	}
	return ""
}

// Overview is what INFO says of an instance, in the units Redis reports.
type Overview struct {
	Version string `json:"version"`
	// Mode is standalone, sentinel or cluster.
	Mode   string   `json:"mode"`
	Uptime Duration `json:"uptime"`
	// RunID changes when the instance restarts.
	RunID       string      `json:"run_id"`
	Memory      Memory      `json:"memory"`
	Clients     Clients     `json:"clients"`
	Stats       Stats       `json:"stats"`
	Keyspace    []DBKeys    `json:"keyspace"`
	Replication Replication `json:"replication"`
	Persistence Persistence `json:"persistence"`
}

// Memory is INFO memory, in bytes.
type Memory struct {
	Used int64 `json:"used"`
	Peak int64 `json:"peak"`
	RSS  int64 `json:"rss"`
	// Fragmentation is RSS over used memory (mem_fragmentation_ratio).
	Fragmentation float64 `json:"fragmentation"`
	// Max is maxmemory; 0 means no limit.
	Max    int64  `json:"max"`
	Policy string `json:"policy"`
}

// Clients is INFO clients.
type Clients struct {
	Connected int64 `json:"connected"`
	Blocked   int64 `json:"blocked"`
}

// Stats is INFO stats.
type Stats struct {
	OpsPerSec int64 `json:"ops_per_sec"`
	Hits      int64 `json:"hits"`
	Misses    int64 `json:"misses"`
	// HitRatio is hits over lookups since the last restart or CONFIG
	// RESETSTAT; 0 before the first lookup.
	HitRatio    float64 `json:"hit_ratio"`
	EvictedKeys int64   `json:"evicted_keys"`
	ExpiredKeys int64   `json:"expired_keys"`
}

// DBKeys is one database of INFO keyspace.
type DBKeys struct {
	DB      int   `json:"db"`
	Keys    int64 `json:"keys"`
	Expires int64 `json:"expires"`
}

// Replication is INFO replication.
type Replication struct {
	Role Role `json:"role"`
	// ReplID is the replication ID; a synced replica has its primary's.
	ReplID string `json:"repl_id"`
	// Offset is the primary's master_repl_offset, or the replica's
	// slave_repl_offset.
	Offset int64 `json:"offset"`
	// Replicas are a primary's connected replicas.
	Replicas []ReplicaLink `json:"replicas,omitempty"`
	// Primary is a replica's primary, as host:port.
	Primary string `json:"primary,omitempty"`
	// LinkUp: a replica's link to its primary is up.
	LinkUp bool `json:"link_up,omitempty"`
	// LastIO is how long ago a replica last heard from its primary, while
	// the link is up.
	LastIO Duration `json:"last_io,omitempty"`
	// DownFor is how long a replica's link has been down.
	DownFor Duration `json:"down_for,omitempty"`
	// Syncing: a replica is loading a full sync.
	Syncing bool `json:"syncing,omitempty"`
}

// ReplicaLink is one replica as its primary sees it.
type ReplicaLink struct {
	Addr   string `json:"addr"`
	State  string `json:"state"`
	Offset int64  `json:"offset"`
	// Lag is how long ago the replica last acknowledged, in seconds.
	Lag int64 `json:"lag"`
}

// Persistence is INFO persistence.
type Persistence struct {
	Loading bool `json:"loading"`
	// RDBLastSave is when the last RDB save succeeded.
	RDBLastSave         time.Time `json:"rdb_last_save,omitzero"`
	RDBChangesSinceSave int64     `json:"rdb_changes_since_save"`
	RDBSaving           bool      `json:"rdb_saving"`
	// RDBLastStatus is ok or err.
	RDBLastStatus string `json:"rdb_last_status"`
	AOFEnabled    bool   `json:"aof_enabled"`
	AOFRewriting  bool   `json:"aof_rewriting"`
	// AOFLastWriteStatus is ok or err.
	AOFLastWriteStatus string `json:"aof_last_write_status,omitempty"`
}

// Overview reads INFO.
func (in *Instance) Overview(ctx context.Context) (Overview, error) {
	s, err := in.rdb.Info(ctx).Result()
	if err != nil {
		return Overview{}, in.fail("info", err)
	}
	return parseOverview(s), nil
}

// parseInfo reads INFO as field → value. Comments, blank and malformed lines
// are skipped, so fields of other versions do no harm.
func parseInfo(s string) map[string]string {
	m := make(map[string]string)
	for line := range strings.Lines(s) {
		line = strings.TrimSpace(line)
		if k, v, ok := strings.Cut(line, ":"); ok && k != "" && !strings.HasPrefix(line, "#") {
			m[k] = v
		}
	}
	return m
}

// parseOverview reads an INFO text. Fields it does not know are ignored and a
// field that does not parse reads as zero.
func parseOverview(s string) Overview {
	m := parseInfo(s)
	i := func(k string) int64 { n, _ := strconv.ParseInt(m[k], 10, 64); return n }
	f := func(k string) float64 { x, _ := strconv.ParseFloat(m[k], 64); return x }
	o := Overview{
		Version: m["redis_version"],
		Mode:    m["redis_mode"],
		Uptime:  Duration(time.Duration(i("uptime_in_seconds")) * time.Second),
		RunID:   m["run_id"],
		Memory: Memory{
			Used: i("used_memory"), Peak: i("used_memory_peak"), RSS: i("used_memory_rss"),
			Fragmentation: f("mem_fragmentation_ratio"), Max: i("maxmemory"), Policy: m["maxmemory_policy"],
		},
		Clients: Clients{Connected: i("connected_clients"), Blocked: i("blocked_clients")},
		Stats: Stats{
			OpsPerSec: i("instantaneous_ops_per_sec"), Hits: i("keyspace_hits"), Misses: i("keyspace_misses"),
			EvictedKeys: i("evicted_keys"), ExpiredKeys: i("expired_keys"),
		},
		Replication: Replication{Role: roleOf(m["role"]), ReplID: m["master_replid"]},
		Persistence: Persistence{
			Loading:             m["loading"] == "1",
			RDBChangesSinceSave: i("rdb_changes_since_last_save"),
			RDBSaving:           m["rdb_bgsave_in_progress"] == "1",
			RDBLastStatus:       m["rdb_last_bgsave_status"],
			AOFEnabled:          m["aof_enabled"] == "1",
			AOFRewriting:        m["aof_rewrite_in_progress"] == "1",
			AOFLastWriteStatus:  m["aof_last_write_status"],
		},
	}
	if n := o.Stats.Hits + o.Stats.Misses; n > 0 {
		o.Stats.HitRatio = float64(o.Stats.Hits) / float64(n)
	}
	if t := i("rdb_last_save_time"); t > 0 {
		o.Persistence.RDBLastSave = time.Unix(t, 0).UTC()
	}
	r := &o.Replication
	if r.Role == RoleReplica {
		r.Offset = i("slave_repl_offset")
		if h := m["master_host"]; h != "" {
			r.Primary = net.JoinHostPort(h, m["master_port"])
		}
		r.LinkUp = m["master_link_status"] == "up"
		if r.LinkUp {
			r.LastIO = Duration(time.Duration(i("master_last_io_seconds_ago")) * time.Second)
		} else {
			r.DownFor = Duration(time.Duration(i("master_link_down_since_seconds")) * time.Second)
		}
		r.Syncing = m["master_sync_in_progress"] == "1"
	} else {
		r.Offset = i("master_repl_offset")
	}
	for k, v := range m {
		if rest, ok := strings.CutPrefix(k, "slave"); ok && isDigits(rest) {
			r.Replicas = append(r.Replicas, parseReplica(v))
		}
		if rest, ok := strings.CutPrefix(k, "db"); ok && isDigits(rest) {
			db, _ := strconv.Atoi(rest)
			kv := fields(v)
			keys, _ := strconv.ParseInt(kv["keys"], 10, 64)
			exp, _ := strconv.ParseInt(kv["expires"], 10, 64)
			o.Keyspace = append(o.Keyspace, DBKeys{DB: db, Keys: keys, Expires: exp})
		}
	}
	sort.Slice(r.Replicas, func(a, b int) bool { return r.Replicas[a].Addr < r.Replicas[b].Addr })
	sort.Slice(o.Keyspace, func(a, b int) bool { return o.Keyspace[a].DB < o.Keyspace[b].DB })
	return o
}

// parseReplica reads "ip=10.0.0.2,port=6379,state=online,offset=14,lag=0".
func parseReplica(v string) ReplicaLink {
	kv := fields(v)
	off, _ := strconv.ParseInt(kv["offset"], 10, 64)
	lag, _ := strconv.ParseInt(kv["lag"], 10, 64)
	return ReplicaLink{Addr: net.JoinHostPort(kv["ip"], kv["port"]), State: kv["state"], Offset: off, Lag: lag}
}

// fields reads "a=1,b=2".
func fields(v string) map[string]string {
	m := make(map[string]string)
	for f := range strings.SplitSeq(v, ",") {
		if k, val, ok := strings.Cut(f, "="); ok {
			m[k] = val
		}
	}
	return m
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
