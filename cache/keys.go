package cache

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// KeysQuery is one page of the key browser.
type KeysQuery struct {
	// Cursor continues a scan: 0 starts one, a page's Cursor continues it.
	Cursor uint64 `json:"cursor"`
	// Pattern is SCAN's MATCH glob. Default: every key.
	Pattern string `json:"pattern,omitempty" validate:"max=1024"`
	// Type keeps keys of one type only (SCAN's TYPE).
	Type string `json:"type,omitempty" validate:"omitempty,oneof=string list set zset hash stream"`
	// Count is about how many keys a page holds: SCAN's COUNT, and the page
	// ends once it has this many. Default: 100. At most 1000.
	Count int `json:"count,omitempty" validate:"min=0,max=1000"`
}

// KeysPage is a page of keys. A scan sees every key that exists from its
// start to its end at least once; one added or deleted meanwhile may or may
// not be seen, and a rehash may show a key twice (SCAN's guarantees).
type KeysPage struct {
	Keys []KeyInfo `json:"keys"`
	// Cursor continues the scan; 0 when it is complete.
	Cursor uint64 `json:"cursor"`
}

// KeyInfo is a key with its type and time to live.
type KeyInfo struct {
	Key  string `json:"key"`
	Type string `json:"type"`
	// TTL is the time left; 0 means the key does not expire.
	TTL Duration `json:"ttl,omitempty"`
}

// streamIDRE matches a stream entry ID, a stream page's cursor.
var streamIDRE = regexp.MustCompile(`^[0-9]{1,20}-[0-9]{1,20}$`)

// maxScanCalls bounds the SCAN calls of one page, for patterns that match
// few keys: the page then returns with what it has and a cursor.
const maxScanCalls = 10

// Keys returns a page of keys, each with its type and TTL. It reads only:
// SCAN, TYPE and PTTL, none of which touches a key's LRU or LFU data.
func (in *Instance) Keys(ctx context.Context, q KeysQuery) (KeysPage, error) {
	v := &ValidationError{Cause: ErrInvalid}
	v.AddStruct(&q)
	if err := v.Err(); err != nil {
		return KeysPage{}, err
	}
	count := q.Count
	if count == 0 {
		count = 100
	}
	page := KeysPage{Keys: []KeyInfo{}, Cursor: q.Cursor}
	for calls := 0; calls < maxScanCalls && len(page.Keys) < count; calls++ {
		if err := take(ctx, in.limiter, count); err != nil {
			return KeysPage{}, in.fail("scan", err)
		}
		keys, next, err := in.rdb.ScanType(ctx, page.Cursor, q.Pattern, int64(count), q.Type).Result()
		if err != nil {
			return KeysPage{}, in.fail("scan", err)
		}
		infos, err := in.keyInfos(ctx, keys)
		if err != nil {
			return KeysPage{}, err
		}
		page.Keys = append(page.Keys, infos...)
		page.Cursor = next
		if next == 0 {
			break
		}
	}
	return page, nil
}

// keyInfos reads the type and TTL of keys, in one round trip, leaving out
// keys that went away since SCAN saw them.
func (in *Instance) keyInfos(ctx context.Context, keys []string) ([]KeyInfo, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	types := make([]*goredis.StatusCmd, len(keys))
	ttls := make([]*goredis.DurationCmd, len(keys))
	if _, err := in.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, k := range keys {
			types[i] = p.Type(ctx, k)
			ttls[i] = p.PTTL(ctx, k)
		}
		return nil
	}); err != nil {
		return nil, in.fail("type", err)
	}
	out := make([]KeyInfo, 0, len(keys))
	for i, k := range keys {
		if types[i].Val() == "none" {
			continue
		}
		out = append(out, KeyInfo{Key: k, Type: types[i].Val(), TTL: ttlOf(ttls[i].Val())})
	}
	return out, nil
}

// ttlOf reads PTTL's reply: -1 (no expiry) and -2 (gone) are 0, and a key
// about to expire keeps a TTL above 0 so that it does not read as permanent.
func ttlOf(d time.Duration) Duration {
	switch {
	case d < 0:
		return 0
	case d < time.Millisecond:
		return Duration(time.Millisecond)
	}
	return Duration(d)
}

// ValueQuery is one page of a key's value.
type ValueQuery struct {
	// Cursor continues a value's pages: "" starts, a page's Cursor goes on.
	Cursor string `json:"cursor,omitempty" validate:"max=64"`
	// Count is about how many elements a page holds (HSCAN, SSCAN and
	// ZSCAN may give a few more). Default: 100. At most 1000.
	Count int `json:"count,omitempty" validate:"min=0,max=1000"`
	// MaxBytes cuts each string (a string value's page, an element, a hash
	// value, a stream field's value) at this many bytes; Cut says which were.
	// Default: 4096. At most 1048576.
	MaxBytes int `json:"max_bytes,omitempty" validate:"min=0,max=1048576"`
}

// Value is one page of a key's value: the field of its type is set.
type Value struct {
	Key  string   `json:"key"`
	Type string   `json:"type"`
	TTL  Duration `json:"ttl,omitempty"`
	// Length is the whole value's: bytes of a string, elements otherwise.
	Length int64 `json:"length"`
	// String is a string's bytes from the page's offset, at most MaxBytes.
	String *string   `json:"string,omitempty"`
	Hash   []Pair    `json:"hash,omitempty"`
	List   []string  `json:"list,omitempty"`
	Set    []string  `json:"set,omitempty"`
	ZSet   []Scored  `json:"zset,omitempty"`
	Stream []Entry   `json:"stream,omitempty"`
	Cut    []CutText `json:"cut,omitempty"`
	// Offset is the index of the page's first list element, or the byte
	// offset of its string.
	Offset int64 `json:"offset,omitempty"`
	// Cursor continues the value; "" when this page is its last.
	Cursor string `json:"cursor,omitempty"`
}

// Pair is a hash field, or a stream entry's field, and its value.
type Pair struct {
	Field string `json:"field"`
	Value string `json:"value"`
}

// Scored is a sorted set member and its score.
type Scored struct {
	Member string  `json:"member"`
	Score  float64 `json:"score"`
}

// Entry is a stream entry.
type Entry struct {
	ID     string `json:"id"`
	Fields []Pair `json:"fields"`
}

// CutText names a string of the page that was cut at MaxBytes: its place
// (the index in the page's list of the type, and for a stream the field's
// index in its entry) and its whole size.
type CutText struct {
	Index int   `json:"index"`
	Field int   `json:"field,omitempty"`
	Size  int64 `json:"size"`
}

// Value returns a page of key's value, read by type: GETRANGE for a string,
// HSCAN, SSCAN and ZSCAN for hashes, sets and sorted sets, LRANGE for a list
// and XRANGE for a stream, so that no page reads a big value whole.
func (in *Instance) Value(ctx context.Context, key string, q ValueQuery) (Value, error) {
	v := &ValidationError{Cause: ErrInvalid}
	v.AddStruct(&q)
	if err := v.Err(); err != nil {
		return Value{}, err
	}
	count := int64(q.Count)
	if count == 0 {
		count = 100
	}
	maxBytes := q.MaxBytes
	if maxBytes == 0 {
		maxBytes = 4096
	}
	infos, err := in.keyInfos(ctx, []string{key})
	if err != nil {
		return Value{}, err
	}
	if len(infos) == 0 {
		return Value{}, in.fail("read", ErrNotFound)
	}
	val := Value{Key: key, Type: infos[0].Type, TTL: infos[0].TTL}
	cut := func(i, field int, s string) string {
		if len(s) <= maxBytes {
			return s
		}
		val.Cut = append(val.Cut, CutText{Index: i, Field: field, Size: int64(len(s))})
		return s[:maxBytes]
	}
	bad := func() error {
		return in.fail("read", fmt.Errorf("%w: cursor %q is not one of this %s's pages", ErrInvalid, q.Cursor, val.Type))
	}
	number := func() (int64, bool) {
		if q.Cursor == "" {
			return 0, true
		}
		n, err := strconv.ParseInt(q.Cursor, 10, 64)
		return n, err == nil && n >= 0
	}
	c := in.rdb
	switch val.Type {
	case "string":
		off, ok := number()
		if !ok {
			return Value{}, bad()
		}
		s, err := c.GetRange(ctx, key, off, off+int64(maxBytes)-1).Result()
		if err != nil {
			return Value{}, in.fail("getrange", err)
		}
		if val.Length, err = c.StrLen(ctx, key).Result(); err != nil {
			return Value{}, in.fail("strlen", err)
		}
		val.String, val.Offset = &s, off
		if end := off + int64(len(s)); end < val.Length {
			val.Cursor = strconv.FormatInt(end, 10)
		}
	case "list":
		off, ok := number()
		if !ok {
			return Value{}, bad()
		}
		items, err := c.LRange(ctx, key, off, off+count-1).Result()
		if err != nil {
			return Value{}, in.fail("lrange", err)
		}
		if val.Length, err = c.LLen(ctx, key).Result(); err != nil {
			return Value{}, in.fail("llen", err)
		}
		for i, s := range items {
			val.List = append(val.List, cut(i, 0, s))
		}
		val.Offset = off
		if end := off + int64(len(items)); end < val.Length {
			val.Cursor = strconv.FormatInt(end, 10)
		}
	case "hash", "set", "zset":
		cur, err := strconv.ParseUint(q.Cursor, 10, 64)
		if q.Cursor == "" {
			cur, err = 0, nil
		}
		if err != nil {
			return Value{}, bad()
		}
		var items []string
		var next uint64
		switch val.Type {
		case "hash":
			items, next, err = c.HScan(ctx, key, cur, "", count).Result()
			if err == nil {
				val.Length, err = c.HLen(ctx, key).Result()
			}
			for i := 0; i+1 < len(items); i += 2 {
				val.Hash = append(val.Hash, Pair{Field: items[i], Value: cut(i/2, 0, items[i+1])})
			}
		case "set":
			items, next, err = c.SScan(ctx, key, cur, "", count).Result()
			if err == nil {
				val.Length, err = c.SCard(ctx, key).Result()
			}
			for i, s := range items {
				val.Set = append(val.Set, cut(i, 0, s))
			}
		case "zset":
			items, next, err = c.ZScan(ctx, key, cur, "", count).Result()
			if err == nil {
				val.Length, err = c.ZCard(ctx, key).Result()
			}
			for i := 0; i+1 < len(items); i += 2 {
				score, _ := strconv.ParseFloat(items[i+1], 64)
				val.ZSet = append(val.ZSet, Scored{Member: cut(i/2, 0, items[i]), Score: score})
			}
		}
		if err != nil {
			return Value{}, in.fail("scan "+val.Type, err)
		}
		if next != 0 {
			val.Cursor = strconv.FormatUint(next, 10)
		}
	case "stream":
		start := "-"
		if q.Cursor != "" {
			// The cursor is the last ID read; "(" starts after it.
			start = "(" + q.Cursor
		}
		if q.Cursor != "" && !streamIDRE.MatchString(q.Cursor) {
			return Value{}, bad()
		}
		// Read raw: go-redis gives an entry's fields as a map, which loses
		// their order.
		reply, err := c.Do(ctx, "XRANGE", key, start, "+", "COUNT", count).Slice()
		if err != nil {
			return Value{}, in.fail("xrange", err)
		}
		if val.Length, err = c.XLen(ctx, key).Result(); err != nil {
			return Value{}, in.fail("xlen", err)
		}
		for i, r := range reply {
			m, _ := r.([]any)
			if len(m) != 2 {
				return Value{}, in.fail("xrange", fmt.Errorf("an entry of %d parts, not an ID and fields", len(m)))
			}
			id, _ := m[0].(string)
			kv, _ := m[1].([]any)
			e := Entry{ID: id, Fields: []Pair{}}
			for j := 0; j+1 < len(kv); j += 2 {
				f, _ := kv[j].(string)
				s, _ := kv[j+1].(string)
				e.Fields = append(e.Fields, Pair{Field: f, Value: cut(i, j/2, s)})
			}
			val.Stream = append(val.Stream, e)
		}
		if int64(len(reply)) == count {
			val.Cursor = val.Stream[len(val.Stream)-1].ID
		}
	default:
		// Module types: the key browser shows their type and TTL only.
	}
	return val, nil
}
