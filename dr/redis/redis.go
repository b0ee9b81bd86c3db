// Package redis is the DR group driver for Redis (standalone instances, or the
// primaries of primary/replica deployments), on go-redis v9. Register it with
// a dr.Manager as
//
//	dr.Options{Drivers: map[dr.Kind]dr.DriverFunc{dr.KindRedis: redis.Open}}
//
// # Sync
//
// Pair first sets, on the replica, masteruser and masterauth to the
// primary's credentials (and tls-replication yes when the primary uses TLS),
// and repl-diskless-load to on-empty-db where it has its default: an empty
// replica then loads the data set from the socket as it arrives, which makes
// a first pairing about as fast as the transfer alone (bench/dr). It then
// points the replica at the primary's ReplicationAddr with REPLICAOF and
// waits until master_link_status is up, no full sync is in progress, and the
// replica's slave_repl_offset has reached the primary's master_repl_offset.
// Status
// reads INFO replication and INFO keyspace of both instances: lag in bytes is
// the difference of those offsets, lag in keys the difference of key counts,
// and lag in time comes from master_last_io_seconds_ago or
// master_link_down_since_seconds, in Redis's one-second resolution.
//
// # Fencing
//
// Fence sets min-replicas-to-write to 2147483647 (and min-replicas-max-lag
// to 10 if it was 0, which disables the check). Redis then answers every
// write, scripts and transactions included, with -NOREPLICAS at once, while
// the replication stream flows on, so the replica catches up with what was
// written before the fence. This was chosen over the alternatives because:
//
//   - CLIENT PAUSE WRITE blocks writers instead of failing them, so their
//     connections pile up, and it ends by itself when its timeout expires,
//     possibly after the replica was promoted: two writable primaries.
//   - An ACL that refuses writes must know every application user, and
//     changing users disconnects nothing but changes what AUTH means for
//     everyone.
//   - The setting is visible (CONFIG GET), needs one atomic CONFIG SET of
//     both parameters, survives until changed, and has no effect on a
//     replica, so a fenced primary that later becomes a replica is safe.
//
// The value is a marker: an instance whose min-replicas-to-write is
// 2147483647 is fenced. Unfence restores the settings Fence found, or 0 when
// this process did not fence it. A fence lives in memory: an instance
// restarted from its configuration file comes back with the file's settings.
// Deployments where that matters set "min-replicas-to-write 1" in the
// primary's file, so that a primary that lost its replica (or restarted
// alone) refuses writes by itself; Promote lifts it on the new primary only
// if it is the marker.
//
// # Promotion
//
// Promote refuses while the primary answers and takes writes (fence it
// first). With the primary fenced, it waits up to a second for heartbeats in
// flight and then requires the replica's offset to have reached the
// primary's, unless forced. With the primary unreachable it refuses unless
// forced: the lag is unknown. It then runs REPLICAOF NO ONE on the replica.
//
// # Drills
//
// Compare samples keys with RANDOMKEY on the primary, reads their type and
// size and, for strings up to 1 MiB and collections up to 1024 elements,
// their values, then waits until the replica has applied the primary's
// offset and reads the same from it. It writes nothing, though reading an
// expired key on the primary deletes it, as any read would.
package redis

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/shuanghuo/shuanghuo/dr"
)

// fenceMarker is the min-replicas-to-write of a fenced primary: more replicas
// than any primary has, so it refuses every write.
const fenceMarker = 2147483647

// Timeouts and polling periods.
const (
	dialTimeout  = 2 * time.Second
	readTimeout  = 5 * time.Second
	syncPoll     = 20 * time.Millisecond
	promoteGrace = time.Second
	compareWait  = 5 * time.Second
)

// Limits of Compare: larger values are compared by size only.
const (
	maxCompareBytes    = 1 << 20
	maxCompareElements = 1024
)

// fenceSettings are the settings Fence replaced.
type fenceSettings struct {
	toWrite, maxLag int64
}

type driver struct {
	cfg     dr.GroupConfig
	clients map[dr.Side]*goredis.Client

	mu    sync.Mutex
	saved map[dr.Side]fenceSettings // what Fence replaced, for Unfence
}

// Open opens the driver of a Redis DR group: a client for each instance. It
// connects lazily, so it succeeds while an instance is down.
func Open(cfg dr.GroupConfig) (dr.Driver, error) {
	d := &driver{cfg: cfg, clients: make(map[dr.Side]*goredis.Client), saved: make(map[dr.Side]fenceSettings)}
	tlsConfigs := make(map[dr.Side]*tls.Config)
	for _, s := range []dr.Side{dr.SideA, dr.SideB} {
		tc, err := cfg.Instance(s).ClientTLS()
		if err != nil {
			return nil, fmt.Errorf("dr/redis: %s: %w", s, err)
		}
		tlsConfigs[s] = tc
	}
	for _, s := range []dr.Side{dr.SideA, dr.SideB} {
		inst := cfg.Instance(s)
		d.clients[s] = goredis.NewClient(&goredis.Options{
			Addr:      inst.Addr,
			Username:  inst.Username,
			Password:  inst.Password,
			TLSConfig: tlsConfigs[s],
			// RESP2: INFO and CONFIG GET read the same on every version.
			Protocol:              2,
			DialTimeout:           dialTimeout,
			ReadTimeout:           readTimeout,
			WriteTimeout:          readTimeout,
			ContextTimeoutEnabled: true,
			// A retry hides a lost instance for longer; steps retry instead.
			MaxRetries:      -1,
			DialerRetries:   1,
			PoolSize:        4,
			DisableIdentity: true,
		})
	}
	return d, nil
}

func (d *driver) Close() error {
	return errors.Join(d.clients[dr.SideA].Close(), d.clients[dr.SideB].Close())
}

// fail wraps err of op on side s, adding dr.ErrUnreachable unless Redis
// answered it.
func (d *driver) fail(s dr.Side, op string, err error) error {
	var reply goredis.Error
	if errors.As(err, &reply) {
		return fmt.Errorf("dr/redis: %s %s (%s): %w", op, s, d.cfg.Instance(s).Addr, err)
	}
	return fmt.Errorf("dr/redis: %s %s (%s): %w: %w", op, s, d.cfg.Instance(s).Addr, dr.ErrUnreachable, err)
}

// fenceFail is fail for fencing: a primary that answered but refused wraps
// dr.ErrFence as well.
func (d *driver) fenceFail(s dr.Side, op string, err error) error {
	var reply goredis.Error
	if errors.As(err, &reply) {
		return fmt.Errorf("%w: %w", d.fail(s, op, err), dr.ErrFence)
	}
	return d.fail(s, op, err)
}

// info reads INFO sections as key → value.
func info(ctx context.Context, c *goredis.Client, sections ...string) (map[string]string, error) {
	s, err := c.Info(ctx, sections...).Result()
	if err != nil {
		return nil, err
	}
	return parseInfo(s), nil
}

func parseInfo(s string) map[string]string {
	m := make(map[string]string)
	for line := range strings.Lines(s) {
		line = strings.TrimSpace(line)
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, "#") {
			m[k] = v
		}
	}
	return m
}

// keys sums the keys of every database in an INFO keyspace reply
// ("db0:keys=3,expires=0,avg_ttl=0").
func keys(m map[string]string) int64 {
	var n int64
	for k, v := range m {
		if !strings.HasPrefix(k, "db") {
			continue
		}
		for field := range strings.SplitSeq(v, ",") {
			if num, ok := strings.CutPrefix(field, "keys="); ok {
				c, _ := strconv.ParseInt(num, 10, 64)
				n += c
			}
		}
	}
	return n
}

func atoi(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// instance is what one instance said for Status.
type instance struct {
	dr.InstanceStatus
	info map[string]string
}

func (d *driver) read(ctx context.Context, s dr.Side) instance {
	c := d.clients[s]
	var repl, space *goredis.StringCmd
	var conf *goredis.MapStringStringCmd
	_, err := c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		repl = p.Info(ctx, "replication")
		space = p.Info(ctx, "keyspace")
		conf = p.ConfigGet(ctx, "min-replicas-to-write")
		return nil
	})
	// CONFIG may be denied to the manager's user; INFO is what matters.
	if err != nil && (repl.Err() != nil || space.Err() != nil) {
		return instance{InstanceStatus: dr.InstanceStatus{Error: d.fail(s, "read", err).Error()}}
	}
	m := parseInfo(repl.Val())
	in := instance{info: m, InstanceStatus: dr.InstanceStatus{
		Reachable: true,
		Primary:   m["role"] == "master",
		Keys:      keys(parseInfo(space.Val())),
	}}
	in.Fenced = in.Primary && conf.Err() == nil && conf.Val()["min-replicas-to-write"] == strconv.Itoa(fenceMarker)
	if in.Primary {
		in.Offset = atoi(m["master_repl_offset"])
	} else {
		in.Offset = atoi(m["slave_repl_offset"])
	}
	return in
}

// replicates reports whether r's INFO says it replicates from primary.
func replicates(r map[string]string, primary dr.Instance) bool {
	host, port, err := net.SplitHostPort(primary.PeerAddr())
	return err == nil && r["role"] == "slave" && r["master_host"] == host && r["master_port"] == port
}

func (d *driver) Status(ctx context.Context, dir dr.Direction) (dr.Status, error) {
	var p, r instance
	var wg sync.WaitGroup
	wg.Go(func() { p = d.read(ctx, dir.Primary()) })
	wg.Go(func() { r = d.read(ctx, dir.Replica()) })
	wg.Wait()
	now := time.Now()
	st := dr.Status{Direction: dir, At: now, Primary: p.InstanceStatus, Replica: r.InstanceStatus}
	st.Lag = dr.Lag{Bytes: -1, Keys: -1}
	if !r.Reachable || !replicates(r.info, d.cfg.Instance(dir.Primary())) {
		return st, nil
	}
	st.LinkUp = r.info["master_link_status"] == "up"
	st.Syncing = r.info["master_sync_in_progress"] == "1"
	// Seconds since the replica last heard from its primary: while the link
	// is up, since its last read; while down, since it went down.
	silent := int64(-1)
	if st.LinkUp {
		silent = atoi(r.info["master_last_io_seconds_ago"])
	} else if down, ok := r.info["master_link_down_since_seconds"]; ok {
		silent = atoi(down)
	}
	if silent >= 0 {
		st.LastContact = now.Add(-time.Duration(silent) * time.Second)
	}
	if p.Reachable {
		st.Lag = dr.Lag{Known: true, Bytes: max(0, p.Offset-r.Offset), Keys: max(0, p.Keys-r.Keys)}
	}
	if (!st.Lag.Known || st.Lag.Bytes > 0) && silent > 0 {
		st.Lag.Time = dr.Duration(time.Duration(silent) * time.Second)
	}
	return st, nil
}

func (d *driver) Pair(ctx context.Context, dir dr.Direction) error {
	ps, rs := dir.Primary(), dir.Replica()
	primary := d.cfg.Instance(ps)
	pc, rc := d.clients[ps], d.clients[rs]
	// A replica pointed at a primary that does not answer would sync
	// nothing and wait out the timeout.
	if err := pc.Ping(ctx).Err(); err != nil {
		return d.fail(ps, "reach primary", err)
	}
	host, port, err := net.SplitHostPort(primary.PeerAddr())
	if err != nil {
		return fmt.Errorf("dr/redis: replication address of %s: %w", ps, err)
	}
	// Credentials first: the replica connects as soon as it is told to.
	args := []any{"CONFIG", "SET", "masteruser", primary.Username, "masterauth", primary.Password}
	if primary.TLS != nil {
		args = append(args, "tls-replication", "yes")
	}
	if err := rc.Do(ctx, args...).Err(); err != nil {
		return d.fail(rs, "set the primary's credentials on", err)
	}
	// An empty replica (a first pairing) can load the data set straight
	// from the socket, as it arrives, instead of through a file read after
	// the transfer: that halves the time to in-sync, and holds no second copy
	// in memory since there is no first. A choice other than the default
	// is the operator's, and stays.
	load, err := rc.ConfigGet(ctx, "repl-diskless-load").Result()
	if err != nil {
		return d.fail(rs, "read repl-diskless-load of", err)
	}
	if load["repl-diskless-load"] == "disabled" {
		if err := rc.ConfigSet(ctx, "repl-diskless-load", "on-empty-db").Err(); err != nil {
			return d.fail(rs, "set repl-diskless-load on", err)
		}
	}
	if err := rc.Do(ctx, "REPLICAOF", host, port).Err(); err != nil {
		return d.fail(rs, "REPLICAOF on", err)
	}
	// The fence of an old primary is harmless on a replica, but would make
	// it refuse writes once promoted again.
	if err := d.unfence(ctx, rs); err != nil {
		return err
	}
	return d.waitSynced(ctx, dir)
}

// waitSynced waits until the replica's link is up, its full sync done, its
// offset at the primary's as of then, and the primary counts it as a good
// replica where it needs one to take writes.
func (d *driver) waitSynced(ctx context.Context, dir dr.Direction) error {
	ps, rs := dir.Primary(), dir.Replica()
	primary := d.cfg.Instance(ps)
	target := int64(-1)
	for {
		m, err := info(ctx, d.clients[rs], "replication")
		if err != nil {
			return d.fail(rs, "wait for the initial sync of", err)
		}
		linked := replicates(m, primary) && m["master_link_status"] == "up" && m["master_sync_in_progress"] == "0"
		if linked && target < 0 {
			pm, err := info(ctx, d.clients[ps], "replication")
			if err != nil {
				return d.fail(ps, "read the offset of", err)
			}
			target = atoi(pm["master_repl_offset"])
		}
		if linked && atoi(m["slave_repl_offset"]) >= target {
			// A primary that requires replicas to write (min-replicas-to-write) counts its
			// good replicas once a second: until it counts this one it refuses writes, so
			// "in sync" waits for that too.
			pm, err := info(ctx, d.clients[ps], "replication")
			if err != nil {
				return d.fail(ps, "read the replicas of", err)
			}
			if good, counted := pm["min_slaves_good_slaves"]; !counted || atoi(good) >= 1 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("dr/redis: wait for %s to sync from %s (link %s, offset %s of %d): %w",
				rs, ps, m["master_link_status"], m["slave_repl_offset"], target, context.Cause(ctx))
		case <-time.After(syncPoll):
		}
	}
}

func (d *driver) Fence(ctx context.Context, dir dr.Direction) error {
	return d.fence(ctx, dir.Primary())
}

func (d *driver) fence(ctx context.Context, s dr.Side) error {
	c := d.clients[s]
	cur, err := c.ConfigGet(ctx, "min-replicas-*").Result()
	if err != nil {
		return d.fenceFail(s, "fence", err)
	}
	toWrite, maxLag := atoi(cur["min-replicas-to-write"]), atoi(cur["min-replicas-max-lag"])
	if toWrite != fenceMarker {
		d.mu.Lock()
		d.saved[s] = fenceSettings{toWrite: toWrite, maxLag: maxLag}
		d.mu.Unlock()
	}
	// A max lag of 0 disables the check; any other value keeps it.
	newLag := maxLag
	if newLag == 0 {
		newLag = 10
	}
	if err := c.Do(ctx, "CONFIG", "SET", "min-replicas-max-lag", newLag, "min-replicas-to-write", fenceMarker).Err(); err != nil {
		return d.fenceFail(s, "fence", err)
	}
	got, err := c.ConfigGet(ctx, "min-replicas-to-write").Result()
	if err != nil {
		return d.fenceFail(s, "check the fence of", err)
	}
	if got["min-replicas-to-write"] != strconv.Itoa(fenceMarker) {
		return fmt.Errorf("dr/redis: fence %s: min-replicas-to-write reads %q after setting it: %w", s, got["min-replicas-to-write"], dr.ErrFence)
	}
	return nil
}

func (d *driver) Unfence(ctx context.Context, dir dr.Direction) error {
	return d.unfence(ctx, dir.Primary())
}

func (d *driver) unfence(ctx context.Context, s dr.Side) error {
	c := d.clients[s]
	cur, err := c.ConfigGet(ctx, "min-replicas-*").Result()
	if err != nil {
		return d.fail(s, "unfence", err)
	}
	d.mu.Lock()
	saved, ok := d.saved[s]
	delete(d.saved, s)
	d.mu.Unlock()
	if atoi(cur["min-replicas-to-write"]) != fenceMarker {
		return nil
	}
	if !ok {
		saved = fenceSettings{maxLag: atoi(cur["min-replicas-max-lag"])}
	}
	if err := c.Do(ctx, "CONFIG", "SET", "min-replicas-to-write", saved.toWrite, "min-replicas-max-lag", saved.maxLag).Err(); err != nil {
		return d.fail(s, "unfence", err)
	}
	return nil
}

func (d *driver) Promote(ctx context.Context, dir dr.Direction, opts dr.PromoteOptions) (dr.Status, error) {
	rs := dir.Replica()
	st, err := d.Status(ctx, dir)
	if err != nil {
		return st, err
	}
	if !st.Replica.Reachable {
		return st, fmt.Errorf("dr/redis: promote %s: %s: %w", rs, st.Replica.Error, dr.ErrUnreachable)
	}
	switch {
	case st.Primary.Writable():
		return st, fmt.Errorf("dr/redis: promote %s: %w: %s still takes writes", rs, dr.ErrNotFenced, dir.Primary())
	case st.Primary.Reachable:
		// Fenced: only heartbeats and expirations still move its offset;
		// give those in flight a moment to arrive.
		deadline := time.Now().Add(promoteGrace)
		for st.Lag.Bytes > 0 && time.Now().Before(deadline) {
			select {
			case <-ctx.Done():
				return st, fmt.Errorf("dr/redis: promote %s: %w", rs, ctx.Err())
			case <-time.After(syncPoll):
			}
			if st, err = d.Status(ctx, dir); err != nil {
				return st, err
			}
		}
		if st.Lag.Bytes > 0 && !opts.Force {
			return st, fmt.Errorf("dr/redis: promote %s: %w by %d bytes", rs, dr.ErrLagNotZero, st.Lag.Bytes)
		}
	case !opts.Force:
		return st, fmt.Errorf("dr/redis: promote %s: %w: %s does not answer (%s)", rs, dr.ErrLagUnknown, dir.Primary(), st.Primary.Error)
	}
	// Lift a fence marker first, while the instance is still a replica, so
	// that it takes writes from the moment it is a primary.
	if err := d.unfence(ctx, rs); err != nil {
		return st, err
	}
	if err := d.clients[rs].Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		return st, d.fail(rs, "promote", err)
	}
	return st, nil
}

func (d *driver) Unpair(ctx context.Context, dir dr.Direction) error {
	rs := dir.Replica()
	if err := d.fence(ctx, rs); err != nil {
		return err
	}
	if err := d.clients[rs].Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		return d.fail(rs, "unpair", err)
	}
	return nil
}

var _ dr.Driver = (*driver)(nil)

// value is what Compare reads of one key.
type value struct {
	typ  string
	size int64
	data string // empty when the value is too large to compare
}

func (d *driver) Compare(ctx context.Context, dir dr.Direction, n int) (dr.Comparison, error) {
	ps, rs := dir.Primary(), dir.Replica()
	pc := d.clients[ps]
	cmds, err := pc.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for range n {
			p.RandomKey(ctx)
		}
		return nil
	})
	if err != nil && !errors.Is(err, goredis.Nil) {
		return dr.Comparison{}, d.fail(ps, "sample keys of", err)
	}
	seen := make(map[string]bool)
	var sample []string
	for _, c := range cmds {
		if k := c.(*goredis.StringCmd).Val(); k != "" && !seen[k] {
			seen[k] = true
			sample = append(sample, k)
		}
	}
	sort.Strings(sample)
	res := dr.Comparison{Sampled: len(sample)}
	differ, err := d.differing(ctx, dir, sample)
	if err != nil {
		return res, err
	}
	// A key may have changed between the two reads; read those again.
	if len(differ) > 0 {
		if differ, err = d.differing(ctx, dir, differ); err != nil {
			return res, err
		}
	}
	res.Examples = differ[:min(len(differ), 10)]
	now, err := d.readValues(ctx, rs, differ)
	if err != nil {
		return res, err
	}
	for _, v := range now {
		if v.typ == "none" {
			res.Missing++
		} else {
			res.Different++
		}
	}
	return res, nil
}

// differing reads keys on the primary, waits until the replica has applied
// what the primary had then, reads them on the replica and returns those
// that differ.
func (d *driver) differing(ctx context.Context, dir dr.Direction, keys []string) ([]string, error) {
	ps, rs := dir.Primary(), dir.Replica()
	pv, err := d.readValues(ctx, ps, keys)
	if err != nil {
		return nil, err
	}
	m, err := info(ctx, d.clients[ps], "replication")
	if err != nil {
		return nil, d.fail(ps, "read the offset of", err)
	}
	// A replica that does not catch up in time shows as differing.
	wctx, cancel := context.WithTimeout(ctx, compareWait)
	defer cancel()
	d.waitApplied(wctx, rs, atoi(m["master_repl_offset"]))
	rv, err := d.readValues(ctx, rs, keys)
	if err != nil {
		return nil, err
	}
	var out []string
	for i, k := range keys {
		if pv[i] != rv[i] {
			out = append(out, k)
		}
	}
	return out, nil
}

// waitApplied waits until side s has applied its primary's replication
// stream up to offset target, or ctx is done.
func (d *driver) waitApplied(ctx context.Context, s dr.Side, target int64) {
	for {
		m, err := info(ctx, d.clients[s], "replication")
		if err == nil && atoi(m["slave_repl_offset"]) >= target {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(syncPoll):
		}
	}
}

// readValues reads the type, size and (when small enough) value of keys on
// side s, in three pipelined round trips.
func (d *driver) readValues(ctx context.Context, s dr.Side, keys []string) ([]value, error) {
	c := d.clients[s]
	out := make([]value, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	types := make([]*goredis.StatusCmd, len(keys))
	if _, err := c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, k := range keys {
			types[i] = p.Type(ctx, k)
		}
		return nil
	}); err != nil {
		return nil, d.fail(s, "read key types of", err)
	}
	sizes := make([]*goredis.IntCmd, len(keys))
	if _, err := c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, k := range keys {
			out[i].typ = types[i].Val()
			sizes[i] = sizeCmd(ctx, p, out[i].typ, k)
		}
		return nil
	}); err != nil && !errors.Is(err, goredis.Nil) {
		return nil, d.fail(s, "read key sizes of", err)
	}
	vals := make([]func() string, len(keys))
	if _, err := c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, k := range keys {
			if sizes[i] == nil {
				continue
			}
			out[i].size = sizes[i].Val()
			if small(out[i]) {
				vals[i] = valueCmd(ctx, p, out[i].typ, k)
			}
		}
		return nil
	}); err != nil && !errors.Is(err, goredis.Nil) {
		return nil, d.fail(s, "read values of", err)
	}
	for i, f := range vals {
		if f != nil {
			out[i].data = f()
		}
	}
	return out, nil
}

func small(v value) bool {
	if v.typ == "string" {
		return v.size <= maxCompareBytes
	}
	return v.size <= maxCompareElements
}

// sizeCmd queues the size of a key of type typ: bytes of a string, elements
// of a collection; nil for a type without one.
func sizeCmd(ctx context.Context, p goredis.Pipeliner, typ, key string) *goredis.IntCmd {
	switch typ {
	case "string":
		return p.StrLen(ctx, key)
	case "list":
		return p.LLen(ctx, key)
	case "set":
		return p.SCard(ctx, key)
	case "zset":
		return p.ZCard(ctx, key)
	case "hash":
		return p.HLen(ctx, key)
	case "stream":
		return p.XLen(ctx, key)
	}
	return nil
}

// valueCmd queues a read of a key's value and returns how to render it in a
// form equal for equal values: sets and hashes sorted.
func valueCmd(ctx context.Context, p goredis.Pipeliner, typ, key string) func() string {
	switch typ {
	case "string":
		c := p.Get(ctx, key)
		return c.Val
	case "list":
		c := p.LRange(ctx, key, 0, -1)
		return func() string { return fmt.Sprintf("%q", c.Val()) }
	case "set":
		c := p.SMembers(ctx, key)
		return func() string { v := c.Val(); sort.Strings(v); return fmt.Sprintf("%q", v) }
	case "zset":
		c := p.ZRangeWithScores(ctx, key, 0, -1)
		return func() string { return fmt.Sprint(c.Val()) }
	case "hash":
		c := p.HGetAll(ctx, key)
		return func() string { return fmt.Sprint(c.Val()) } // fmt sorts map keys
	case "stream":
		c := p.XRange(ctx, key, "-", "+")
		return func() string { return fmt.Sprint(c.Val()) }
	}
	return nil
}
