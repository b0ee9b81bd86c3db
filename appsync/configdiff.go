package appsync

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strings"
)

// Bounds of what a conflict lists, so that a task's state stays small.
const (
	maxDiffs = 100
	maxFlags = 100
)

// decodeObject decodes a configuration, which must be a JSON object.
func decodeObject(raw []byte) (map[string]any, error) {
	v, err := decodeJSON(raw)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("not a JSON object")
	}
	return m, nil
}

// split returns the keys of cfg that are synced, and the excluded ones.
func split(cfg map[string]any, exclude []string) (synced, excluded map[string]any) {
	synced = make(map[string]any, len(cfg))
	excluded = make(map[string]any)
	for k, v := range cfg {
		if slices.Contains(exclude, k) {
			excluded[k] = v
		} else {
			synced[k] = v
		}
	}
	return synced, excluded
}

// hashConfig returns the hex sha256 of cfg's canonical encoding.
func hashConfig(cfg map[string]any) string {
	b := mustEncode(cfg)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// mustEncode encodes a decoded JSON value, which cannot fail.
func mustEncode(v any) []byte {
	b, err := encodeJSON(v)
	if err != nil {
		panic(fmt.Sprintf("appsync: encode a decoded JSON value: %v", err))
	}
	return b
}

// equalJSON reports whether two decoded JSON values are the same. Numbers
// compare as written ("1.0" is not "1").
func equalJSON(a, b any) bool { return reflect.DeepEqual(a, b) }

// diff lists the fields where src and tgt differ, objects compared key by
// key and anything else as a whole; a nil side lacks the field.
func diff(src, tgt map[string]any) []FieldDiff {
	var out []FieldDiff
	diffInto(&out, "", src, tgt)
	return out
}

func diffInto(out *[]FieldDiff, path string, src, tgt map[string]any) {
	keys := slices.Collect(maps.Keys(src))
	for k := range tgt {
		if _, ok := src[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if len(*out) >= maxDiffs {
			return
		}
		p := joinPath(path, k)
		s, sok := src[k]
		t, tok := tgt[k]
		sm, smok := s.(map[string]any)
		tm, tmok := t.(map[string]any)
		switch {
		case smok && tmok:
			diffInto(out, p, sm, tm)
		case sok && tok && equalJSON(s, t):
		default:
			d := FieldDiff{Path: p}
			if sok {
				d.Source = mustEncode(s)
			}
			if tok {
				d.Target = mustEncode(t)
			}
			*out = append(*out, d)
		}
	}
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// flags lists the strings of cfg, at any depth, holding an address inside
// ranges.
func flags(cfg map[string]any, ranges []netip.Prefix) []Flag {
	if len(ranges) == 0 {
		return nil
	}
	var out []Flag
	var walk func(path string, v any)
	walk = func(path string, v any) {
		if len(out) >= maxFlags {
			return
		}
		switch v := v.(type) {
		case map[string]any:
			for _, k := range slices.Sorted(maps.Keys(v)) {
				walk(joinPath(path, k), v[k])
			}
		case []any:
			for i, e := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), e)
			}
		case string:
			if holdsAddrIn(v, ranges) {
				out = append(out, Flag{Path: path, Value: v})
			}
		}
	}
	walk("", cfg)
	return out
}

// holdsAddrIn reports whether s holds an IP address inside ranges: bare,
// as host:port, or in a URL or a list. IPv4 addresses are runs of digits and
// dots; IPv6 ones are runs of hex digits, colons and dots holding a colon
// (brackets and zones end them).
func holdsAddrIn(s string, ranges []netip.Prefix) bool {
	in := func(tok string) bool {
		a, err := netip.ParseAddr(tok)
		if err != nil {
			return false
		}
		a = a.Unmap()
		for _, r := range ranges {
			if r.Contains(a) {
				return true
			}
		}
		return false
	}
	v4 := strings.FieldsFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if slices.ContainsFunc(v4, in) {
		return true
	}
	v6 := strings.FieldsFunc(s, func(r rune) bool {
		return (r < '0' || r > '9') && (r < 'a' || r > 'f') && (r < 'A' || r > 'F') && r != ':' && r != '.'
	})
	return slices.ContainsFunc(v6, func(tok string) bool { return strings.Contains(tok, ":") && in(tok) })
}

// parseRanges parses validated CIDR prefixes.
func parseRanges(rs []string) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(rs))
	for _, r := range rs {
		if p, err := netip.ParsePrefix(r); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}

// rawObject encodes a decoded configuration for a Sink.
func rawObject(cfg map[string]any) json.RawMessage { return mustEncode(cfg) }
