//go:build integration

package cache

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shuanghuo/shuanghuo/internal/mwtest"
)

// The shared instances, each for the tests that read it:
//   - big (allkeys-lfu, with a password) and its replica bigrep: big and
//     hot keys, seeded once by TestMain;
//   - plain (noeviction): the key browser, in databases of its own per test,
//     and the refusal of hot keys;
//   - slow (every command logged): the slow log.
var big, bigrep, plain, slow *mwtest.Service

const password = "p4ss-w0rd-secret"

func TestMain(m *testing.M) {
	os.Exit(mwtest.Main(m, mwtest.Config{}, func(ctx context.Context, r *mwtest.Rig) error {
		var err error
		// lfu-log-factor 0: each access adds one to a key's counter, so the
		// planted hot keys have known frequencies.
		if big, err = r.StartRedis(ctx, mwtest.CenterA, mwtest.RedisOptions{Name: "big", Password: password,
			Config: []string{"maxmemory-policy allkeys-lfu", "lfu-log-factor 0"}}); err != nil {
			return err
		}
		specs := []struct {
			svc  **mwtest.Service
			opts mwtest.RedisOptions
		}{
			{&bigrep, mwtest.RedisOptions{Name: "bigrep", Password: password}},
			{&plain, mwtest.RedisOptions{Name: "plain"}},
			{&slow, mwtest.RedisOptions{Name: "slow", Config: []string{"slowlog-log-slower-than 0", "slowlog-max-len 1000"}}},
		}
		errs := make([]error, len(specs))
		var wg sync.WaitGroup
		for i, s := range specs {
			wg.Go(func() { *s.svc, errs[i] = r.StartRedis(ctx, mwtest.CenterA, s.opts) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
		if err := seedBig(ctx); err != nil {
			return fmt.Errorf("seeding big: %w", err)
		}
		host, port, _ := net.SplitHostPort(big.CenterAddr)
		rc := goredis.NewClient(&goredis.Options{Addr: bigrep.HostAddr, Password: password, DisableIdentity: true})
		defer rc.Close()
		return rc.Do(ctx, "REPLICAOF", host, port).Err()
	}))
}

// The big keys planted in big, biggest first, each far bigger than the
// small keys around them.
var planted = []struct{ key, typ string }{
	{"blob:9f86d081884c7d65", "string"}, // 1 MB
	{"feed:7", "list"},                  // 60000 elements of 10 bytes
	{"cart:42", "hash"},                 // 5000 fields
	{"tags:1", "set"},                   // 3000 members
}

const smallKeys = 2000

func seedBig(ctx context.Context) error {
	c := goredis.NewClient(&goredis.Options{Addr: big.HostAddr, Password: password, DisableIdentity: true})
	defer c.Close()
	_, err := c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i := range smallKeys {
			p.Set(ctx, fmt.Sprintf("user:%d:name", i), "someone", 0)
		}
		p.Set(ctx, planted[0].key, strings.Repeat("x", 1_000_000), 0)
		for i := range 60000 {
			p.RPush(ctx, "feed:7", fmt.Sprintf("item-%05d", i))
		}
		for i := range 5000 {
			p.HSet(ctx, "cart:42", fmt.Sprintf("sku%d", i), "1")
		}
		for i := range 3000 {
			p.SAdd(ctx, "tags:1", fmt.Sprintf("tag%d", i))
		}
		// The hot keys: 100 and 60 reads.
		for range 100 {
			p.Get(ctx, "user:7:name")
		}
		for range 60 {
			p.Get(ctx, "user:8:name")
		}
		return nil
	})
	return err
}

func open(t *testing.T, s *mwtest.Service, cfg Config) *Instance {
	t.Helper()
	cfg.Addr = s.HostAddr
	if s == big || s == bigrep {
		cfg.Password = password
	}
	cfg.ScanRate = 1_000_000
	in, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = in.Close() })
	return in
}

func raw(t *testing.T, s *mwtest.Service, db int) *goredis.Client {
	c := goredis.NewClient(&goredis.Options{Addr: s.HostAddr, DB: db, DisableIdentity: true})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestBigKeysFindsThePlantedKeys(t *testing.T) {
	mwtest.Require(t)
	ctx := t.Context()
	rep, err := open(t, big, Config{}).BigKeys(ctx, BigKeysOptions{ScanOptions: ScanOptions{Top: 4}})
	require.NoError(t, err)
	checkBig(t, rep)
	assert.Equal(t, RolePrimary, rep.Role)
}

func checkBig(t *testing.T, rep BigKeysReport) {
	t.Helper()
	assert.True(t, rep.Complete)
	assert.Equal(t, int64(smallKeys+len(planted)), rep.Scanned)
	assert.Equal(t, rep.Scanned, rep.Measured)
	require.Len(t, rep.Top, len(planted))
	for i, p := range planted {
		assert.Equal(t, p.key, rep.Top[i].Key)
		assert.Equal(t, p.typ, rep.Top[i].Type)
	}
	assert.Equal(t, int64(1_000_000), rep.Top[0].Length)
	assert.Equal(t, int64(60000), rep.Top[1].Length)
	assert.Greater(t, rep.Top[0].Bytes, int64(1_000_000))
	byPrefix := map[string]PrefixUsage{}
	for _, u := range rep.Prefixes {
		byPrefix[u.Prefix] = u
	}
	assert.Equal(t, int64(smallKeys), byPrefix["user:"].Keys)
	assert.Equal(t, int64(1), byPrefix["blob:"].Keys)
	assert.Equal(t, "blob:", rep.Prefixes[0].Prefix)
}

func TestBigKeysOnTheReplica(t *testing.T) {
	mwtest.Require(t)
	ctx := t.Context()
	primary, replica := open(t, big, Config{}), open(t, bigrep, Config{})
	// Wait until the replica holds the data set.
	require.Eventually(t, func() bool {
		o, err := replica.Overview(ctx)
		return err == nil && o.Replication.LinkUp && !o.Replication.Syncing &&
			len(o.Keyspace) == 1 && o.Keyspace[0].Keys == smallKeys+int64(len(planted))
	}, 30*time.Second, 50*time.Millisecond)
	before := commandCalls(t, big, "memory|usage")
	rep, err := primary.BigKeys(ctx, BigKeysOptions{ScanOptions: ScanOptions{Top: 4}, Replica: replica})
	require.NoError(t, err)
	checkBig(t, rep)
	assert.Equal(t, RoleReplica, rep.Role)
	assert.Equal(t, bigrep.HostAddr, rep.Addr)
	assert.Equal(t, before, commandCalls(t, big, "memory|usage"), "the primary measured nothing")

	// An instance that is not its replica is refused.
	_, err = primary.BigKeys(ctx, BigKeysOptions{Replica: open(t, plain, Config{})})
	assert.ErrorIs(t, err, ErrNotReplica)
}

// commandCalls reads how often the instance ran a command (INFO commandstats).
func commandCalls(t *testing.T, s *mwtest.Service, cmd string) string {
	c := goredis.NewClient(&goredis.Options{Addr: s.HostAddr, Password: password, DisableIdentity: true})
	defer c.Close()
	info, err := c.Info(t.Context(), "commandstats").Result()
	require.NoError(t, err)
	v := parseInfo(info)["cmdstat_"+cmd]
	calls, _, _ := strings.Cut(v, ",")
	return calls
}

func TestBigKeysSampledAndRateLimited(t *testing.T) {
	mwtest.Require(t)
	in := open(t, big, Config{})
	start := time.Now()
	rep, err := in.BigKeys(t.Context(), BigKeysOptions{ScanOptions: ScanOptions{Rate: 4000}, Sample: 0.5})
	require.NoError(t, err)
	// 2004 keys at 4000 keys/s, the first 1000 at once: at least 0.25 s.
	assert.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond)
	assert.Equal(t, int64(smallKeys+len(planted)), rep.Scanned)
	assert.InDelta(t, rep.Scanned/2, rep.Measured, float64(rep.Scanned)/5)
	for _, u := range rep.Prefixes {
		if u.Prefix == "user:" {
			assert.InDelta(t, u.Bytes*2, u.EstimatedBytes, float64(u.Bytes))
		}
	}

	rep, err = in.BigKeys(t.Context(), BigKeysOptions{ScanOptions: ScanOptions{MaxKeys: 150}})
	require.NoError(t, err)
	assert.False(t, rep.Complete)
	assert.Equal(t, int64(150), rep.Scanned)
}

func TestHotKeys(t *testing.T) {
	mwtest.Require(t)
	rep, err := open(t, big, Config{}).HotKeys(t.Context(), HotKeysOptions{ScanOptions{Top: 2, Pattern: "user:*"}})
	require.NoError(t, err)
	assert.Equal(t, "allkeys-lfu", rep.Policy)
	assert.True(t, rep.Complete)
	require.Len(t, rep.Top, 2)
	assert.Equal(t, "user:7:name", rep.Top[0].Key)
	assert.Equal(t, "user:8:name", rep.Top[1].Key)
	assert.Greater(t, rep.Top[0].Freq, rep.Top[1].Freq)

	_, err = open(t, plain, Config{}).HotKeys(t.Context(), HotKeysOptions{})
	require.ErrorIs(t, err, ErrNoLFU)
	assert.Contains(t, err.Error(), `"noeviction"`)
}

func TestKeysPagesThroughEveryKeyOnce(t *testing.T) {
	mwtest.Require(t)
	ctx := t.Context()
	c := raw(t, plain, 1)
	require.NoError(t, c.FlushDB(ctx).Err())
	const n = 1234
	_, err := c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i := range n {
			k := fmt.Sprintf("k:%d", i)
			if i%3 == 0 {
				p.HSet(ctx, k, "f", "v")
			} else {
				p.Set(ctx, k, "v", 0)
			}
		}
		p.Expire(ctx, "k:1", time.Hour)
		return nil
	})
	require.NoError(t, err)
	in := open(t, plain, Config{DB: 1})
	seen := map[string]KeyInfo{}
	var cursor uint64
	for pages := 0; ; pages++ {
		require.Less(t, pages, 1000)
		page, err := in.Keys(ctx, KeysQuery{Cursor: cursor, Count: 50})
		require.NoError(t, err)
		for _, k := range page.Keys {
			_, dup := seen[k.Key]
			require.False(t, dup, "key %s on two pages", k.Key)
			seen[k.Key] = k
		}
		if cursor = page.Cursor; cursor == 0 {
			break
		}
	}
	require.Len(t, seen, n)
	assert.Equal(t, "hash", seen["k:0"].Type)
	assert.Equal(t, "string", seen["k:1"].Type)
	assert.InDelta(t, float64(time.Hour), float64(seen["k:1"].TTL), float64(time.Minute))
	assert.Zero(t, seen["k:2"].TTL)

	hashes := 0
	cursor = 0
	for {
		page, err := in.Keys(ctx, KeysQuery{Cursor: cursor, Type: "hash", Pattern: "k:*", Count: 1000})
		require.NoError(t, err)
		for _, k := range page.Keys {
			require.Equal(t, "hash", k.Type)
		}
		hashes += len(page.Keys)
		if cursor = page.Cursor; cursor == 0 {
			break
		}
	}
	assert.Equal(t, (n+2)/3, hashes)

	_, err = in.Keys(ctx, KeysQuery{Type: "bitmap"})
	assert.ErrorIs(t, err, ErrInvalid)
}

func TestValuePages(t *testing.T) {
	mwtest.Require(t)
	ctx := t.Context()
	c := raw(t, plain, 2)
	require.NoError(t, c.FlushDB(ctx).Err())
	const n = 250
	_, err := c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		p.Set(ctx, "s", strings.Repeat("0123456789", 1000), 0)
		for i := range n {
			p.HSet(ctx, "h", fmt.Sprintf("f%d", i), fmt.Sprint(i))
			p.RPush(ctx, "l", fmt.Sprint(i))
			p.SAdd(ctx, "set", fmt.Sprint(i))
			p.ZAdd(ctx, "z", goredis.Z{Score: float64(i), Member: fmt.Sprint(i)})
			p.XAdd(ctx, &goredis.XAddArgs{Stream: "x", ID: fmt.Sprintf("%d-1", i+1), Values: []any{"b", i, "a", "x"}})
		}
		p.RPush(ctx, "l", strings.Repeat("y", 5000))
		return nil
	})
	require.NoError(t, err)
	in := open(t, plain, Config{DB: 2})

	// All pages of a value, joined.
	pages := func(key string, q ValueQuery) []Value {
		var vs []Value
		for {
			v, err := in.Value(ctx, key, q)
			require.NoError(t, err)
			vs = append(vs, v)
			if q.Cursor = v.Cursor; q.Cursor == "" || len(vs) > 100 {
				return vs
			}
		}
	}
	var s string
	for _, v := range pages("s", ValueQuery{MaxBytes: 4096}) {
		assert.Equal(t, int64(10000), v.Length)
		s += *v.String
	}
	assert.Equal(t, strings.Repeat("0123456789", 1000), s)

	fields := map[string]string{}
	for _, v := range pages("h", ValueQuery{Count: 100}) {
		for _, p := range v.Hash {
			fields[p.Field] = p.Value
		}
	}
	assert.Len(t, fields, n)
	assert.Equal(t, "7", fields["f7"])

	var list []string
	vs := pages("l", ValueQuery{Count: 100, MaxBytes: 100})
	require.Len(t, vs, 3)
	for _, v := range vs {
		list = append(list, v.List...)
	}
	require.Len(t, list, n+1)
	assert.Equal(t, "249", list[n-1])
	assert.Equal(t, strings.Repeat("y", 100), list[n])
	assert.Equal(t, []CutText{{Index: 50, Size: 5000}}, vs[2].Cut)
	assert.Equal(t, int64(200), vs[2].Offset)

	members := map[string]bool{}
	for _, v := range pages("set", ValueQuery{Count: 100}) {
		for _, m := range v.Set {
			members[m] = true
		}
	}
	assert.Len(t, members, n)
	scores := map[string]float64{}
	for _, v := range pages("z", ValueQuery{Count: 100}) {
		for _, m := range v.ZSet {
			scores[m.Member] = m.Score
		}
	}
	assert.Len(t, scores, n)
	assert.Equal(t, 42.0, scores["42"])

	var entries []Entry
	for _, v := range pages("x", ValueQuery{Count: 100}) {
		assert.Equal(t, int64(n), v.Length)
		entries = append(entries, v.Stream...)
	}
	require.Len(t, entries, n)
	assert.Equal(t, "250-1", entries[n-1].ID)
	assert.Equal(t, []Pair{{"b", "249"}, {"a", "x"}}, entries[n-1].Fields, "fields keep their order")

	_, err = in.Value(ctx, "missing", ValueQuery{})
	assert.ErrorIs(t, err, ErrNotFound)
	_, err = in.Value(ctx, "x", ValueQuery{Cursor: "1-1 +"})
	assert.ErrorIs(t, err, ErrInvalid)
	_, err = in.Value(ctx, "l", ValueQuery{Cursor: "-5"})
	assert.ErrorIs(t, err, ErrInvalid)
}

func TestUnlinkRefusedOnAReplica(t *testing.T) {
	mwtest.Require(t)
	ctx := t.Context()
	_, err := open(t, bigrep, Config{}).Unlink(ctx, "user:1:name")
	assert.ErrorIs(t, err, ErrReplica)

	c := raw(t, plain, 3)
	require.NoError(t, c.Set(ctx, "gone", "1", 0).Err())
	in := open(t, plain, Config{DB: 3})
	existed, err := in.Unlink(ctx, "gone")
	require.NoError(t, err)
	assert.True(t, existed)
	existed, err = in.Unlink(ctx, "gone")
	require.NoError(t, err)
	assert.False(t, existed)
}

func TestSlowLogFindsTheSlowCommands(t *testing.T) {
	mwtest.Require(t)
	ctx := t.Context()
	c := raw(t, slow, 0)
	require.NoError(t, c.ConfigSet(ctx, "slowlog-max-len", "1000").Err())
	s, err := open(t, slow, Config{}).SlowLog(SlowLogOptions{})
	require.NoError(t, err)
	_, err = s.Collect(ctx)
	require.NoError(t, err)

	for i := range 5 {
		require.NoError(t, c.HGetAll(ctx, fmt.Sprintf("cart:%d", 1000+i)).Err())
	}
	for range 3 {
		require.NoError(t, c.ZRange(ctx, "board:550e8400-e29b-41d4-a716-446655440000", 0, -1).Err())
	}
	r, err := s.Collect(ctx)
	require.NoError(t, err)
	assert.Zero(t, r.Lost)
	assert.GreaterOrEqual(t, r.New, 8)
	counts := map[SlowGroupKey]int64{}
	for _, g := range s.Report().Groups {
		counts[g.SlowGroupKey] = g.Count
	}
	assert.Equal(t, int64(5), counts[SlowGroupKey{"HGETALL", "cart:*"}])
	assert.Equal(t, int64(3), counts[SlowGroupKey{"ZRANGE", "board:*"}])

	// Read again: nothing counts twice.
	_, err = s.Collect(ctx)
	require.NoError(t, err)
	for _, g := range s.Report().Groups {
		if g.KeyPattern != "" {
			assert.Equal(t, counts[g.SlowGroupKey], g.Count, "%v", g.SlowGroupKey)
		}
	}

	// The log rolls over between reads: the entries that left it are lost,
	// and said so.
	require.NoError(t, c.ConfigSet(ctx, "slowlog-max-len", "10").Err())
	for i := range 30 {
		require.NoError(t, c.Exists(ctx, fmt.Sprintf("lost:%d", i)).Err())
	}
	r, err = s.Collect(ctx)
	require.NoError(t, err)
	assert.LessOrEqual(t, r.New, 10)
	assert.GreaterOrEqual(t, int64(r.New)+r.Lost, int64(30))
	assert.GreaterOrEqual(t, r.Lost, int64(20))
	assert.Equal(t, r.Lost, s.Report().Lost)
}

func TestOverviewAndSecrets(t *testing.T) {
	mwtest.Require(t)
	ctx := t.Context()
	o, err := open(t, big, Config{}).Overview(ctx)
	require.NoError(t, err)
	assert.Equal(t, "allkeys-lfu", o.Memory.Policy)
	assert.Equal(t, RolePrimary, o.Replication.Role)
	assert.Positive(t, o.Memory.Used)
	assert.Positive(t, o.Stats.Hits)

	cfg := Config{Addr: big.HostAddr, Password: "wrong-" + password}
	in, err := New(cfg)
	require.NoError(t, err)
	defer in.Close()
	_, err = in.Overview(ctx)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), password)
	assert.Contains(t, err.Error(), big.HostAddr)
}
