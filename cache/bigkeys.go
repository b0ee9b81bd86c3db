package cache

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

// ScanOptions bound a scan of the whole key space.
type ScanOptions struct {
	// Pattern is SCAN's MATCH glob. Default: every key.
	Pattern string `json:"pattern,omitempty" validate:"max=1024"`
	// Type keeps keys of one type only (SCAN's TYPE).
	Type string `json:"type,omitempty" validate:"omitempty,oneof=string list set zset hash stream"`
	// Top is how many keys the report lists. Default: 20. At most 1000.
	Top int `json:"top,omitempty" validate:"min=0,max=1000"`
	// Rate is how many keys per second this scan may examine, below the
	// instance's ScanRate, which every scan shares. Default: the
	// instance's. At most 1000000.
	Rate int `json:"rate,omitempty" validate:"min=0,max=1000000"`
	// MaxKeys stops the scan after this many keys; the report is then not
	// Complete. Default: 10000000. At most 1000000000.
	MaxKeys int64 `json:"max_keys,omitempty" validate:"min=0,max=1000000000"`
}

// scanBatch is SCAN's COUNT in the full scans.
const scanBatch = 100

// scan runs SCAN over the key space, calling each with every batch of keys,
// within the instance's rate and lim's (when set) and o.MaxKeys.
func (in *Instance) scan(ctx context.Context, o ScanOptions, each func([]string) error) (scanned int64, complete bool, err error) {
	maxKeys := o.MaxKeys
	if maxKeys == 0 {
		maxKeys = 10_000_000
	}
	var lim *rate.Limiter
	if o.Rate > 0 {
		lim = rate.NewLimiter(rate.Limit(o.Rate), min(o.Rate, maxBurst))
	}
	var cursor uint64
	for scanned < maxKeys {
		if err := take(ctx, in.limiter, scanBatch); err != nil {
			return scanned, false, in.fail("scan", err)
		}
		if lim != nil {
			if err := take(ctx, lim, scanBatch); err != nil {
				return scanned, false, in.fail("scan", err)
			}
		}
		keys, next, err := in.rdb.ScanType(ctx, cursor, o.Pattern, scanBatch, o.Type).Result()
		if err != nil {
			return scanned, false, in.fail("scan", err)
		}
		cutShort := false
		if rest := maxKeys - scanned; int64(len(keys)) > rest {
			keys, cutShort = keys[:rest], true
		}
		scanned += int64(len(keys))
		if err := each(keys); err != nil {
			return scanned, false, err
		}
		if next == 0 {
			return scanned, !cutShort, nil
		}
		cursor = next
	}
	return scanned, false, nil
}

// BigKeysOptions tune BigKeys.
type BigKeysOptions struct {
	ScanOptions
	// Samples is MEMORY USAGE's SAMPLES: how many elements of a collection
	// are measured to estimate its size. Default: 5. At most 10000.
	Samples int `json:"samples,omitempty" validate:"min=0,max=10000"`
	// Sample is the share of scanned keys measured, from 0.0001 to 1;
	// the prefixes' EstimatedBytes scale up what was measured. Default: 1.
	Sample float64 `json:"sample,omitempty" validate:"min=0,max=1"`
	// Separator splits keys into prefixes. Default: ":".
	Separator string `json:"separator,omitempty" validate:"max=8"`
	// Depth is how many parts of a key make its prefix. Default: 1. At most 8.
	Depth int `json:"depth,omitempty" validate:"min=0,max=8"`
	// MaxPrefixes bounds the prefixes listed; keys of further prefixes are
	// counted under "(other)". Default: 1000. At most 100000.
	MaxPrefixes int `json:"max_prefixes,omitempty" validate:"min=0,max=100000"`
	// Replica, when set, is a replica of this instance to scan instead, so
	// that the primary does no work for it. BigKeys checks that it is one.
	Replica *Instance `json:"-"`
}

// BigKeysReport is what BigKeys found.
type BigKeysReport struct {
	// Addr and Role are of the instance scanned.
	Addr string `json:"addr"`
	Role Role   `json:"role"`
	// Scanned keys, of which Measured had their memory read.
	Scanned  int64 `json:"scanned"`
	Measured int64 `json:"measured"`
	// Complete: the scan went through the whole key space.
	Complete bool     `json:"complete"`
	Elapsed  Duration `json:"elapsed"`
	// Top are the biggest keys measured, biggest first.
	Top []BigKey `json:"top"`
	// Prefixes are memory by key prefix, biggest first.
	Prefixes []PrefixUsage `json:"prefixes"`
}

// BigKey is a key and its size.
type BigKey struct {
	Key  string `json:"key"`
	Type string `json:"type"`
	// Bytes is MEMORY USAGE: the key, its value and their overhead.
	Bytes int64 `json:"bytes"`
	// Length is bytes of a string, elements otherwise (0 for module types).
	Length int64 `json:"length"`
}

// PrefixUsage is the memory of the keys sharing a prefix.
type PrefixUsage struct {
	Prefix   string `json:"prefix"`
	Keys     int64  `json:"keys"`
	Measured int64  `json:"measured"`
	Bytes    int64  `json:"bytes"`
	// EstimatedBytes is Bytes scaled to all the prefix's keys.
	EstimatedBytes int64 `json:"estimated_bytes"`
}

// BigKeys scans the key space (or o.Replica's) with SCAN and MEMORY USAGE,
// within the rates, and lists the biggest keys and the memory by prefix.
func (in *Instance) BigKeys(ctx context.Context, o BigKeysOptions) (BigKeysReport, error) {
	v := &ValidationError{Cause: ErrInvalid}
	v.AddStruct(&o)
	if o.Sample != 0 && o.Sample < 0.0001 {
		v.Add("sample", "must be from 0.0001 to 1")
	}
	if err := v.Err(); err != nil {
		return BigKeysReport{}, err
	}
	top, samples, sep, depth, maxPrefixes := or(o.Top, 20), or(o.Samples, 5), o.Separator, or(o.Depth, 1), or(o.MaxPrefixes, 1000)
	if sep == "" {
		sep = ":"
	}
	sample := o.Sample
	if sample == 0 {
		sample = 1
	}
	on, role := in, RolePrimary
	if o.Replica != nil {
		if err := in.checkReplica(ctx, o.Replica); err != nil {
			return BigKeysReport{}, err
		}
		on, role = o.Replica, RoleReplica
	} else if r, err := in.role(ctx); err != nil {
		return BigKeysReport{}, err
	} else {
		role = r
	}
	start := time.Now()
	rep := BigKeysReport{Addr: on.addr, Role: role, Top: []BigKey{}, Prefixes: []PrefixUsage{}}
	h := &topHeap{}
	prefixes := make(map[string]*PrefixUsage)
	usage := func(p string) *PrefixUsage {
		u := prefixes[p]
		if u == nil {
			if len(prefixes) >= maxPrefixes {
				p = "(other)"
				u = prefixes[p]
			}
			if u == nil {
				u = &PrefixUsage{Prefix: p}
				prefixes[p] = u
			}
		}
		return u
	}
	var err error
	rep.Scanned, rep.Complete, err = on.scan(ctx, o.ScanOptions, func(keys []string) error {
		var measure []string
		for _, k := range keys {
			usage(Prefix(k, sep, depth)).Keys++
			if sample >= 1 || rand.Float64() < sample {
				measure = append(measure, k)
			}
		}
		if len(measure) == 0 {
			return nil
		}
		cmds := make([]*goredis.IntCmd, len(measure))
		if _, err := on.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i, k := range measure {
				cmds[i] = p.MemoryUsage(ctx, k, samples)
			}
			return nil
		}); err != nil && !errors.Is(err, goredis.Nil) {
			return on.fail("memory usage", err)
		}
		for i, k := range measure {
			n, err := cmds[i].Result()
			if errors.Is(err, goredis.Nil) {
				continue // gone since SCAN saw it
			}
			if err != nil {
				return on.fail("memory usage", err)
			}
			rep.Measured++
			u := usage(Prefix(k, sep, depth))
			u.Measured++
			u.Bytes += n
			h.keep(BigKey{Key: k, Bytes: n}, top)
		}
		return nil
	})
	if err != nil {
		return BigKeysReport{}, err
	}
	for h.Len() > 0 {
		rep.Top = append(rep.Top, heap.Pop(h).(BigKey))
	}
	for i, j := 0, len(rep.Top)-1; i < j; i, j = i+1, j-1 {
		rep.Top[i], rep.Top[j] = rep.Top[j], rep.Top[i]
	}
	if err := on.lengths(ctx, rep.Top); err != nil {
		return BigKeysReport{}, err
	}
	for _, u := range prefixes {
		if u.Measured > 0 {
			u.EstimatedBytes = u.Bytes * u.Keys / u.Measured
		}
		rep.Prefixes = append(rep.Prefixes, *u)
	}
	sort.Slice(rep.Prefixes, func(i, j int) bool {
		a, b := rep.Prefixes[i], rep.Prefixes[j]
		if a.EstimatedBytes != b.EstimatedBytes {
			return a.EstimatedBytes > b.EstimatedBytes
		}
		return a.Prefix < b.Prefix
	})
	rep.Elapsed = Duration(time.Since(start))
	return rep, nil
}

// lengths fills in the type and length of keys.
func (in *Instance) lengths(ctx context.Context, keys []BigKey) error {
	infos := make([]*goredis.StatusCmd, len(keys))
	if _, err := in.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, k := range keys {
			infos[i] = p.Type(ctx, k.Key)
		}
		return nil
	}); err != nil {
		return in.fail("type", err)
	}
	lens := make([]*goredis.IntCmd, len(keys))
	if _, err := in.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, k := range keys {
			keys[i].Type = infos[i].Val()
			switch keys[i].Type {
			case "string":
				lens[i] = p.StrLen(ctx, k.Key)
			case "list":
				lens[i] = p.LLen(ctx, k.Key)
			case "set":
				lens[i] = p.SCard(ctx, k.Key)
			case "zset":
				lens[i] = p.ZCard(ctx, k.Key)
			case "hash":
				lens[i] = p.HLen(ctx, k.Key)
			case "stream":
				lens[i] = p.XLen(ctx, k.Key)
			}
		}
		return nil
	}); err != nil {
		return in.fail("length", err)
	}
	for i := range keys {
		if lens[i] != nil {
			keys[i].Length = lens[i].Val()
		}
	}
	return nil
}

// checkReplica checks that r is a replica of in: its role says so and it
// has in's replication ID, which a replica takes from its primary.
func (in *Instance) checkReplica(ctx context.Context, r *Instance) error {
	mine, err := in.rdb.Info(ctx, "replication").Result()
	if err != nil {
		return in.fail("info", err)
	}
	theirs, err := r.rdb.Info(ctx, "replication").Result()
	if err != nil {
		return r.fail("info", err)
	}
	p, q := parseInfo(mine), parseInfo(theirs)
	if roleOf(q["role"]) != RoleReplica || q["master_replid"] == "" || q["master_replid"] != p["master_replid"] {
		return fmt.Errorf("cache: %s for %s: %w", r.addr, in.addr, ErrNotReplica)
	}
	return nil
}

// HotKeysOptions tune HotKeys.
type HotKeysOptions struct {
	ScanOptions
}

// HotKeysReport is what HotKeys found.
type HotKeysReport struct {
	Policy   string   `json:"policy"`
	Scanned  int64    `json:"scanned"`
	Complete bool     `json:"complete"`
	Elapsed  Duration `json:"elapsed"`
	// Top are the keys of highest access frequency, highest first.
	Top []HotKey `json:"top"`
}

// HotKey is a key and its LFU counter: a logarithmic access count that
// decays with time (lfu-log-factor, lfu-decay-time), 0 to 255.
type HotKey struct {
	Key  string `json:"key"`
	Freq int64  `json:"freq"`
}

// HotKeys scans the key space within the rates and lists the keys of
// highest OBJECT FREQ. Redis keeps access frequencies only under an LFU
// maxmemory-policy; under another, HotKeys returns ErrNoLFU naming it.
func (in *Instance) HotKeys(ctx context.Context, o HotKeysOptions) (HotKeysReport, error) {
	v := &ValidationError{Cause: ErrInvalid}
	v.AddStruct(&o)
	if err := v.Err(); err != nil {
		return HotKeysReport{}, err
	}
	s, err := in.rdb.Info(ctx, "memory").Result()
	if err != nil {
		return HotKeysReport{}, in.fail("info", err)
	}
	policy := parseInfo(s)["maxmemory_policy"]
	if !strings.HasSuffix(policy, "-lfu") {
		return HotKeysReport{}, fmt.Errorf("cache: hot keys of %s: %w: it is %q; OBJECT FREQ needs allkeys-lfu or volatile-lfu", in.addr, ErrNoLFU, policy)
	}
	top := or(o.Top, 20)
	start := time.Now()
	rep := HotKeysReport{Policy: policy, Top: []HotKey{}}
	h := &topHeap{}
	rep.Scanned, rep.Complete, err = in.scan(ctx, o.ScanOptions, func(keys []string) error {
		cmds := make([]*goredis.IntCmd, len(keys))
		if _, err := in.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i, k := range keys {
				cmds[i] = p.ObjectFreq(ctx, k)
			}
			return nil
		}); err != nil && !errors.Is(err, goredis.Nil) {
			return in.fail("object freq", err)
		}
		for i, k := range keys {
			n, err := cmds[i].Result()
			if errors.Is(err, goredis.Nil) {
				continue // gone since SCAN saw it
			}
			if err != nil {
				return in.fail("object freq", err)
			}
			h.keep(BigKey{Key: k, Bytes: n}, top)
		}
		return nil
	})
	if err != nil {
		return HotKeysReport{}, err
	}
	for h.Len() > 0 {
		k := heap.Pop(h).(BigKey)
		rep.Top = append([]HotKey{{Key: k.Key, Freq: k.Bytes}}, rep.Top...)
	}
	rep.Elapsed = Duration(time.Since(start))
	return rep, nil
}

func or(n, def int) int {
	if n == 0 {
		return def
	}
	return n
}

// topHeap is a min-heap of keys by Bytes, keeping the N largest.
type topHeap []BigKey

// keep adds k if the heap holds fewer than top keys, or if k is bigger than the smallest.
func (h *topHeap) keep(k BigKey, top int) {
	if h.Len() < top {
		heap.Push(h, k)
	} else if k.Bytes > (*h)[0].Bytes {
		(*h)[0] = k
		heap.Fix(h, 0)
	}
}

func (h topHeap) Len() int { return len(h) }
func (h topHeap) Less(i, j int) bool {
	if h[i].Bytes != h[j].Bytes {
		return h[i].Bytes < h[j].Bytes
	}
	return h[i].Key > h[j].Key
}
func (h topHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *topHeap) Push(x any)   { *h = append(*h, x.(BigKey)) }
func (h *topHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
